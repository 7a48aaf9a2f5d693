# shellcheck shell=bash disable=SC2119,SC2120
# Service-mesh checks, sourced by scripts/check-manifests.sh (uses its MAN,
# TESTS, WORK, OVERLAYS, KUBERNETES_VERSION and its step/pass/fail/
# expect_rejection helpers). Every overlay is rendered with each mesh
# component added the way a user adds it (one line under `components:`), then
# validated: core schemas, the project policy, mesh schemas and the mesh
# policy, each validator also shown to reject its broken fixtures.
MESHES=(linkerd istio)
MESH_WORK="$WORK/mesh"
mkdir -p "$MESH_WORK"

step "service mesh: every overlay x mesh component renders (one line added under components:)"
for o in "${OVERLAYS[@]}"; do
  cp "$WORK/$o.yaml" "$MESH_WORK/$o.yaml"
  for m in "${MESHES[@]}"; do
    tree="$MESH_WORK/tree-$o-$m"
    cp -r "$MAN" "$tree"
    python - "$tree/overlays/$o/kustomization.yaml" "../../components/mesh-$m" <<'PY'
import sys
import yaml
path, component = sys.argv[1:]
with open(path, encoding="utf-8") as handle:
    kust = yaml.safe_load(handle)
kust.setdefault("components", []).append(component)
with open(path, "w", encoding="utf-8") as handle:
    yaml.safe_dump(kust, handle, sort_keys=False)
PY
    if kubectl kustomize "$tree/overlays/$o" >"$MESH_WORK/$o-$m.yaml"; then
      pass "overlays/$o + components/mesh-$m -> $(grep -c '^kind:' "$MESH_WORK/$o-$m.yaml") objects"
    else
      fail "overlays/$o + components/mesh-$m does not render"
    fi
  done
done
MESH_RENDERS=()
for o in "${OVERLAYS[@]}"; do for m in "${MESHES[@]}"; do MESH_RENDERS+=("$MESH_WORK/$o-$m.yaml"); done; done

