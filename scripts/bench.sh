#!/usr/bin/env bash
# The bench command (`make bench`; not part of the test command): the edge
# beside nginx on this machine, in one run, servers pinned to CPU 0 and the
# load generator to CPU 1. Writes docs/benchmarks.md, docs/benchmarks/
# results.json, results.csv and throughput.png.
#
#   scripts/bench.sh                 the measured run (10 s per measurement)
#   BENCH_SECONDS=2 scripts/bench.sh a quick run of the harness itself
#
# Installs what it needs into .tools/bench/ on first use: nginx and wrk from
# the Debian archive (apt-get download + dpkg -x, nothing installed
# system-wide, no service started) and matplotlib for the plot.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BENCH_TOOLS="$ROOT/.tools/bench"
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
DEBS=(nginx wrk libluajit2-5.1-2 libluajit2-5.1-common)

log() { printf '[bench] %s\n' "$*"; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (servers on CPU 0, load generator on CPU 1)"
command -v taskset >/dev/null || die "taskset (util-linux) is required"

scripts/tools.sh run

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

req="$ROOT/scripts/bench/requirements.txt"
stamp="$BENCH_TOOLS/venv.stamp"
if [ ! -x "$BENCH_TOOLS/venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum <"$req")" ]; then
  log "python venv for the plot (matplotlib)"
  python3 -m venv "$BENCH_TOOLS/venv"
  "$BENCH_TOOLS/venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  sha256sum <"$req" >"$stamp"
fi

log "building release binaries"
cargo build --locked --release -q -p aux-worker -p edge

log "running ($SECONDS_PER_RUN s per measurement)"
target=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$ROOT/.tools/venv/bin/python" scripts/bench/bench.py --bin "$target/release" \
  --nginx "$NGINX" --wrk "$WRK" --wrk-lib "$WRK_LIB" --out "$OUT" --seconds "$SECONDS_PER_RUN"
"$BENCH_TOOLS/venv/bin/python" scripts/bench/report.py --results "$OUT/results.json" \
  --plot "$OUT/throughput.png" --markdown "${BENCH_MARKDOWN:-$ROOT/docs/benchmarks.md}"
log "report: docs/benchmarks.md"
