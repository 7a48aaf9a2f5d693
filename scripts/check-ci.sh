#!/usr/bin/env bash
# The CI/CD and image check of the test command (`make check-ci`):
#
#   workflows   actionlint (with shellcheck) and zizmor --offline: zero findings
#   policy      pinning, permissions, credentials, concurrency, no cache on the
#               tag path, attestations, Dockerfile runtime contract
#               (scripts/tests/workflow_policy.py), and mutations of copies
#               that it must reject (scripts/tests/test-policy.sh)
#   dockerfiles hadolint --failure-threshold warning on every Dockerfile
#   scripts     shellcheck on the delivery scripts, the end-to-end script and
#               their tests; the README comparison of the end-to-end run
#               (scripts/tests/readme_curls.py --self-test)
#   release     scripts/release.sh against temporary git repositories and moto
#   image-*     the runtime stage of aux/ and edge/Dockerfile built with buildah
#               and run with runc: /healthz as UID 10001 on a read-only root
#
# Ends with "N passed, N failed" (", N skipped" when the image test cannot run
# on this machine, with its reason above).
# Tools: run python kubectl shellcheck image
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v actionlint >/dev/null || ! command -v zizmor >/dev/null; then
  eval "$(scripts/tools.sh env)"
fi

passed=0; failed=0; skipped=0; failed_names=()
run() { # run NAME COMMAND...
  local name=$1; shift
  echo
  echo "=== $name: $*"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1)); echo "=== $name: ok"
  elif [[ "$name" == image-* ]] && [ "$rc" = 3 ]; then
    skipped=$((skipped + 1)); echo "=== $name: SKIPPED (reason above)"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAILED (exit $rc)"
  fi
}

for t in actionlint zizmor hadolint shellcheck python3 git; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (scripts/tools.sh all installs it)"; exit 1; }
done

mapfile -t workflows < <(find .github/workflows -maxdepth 1 -name '*.y*ml' | sort)
mapfile -t dockerfiles < <(find . -path ./target -prune -o -path ./.tools -prune -o -path ./.git -prune -o \
  -name Dockerfile -type f -print | sort)
mapfile -t scripts < <(printf '%s\n' scripts/check-ci.sh scripts/release.sh scripts/e2e-kind.sh scripts/tests/*.sh | sort -u)
echo "workflows:   ${workflows[*]}"
echo "dockerfiles: ${dockerfiles[*]}"
echo "scripts:     ${scripts[*]}"
[ ${#workflows[@]} -gt 0 ] || { echo "no workflows found"; exit 1; }
[ ${#dockerfiles[@]} -gt 0 ] || { echo "no Dockerfiles found"; exit 1; }

# actionlint runs shellcheck on every run: block when shellcheck is on PATH.
run actionlint actionlint -shellcheck "$(command -v shellcheck)" "${workflows[@]}"
run zizmor zizmor --offline --no-progress .github/
run policy python3 scripts/tests/workflow_policy.py "$ROOT"
run policy-mutations bash scripts/tests/test-policy.sh
run hadolint hadolint --failure-threshold warning "${dockerfiles[@]}"
run shellcheck shellcheck "${scripts[@]}"
# The end-to-end workflow runs on GitHub only (Docker, network); here: its
# script is shellchecked above, and the README comparison it relies on is
# self-tested (every example parsed, altered answers rejected).
run e2e-readme python3 scripts/tests/readme_curls.py --self-test --readme README.md
run release bash scripts/tests/test-release.sh
if command -v kustomize >/dev/null; then
  run release-kustomize env TEST_KUSTOMIZE=kustomize bash scripts/tests/test-release.sh
else
  echo
  echo "=== release-kustomize: not run, no kustomize binary here (GitHub's runners have one; the bump jobs use it)"
fi
run image-aux bash scripts/tests/image-runtime.sh aux
run image-edge bash scripts/tests/image-runtime.sh edge

echo
[ $failed -eq 0 ] || echo "failed: ${failed_names[*]}"
if [ $skipped -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