step "service mesh: examples/ render the same objects as the overlay with the component line"
for ex in "$MAN"/examples/*/; do
  name=$(basename "$ex")
  if ! kubectl kustomize "$ex" >"$MESH_WORK/example-$name.yaml"; then
    fail "examples/$name does not render"; continue
  fi
  if python - "$MESH_WORK/example-$name.yaml" "$MESH_WORK/$name.yaml" <<'PY'
import sys
import yaml
def objects(path):
    with open(path, encoding="utf-8") as handle:
        return sorted((yaml.safe_dump(d, sort_keys=True) for d in yaml.safe_load_all(handle) if d))
sys.exit(0 if objects(sys.argv[1]) == objects(sys.argv[2]) else 1)
PY
  then pass "examples/$name = overlay + component ($(grep -c '^kind:' "$MESH_WORK/example-$name.yaml") objects)"
  else fail "examples/$name differs from ${name%-*} with components/mesh-${name#*-}"
  fi
done

step "service mesh: core schemas and the project policy on every combination"
if python "$TESTS/validate_core.py" --kubernetes-version "$KUBERNETES_VERSION" "${MESH_RENDERS[@]}" >"$MESH_WORK/core.out"; then
  tail -n 1 "$MESH_WORK/core.out"; pass "core schemas of the mesh renders"
else
  grep -v '^ok ' "$MESH_WORK/core.out"; fail "core schema validation of the mesh renders"
fi
for o in "${OVERLAYS[@]}"; do for m in "${MESHES[@]}"; do
  if python "$TESTS/policy.py" check --env "$o" --kustomization "$MAN/overlays/$o/kustomization.yaml" "$MESH_WORK/$o-$m.yaml" >"$MESH_WORK/policy.out"; then
    pass "policy $o + mesh-$m"
  else
    cat "$MESH_WORK/policy.out"; fail "policy $o + mesh-$m"
  fi
done; done

step "service mesh: mesh objects against their schemas (validate-mesh.mjs)"
if node "$TESTS/validate-mesh.mjs" "${MESH_RENDERS[@]}" >"$MESH_WORK/mesh-schema.out"; then
  tail -n 1 "$MESH_WORK/mesh-schema.out"; pass "mesh schemas"
else
  grep -v '^ok ' "$MESH_WORK/mesh-schema.out"; fail "mesh schema validation"
fi
n=$(objects_in "$TESTS/fixtures/mesh/schema-invalid.yaml")
expect_rejection validate-mesh.mjs "mesh resources: $n checked, $n failed" \
  node "$TESTS/validate-mesh.mjs" "$TESTS/fixtures/mesh/schema-invalid.yaml"

step "service mesh: mesh policy (manifests/tests/mesh_policy.py)"
for o in "${OVERLAYS[@]}"; do for m in none "${MESHES[@]}"; do
  render="$MESH_WORK/$o-$m.yaml"; [ "$m" = none ] && render="$MESH_WORK/$o.yaml"
  if (cd "$TESTS" && python mesh_policy.py check --mesh "$m" --namespaces "$WORK/namespaces.yaml" "$render"); then
    pass "mesh policy $o ($m)"
  else
    fail "mesh policy $o ($m)"
  fi
done; done
mesh_self_test() { # mesh_self_test MUTATIONS.yaml
  local fixtures; fixtures=$(realpath "$1")
  (cd "$TESTS" && python mesh_policy.py self-test --fixtures "$fixtures" --namespaces "$WORK/namespaces.yaml" "$MESH_WORK")
}
if mesh_self_test "$TESTS/fixtures/mesh/mutations.yaml"; then
  pass "every mesh rule rejects its mutations"
else
  fail "mesh policy self-test"
fi
# The self-test also requires a mutation for every rule: drop one rule's.
python - "$TESTS/fixtures/mesh/mutations.yaml" "$MESH_WORK/mutations-uncovered.yaml" <<'PY'
import sys
import yaml
with open(sys.argv[1], encoding="utf-8") as handle:
    mutations = [m for m in yaml.safe_load(handle) if m.get("rule") != "mesh-client-address"]
with open(sys.argv[2], "w", encoding="utf-8") as handle:
    yaml.safe_dump(mutations, handle, sort_keys=False)
PY
expect_rejection "mesh policy self-test (rule coverage)" "rule mesh-client-address has no mutation" \
  mesh_self_test "$MESH_WORK/mutations-uncovered.yaml"

step "service mesh: the Argo CD projects allow every kind the components add"
project_kinds() { # project_kinds [--drop GROUP/KIND]: exit 1 when a kind is missing
  kubectl kustomize argocd/apps >"$MESH_WORK/argocd.yaml" &&
    python - "$MESH_WORK/argocd.yaml" "$MESH_WORK" "$@" <<'PY'
import sys
import yaml
apps, renders, *drop = sys.argv[1:]
drop = set(drop[1:]) if drop[:1] == ["--drop"] else set()
with open(apps, encoding="utf-8") as handle:
    projects = {d["metadata"]["name"]: d for d in yaml.safe_load_all(handle) if d and d.get("kind") == "AppProject"}
missing = 0
for env in ("dev", "prod"):
    allowed = {f"{e['group']}/{e['kind']}" for e in projects[f"services-{env}"]["spec"].get("namespaceResourceWhitelist") or []}
    allowed -= drop
    for mesh in ("linkerd", "istio"):
        with open(f"{renders}/{env}-{mesh}.yaml", encoding="utf-8") as handle:
            for obj in (d for d in yaml.safe_load_all(handle) if d):
                group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
                if f"{group}/{obj['kind']}" not in allowed:
                    missing += 1
                    print(f"FAIL project services-{env} does not allow {group}/{obj['kind']} ({obj['metadata']['name']}, mesh-{mesh})")
print(f"argocd projects: {missing} kinds missing")
sys.exit(1 if missing else 0)
PY
}
if project_kinds; then pass "services-dev and services-prod allow the mesh kinds"; else fail "AppProject kinds"; fi
expect_rejection "AppProject kind check" "kinds missing" project_kinds --drop security.istio.io/PeerAuthentication
