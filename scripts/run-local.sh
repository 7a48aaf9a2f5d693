#!/usr/bin/env bash
# The local stack, one command (`make run`): a real AWS emulator (moto) seeded
# with the demo data, the worker, and the edge over HTTP and HTTPS.
# Ctrl-C (or SIGTERM) stops everything this script started and says so; when
# a service dies by itself the script names it, shows the end of its log,
# stops the rest and exits 1.
#
# Ports can be moved with environment variables (defaults in brackets):
#   MOTO_PORT [5000]  AUX_PORT [8001]  AUX_ADMIN_PORT [9001]
#   EDGE_PORT [8000]  EDGE_TLS_PORT [8443]  EDGE_ADMIN_PORT [9000]
#   PROFILE [dev] (or release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUN="$ROOT/.run/local"
mkdir -p "$RUN"
rm -f "$RUN/state" "$RUN/pids"

MOTO_PORT=${MOTO_PORT:-5000}
AUX_PORT=${AUX_PORT:-8001}
AUX_ADMIN_PORT=${AUX_ADMIN_PORT:-9001}
EDGE_PORT=${EDGE_PORT:-8000}
EDGE_TLS_PORT=${EDGE_TLS_PORT:-8443}
EDGE_ADMIN_PORT=${EDGE_ADMIN_PORT:-9000}
PROFILE=${PROFILE:-dev}
PREFIX=/kantox-challenge/dev

# Bold only on a terminal: redirected output stays free of escape codes.
if [ -t 1 ]; then
  say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }
else
  say() { printf '[run] %s\n' "$*"; }
fi
die() { printf '[run] error: %s\n' "$*" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$MOTO_PORT" "$AUX_PORT" "$AUX_ADMIN_PORT" "$EDGE_PORT" "$EDGE_TLS_PORT" "$EDGE_ADMIN_PORT"; do
  port_free "$p" || die "port $p on 127.0.0.1 is in use; stop what uses it or move it (see the top of $0)"
done

say "checking the prerequisites; tools go into .tools/ on first use"
scripts/tools.sh run

with_edge=false
[ -f edge/Cargo.toml ] && with_edge=true
packages=(-p aux-worker)
$with_edge && packages+=(-p edge)
profile_flag=(); target_dir=debug
if [ "$PROFILE" = release ]; then profile_flag=(--release); target_dir=release; fi
say "building ${packages[*]} ($PROFILE)"
# .run/local/state says how far it got: building, starting, ready.
echo "building" >"$RUN/state"
cargo build --locked "${profile_flag[@]}" "${packages[@]}"
echo "starting" >"$RUN/state"
# Where cargo put them (CARGO_TARGET_DIR and cargo's configuration included).
target=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$target/$target_dir"

pids=()
names=()
# shellcheck disable=SC2317  # cleanup and on_signal run from the traps
cleanup() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping ${names[*]} (pids ${pids[*]})"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  rm -f "$RUN/state" "$RUN/pids"
  say "stopped"
}
# shellcheck disable=SC2317
on_signal() { # on_signal NAME STATUS
  say "received $1: stopping everything this command started"
  cleanup
  exit "$2"
}
trap 'on_signal "SIGINT (Ctrl-C)" 130' INT
trap 'on_signal SIGTERM 143' TERM
trap cleanup EXIT

wait_http() { # wait_http URL NAME PID
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || die "$2 exited; see $RUN/$2.log"
    sleep 0.1
  done
  die "$2 did not answer at $1; see $RUN/$2.log"
}

say "starting moto on 127.0.0.1:$MOTO_PORT and seeding the demo data"
.tools/venv/bin/python scripts/moto_server.py --port "$MOTO_PORT" --seed >"$RUN/moto.log" 2>&1 &
pids+=($!); names+=(moto)
for _ in $(seq 1 300); do
  grep -q '^listening' "$RUN/moto.log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || die "moto exited; see $RUN/moto.log"
  sleep 0.1
done
grep -q '^listening' "$RUN/moto.log" || die "moto did not start; see $RUN/moto.log"

say "starting aux-worker on 127.0.0.1:$AUX_PORT (admin $AUX_ADMIN_PORT)"
env LISTEN_ADDR="127.0.0.1:$AUX_PORT" ADMIN_ADDR="127.0.0.1:$AUX_ADMIN_PORT" \
  SERVICE_VERSION="${AUX_VERSION:-0.1.0-local}" PARAMETER_PREFIX="$PREFIX" \
  AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=eu-west-1 \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
  SHUTDOWN_DRAIN_SECONDS=0 LOG_FORMAT=text RUST_LOG="${RUST_LOG:-info}" \
  "$BIN/aux-worker" >"$RUN/aux-worker.log" 2>&1 &
