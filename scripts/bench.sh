#!/usr/bin/env bash
# The bench command (`make bench`; not part of the test command): the edge
# beside nginx on this machine, in one run, servers pinned to CPU 0 and the
# load generator to CPU 1. Writes docs/benchmarks.md, docs/benchmarks/
# results.json, results.csv and throughput.png.
#
#   scripts/bench.sh                   the measured run (10 s per measurement)
#   BENCH_SECONDS=2 scripts/bench.sh   a quick run of the harness itself
#
# Environment:
#   BENCH_SECONDS        seconds per measurement (10)
#   BENCH_ONLY           comma-separated scenarios (all): cache-hit,
#                        cache-hit-logs, proxied, proxied-canned, moto, memory,
#                        instructions
#   BENCH_OUT            results directory (docs/benchmarks; .run/bench with
#                        BENCH_ONLY, so a partial run never replaces the report)
#   BENCH_MARKDOWN       the report (docs/benchmarks.md; .run/bench/benchmarks.md
#                        with BENCH_ONLY)
#   BENCH_MAX_LOAD       busiest one-minute load average accepted (1.5)
#   BENCH_SETTLE_SECONDS how long to wait after the build for the load average
#                        to fall below BENCH_MAX_LOAD (180)
#   BENCH_ALLOW_BUSY=1   measure anyway on a busy machine; the report then
#                        marks every figure as unreliable, in bold
#   BENCH_RECORD_BUDGET=1  write the counted instructions per cache hit into
#                        scripts/bench/budget.json (the budget later runs
#                        compare against)
#
# A busy machine (load average above BENCH_MAX_LOAD before the build, or still
# above it when the measurements would start) stops the run with exit status 3
# and writes nothing, unless BENCH_ALLOW_BUSY=1. BENCH_ONLY=instructions is not
# gated: callgrind's counts do not depend on the load.
#
# Installs what it needs into .tools/bench/ on first use: nginx and wrk from
# the Debian archive (apt-get download + dpkg -x, nothing installed
# system-wide, no service started) and matplotlib for the plot. valgrind
# (instruction counts), openssl (the TLS pair), cmake and musl-tools with the
# Rust x86_64-unknown-linux-musl target (the shipped binary) must be present;
# as root, the missing Debian packages are installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_TOOLS="$ROOT/.tools/bench"
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
if [ -z "${BENCH_ONLY:-}" ]; then
  OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
  MARKDOWN=${BENCH_MARKDOWN:-$ROOT/docs/benchmarks.md}
else
  # A partial run never replaces the committed report.
  OUT=${BENCH_OUT:-$ROOT/.run/bench}
  MARKDOWN=${BENCH_MARKDOWN:-$ROOT/.run/bench/benchmarks.md}
fi
MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
MUSL=x86_64-unknown-linux-musl
DEBS=(nginx wrk libluajit2-5.1-2 libluajit2-5.1-common)
EXIT_BUSY=3

log() { printf '[bench] %s\n' "$*"; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (servers on CPU 0, load generator on CPU 1)"
command -v taskset >/dev/null || die "taskset (util-linux) is required"

# Fail fast on a machine that is already busy: the build would only add to it.
# Instruction counts alone do not depend on the load: not gated.
load=$(cut -d' ' -f1 /proc/loadavg)
if [ "${BENCH_ONLY:-}" != instructions ] && awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
  if [ "${BENCH_ALLOW_BUSY:-0}" = 1 ]; then
    log "load average $load > $MAX_LOAD: BENCH_ALLOW_BUSY=1, every figure will be marked unreliable"
  else
    printf '[bench] REFUSED: the one-minute load average is %s (> %s). Figures from a busy machine are not written; run it on a quiet machine, or set BENCH_ALLOW_BUSY=1 for a report that marks every figure as unreliable.\n' "$load" "$MAX_LOAD" >&2
    exit "$EXIT_BUSY"
  fi
fi

scripts/tools.sh run

missing=()
for tool in valgrind:valgrind callgrind_control:valgrind openssl:openssl cmake:cmake musl-gcc:musl-tools; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; } ||
    die "missing Debian packages: ${missing[*]} (sudo apt-get install -y ${missing[*]})"
  log "apt-get install ${missing[*]} (missing, needed by the bench)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
  log "rustup target add $MUSL"
  rustup target add "$MUSL" || die "the Rust $MUSL target is required (rustup target add $MUSL)"
fi

if [ ! -x "$BENCH_TOOLS/root/usr/sbin/nginx" ] || [ ! -x "$BENCH_TOOLS/root/usr/bin/wrk" ]; then
  log "fetching ${DEBS[*]} (Debian packages, extracted into .tools/bench/root)"
  mkdir -p "$BENCH_TOOLS/deb" "$BENCH_TOOLS/root"
  (cd "$BENCH_TOOLS/deb" && { apt-get download -qq "${DEBS[@]}" 2>/dev/null ||
    { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && apt-get download -qq "${DEBS[@]}"; }; }) ||
    die "apt-get download ${DEBS[*]} failed"
  for d in "$BENCH_TOOLS"/deb/*.deb; do dpkg -x "$d" "$BENCH_TOOLS/root"; done
fi
NGINX="$BENCH_TOOLS/root/usr/sbin/nginx"
WRK="$BENCH_TOOLS/root/usr/bin/wrk"
WRK_LIB="$BENCH_TOOLS/root/usr/lib/x86_64-linux-gnu"
LD_LIBRARY_PATH="$WRK_LIB" "$WRK" -v >/dev/null 2>&1 || [ $? -eq 1 ] || die "wrk does not run"

# shellcheck source=scripts/bench/lib.sh
. "$ROOT/scripts/bench/lib.sh"
PLOT_PYTHON=$(plot_venv "$ROOT")

log "building release binaries (glibc; and the edge as edge/Dockerfile builds it, static musl)"
cargo build --locked --release -q -p aux-worker -p edge
# The image's build step, to the letter: cargo build --release --locked --target x86_64-unknown-linux-musl --package edge
cargo build --release --locked --target "$MUSL" --package edge -q
# Where cargo put them (CARGO_TARGET_DIR or a cargo config may move it).
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
MUSL_EDGE="$TARGET_DIR/$MUSL/release/edge"
file_type=$(od -An -c -N4 "$MUSL_EDGE" | tr -d ' ')
[ "$file_type" = 177ELF ] || die "$MUSL_EDGE is not an ELF binary"
if ldd "$MUSL_EDGE" 2>&1 | grep -q '=>'; then
  die "$MUSL_EDGE is dynamically linked; the image ships a static binary"
fi

args=(--bin "$TARGET_DIR/release" --musl-edge "$MUSL_EDGE" --nginx "$NGINX" --wrk "$WRK" --wrk-lib "$WRK_LIB"
  --out "$OUT" --seconds "$SECONDS_PER_RUN" --max-load "$MAX_LOAD"
  --settle-seconds "${BENCH_SETTLE_SECONDS:-180}")
[ -z "${BENCH_ONLY:-}" ] || args+=(--only "$BENCH_ONLY")
[ "${BENCH_ALLOW_BUSY:-0}" != 1 ] || args+=(--allow-busy)
[ "${BENCH_RECORD_BUDGET:-0}" != 1 ] || args+=(--record-budget)

log "running ($SECONDS_PER_RUN s per measurement)"
"$ROOT/.tools/venv/bin/python" scripts/bench/bench.py "${args[@]}"
"$PLOT_PYTHON" scripts/bench/report.py --results "$OUT/results.json" \
  --plot "$OUT/throughput.png" --markdown "$MARKDOWN"
log "report: $MARKDOWN"
