#!/usr/bin/env bash
# Checks manifests/ offline: renders every kustomize tree, validates every
# object against its schema with unknown fields rejected, scans the renders
# with checkov and the project policy, and proves each validator rejects bad
# input. Run alone with `make check-manifests`.
#
# Needs kubectl (its built-in kustomize) and the tools of scripts/tools.sh
# (venv: kubernetes-validate, pyyaml, moto; checkov venv; node packages).
# Tools: python checkov node kubectl
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MAN=manifests
TESTS=$MAN/tests
KUBERNETES_VERSION=1.32.0
OVERLAYS=(dev prod local)

if [ -z "${TOOLS_DIR:-}" ]; then
  # shellcheck disable=SC2046  # one word per group
  scripts/tools.sh $(scripts/tools.sh for-checks manifests) >&2
  eval "$(scripts/tools.sh env)"
fi

WORK=$(mktemp -d)
MOTO_PID=""
cleanup() {
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
passes=0
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures=$((failures + 1)); }
pass() { printf 'ok: %s\n' "$*"; passes=$((passes + 1)); }
# expect_rejection NAME EXPECTED_SUMMARY CMD...: a validator run on a bad
# fixture must exit non-zero and print the summary line that says every
# object failed. Its findings are shown indented, marked as expected.
expect_rejection() {
  local name=$1 summary=$2 out rc=0; shift 2
  out=$("$@" 2>&1) || rc=$?
  printf '    (expected) %s\n' "${out//$'\n'/$'\n    (expected) '}"
  if [ "$rc" -ne 0 ] && grep -qF "$summary" <<<"$out"; then
    pass "$name rejected the bad fixture"
  else
    fail "$name did not reject the bad fixture as expected (exit $rc, wanted '$summary')"
  fi
}
objects_in() { echo $(( $(grep -c '^---' "$1" || true) + 1 )); }

for tool in kubectl python node checkov moto_server; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (scripts/tools.sh installs all but kubectl)"; exit 1; }
done
python -c 'import kubernetes_validate, yaml, boto3' || { echo "FAIL: python venv lacks kubernetes-validate, pyyaml or boto3"; exit 1; }

step "render with kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'kustomize version unknown'))"
render() { # render NAME DIR
  if kubectl kustomize "$2" >"$WORK/$1.yaml"; then
    pass "$2 -> $(grep -c '^kind:' "$WORK/$1.yaml") objects"
  else
    fail "kubectl kustomize $2"
  fi
}
render namespaces "$MAN/namespaces"
render cluster-issuers "$MAN/cluster-issuers"
render base "$MAN/base"
for o in "${OVERLAYS[@]}"; do render "$o" "$MAN/overlays/$o"; done
# prod with the EKS Pod Identity component instead of IRSA.
render pod-identity "$TESTS/pod-identity"
[ "$failures" -eq 0 ] || { echo "checks: rendering failed"; exit 1; }

step "base images are the untagged names CI edits"
base_images=$(grep -E '^\s+image:' "$WORK/base.yaml" | awk '{print $2}' | sort -u | tr '\n' ' ')
if [ "$base_images" = "kantox-challenge/auxiliary-service kantox-challenge/main-api " ]; then
  pass "$base_images"
else
  fail "base images are '$base_images'"
fi

RENDERS=("$WORK/namespaces.yaml" "$WORK/cluster-issuers.yaml" "$WORK/pod-identity.yaml")
for o in "${OVERLAYS[@]}"; do RENDERS+=("$WORK/$o.yaml"); done

step "core kinds: kubernetes-validate --strict, Kubernetes $KUBERNETES_VERSION"
if python "$TESTS/validate_core.py" --kubernetes-version "$KUBERNETES_VERSION" "${RENDERS[@]}" >"$WORK/core.out"; then
  grep -v '^ok ' "$WORK/core.out"; pass "core schemas"
else
  cat "$WORK/core.out"; fail "core schema validation"
fi
n=$(objects_in "$TESTS/fixtures/core-invalid.yaml")
expect_rejection validate_core.py ": $n checked, $n failed" \
  python "$TESTS/validate_core.py" --kubernetes-version "$KUBERNETES_VERSION" "$TESTS/fixtures/core-invalid.yaml"

step "custom resources: @kubernetes-models schemas plus unknown-field check"
if node "$TESTS/validate-crds.mjs" "${RENDERS[@]}"; then pass "custom resources"; else fail "custom resource validation"; fi
n=$(objects_in "$TESTS/fixtures/crds-invalid.yaml")
expect_rejection validate-crds.mjs "custom resources: $n checked, $n failed" \
  node "$TESTS/validate-crds.mjs" "$TESTS/fixtures/crds-invalid.yaml"

step "checkov --skip-download (skips and reasons: $TESTS/checkov-skips.txt)"
skips=()
while read -r id reason; do
  case "$id" in ''|'#'*) continue ;; esac
  [ -n "$reason" ] || { fail "checkov skip $id has no reason"; continue; }
  skips+=("$id")
  echo "skip $id: $reason"
