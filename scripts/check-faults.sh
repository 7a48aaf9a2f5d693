#!/usr/bin/env bash
# Fault and abuse tests, black-box over the real binaries and under load
# (scripts/faults/faults.py drives them; each test prints its figures):
#   worker-killed  SIGKILL the worker: cached keys answer STALE, others get a
#                  quick JSON 502/503, traffic recovers when it is back
#   worker-hangs   SIGSTOP the worker: JSON 504 within UPSTREAM_TIMEOUT_SECONDS,
#                  the edge's connections and descriptors stay bounded
#   aws-faults     SSM throttled / 500 / hanging behind a fault proxy in front
#                  of moto: 503 + Retry-After or 504, at most AWS_MAX_ATTEMPTS
#                  SSM calls per request, bounded bursts
#   sigterm        SIGTERM to the edge, then the worker, under load: readiness fails first, zero
#                  failures among requests started before it, exit 0 in time
#   slow-clients   slowhttptest slowloris (bounded): normal requests answered
# Time bounds are generous: they assert behaviour, never speed (the bench
# measures speed). Everything runs on 127.0.0.1 on free ports and is stopped
# on exit.
# Tools: run slowhttptest
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHECK_NAME=faults
# shellcheck source=scripts/faults/lib.sh
source scripts/faults/lib.sh
trap stack_cleanup EXIT

for tool in slowhttptest python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/tools.sh installs it)"
done
[ -x "$STACK_PY" ] || die "the tools venv is missing (scripts/tools.sh run)"

build_binaries
start_moto
say "moto on :$MOTO_PORT; running the fault tests (logs in $STACK_DIR on failure)"
if ! "$STACK_PY" scripts/faults/faults.py --bin "$STACK_BIN" --moto-port "$MOTO_PORT" \
  --workdir "$STACK_DIR" "$@"; then
  for f in "$STACK_DIR"/*.log; do
    [ -f "$f" ] || continue
    echo "--- last lines of $(basename "$f")"
    tail -n 15 "$f"
  done
  exit 1
fi
