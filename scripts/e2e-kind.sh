#!/usr/bin/env bash
# End to end on a real cluster: what .github/workflows/e2e.yml runs on a
# GitHub runner (Docker, network). Not run by `make test` (no Docker engine
# or network there); `make check-ci` lints it (shellcheck) and self-tests the
# README comparison it uses.
#
#   scripts/e2e-kind.sh             the whole run
#   scripts/e2e-kind.sh diagnose    print the state of the cluster (after a failure)
#
# 1. builds both images from the working tree (edge/Dockerfile, aux/Dockerfile)
#    as kantox-challenge/<repo>:local;
# 2. creates a kind cluster (pinned kind and node image) and loads the images;
# 3. serves this commit over git:// from the runner (git daemon on the kind
#    network's gateway), with argocd/apps/source.yaml pointing at it: Argo CD
#    reads exactly the commit under test, through the same source.yaml
#    replacement a fork uses;
# 4. installs Argo CD from the chart version argocd/README.md pins, with
#    argocd/install/values.yaml;
# 5. creates the Secret alertmanager-receivers (dummy values), applies
#    argocd/kind/bootstrap (the AppProjects and the root of argocd/kind/apps)
#    and waits until every Application the root renders is Synced and Healthy;
# 6. port-forwards svc/main-api in `local` and runs the README's curl lines
#    (scripts/tests/readme_curls.py: the documented JSON), plus HTTPS with
#    HSTS on HTTPS answers only.
#
# Environment: KIND_VERSION, KIND_NODE_IMAGE, CLUSTER (default kantox-e2e),
# WAIT_MINUTES (default 30), KEEP_CLUSTER=1 to leave the cluster running.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KIND_VERSION=${KIND_VERSION:-v0.32.0}
# kind v0.32.0's default node image, pinned by digest.
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5}
CLUSTER=${CLUSTER:-kantox-e2e}
WAIT_MINUTES=${WAIT_MINUTES:-30}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/e2e-kind.XXXXXX")
BIN="$WORK/bin"
mkdir -p "$BIN"
export PATH="$BIN:$PATH"

PIDS=()
log() { printf '[e2e %4ds] %s\n' "$SECONDS" "$*"; }
die() { printf '[e2e] FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$WORK/git-daemon.pid" ]; then kill "$(cat "$WORK/git-daemon.pid")" 2>/dev/null || true; fi
  if [ "${KEEP_CLUSTER:-}" != 1 ] && command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}

# Python helpers read Argo CD's Applications as JSON on stdin.
read -r -d '' APPS_REPORT_PY <<'EOF' || true
import json, sys
for a in json.load(sys.stdin)["items"]:
    st = a.get("status", {})
    name = a["metadata"]["name"]
    print(f"--- {name}: sync {st.get('sync', {}).get('status')}, health {st.get('health', {}).get('status')}")
    for c in st.get("conditions", []):
        print(f"    condition {c.get('type')}: {c.get('message')}")
    op = st.get("operationState", {})
    if op:
        print(f"    operation {op.get('phase')}: {op.get('message')}")
    for r in st.get("resources", []):
        h = r.get("health", {})
        if r.get("status") != "Synced" or h.get("status") not in (None, "Healthy"):
            print(f"    {r.get('kind')}/{r.get('namespace', '')}/{r.get('name')}: {r.get('status')} {h.get('status')} {h.get('message', '')}")
EOF
read -r -d '' APPS_PENDING_PY <<'EOF' || true
import json, sys
want = sys.argv[1:]
got = {a["metadata"]["name"]: a.get("status", {}) for a in json.load(sys.stdin)["items"]}
pending = []
for name in want:
    st = got.get(name) or {}
    sync = st.get("sync", {}).get("status") or "missing"
    health = st.get("health", {}).get("status") or "-"
    if (sync, health) != ("Synced", "Healthy"):
        pending.append(f"{name}={sync}/{health}")
print(" ".join(pending))
EOF

diagnose() {
  kubectl get nodes -o wide || true
  kubectl -n argocd get applications -o wide || true
  kubectl -n argocd get applications -o json | python3 -c "$APPS_REPORT_PY" || true
  kubectl get pods -A -o wide || true
  kubectl get events -A --sort-by=.lastTimestamp | tail -n 60 || true
}

if [ "${1:-}" = diagnose ]; then
  diagnose
  exit 0
fi
trap cleanup EXIT

for t in docker kubectl helm git curl python3 sha256sum; do
  command -v "$t" >/dev/null || die "$t is required"
done

# --- tools: kind at a pinned version, its checksum verified ---------------------
log "kind $KIND_VERSION"
curl -fsSLo "$BIN/kind" "https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-linux-amd64"
curl -fsSLo "$WORK/kind.sha256" "https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-linux-amd64.sha256sum"
(cd "$BIN" && sed 's#kind-linux-amd64#kind#' "$WORK/kind.sha256" | sha256sum -c -) || die "kind checksum"
chmod +x "$BIN/kind"
log "$(kubectl version --client | head -n1), $(helm version --short), $(docker --version)"

