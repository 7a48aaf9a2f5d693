#!/usr/bin/env bash
# The run command as a newcomer uses it: start `scripts/run-local.sh` on free
# ports, run the curl lines it prints, check their JSON, then stop it with
# Ctrl-C (SIGINT) and check that everything it started is gone.
# Tools: run
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for v in MOTO_PORT AUX_PORT AUX_ADMIN_PORT EDGE_PORT EDGE_TLS_PORT EDGE_ADMIN_PORT; do
  port=$(free_port)
  export "$v=$port"
done
OUT=$(mktemp)
STATE="$ROOT/.run/local/state"
rm -f "$STATE"

# Background jobs of a script start with SIGINT ignored; restore it so the
# Ctrl-C path is the one tested.
setsid env --default-signal=INT scripts/run-local.sh >"$OUT" 2>&1 &
runner=$!
stop_runner() {
  if kill -0 "$runner" 2>/dev/null; then
    kill -INT "$runner" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$runner" 2>/dev/null || true
  fi
  rm -f "$OUT"
}
trap stop_runner EXIT

for _ in $(seq 1 3000); do
  [ -f "$STATE" ] && grep -q ready "$STATE" && break
  kill -0 "$runner" 2>/dev/null || { cat "$OUT"; echo "run-local.sh exited early" >&2; exit 1; }
  sleep 0.2
done
grep -q ready "$STATE" || { cat "$OUT"; echo "stack did not come up" >&2; exit 1; }

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

kill -INT "$runner"
for _ in $(seq 1 150); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$runner" 2>/dev/null; then echo "FAIL run-local.sh did not stop on Ctrl-C"; failures=$((failures + 1)); fi
for port in "$MOTO_PORT" "$AUX_PORT" "$EDGE_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "FAIL something still listens on $port after Ctrl-C"; failures=$((failures + 1))
  fi
done
echo "stack: $failures failures"
[ "$failures" -eq 0 ]
