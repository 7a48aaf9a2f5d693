#!/usr/bin/env bash
# Rust: formatting, clippy with warnings denied, the test build resolving
# every dependency as the binaries' build does, and every test of the
# workspace (unit, property, and integration tests against a real moto server).
# Tools: run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cmake >/dev/null || { echo "cmake is missing: run scripts/tools.sh run" >&2; exit 1; }
[ -x .tools/venv/bin/python ] || { echo ".tools/venv is missing: run scripts/tools.sh run" >&2; exit 1; }

echo "--- cargo fmt --check"
cargo fmt --all -- --check
echo "--- features: the test build and the binaries' build agree"
python3 scripts/tests/feature_unification.py --self-test
echo "--- cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "--- cargo test"
cargo test --workspace --locked --no-fail-fast
