#!/usr/bin/env bash
# Tests of scripts/release.sh against temporary git repositories (a bare
# "origin" and clones of it) and, for the ECR commands, the moto emulator.
# Needs: git, python3 with PyYAML, kubectl (kustomize rendering), aws CLI and
# moto_server (from the tools venv). Prints one line per assertion and ends
# with "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RELEASE="$ROOT/scripts/release.sh"
WORK=$(mktemp -d)
MOTO_PID=""
cleanup() {
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0; failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...
  local d=$1; shift
  if "$@" >"$WORK/last.log" 2>&1; then ok "$d"; else bad "$d"; sed 's/^/     /' "$WORK/last.log"; fi
}
refuses() { # refuses DESCRIPTION COMMAND...: the command must exit non-zero
  local d=$1; shift
  if "$@" >"$WORK/last.log" 2>&1; then bad "$d (it succeeded)"; sed 's/^/     /' "$WORK/last.log"; else ok "$d"; fi
}
eq() { # eq DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}

for t in git python3 kubectl aws moto_server; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (run: eval \"\$(scripts/tools.sh env)\")"; exit 1; }
done
python3 -c 'import yaml' || { echo "python3 needs PyYAML"; exit 1; }

export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.invalid
export GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.invalid
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com
# The built-in editor by default; TEST_KUSTOMIZE=kustomize runs the same
# cases through `kustomize edit set image`.
export KUSTOMIZE=${TEST_KUSTOMIZE:-none}
echo "overlay editor: $([ "$KUSTOMIZE" = none ] && echo built-in || echo "$KUSTOMIZE")"
export PUSH_ATTEMPTS=3
PFX="$REGISTRY/kantox-challenge"
SHA1=$(printf 'a%.0s' {1..40})

# ---------------------------------------------------------------- plan
echo "== plan: which environment and tag a ref deploys"
out=$("$RELEASE" plan refs/heads/main "$SHA1")
eq "main push deploys dev with the commit SHA" "environment=dev tag=$SHA1 source_tag=$SHA1" "$(tr "\n" " " <<<"$out" | sed "s/ $//")"
out=$("$RELEASE" plan refs/tags/release/v1.2.3 "$SHA1")
eq "release/v1.2.3 deploys prod as v1.2.3 from the SHA image" "environment=prod tag=v1.2.3 source_tag=$SHA1" "$(tr "\n" " " <<<"$out" | sed "s/ $//")"
out=$("$RELEASE" plan refs/tags/release/v10.0.20 "$SHA1")
eq "multi-digit versions are accepted" "environment=prod tag=v10.0.20 source_tag=$SHA1" "$(tr "\n" " " <<<"$out" | sed "s/ $//")"
for bad_ref in refs/tags/release/1.2.3 refs/tags/release/v1.2 refs/tags/release/v01.2.3 \
  refs/tags/release/v1.2.3-rc.1 refs/tags/release/v1.2.3+build refs/tags/release/v1.2.3/x \
  "refs/tags/release/v1.2.3 " refs/tags/release/v1.2.3.4 refs/tags/release/vX.Y.Z \
  refs/tags/v1.2.3 refs/heads/feature refs/heads/main-old; do
  refuses "refuses ref '$bad_ref'" "$RELEASE" plan "$bad_ref" "$SHA1"
done
refuses "refuses a short SHA" "$RELEASE" plan refs/heads/main abc1234
refuses "refuses an upper-case SHA" "$RELEASE" plan refs/heads/main "$(printf 'A%.0s' {1..40})"
set +e; msg=$("$RELEASE" plan refs/tags/release/v1 "$SHA1" 2>&1 >/dev/null); rc=$?; set -e
eq "a malformed tag exits with status 2" 2 "$rc"
eq "its message is the reason alone (no status appended)" \
  "release: malformed release tag 'release/v1': expected release/vX.Y.Z" "$msg"
set +e; msg=$(cd "$WORK" && "$RELEASE" bump dev "$SHA1" 2>&1 >/dev/null); rc=$?; set -e
eq "an error with the default status ends with the reason too" "1 release: no manifests/overlays/dev/kustomization.yaml (run from the repository root)" "$rc $msg"

# ---------------------------------------------------------------- repositories
# make_repo DIR: a bare origin plus a clone with the overlay layout of the
# contract (base Deployments using the images main-api and auxiliary-service).
make_repo() {
  local d=$1
  git init -q --bare -b main "$d/origin.git"
  git clone -q "$d/origin.git" "$d/work" 2>/dev/null
  (
    cd "$d/work"
    mkdir -p manifests/base manifests/overlays/dev manifests/overlays/prod
    for app in main-api auxiliary-service; do
      cat >"manifests/base/$app.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $app
spec:
  selector:
    matchLabels: {app: $app}
  template:
    metadata:
      labels: {app: $app}
    spec:
      containers:
        - name: $app
          image: $app
EOF
    done
    printf 'resources:\n  - main-api.yaml\n  - auxiliary-service.yaml\n' >manifests/base/kustomization.yaml
    for env in dev prod; do
      cat >"manifests/overlays/$env/kustomization.yaml" <<EOF
# $env overlay (comments must survive a bump)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $env
resources:
  - ../../base
images:
  - name: main-api
    newName: $PFX/main-api
    newTag: initial # set by the pipeline
  - name: auxiliary-service
    newName: $PFX/auxiliary-service
    newTag: initial
EOF
    done
    mkdir -p argocd/apps
    cat >argocd/apps/release-prod.yaml <<EOF
# prod's release pin (comments must survive a pin)
apiVersion: v1
kind: ConfigMap
metadata:
  name: prod-release
data:
  version: v0.0.1
EOF
    echo readme >README.md
    git add -A && git commit -q -m init && git push -q origin HEAD:main
  )
}

rendered_images() { # rendered_images DIR ENV -> "container=image" lines, sorted
  kubectl kustomize "$1/manifests/overlays/$2" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            print(d["metadata"]["name"] + "=" + c["image"])
' | sort | tr '\n' ' '
}
remote_head() { git -C "$1/origin.git" rev-parse refs/heads/main; }
changed_files() { git -C "$1/origin.git" diff --name-only "$2" "$3" | tr '\n' ' '; }

R="$WORK/r1"; make_repo "$R"
cd "$R/work"
# the commits that dev deploys, in order
git commit -q --allow-empty -m "feature 1"; C1=$(git rev-parse HEAD)
git commit -q --allow-empty -m "feature 2"; C2=$(git rev-parse HEAD)
git push -q origin HEAD:main

echo "== main push: bumps dev only"
h0=$(remote_head "$R")
check "publish dev $C2" "$RELEASE" publish dev "$C2"
h1=$(remote_head "$R")
eq "only the dev overlay changed" "manifests/overlays/dev/kustomization.yaml " "$(changed_files "$R" "$h0" "$h1")"
eq "dev renders the ECR images at the commit SHA" \
  "auxiliary-service=$PFX/auxiliary-service:$C2 main-api=$PFX/main-api:$C2 " "$(rendered_images "$R/work" dev)"
eq "prod still renders its previous images" \
  "auxiliary-service=$PFX/auxiliary-service:initial main-api=$PFX/main-api:initial " "$(rendered_images "$R/work" prod)"
msg=$(git -C "$R/origin.git" log -1 --format=%s main)
eq "the bump commit skips CI" "deploy(dev): $C2 [skip ci]" "$msg"
[ "$KUSTOMIZE" != none ] || check "comments in the overlay survive the bump" grep -q '^# dev overlay (comments must survive a bump)' "$R/work/manifests/overlays/dev/kustomization.yaml"

echo "== re-run: a no-op"
check "publish dev $C2 again" "$RELEASE" publish dev "$C2"
eq "no new commit on the remote" "$h1" "$(remote_head "$R")"

echo "== out-of-order run: an older commit does not roll dev back"
check "publish dev $C1 after $C2" "$RELEASE" publish dev "$C1"
eq "no new commit on the remote" "$h1" "$(remote_head "$R")"
eq "dev still runs the newer commit" \
  "auxiliary-service=$PFX/auxiliary-service:$C2 main-api=$PFX/main-api:$C2 " "$(rendered_images "$R/work" dev)"

pinned() { git -C "$1/origin.git" show main:argocd/apps/release-prod.yaml | python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["version"])'; }

echo "== release tag: pins prod to the release, nothing else"
check "publish prod v1.2.3" "$RELEASE" publish prod v1.2.3
h2=$(remote_head "$R")
eq "only the release pin changed" "argocd/apps/release-prod.yaml " "$(changed_files "$R" "$h1" "$h2")"
eq "prod is pinned to v1.2.3" v1.2.3 "$(pinned "$R")"
check "the pin's comments survive" bash -c "git -C '$R/origin.git' show main:argocd/apps/release-prod.yaml | grep -q '^# prod.s release pin'"
eq "the prod overlay is not edited (prod reads it at the release tag)" \
  "auxiliary-service=$PFX/auxiliary-service:initial main-api=$PFX/main-api:initial " "$(rendered_images "$R/work" prod)"
eq "dev is untouched by the release" \
  "auxiliary-service=$PFX/auxiliary-service:$C2 main-api=$PFX/main-api:$C2 " "$(rendered_images "$R/work" dev)"
msg=$(git -C "$R/origin.git" log -1 --format=%s main)
eq "the pin commit skips CI" "deploy(prod): v1.2.3 [skip ci]" "$msg"
check "publish prod v1.2.3 again" "$RELEASE" publish prod v1.2.3
eq "re-run of the release makes no commit" "$h2" "$(remote_head "$R")"
check "a late run of an older release (v1.2.2)" "$RELEASE" publish prod v1.2.2
eq "does not roll prod back" "$h2 v1.2.3" "$(remote_head "$R") $(pinned "$R")"

echo "== malformed input changes nothing"
refuses "prod refuses '1.2.4' (no v)" "$RELEASE" publish prod 1.2.4
refuses "prod refuses a commit SHA" "$RELEASE" publish prod "$C2"
refuses "dev refuses a version" "$RELEASE" publish dev v1.2.4
refuses "unknown environment refused" "$RELEASE" publish staging v1.2.4
eq "nothing was pushed by refused runs" "$h2" "$(remote_head "$R")"

echo "== concurrent pushes: rebuilt on the newest trunk, retried when rejected"
git clone -q "$R/origin.git" "$R/other"
(cd "$R/other" && echo change >>README.md && git commit -qam "someone else's change" && git push -q origin HEAD:main)
check "publish prod v1.2.4 from a stale clone" "$RELEASE" publish prod v1.2.4
check "the other change is kept" git -C "$R/origin.git" cat-file -e "main:README.md"
eq "README has the other change" "readme change" "$(git -C "$R/origin.git" show main:README.md | tr '\n' ' ' | sed 's/ $//')"
# a hook that rejects the next push once, as a lost race would
cat >"$R/origin.git/hooks/pre-receive" <<'EOF'
#!/bin/sh
if [ ! -f reject-done ]; then touch reject-done; echo "rejected once (test)" >&2; exit 1; fi
EOF
chmod +x "$R/origin.git/hooks/pre-receive"
h3=$(remote_head "$R")
check "publish prod v1.2.5 retries after a rejected push" "$RELEASE" publish prod v1.2.5
check "the first push was rejected" test -f "$R/origin.git/reject-done"
eq "one commit landed after the retry" 1 "$(git -C "$R/origin.git" rev-list --count "$h3..main")"
printf '#!/bin/sh\nexit 1\n' >"$R/origin.git/hooks/pre-receive"
refuses "gives up after PUSH_ATTEMPTS rejected pushes" "$RELEASE" publish prod v1.2.6

echo "== source commit: a release of a bump commit promotes the images of the code below it"
BUMP=$(git -C "$R/origin.git" log -1 --format=%H --grep='deploy(dev)' main)
BELOW=$(git -C "$R/origin.git" rev-parse "$BUMP^")
git -C "$R/work" fetch -q origin
eq "a bump commit resolves to its parent" "$BELOW" "$(cd "$R/work" && "$RELEASE" source-commit "$BUMP" 2>/dev/null)"
eq "a code commit resolves to itself" "$C2" "$(cd "$R/work" && "$RELEASE" source-commit "$C2" 2>/dev/null)"
STACK=$(git -C "$R/origin.git" rev-parse main)
PIN=$(git -C "$R/origin.git" log -1 --format=%H --grep='deploy(prod): v1.2.3' main)
eq "a release-pin commit (on a dev bump) resolves to the code below both" "$C2" \
  "$(cd "$R/work" && "$RELEASE" source-commit "$PIN" 2>/dev/null)"
eq "a stack of bump commits resolves below all of them" \
  "$(git -C "$R/origin.git" log -1 --format=%H --grep="someone else's change" main)" \
  "$(cd "$R/work" && "$RELEASE" source-commit "$STACK" 2>/dev/null)"

echo "== trunk check"
git -C "$R/work" checkout -q -b topic "$C2"
git -C "$R/work" commit -q --allow-empty -m "not on main"; OFF=$(git -C "$R/work" rev-parse HEAD)
check "a trunk commit may be released" "$RELEASE" check-trunk "$C2"
refuses "a commit off the trunk may not" "$RELEASE" check-trunk "$OFF"

echo "== image entries: both contract names, digests dropped, missing entries refused"
if [ "$KUSTOMIZE" = none ]; then
E="$WORK/edit"; mkdir -p "$E/manifests/overlays/dev"
cat >"$E/manifests/overlays/dev/kustomization.yaml" <<EOF
resources: [] # nothing
images:
- name: kantox-challenge/main-api
  digest: sha256:$(printf '0%.0s' {1..64})
- name: unrelated
  newTag: keep
- newTag: old
  name: auxiliary-service
labels: []
EOF
git -C "$E" init -q
check "bump an overlay with prefixed and bare entry names" bash -c "cd '$E' && '$RELEASE' bump dev $C2"
cat >"$WORK/edit-check.py" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
imgs = {i["name"]: i for i in doc["images"]}
pfx, tag = sys.argv[2], sys.argv[3]
assert imgs["kantox-challenge/main-api"] == {"name": "kantox-challenge/main-api", "newName": f"{pfx}/main-api", "newTag": tag}, imgs
assert imgs["auxiliary-service"] == {"name": "auxiliary-service", "newName": f"{pfx}/auxiliary-service", "newTag": tag}, imgs
assert imgs["unrelated"] == {"name": "unrelated", "newTag": "keep"}, imgs
assert len(doc["images"]) == 3, doc["images"]
assert doc["labels"] == [] and doc["resources"] == [], doc
PY
check "entries set, digest dropped, unrelated kept, nothing added" python3 "$WORK/edit-check.py" "$E/manifests/overlays/dev/kustomization.yaml" "$PFX" "$C2"
printf 'resources: []\nimages:\n- name: unrelated\n  newTag: keep\n' >"$E/manifests/overlays/dev/kustomization.yaml"
refuses "an overlay without the image entries is refused" bash -c "cd '$E' && '$RELEASE' bump dev $C2"
eq "and left as it was" "$(printf 'resources: []\nimages:\n- name: unrelated\n  newTag: keep')" "$(cat "$E/manifests/overlays/dev/kustomization.yaml")"
else
  echo "note: these cases test the built-in editor; this run uses $KUSTOMIZE"
fi

# ---------------------------------------------------------------- the real overlays
echo "== the repository's own overlays"
if [ -f "$ROOT/manifests/overlays/dev/kustomization.yaml" ] && [ -f "$ROOT/manifests/overlays/prod/kustomization.yaml" ]; then
  RR="$WORK/real"
  git init -q --bare -b main "$RR/origin.git"
  git clone -q "$RR/origin.git" "$RR/work" 2>/dev/null
  cp -r "$ROOT/manifests" "$RR/work/manifests"
  mkdir -p "$RR/work/argocd"; cp -r "$ROOT/argocd/apps" "$RR/work/argocd/apps"
  (cd "$RR/work" && git add -A && git commit -q -m copy && git push -q origin HEAD:main)
  cd "$RR/work"
  h=$(remote_head "$RR")
  check "publish dev on the real overlays" "$RELEASE" publish dev "$C2"
  eq "only the real dev overlay changed" "manifests/overlays/dev/kustomization.yaml " "$(changed_files "$RR" "$h" "$(remote_head "$RR")")"
  eq "real dev renders both ECR images at the SHA" \
    "auxiliary-service=$PFX/auxiliary-service:$C2 main-api=$PFX/main-api:$C2 " \
    "$(rendered_images "$RR/work" dev | tr ' ' '\n' | grep -E '^(main-api|auxiliary-service)=' | tr '\n' ' ')"
  # A release: the tag release/v2.0.0 on the current trunk, then a change of
  # the base lands on main; prod must keep the manifests of the release.
  ttl() { grep -h 'CACHE_TTL_SECONDS' | head -n1 | tr -d ' '; }
  git -C "$RR/work" pull -q origin main
  git -C "$RR/work" tag release/v2.0.0
  git -C "$RR/work" push -q origin release/v2.0.0
  sed -i 's/CACHE_TTL_SECONDS=30/CACHE_TTL_SECONDS=45/' "$RR/work/manifests/base/main-api/kustomization.yaml"
  git -C "$RR/work" commit -qam "base: longer cache TTL (after the release)"
  git -C "$RR/work" push -q origin HEAD:main
  h=$(remote_head "$RR")
  check "publish prod v2.0.0 on the real repository" "$RELEASE" publish prod v2.0.0
  eq "only argocd/apps/release-prod.yaml changed" "argocd/apps/release-prod.yaml " "$(changed_files "$RR" "$h" "$(remote_head "$RR")")"
  git -C "$RR/work" pull -q origin main
  app_prod() { kubectl kustomize "$RR/work/argocd/apps" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Application" and d["metadata"]["name"] == "services-prod":
        s = d["spec"]["source"]
        print(s["targetRevision"], *s["kustomize"]["images"])
'; }
  eq "services-prod reads the release tag with both images at the release" \
    "release/v2.0.0 kantox-challenge/main-api=$PFX/main-api:v2.0.0 kantox-challenge/auxiliary-service=$PFX/auxiliary-service:v2.0.0" \
    "$(app_prod)"
  (cd "$RR/work" && "$RELEASE" render-prod) >"$WORK/prod-v2.0.0.yaml" 2>"$WORK/render.log" || { cat "$WORK/render.log"; bad "render-prod v2.0.0"; }
  eq "prod as Argo CD renders it runs both images at v2.0.0" \
    "auxiliary-service=$PFX/auxiliary-service:v2.0.0 main-api=$PFX/main-api:v2.0.0 " \
    "$(python3 -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "Deployment":
        print(d["metadata"]["name"] + "=" + d["spec"]["template"]["spec"]["containers"][0]["image"])
' "$WORK/prod-v2.0.0.yaml" | sort | tr '\n' ' ')"
  check "and reports SERVICE_VERSION v2.0.0" grep -q 'SERVICE_VERSION: v2.0.0' "$WORK/prod-v2.0.0.yaml"
  eq "prod keeps the manifests of the release, not the base change on main" "CACHE_TTL_SECONDS:\"30\"" "$(ttl <"$WORK/prod-v2.0.0.yaml")"
  eq "while main's prod overlay already has it" "CACHE_TTL_SECONDS:\"45\"" "$(kubectl kustomize "$RR/work/manifests/overlays/prod" | ttl)"
  h=$(remote_head "$RR")
  check "re-run on the real repository" "$RELEASE" publish prod v2.0.0
  eq "re-run on the real repository is a no-op" "$h" "$(remote_head "$RR")"
  # The next release carries the change.
  git -C "$RR/work" tag release/v2.1.0 "$(git -C "$RR/work" log -1 --format=%H --grep='longer cache TTL')"
  git -C "$RR/work" push -q origin release/v2.1.0
  check "publish prod v2.1.0" "$RELEASE" publish prod v2.1.0
  git -C "$RR/work" pull -q origin main
  (cd "$RR/work" && "$RELEASE" render-prod) >"$WORK/prod-v2.1.0.yaml" 2>"$WORK/render.log" || { cat "$WORK/render.log"; bad "render-prod v2.1.0"; }
  eq "the next release brings the base change to prod" "CACHE_TTL_SECONDS:\"45\"" "$(ttl <"$WORK/prod-v2.1.0.yaml")"
  check "with the images v2.1.0" grep -q "image: $PFX/main-api:v2.1.0" "$WORK/prod-v2.1.0.yaml"
  refuses "render-prod of a release without a tag" bash -c "cd '$RR/work' && '$RELEASE' render-prod v9.9.9"
else
  echo "note: manifests/overlays/{dev,prod}/kustomization.yaml not in this checkout yet: only the minimal copy above was tested"
fi

# ---------------------------------------------------------------- ECR
echo "== ECR: image existence and release tagging without rebuild (moto)"
port=$(python3 "$ROOT/scripts/ports.py")  # below the ephemeral range: see ports.py
moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=eu-west-1
for _ in $(seq 1 100); do curl -fsS "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
# The emulator that answered is ours (not another check's on the same port).
kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log"; echo "moto_server on port $port did not start"; exit 1; }
for repo in main-api auxiliary-service; do
  aws ecr create-repository --repository-name "kantox-challenge/$repo" --image-tag-mutability IMMUTABLE >/dev/null
done
INDEX='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$(printf '1%.0s' {1..64})"'","size":100,"platform":{"architecture":"amd64","os":"linux"}}]}'
OTHER='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$(printf '2%.0s' {1..64})"'","size":200,"platform":{"architecture":"amd64","os":"linux"}}]}'
# The digest is given as ECR computes it (sha256 of the manifest's bytes):
# moto makes one up for an image index from only 101 values, so two indexes
# would sometimes share one.
digest_of() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
aws ecr put-image --repository-name kantox-challenge/main-api --image-tag "$C2" --image-manifest "$INDEX" \
  --image-digest "$(digest_of "$INDEX")" --image-manifest-media-type application/vnd.oci.image.index.v1+json >/dev/null
aws ecr put-image --repository-name kantox-challenge/main-api --image-tag "$C1" --image-manifest "$OTHER" \
  --image-digest "$(digest_of "$OTHER")" --image-manifest-media-type application/vnd.oci.image.index.v1+json >/dev/null
D2=$(aws ecr describe-images --repository-name kantox-challenge/main-api --image-ids "imageTag=$C2" --query 'imageDetails[0].imageDigest' --output text)
eq "the SHA image's digest is ECR's (sha256 of its manifest)" "$(digest_of "$INDEX")" "$D2"
eq "image-digest finds the SHA image" "$D2" "$("$RELEASE" image-digest main-api "$C2" 2>/dev/null)"
refuses "image-digest fails for a commit never built" "$RELEASE" image-digest main-api "$(printf 'b%.0s' {1..40})"
refuses "promote fails when the SHA image does not exist" "$RELEASE" promote auxiliary-service "$C2" v1.0.0
eq "promote tags the same digest as v1.0.0" "$D2" "$("$RELEASE" promote main-api "$C2" v1.0.0 2>/dev/null)"
eq "v1.0.0 resolves to the SHA image's digest" "$D2" \
  "$(aws ecr describe-images --repository-name kantox-challenge/main-api --image-ids imageTag=v1.0.0 --query 'imageDetails[0].imageDigest' --output text)"
eq "the manifest is carried over byte for byte" "$INDEX" \
  "$(aws ecr batch-get-image --repository-name kantox-challenge/main-api --image-ids imageTag=v1.0.0 --query 'images[0].imageManifest' --output text)"
eq "re-running promote is a no-op" "$D2" "$("$RELEASE" promote main-api "$C2" v1.0.0 2>/dev/null)"
refuses "v1.0.0 cannot be moved to another commit's image" "$RELEASE" promote main-api "$C1" v1.0.0
refuses "promote refuses a malformed version" "$RELEASE" promote main-api "$C2" 1.0.1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
