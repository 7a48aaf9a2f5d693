#!/usr/bin/env bash
# The monitoring check: renders monitoring/ with kustomize and validates it
# (CRD schemas, unknown fields, labels, rules against docs/metrics.md,
# dashboard), runs promtool check/test on every rule group, proves with
# mutation tests that these checks reject broken copies, checks the
# Alertmanager routing of the kube-prometheus-stack values with amtool and a
# real Alertmanager (monitoring/tests/alertmanager_test.py), then scrapes the
# real services with a real Prometheus (monitoring/tests/scrape_test.py).
# Tools: run python node kubectl prometheus
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || [ -z "${NODE_PATH:-}" ]; then
  # shellcheck disable=SC2046  # one word per group
  scripts/tools.sh $(scripts/tools.sh for-checks monitoring)
  eval "$(scripts/tools.sh env)"
fi
for tool in kubectl node promtool prometheus amtool prometheus-alertmanager unshare kubernetes-validate python; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found on PATH" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-monitoring.XXXXXX")
BUILD_PID=""
cleanup() {
  if [ -n "$BUILD_PID" ] && kill -0 "$BUILD_PID" 2>/dev/null; then
    pkill -TERM -P "$BUILD_PID" 2>/dev/null || true  # the cargo it started
    kill "$BUILD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n==> %s\n' "$*"; }

# The services for the real-scrape test build in the background (the target
# dir is shared with the other checks, so this may wait for their builds)
# while the static checks run; the scrape step waits for it.
# Both packages in one build, as every check builds them: one feature set,
# so a cold run compiles each dependency once.
(
  if [ -f edge/Cargo.toml ]; then cargo build --locked -p aux-worker -p edge; else cargo build --locked -p aux-worker; fi
) >"$WORK/cargo-build.log" 2>&1 &
BUILD_PID=$!

step "kustomize: render monitoring/"
kubectl kustomize monitoring >"$WORK/rendered.yaml"
grep -c '^kind:' "$WORK/rendered.yaml" | xargs printf '  rendered %s objects\n'

step "ConfigMaps: Kubernetes schema, strict (kubernetes-validate)"
python - "$WORK/rendered.yaml" "$WORK/configmaps.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "ConfigMap"]
if not docs:
    sys.exit("FAIL: no ConfigMap rendered")
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
kubernetes-validate --strict --quiet "$WORK/configmaps.yaml"
echo "  ok  ConfigMaps valid"

step "ServiceMonitors and PrometheusRules: schemas, strictness, rules against docs/metrics.md"
mkdir -p "$WORK/out"
# The Services the monitors must find, as the dev and prod overlays render them.
overlays=()
for env in dev prod; do
  if [ -f "manifests/overlays/$env/kustomization.yaml" ]; then
    kubectl kustomize "manifests/overlays/$env" >"$WORK/services-$env.yaml"
    overlays+=("$WORK/services-$env.yaml")
  else
    echo "  manifests/overlays/$env not present: monitors not matched against its Services"
  fi
done
node monitoring/tests/validate-manifests.mjs "$WORK/rendered.yaml" "$ROOT" "$WORK/out" "${overlays[@]}"

step "dashboard: JSON, uid, variables, units, \$__rate_interval, metrics"
for d in "$WORK"/out/dashboard-*.json; do
  node monitoring/tests/check-dashboard.mjs "$d" "$ROOT" "$WORK/out"
done

step "promtool check rules (each PrometheusRule's .spec)"
mapfile -t rule_files <"$WORK/out/rule-files.txt"
(cd "$WORK/out" && promtool check rules "${rule_files[@]}")

step "promtool test rules (monitoring/tests/rules/*.test.yaml)"
cp monitoring/tests/rules/*.test.yaml "$WORK/out/"
(cd "$WORK/out" && promtool test rules ./*.test.yaml)

step "mutations: each check rejects a copy broken on purpose"
python monitoring/tests/mutations.py --root "$ROOT" --rendered "$WORK/rendered.yaml" --out "$WORK/out" \
  --overlays "${overlays[@]}"

step "Alertmanager: amtool check-config, routes, inhibition on a real Alertmanager (argocd/apps kube-prometheus-stack values)"
mkdir -p "$WORK/alertmanager"
python monitoring/tests/alertmanager_test.py --root "$ROOT" --rendered-rules "$WORK/rendered.yaml" --work "$WORK/alertmanager"

step "real scrape: services, Prometheus, queries"
if ! wait "$BUILD_PID"; then
  tail -n 40 "$WORK/cargo-build.log" >&2
  echo "FAIL: cargo build of the services" >&2
  exit 1
fi
BUILD_PID=""
python monitoring/tests/scrape_test.py --root "$ROOT" --out "$WORK/out"

echo
echo "monitoring: all checks passed"
