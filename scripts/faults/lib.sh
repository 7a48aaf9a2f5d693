# shellcheck shell=bash
# Starting the real binaries on 127.0.0.1 for black-box checks and the bench.
# Sourced by scripts/check-faults.sh, scripts/check-api.sh and scripts/bench.sh.
#
# Every process started here is recorded in STACK_PIDS and stopped by
# stack_cleanup (call it from an EXIT trap); nothing else is ever signalled.
# Logs go to $STACK_DIR (a fresh temporary directory per run).

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_PY="$STACK_ROOT/.tools/venv/bin/python"
STACK_PREFIX=/kantox-challenge/dev
STACK_PIDS=()
STACK_DIR=${STACK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/stack.XXXXXX")}
# Where cargo builds (CARGO_TARGET_DIR and cargo's configuration included).
STACK_TARGET=$(cd "$STACK_ROOT" && cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
STACK_BIN=${STACK_BIN:-$STACK_TARGET/debug}

say() { printf '[%s] %s\n' "${CHECK_NAME:-stack}" "$*"; }
die() { printf '[%s] error: %s\n' "${CHECK_NAME:-stack}" "$*" >&2; exit 1; }

free_port() { python3 "$STACK_ROOT/scripts/ports.py"; }  # below the ephemeral range: see ports.py

stack_track() { STACK_PIDS+=("$1"); }

# Stops one tracked process by PID (TERM, then KILL after $2 seconds).
stack_stop() { # stack_stop PID [GRACE]
  local pid=$1 grace=${2:-5} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A signal ends the script through its EXIT trap (stack_cleanup).
trap 'exit 143' TERM
trap 'exit 130' INT

stack_cleanup() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STACK_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
  if [ "${STACK_KEEP:-0}" != 1 ]; then rm -rf "$STACK_DIR"; fi
}

wait_http() { # wait_http URL NAME PID [TRIES]
  local tries=${4:-300}
  for ((i = 0; i < tries; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { tail -20 "$STACK_DIR/$2.log" >&2; die "$2 exited"; }
    sleep 0.1
  done
  tail -20 "$STACK_DIR/$2.log" >&2
  die "$2 did not answer at $1"
}

# Waits for a line "listening http://127.0.0.1:PORT" in a log; prints PORT.
wait_listening() { # wait_listening LOG PID NAME
  for _ in $(seq 1 600); do
    if grep -q '^listening' "$1" 2>/dev/null; then
      grep -m1 '^listening' "$1" | sed 's/.*://'
      return 0
    fi
    kill -0 "$2" 2>/dev/null || { tail -20 "$1" >&2; die "$3 exited"; }
    sleep 0.1
  done
  die "$3 did not start"
}

# moto on a free port, seeded with the demo data. Sets MOTO_PORT, MOTO_PID.
# It stops by itself when this shell goes away (stdin is a pipe we hold).
start_moto() {
  # shellcheck disable=SC2034  # the descriptor is held open, never written
  exec {STACK_MOTO_FD}> >(exec "$STACK_PY" "$STACK_ROOT/scripts/moto_server.py" --port 0 --seed --watch-stdin >"$STACK_DIR/moto.log" 2>&1)
  MOTO_PID=$!
  stack_track "$MOTO_PID"
  MOTO_PORT=$(wait_listening "$STACK_DIR/moto.log" "$MOTO_PID" moto)
}

# The worker. Sets AUX_PORT, AUX_ADMIN_PORT, AUX_PID. Extra settings in the
# array WORKER_ENV (NAME=value), e.g. AWS_ENDPOINT_URL=... for a proxy.
WORKER_ENV=()
start_worker() {
  AUX_PORT=$(free_port)
  AUX_ADMIN_PORT=$(free_port)
  run_worker
}

# (Re)starts the worker on $AUX_PORT/$AUX_ADMIN_PORT, e.g. after it was killed.
run_worker() {
  env LISTEN_ADDR="127.0.0.1:$AUX_PORT" ADMIN_ADDR="127.0.0.1:$AUX_ADMIN_PORT" \
    SERVICE_VERSION=0.1.0-check PARAMETER_PREFIX="$STACK_PREFIX" \
    AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=eu-west-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    SHUTDOWN_DRAIN_SECONDS=0 SHUTDOWN_TIMEOUT_SECONDS=2 LOG_FORMAT=json RUST_LOG=warn \
    "${WORKER_ENV[@]}" "$STACK_BIN/aux-worker" >>"$STACK_DIR/aux-worker.log" 2>&1 &
  AUX_PID=$!
  stack_track "$AUX_PID"
  wait_http "http://127.0.0.1:$AUX_ADMIN_PORT/readyz" aux-worker "$AUX_PID"
}

# A self-signed certificate for localhost/127.0.0.1 in $STACK_DIR/tls.
make_cert() {
  mkdir -p "$STACK_DIR/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$STACK_DIR/tls/tls.key" -out "$STACK_DIR/tls/tls.crt" 2>/dev/null
}

# The edge in front of $1 (the worker's URL). Sets EDGE_PORT, EDGE_ADMIN_PORT,
# EDGE_PID (and EDGE_TLS_PORT with EDGE_TLS=1). Extra settings in EDGE_ENV.
EDGE_ENV=()
start_edge() {
  local upstream=$1
  EDGE_PORT=$(free_port)
  EDGE_ADMIN_PORT=$(free_port)
  local tls=()
  if [ "${EDGE_TLS:-0}" = 1 ]; then
    EDGE_TLS_PORT=$(free_port)
    [ -f "$STACK_DIR/tls/tls.crt" ] || make_cert
    tls=(TLS_LISTEN_ADDR="127.0.0.1:$EDGE_TLS_PORT" TLS_CERT_FILE="$STACK_DIR/tls/tls.crt"
      TLS_KEY_FILE="$STACK_DIR/tls/tls.key")
  fi
  env LISTEN_ADDR="127.0.0.1:$EDGE_PORT" ADMIN_ADDR="127.0.0.1:$EDGE_ADMIN_PORT" \
    AUXILIARY_SERVICE_URL="$upstream" SERVICE_VERSION=0.1.0-check \
    SHUTDOWN_DRAIN_SECONDS=0 SHUTDOWN_TIMEOUT_SECONDS=2 LOG_FORMAT=json RUST_LOG=warn \
    "${tls[@]}" "${EDGE_ENV[@]}" "$STACK_BIN/edge" >>"$STACK_DIR/edge.log" 2>&1 &
  EDGE_PID=$!
  stack_track "$EDGE_PID"
  wait_http "http://127.0.0.1:$EDGE_ADMIN_PORT/readyz" edge "$EDGE_PID"
}

# Builds both binaries into $STACK_BIN (debug; BUILD_PROFILE=release for
# the bench).
build_binaries() {
  local flags=()
  [ "${BUILD_PROFILE:-debug}" = release ] && flags=(--release)
  say "building aux-worker and edge (${BUILD_PROFILE:-debug})"
  (cd "$STACK_ROOT" && cargo build --locked -q "${flags[@]}" -p aux-worker -p edge) ||
    die "cargo build failed"
}
