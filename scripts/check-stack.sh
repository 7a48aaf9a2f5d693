#!/usr/bin/env bash
# The run command as a newcomer uses it: start `scripts/run-local.sh` on free
# ports, run the curl lines it prints, check their JSON, then stop it with
# Ctrl-C (SIGINT) and check that everything it started is gone and that it
# said it stopped because of Ctrl-C. Its output and the logs in .run/local/
# are not a terminal, so none may hold a colour escape code. Then once more,
# with the worker killed under it: it must name the worker, stop the rest and
# exit 1.
# Tools: run
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

free_port() { python3 "$ROOT/scripts/ports.py"; }  # below the ephemeral range: see ports.py
for v in MOTO_PORT AUX_PORT AUX_ADMIN_PORT EDGE_PORT EDGE_TLS_PORT EDGE_ADMIN_PORT; do
  port=$(free_port)
  export "$v=$port"
done
OUT=$(mktemp)
STATE="$ROOT/.run/local/state"
rm -f "$STATE"

# Background jobs of a script start with SIGINT ignored; restore it so the
# Ctrl-C path is the one tested.
start_runner() {
  rm -f "$STATE"
  setsid env --default-signal=INT scripts/run-local.sh >"$OUT" 2>&1 &
  runner=$!
}
start_runner
stop_runner() {
  if kill -0 "$runner" 2>/dev/null; then
    kill -INT "$runner" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  rm -f "$OUT"
}
trap stop_runner EXIT

# run-local.sh writes its progress to $STATE: building, starting, ready.
# Its build has no bound here: cargo takes the target directory's lock even
# when nothing is stale, so on a cold run it queues behind the other checks'
# builds for many minutes. Starting moto, the worker and the edge once built
# takes seconds, and gets two minutes.
wait_ready() {
  local state starting=0
  for _ in $(seq 1 15000); do  # 50 minutes in all
    state=$(cat "$STATE" 2>/dev/null || true)
    [ "$state" = ready ] && return 0
    kill -0 "$runner" 2>/dev/null || { cat "$OUT"; echo "run-local.sh exited early" >&2; exit 1; }
    if [ "$state" = starting ]; then
      starting=$((starting + 1))
      [ "$starting" -le 600 ] || break
    fi
    sleep 0.2
  done
  cat "$OUT"; echo "stack did not come up (last state: ${state:-none})" >&2; exit 1
}
wait_ready

failures=0
check() { # check NAME JQ-LIKE-PYTHON-EXPR CURL-ARGS...
  local name=$1 expr=$2; shift 2
  local body
  body=$(curl -sS --max-time 10 "$@") || { echo "FAIL $name: curl failed"; failures=$((failures + 1)); return; }
  if python3 -c 'import json,sys; b=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$body" "$expr"; then
    echo "ok   $name"
  else
    echo "FAIL $name: $body"; failures=$((failures + 1))
  fi
}

# Every curl line the script printed must answer JSON with both versions.
mapfile -t lines < <(grep -E '^\s+curl ' "$OUT" | sed 's/^ *//')
[ ${#lines[@]} -ge 5 ] || { cat "$OUT"; echo "expected at least five curl lines" >&2; exit 1; }
for line in "${lines[@]}"; do
  read -r -a words <<<"${line#curl }"
  argv=()
  for w in "${words[@]}"; do [ "$w" = -i ] || argv+=("$w"); done
  check "$line" "'main_api_version' in b and 'auxiliary_service_version' in b" "${argv[@]}"
done

edge="http://127.0.0.1:$EDGE_PORT"
check "buckets include the demo bucket" "'kantox-challenge-dev-bucket' in b['buckets']" "$edge/s3-buckets"
check "parameters span more than one page" "len(b['parameters']) > 10 and '/kantox-challenge/prod/param1' not in b['parameters']" "$edge/parameters"
check "param1 value" "b['value'] == 'value1' and b['name'] == '/kantox-challenge/dev/param1'" "$edge/parameter/param1"
check "SecureString refused" "b['error']['code'] == 'secure_parameter'" "$edge/parameter/api-key"
check "HTTPS with the generated CA" "b['value'] == 'value2'" --cacert .run/local/tls/ca.crt "https://localhost:$EDGE_TLS_PORT/parameter/param2"

ports_closed() { # ports_closed WHEN
  local port
  for port in "$MOTO_PORT" "$AUX_PORT" "$EDGE_PORT" "$EDGE_TLS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "FAIL something still listens on $port $1"; failures=$((failures + 1))
    fi
  done
}
wait_runner() { # wait_runner -> sets runner_rc (or fails the check)
  for _ in $(seq 1 150); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$runner" 2>/dev/null; then runner_rc=timeout; return 1; fi
  runner_rc=0; wait "$runner" 2>/dev/null || runner_rc=$?
}
said() { # said DESCRIPTION FIXED-STRING: the runner's output must hold it
  if grep -qF -- "$2" "$OUT"; then echo "ok   $1"; else echo "FAIL $1: no '$2' in its output"; failures=$((failures + 1)); fi
}
never_said() { # never_said DESCRIPTION FIXED-STRING
  if grep -qF -- "$2" "$OUT"; then echo "FAIL $1: '$2' in its output"; failures=$((failures + 1)); else echo "ok   $1"; fi
}

kill -INT "$runner"
if ! wait_runner; then echo "FAIL run-local.sh did not stop on Ctrl-C"; failures=$((failures + 1)); fi
ports_closed "after Ctrl-C"
tail -n 3 "$OUT" | sed 's/^/     | /'
said "Ctrl-C: it says it stops because of the signal" "received SIGINT (Ctrl-C): stopping everything"
never_said "Ctrl-C: no claim that a service exited" "exited by itself"
if [ "$runner_rc" = 130 ]; then echo "ok   Ctrl-C: exit status 130"; else echo "FAIL Ctrl-C: exit status $runner_rc, expected 130"; failures=$((failures + 1)); fi

# Neither its output nor the logs are a terminal: no ESC byte anywhere.
escaped=()
for f in "$OUT" .run/local/*.log; do
  if grep -q $'\x1b' "$f"; then escaped+=("$([ "$f" = "$OUT" ] && echo "run-local.sh output" || echo "$f")"); fi
done
if [ ${#escaped[@]} -eq 0 ]; then
  echo "ok   no colour escape codes in its output or in $(echo .run/local/*.log)"
else
  echo "FAIL colour escape codes written to a file: ${escaped[*]}"
  for f in "${escaped[@]}"; do [ -f "$f" ] && grep -m 2 $'\x1b' "$f" | cat -v | sed 's/^/     /'; done
  failures=$((failures + 1))
fi

# Once more: the worker dies under it.
start_runner
wait_ready
worker=$(awk '$1 == "aux-worker" {print $2}' .run/local/pids)
if [ -n "$worker" ] && kill -KILL "$worker" 2>/dev/null; then
  if ! wait_runner; then echo "FAIL run-local.sh kept running after the worker died"; failures=$((failures + 1)); fi
  said "worker killed: it names the worker" "aux-worker exited by itself"
  never_said "worker killed: no claim of a signal" "received SIGINT"
  if [ "$runner_rc" = 1 ]; then echo "ok   worker killed: exit status 1"; else echo "FAIL worker killed: exit status $runner_rc, expected 1"; failures=$((failures + 1)); fi
  ports_closed "after the worker died"
  grep -A 3 "exited by itself" "$OUT" | sed 's/^/     | /'
else
  echo "FAIL no aux-worker pid in .run/local/pids"; failures=$((failures + 1))
fi
echo "stack: $failures failures"
[ "$failures" -eq 0 ]
