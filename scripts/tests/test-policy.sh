#!/usr/bin/env bash
# The policy check must catch what it claims to: each mutation of a copy of
# .github/ and the Dockerfiles below must make workflow_policy.py fail, and
# the unmodified copy must pass.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
POLICY="$ROOT/scripts/tests/workflow_policy.py"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0; failed=0
fresh() {
  rm -rf "$WORK/repo"; mkdir -p "$WORK/repo/aux" "$WORK/repo/edge"
  cp -r "$ROOT/.github" "$WORK/repo/.github"
  cp "$ROOT/aux/Dockerfile" "$WORK/repo/aux/Dockerfile"
  cp "$ROOT/edge/Dockerfile" "$WORK/repo/edge/Dockerfile"
}
mutant() { # mutant DESCRIPTION FILE PYTHON-REPLACEMENT(old) (new)
  local d=$1 f=$2 old=$3 new=$4
  fresh
  python3 - "$WORK/repo/$f" "$old" "$new" <<'PY'
import sys
p, old, new = sys.argv[1:4]
s = open(p).read()
if old not in s:
    sys.exit(f"mutation target not found in {p}: {old!r}")
open(p, "w").write(s.replace(old, new, 1))
PY
  if python3 "$POLICY" "$WORK/repo" >"$WORK/out" 2>&1; then
    failed=$((failed + 1)); echo "FAIL not caught: $d"
  else
    passed=$((passed + 1)); echo "ok   caught: $d ($(grep -m1 '^FAIL' "$WORK/out" | cut -c6-))"
  fi
}

fresh
if python3 "$POLICY" "$WORK/repo" >"$WORK/out" 2>&1; then
  passed=$((passed + 1)); echo "ok   the unmodified copy passes"
else
  failed=$((failed + 1)); echo "FAIL the unmodified copy fails:"; grep '^FAIL' "$WORK/out"
fi

CHECKOUT=$(grep -m1 -o 'actions/checkout@[0-9a-f]\{40\}' "$ROOT/.github/workflows/ci.yml")
mutant "action pinned by tag" .github/workflows/ci.yml "$CHECKOUT" "actions/checkout@v7"
mutant "SHA without version comment" .github/workflows/ci.yml "$CHECKOUT # v7.0.1" "$CHECKOUT"
mutant "unlisted action version" .github/workflows/ci.yml "$CHECKOUT" "actions/checkout@$(printf 'f%.0s' {1..40})"
mutant "write-all at the top" .github/workflows/deploy.yml $'permissions:\n  contents: read\n\njobs:' $'permissions: write-all\n\njobs:'
mutant "checkout keeps credentials in a read-only job" .github/workflows/release.yml \
  $'fetch-depth: 0 # the trunk check needs main\'s history\n          persist-credentials: false' \
  $'fetch-depth: 0 # the trunk check needs main\'s history\n          persist-credentials: true'
mutant "cancellable bump" .github/workflows/deploy.yml "cancel-in-progress: false" "cancel-in-progress: true"
mutant "bump outside the shared group" .github/workflows/release.yml "group: gitops-bump" "group: prod-bump"
mutant "cache on the tag path" .github/workflows/release.yml \
  "      - uses: sigstore/cosign-installer" \
  $'      - uses: Swatinem/rust-cache@6323deb102c322ba6fcbdcafc7e3dddab59af2b6 # v2.9.2\n      - uses: sigstore/cosign-installer'
mutant "id-token without a role" .github/workflows/ci.yml $'    name: cargo audit (advisory database)\n' \
  $'    name: cargo audit (advisory database)\n    permissions:\n      contents: read\n      id-token: write\n'
mutant "image pushed without SBOM" .github/workflows/deploy.yml "sbom: true" "sbom: false"
mutant "runtime stage on a full OS" aux/Dockerfile "FROM scratch AS runtime" "FROM debian:bookworm-slim AS runtime"
mutant "root user" edge/Dockerfile "USER 10001:10001" "USER 0:0"
mutant "shell-form entrypoint" aux/Dockerfile 'ENTRYPOINT ["/aux-worker"]' "ENTRYPOINT /aux-worker"
# shellcheck disable=SC2016 # the Dockerfile text itself, not an expansion
mutant "missing revision label" edge/Dockerfile 'org.opencontainers.image.revision="${REVISION}"' 'org.opencontainers.image.version="0"'
mutant "wrong port" edge/Dockerfile "EXPOSE 8000 8443 9000" "EXPOSE 8000 9000"

mutant "e2e not run when the Argo CD apps change" .github/workflows/e2e.yml '      - "argocd/**"' '      - "docs/**"'
mutant "e2e steps inline instead of the linted script" .github/workflows/e2e.yml "run: bash scripts/e2e-kind.sh
" "run: kind create cluster
"
# shellcheck disable=SC2016 # the workflow text itself, not an expansion
mutant "e2e with a secret" .github/workflows/e2e.yml 'KEEP_CLUSTER: "1"' 'KEEP_CLUSTER: ${{ secrets.KUBECONFIG }}'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
