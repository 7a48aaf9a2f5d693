#!/usr/bin/env bash
# The monitoring check: renders monitoring/ with kustomize and validates it
# (CRD schemas, unknown fields, labels, rules against docs/metrics.md,
# dashboard), runs promtool check/test on every rule group, then scrapes the
# real services with a real Prometheus (monitoring/tests/scrape_test.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v promtool >/dev/null || [ -z "${NODE_PATH:-}" ]; then
  scripts/tools.sh all
  eval "$(scripts/tools.sh env)"
fi
for tool in kubectl node promtool prometheus kubernetes-validate python; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found on PATH" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-monitoring.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n==> %s\n' "$*"; }

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
node monitoring/tests/validate-manifests.mjs "$WORK/rendered.yaml" "$ROOT" "$WORK/out"

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

step "real scrape: services, Prometheus, queries"
python monitoring/tests/scrape_test.py --root "$ROOT" --out "$WORK/out"

echo
echo "monitoring: all checks passed"