# --- 1. images ----------------------------------------------------------------------
REVISION=$(git rev-parse HEAD)
for pair in main-api:edge auxiliary-service:aux; do
  repo=${pair%%:*} dir=${pair#*:}
  log "building kantox-challenge/$repo:local from $dir/Dockerfile"
  docker build --quiet -t "kantox-challenge/$repo:local" -f "$dir/Dockerfile" \
    --build-arg SOURCE="local" --build-arg REVISION="$REVISION" . >/dev/null
done

# --- 2. cluster -----------------------------------------------------------------------
log "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --wait 180s
kind load docker-image --name "$CLUSTER" kantox-challenge/main-api:local kantox-challenge/auxiliary-service:local

# --- 3. this commit over git:// ---------------------------------------------------------
GATEWAY=$(docker network inspect kind --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}' |
  tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | head -n1)
[ -n "$GATEWAY" ] || die "no IPv4 gateway on the kind network"
REPO_URL="git://$GATEWAY:9418/platform.git"
BRANCH=e2e
mkdir -p "$WORK/src" "$WORK/git"
git ls-files -z | tar --null -T - -c | tar -x -C "$WORK/src"
python3 - "$WORK/src/argocd/apps/source.yaml" "$REPO_URL" "$BRANCH" <<'EOF'
import re, sys
path, url, rev = sys.argv[1:]
text = open(path).read()
text, n1 = re.subn(r"(?m)^(  repoURL:).*$", rf"\1 {url}", text)
text, n2 = re.subn(r"(?m)^(  targetRevision:).*$", rf"\1 {rev}", text)
assert n1 == n2 == 1, "source.yaml layout changed"
open(path, "w").write(text)
EOF
git init -q -b "$BRANCH" "$WORK/src"
git -C "$WORK/src" -c user.name=e2e -c user.email=e2e@example.invalid add -A
git -C "$WORK/src" -c user.name=e2e -c user.email=e2e@example.invalid commit -q -m "e2e: $REVISION with source.yaml pointing at $REPO_URL"
git clone -q --bare "$WORK/src" "$WORK/git/platform.git"
git daemon --reuseaddr --export-all --base-path="$WORK/git" --listen="$GATEWAY" --port=9418 \
  --detach --pid-file="$WORK/git-daemon.pid"
for _ in $(seq 1 50); do git ls-remote "$REPO_URL" >/dev/null 2>&1 && break; sleep 0.2; done
git ls-remote "$REPO_URL" | grep -q "refs/heads/$BRANCH" || die "git daemon does not serve $REPO_URL"
log "serving $REVISION as $REPO_URL ($BRANCH)"

# --- 4. Argo CD --------------------------------------------------------------------------
ARGOCD_CHART=$(grep -oE 'argo/argo-cd --version [0-9]+\.[0-9]+\.[0-9]+' argocd/README.md | head -n1 | awk '{print $3}')
[ -n "$ARGOCD_CHART" ] || die "no pinned argo-cd chart version in argocd/README.md"
log "Argo CD chart $ARGOCD_CHART"
helm repo add argo https://argoproj.github.io/argo-helm >/dev/null
helm upgrade --install argocd argo/argo-cd --version "$ARGOCD_CHART" --namespace argocd --create-namespace \
  --values argocd/install/values.yaml --wait --timeout 10m >/dev/null

# --- 5. bootstrap and wait -------------------------------------------------------------------
kubectl create namespace monitoring --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n monitoring create secret generic alertmanager-receivers \
  --from-literal=pagerduty-routing-key=e2e-not-a-key --from-literal=ticket-webhook-token=e2e-not-a-token \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
mapfile -t APPS < <(kubectl kustomize "$WORK/src/argocd/kind/apps" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Application":
        print(d["metadata"]["name"])')
log "applying argocd/kind/bootstrap; waiting up to $WAIT_MINUTES min for ${APPS[*]}"
kubectl apply -k "$WORK/src/argocd/kind/bootstrap"
deadline=$((SECONDS + WAIT_MINUTES * 60))
while :; do
  status=$(kubectl -n argocd get applications -o json | python3 -c "$APPS_PENDING_PY" "${APPS[@]}")
  [ -z "$status" ] && break
  [ "$SECONDS" -lt "$deadline" ] || { diagnose; die "not Synced and Healthy after $WAIT_MINUTES min: $status"; }
  log "waiting: $status"
  sleep 20
done
log "every Application is Synced and Healthy: ${APPS[*]}"

# --- 6. the README's curl lines --------------------------------------------------------------
kubectl -n local port-forward svc/main-api 8000:8000 8443:8443 >"$WORK/port-forward.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:8000/s3-buckets 2>/dev/null && break; sleep 0.3; done
python3 scripts/tests/readme_curls.py --readme README.md --base http://127.0.0.1:8000 --version local ||
  die "the README's curl lines do not return the documented JSON"
headers=$(curl -sk -D - -o "$WORK/https.json" https://127.0.0.1:8443/s3-buckets) || die "HTTPS through the port-forward"
python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); sys.exit(0 if b.get("buckets") and b.get("main_api_version") == "local" else 1)' \
  "$WORK/https.json" || die "HTTPS /s3-buckets does not answer the documented JSON"
grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" || die "HTTPS answers lack Strict-Transport-Security"
if curl -s -D - -o /dev/null http://127.0.0.1:8000/s3-buckets | grep -qi '^strict-transport-security'; then
  die "plain HTTP answers carry Strict-Transport-Security"
fi
log "HTTPS: the documented JSON, with Strict-Transport-Security (not on plain HTTP)"
log "end to end: passed"
