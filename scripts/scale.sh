#!/usr/bin/env bash
# The scale-out simulation (`make scale`; not part of the test command): SSM
# calls per second against the number of edge pods, before (per-pod caches)
# and after (keyed routing to the workers + the worker cache), against the
# ideal (distinct keys requested per TTL). Writes docs/benchmarks/scale.json,
# scale.png and scale.md, and rewrites docs/benchmarks.md (whose report
# includes scale.md) from the bench's committed results.
#
#   scripts/scale.sh                                   the measured run (~8 minutes)
#   SCALE_EDGES=1,2 SCALE_SECONDS=10 SCALE_TTL=5 scripts/scale.sh   a quick run
#
# Environment:
#   SCALE_EDGES     edge counts E, comma-separated (1,2,4,8); W = 4 workers
#   SCALE_SECONDS   load duration per configuration (40)
#   SCALE_TTL       CACHE_TTL_SECONDS of edges and workers (10)
#   SCALE_RATE      requests per second over all edges (100)
#   SCALE_KEYS      parameters seeded and requested (1000)
#   SCALE_KILL=0    skip the run where a worker is SIGKILLed half-way
#   SCALE_OUT       results directory (docs/benchmarks)
#   SCALE_MARKDOWN  the section written (SCALE_OUT/scale.md)
#
# Needs unshare (util-linux) and the right to bind-mount a file over
# /etc/hosts in a private mount namespace: root, or unprivileged user
# namespaces (`unshare -rm`). Without it the run stops with a message; it
# never falls back to something else.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${SCALE_OUT:-$ROOT/docs/benchmarks}
MARKDOWN=${SCALE_MARKDOWN:-$OUT/scale.md}

log() { printf '[scale] %s\n' "$*"; }
die() { printf '[scale] error: %s\n' "$*" >&2; exit 1; }

command -v unshare >/dev/null || die "unshare (util-linux) is required"
scripts/tools.sh run
# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
PLOT_PYTHON=$(plot_venv "$ROOT")

log "building release binaries"
cargo build --locked --release -q -p aux-worker -p edge
# Where cargo put them (CARGO_TARGET_DIR or a cargo config may move it).
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

args=(--bin "$TARGET_DIR/release" --out "$OUT" --edges "${SCALE_EDGES:-1,2,4,8}"
  --seconds "${SCALE_SECONDS:-40}" --ttl "${SCALE_TTL:-10}" --rate "${SCALE_RATE:-100}"
  --keys "${SCALE_KEYS:-1000}")
[ "${SCALE_KILL:-1}" != 0 ] || args+=(--no-kill)

log "running (load average $(cut -d' ' -f1 /proc/loadavg))"
"$ROOT/.tools/venv/bin/python" scripts/scale/scale.py "${args[@]}"
"$PLOT_PYTHON" scripts/scale/report.py --results "$OUT/scale.json" --plot "$OUT/scale.png" --markdown "$MARKDOWN"
# docs/benchmarks.md carries this section (the bench report includes the
# scale.md beside its results): rewrite it from the bench's own results.
if [ "$MARKDOWN" = "$OUT/scale.md" ] && [ -f "$OUT/results.json" ] && [ "$OUT" = "$ROOT/docs/benchmarks" ]; then
  "$PLOT_PYTHON" scripts/bench/report.py --results "$OUT/results.json" \
    --plot "$OUT/throughput.png" --markdown "$ROOT/docs/benchmarks.md"
else
  log "section for docs/benchmarks.md: $MARKDOWN"
fi