pids+=($!); names+=(aux-worker)
wait_http "http://127.0.0.1:$AUX_ADMIN_PORT/readyz" aux-worker "${pids[-1]}"

if $with_edge; then
  TLS="$RUN/tls"
  if [ ! -f "$TLS/tls.crt" ]; then
    say "generating a local CA and a certificate for localhost in $TLS"
    mkdir -p "$TLS"
    # P-256 keys through a parameter file: OpenSSL and macOS's LibreSSL alike.
    openssl ecparam -name prime256v1 -out "$TLS/p256.pem"
    openssl req -x509 -newkey "ec:$TLS/p256.pem" -nodes -days 825 \
      -subj "/CN=Local development CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
    openssl req -newkey "ec:$TLS/p256.pem" -nodes \
      -subj "/CN=localhost" -keyout "$TLS/tls.key" -out "$TLS/tls.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TLS/ext.cnf"
    openssl x509 -req -in "$TLS/tls.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
      -days 825 -extfile "$TLS/ext.cnf" -out "$TLS/tls.crt" 2>/dev/null
  fi
  say "starting edge on 127.0.0.1:$EDGE_PORT, HTTPS $EDGE_TLS_PORT (admin $EDGE_ADMIN_PORT)"
  env LISTEN_ADDR="127.0.0.1:$EDGE_PORT" TLS_LISTEN_ADDR="127.0.0.1:$EDGE_TLS_PORT" \
    TLS_CERT_FILE="$TLS/tls.crt" TLS_KEY_FILE="$TLS/tls.key" ADMIN_ADDR="127.0.0.1:$EDGE_ADMIN_PORT" \
    AUXILIARY_SERVICE_URL="http://127.0.0.1:$AUX_PORT" SERVICE_VERSION="${EDGE_VERSION:-0.1.0-local}" \
    SHUTDOWN_DRAIN_SECONDS=0 LOG_FORMAT=text RUST_LOG="${RUST_LOG:-info}" \
    "$BIN/edge" >"$RUN/edge.log" 2>&1 &
  pids+=($!); names+=(edge)
  wait_http "http://127.0.0.1:$EDGE_ADMIN_PORT/readyz" edge "${pids[-1]}"
fi

api="http://127.0.0.1:$AUX_PORT"
$with_edge && api="http://127.0.0.1:$EDGE_PORT"
cat <<EOF

  The stack is up (logs in .run/local/):
    emulated AWS   http://127.0.0.1:$MOTO_PORT
    aux-worker     http://127.0.0.1:$AUX_PORT     admin http://127.0.0.1:$AUX_ADMIN_PORT/metrics
EOF
if $with_edge; then
  cat <<EOF
    edge (main API) http://127.0.0.1:$EDGE_PORT   https://localhost:$EDGE_TLS_PORT   admin http://127.0.0.1:$EDGE_ADMIN_PORT/metrics

  Try:
    curl -s $api/s3-buckets
    curl -s $api/parameters
    curl -s $api/parameter/param1
    curl -s $api/api/parameter/db/host
    curl -s -i $api/parameter/api-key
    curl -s --cacert .run/local/tls/ca.crt https://localhost:$EDGE_TLS_PORT/parameter/param2
    curl -s --http2 --cacert .run/local/tls/ca.crt https://localhost:$EDGE_TLS_PORT/parameters
EOF
else
  cat <<EOF

  Try:
    curl -s $api/s3-buckets
    curl -s $api/parameters
    curl -s $api/parameter/param1
    curl -s $api/parameter/db/host
    curl -s -i $api/parameter/api-key
EOF
fi
printf '\n  Press Ctrl-C to stop.\n'
for i in "${!pids[@]}"; do echo "${names[$i]} ${pids[$i]}"; done >"$RUN/pids"
echo "ready" >"$RUN/state"
# Wait until a child exits or a signal arrives. A signal runs its trap (which
# exits) as soon as this wait returns, so what follows is only reached when a
# service ended by itself.
rc=0
wait -n "${pids[@]}" || rc=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    say "${names[$i]} exited by itself (status $rc); the end of .run/local/${names[$i]}.log:"
    tail -n 15 "$RUN/${names[$i]}.log" | sed 's/^/    /'
    unset 'pids[i]' 'names[i]'
    pids=("${pids[@]}"); names=("${names[@]}")
    break
  fi
done
exit 1
