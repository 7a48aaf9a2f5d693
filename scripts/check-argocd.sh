#!/usr/bin/env bash
# Offline check of the Argo CD app-of-apps in argocd/ (see argocd/README.md):
# renders argocd/apps with kustomize, validates every Application and AppProject
# against the Argo CD models (unknown fields rejected), renders every child's
# source path, proves a change of the one repository value reaches every child,
# and proves the validator rejects the broken variants in argocd/tests/.
# Tools: node kubectl
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -z "${NODE_PATH:-}" ]; then
  eval "$(scripts/tools.sh env)"
fi
for tool in node kubectl; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool is not on PATH" >&2; exit 1; }
done
for pkg in @kubernetes-models/argo-cd typescript yaml; do
  [ -d "$NODE_PATH/$pkg" ] || { echo "FAIL npm package $pkg missing: run scripts/tools.sh node" >&2; exit 1; }
done

echo "kubectl $(kubectl version --client -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | head -n1), node $(node --version)"
node argocd/tests/main.mjs "$ROOT"