done <"$TESTS/checkov-skips.txt"
skip_list=$(IFS=,; echo "${skips[*]}")
mkdir -p "$WORK/checkov"
for o in "${OVERLAYS[@]}" pod-identity; do cp "$WORK/$o.yaml" "$WORK/checkov/$o.yaml"; done
if checkov --skip-download --framework kubernetes --compact --quiet --skip-check "$skip_list" \
  -d "$WORK/checkov" >"$WORK/checkov.out" 2>&1; then
  grep -E 'Passed checks' "$WORK/checkov.out" || true
  if grep -q 'Passed checks: [1-9]' "$WORK/checkov.out"; then pass "checkov over the overlays"; else fail "checkov ran no check"; fi
else
  cat "$WORK/checkov.out"; fail "checkov found problems in the overlays"
fi
if checkov --skip-download --framework kubernetes --compact --quiet --skip-check "$skip_list" \
  -f "$TESTS/fixtures/checkov-insecure.yaml" >"$WORK/checkov-bad.out" 2>&1; then
  fail "checkov accepted fixtures/checkov-insecure.yaml"
elif grep -q 'CKV_K8S_16' "$WORK/checkov-bad.out"; then
  pass "checkov rejected the insecure fixture ($(grep -c 'Check: ' "$WORK/checkov-bad.out") failed checks)"
else
  cat "$WORK/checkov-bad.out"; fail "checkov failed the insecure fixture for an unexpected reason"
fi

step "project policy (manifests/tests/policy.py)"
if python "$TESTS/policy.py" namespaces "$WORK/namespaces.yaml"; then pass "namespaces policy"; else fail "namespaces policy"; fi
expect_rejection "policy.py namespaces" "violations" python "$TESTS/policy.py" namespaces "$TESTS/fixtures/namespaces-weak.yaml"
if python "$TESTS/policy.py" issuers "$WORK/cluster-issuers.yaml" "$WORK/prod.yaml"; then pass "cluster issuers policy"; else fail "cluster issuers policy"; fi
for o in "${OVERLAYS[@]}"; do
  if python "$TESTS/policy.py" check --env "$o" --kustomization "$MAN/overlays/$o/kustomization.yaml" "$WORK/$o.yaml"; then
    pass "policy $o"
  else
    fail "policy $o"
  fi
done
if python "$TESTS/policy.py" check --env prod --identity pod-identity \
  --kustomization "$MAN/overlays/prod/kustomization.yaml" "$WORK/pod-identity.yaml"; then
  pass "policy prod with the pod-identity component"
else
  fail "policy prod with the pod-identity component"
fi
if python "$TESTS/policy.py" self-test --fixtures "$TESTS/policy-mutations.yaml" \
  --kustomization-dir "$MAN/overlays" "$WORK"; then
  pass "every policy rule rejects its mutations"
else
  fail "policy self-test"
fi

# Service mesh components (components/mesh-*): renders, schemas, policies.
. "$TESTS/mesh-checks.sh"

step "local overlay: the demo data of make run (scripts/demo-data.json), seeded into moto $(python -c 'import moto; print(moto.__version__)')"
DEMO=scripts/demo-data.json
if python "$TESTS/demo_data.py" rendered "$WORK/local.yaml" "$DEMO"; then
  pass "the local overlay ships $DEMO and its prefix"
else
  fail "the local overlay's demo data differs from $DEMO"
fi
python - "$DEMO" "$WORK/demo-other.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["parameters"] = [p for p in d["parameters"] if not p["name"].endswith("/db/host")]
json.dump(d, open(sys.argv[2], "w"))
PY
expect_rejection demo_data.py "differs from" python "$TESTS/demo_data.py" rendered "$WORK/local.yaml" "$WORK/demo-other.json"
port=$(python "$ROOT/scripts/ports.py")  # below the ephemeral range: see ports.py
moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
seed() {
  AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=local-emulator \
    AWS_SECRET_ACCESS_KEY=local-emulator PARAMETER_PREFIX="${SEED_PREFIX:-/kantox-challenge/dev}" \
    python "$MAN/overlays/local/seed.py"
}
if seed && seed; then
  pass "seeded twice (idempotent)"
else
  cat "$WORK/moto.log"; fail "seed.py against moto"
fi
# The emulator that answered is ours (not another check's on the same port).
kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log"; fail "moto_server on port $port did not start"; }
if python "$TESTS/demo_data.py" seeded "http://127.0.0.1:$port" "$DEMO"; then
  pass "moto holds every bucket and parameter of $DEMO (db/host, api-key as in the README)"
else
  fail "seed.py did not create the demo data of $DEMO"
fi
if SEED_PREFIX=/kantox-challenge/prod seed >"$WORK/seed-prefix.out" 2>&1; then
  fail "seed.py accepted a PARAMETER_PREFIX other than the data's"
else
  pass "seed.py refuses a PARAMETER_PREFIX other than the data's ($(tail -n 1 "$WORK/seed-prefix.out"))"
fi

echo
echo "manifests (overlays ${OVERLAYS[*]}, prod with pod-identity, namespaces, cluster issuers; Kubernetes $KUBERNETES_VERSION schemas):"
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
