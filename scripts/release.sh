#!/usr/bin/env bash
# The delivery logic the workflows call, kept here so the test command can
# exercise it (scripts/tests/test-release.sh) instead of only GitHub.
#
#   scripts/release.sh plan REF SHA
#       What a push deploys. Prints GITHUB_OUTPUT lines:
#         refs/heads/main          -> environment=dev  tag=<SHA>
#         refs/tags/release/vX.Y.Z -> environment=prod tag=vX.Y.Z
#       and source_tag=<SHA> (the tag the image was first pushed with).
#       Anything else, a malformed release tag or a SHA that is not 40 hex
#       digits, is refused with exit status 2.
#   scripts/release.sh check-trunk SHA [BRANCH]
#       Refuses to release a commit that is not on the trunk (origin/main).
#   scripts/release.sh source-commit SHA
#       The commit whose images a release of SHA promotes: SHA itself, or, when
#       SHA only bumps overlays (the pipeline's own "[skip ci]" commits, which
#       build nothing), its nearest first-parent ancestor that changes more.
#   scripts/release.sh bump dev SHA
#       Points the images of manifests/overlays/dev at REGISTRY/kantox-challenge/
#       <repo>:SHA (kustomize edit set image). Prints "changed" or "unchanged".
#   scripts/release.sh pin vX.Y.Z
#       Pins prod to a release: sets the version in argocd/apps/release-prod.yaml,
#       from which the Argo CD Application services-prod takes its revision
#       (the tag release/vX.Y.Z: the manifests as they were at the release)
#       and its images (vX.Y.Z). Prints "changed" or "unchanged". A version
#       below the pinned one changes nothing (no rollback by a late run).
#   scripts/release.sh bump ENV TAG
#       bump dev SHA, or pin vX.Y.Z for prod.
#   scripts/release.sh publish ENV TAG
#       bump (dev) or pin (prod) on top of the newest origin/main, commit
#       "[skip ci]", push; on a rejected push fetch again, re-apply on the new
#       tip and retry. Nothing to commit is a success (a re-run is a no-op).
#   scripts/release.sh render-prod [VERSION]
#       Prints what prod runs, rendered as Argo CD renders it: the prod overlay
#       at the tag release/VERSION (default: the pinned version) with the
#       images of services-prod applied. Needs the tag locally and kubectl or
#       kustomize.
#   scripts/release.sh image-digest REPO TAG
#       Prints the digest of REPO:TAG in ECR, or fails when it does not exist.
#   scripts/release.sh promote REPO SOURCE_TAG NEW_TAG
#       Adds NEW_TAG to the image already pushed as SOURCE_TAG (same manifest,
#       same digest, no rebuild). A NEW_TAG already on that digest is a no-op;
#       on another digest it is an error. Prints the digest.
#
# Environment:
#   REGISTRY          <account>.dkr.ecr.<region>.amazonaws.com; derived from
#                     AWS_ACCOUNT_ID and AWS_REGION when unset (bump, publish)
#   REMOTE            git remote to push to (default origin), BRANCH (default main)
#   PUSH_ATTEMPTS     push attempts before giving up (default 5)
#   KUSTOMIZE         kustomize binary; "none" forces the built-in editor.
#                     Without kustomize on PATH the built-in editor is used.
#   AWS_ENDPOINT_URL  honoured by the aws CLI (the tests point it at an emulator)
set -euo pipefail

PROJECT=kantox-challenge
# kustomize image name -> ECR repository name (without the project prefix)
IMAGES=(main-api auxiliary-service)
# What prod runs: the release pin read by argocd/apps (services-prod).
RELEASE_PIN=argocd/apps/release-prod.yaml
# The pipeline's own commits: they build nothing.
PIPELINE_PATHS='^(manifests/overlays/|argocd/apps/release-prod\.yaml$)'

die() { printf 'release: %s\n' "$1" >&2; exit "${2:-1}"; } # die MESSAGE [STATUS]
log() { printf 'release: %s\n' "$*" >&2; }

SEMVER_RE='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
SHA_RE='^[0-9a-f]{40}$'

is_sha() { [[ $1 =~ $SHA_RE ]]; }
is_version() { [[ $1 =~ $SEMVER_RE ]]; }

tag_for_env() { # tag_for_env ENV TAG: refuse a tag that does not belong to ENV
  case "$1" in
    dev) is_sha "$2" || die "dev images are tagged with a 40-hex commit SHA, got '$2'" 2 ;;
    prod) is_version "$2" || die "prod images are tagged vX.Y.Z, got '$2'" 2 ;;
    *) die "unknown environment '$1' (dev or prod)" 2 ;;
  esac
}

cmd_plan() {
  [ $# -eq 2 ] || die "usage: plan REF SHA" 2
  local ref=$1 sha=$2
  is_sha "$sha" || die "not a full commit SHA: '$sha'" 2
  case "$ref" in
    refs/heads/main)
      printf 'environment=dev\ntag=%s\nsource_tag=%s\n' "$sha" "$sha" ;;
    refs/tags/release/*)
      local version=${ref#refs/tags/release/}
      is_version "$version" || die "malformed release tag '${ref#refs/tags/}': expected release/vX.Y.Z" 2
      printf 'environment=prod\ntag=%s\nsource_tag=%s\n' "$version" "$sha" ;;
    *) die "nothing deploys from '$ref' (only refs/heads/main and refs/tags/release/vX.Y.Z)" 2 ;;
  esac
}

cmd_check_trunk() {
  [ $# -ge 1 ] || die "usage: check-trunk SHA [BRANCH]" 2
  local sha=$1 branch=${2:-${BRANCH:-main}} remote=${REMOTE:-origin}
  is_sha "$sha" || die "not a full commit SHA: '$sha'" 2
  git fetch -q "$remote" "+refs/heads/$branch:refs/remotes/$remote/$branch"
  git merge-base --is-ancestor "$sha" "$remote/$branch" ||
    die "$sha is not on $remote/$branch: only trunk commits (whose images were built by the main pipeline) can be released"
  log "$sha is on $remote/$branch"
}

cmd_source_commit() {
  [ $# -eq 1 ] || die "usage: source-commit SHA" 2
  local c=$1 n files
  is_sha "$c" || die "not a full commit SHA: '$c'" 2
  for ((n = 0; n < 100; n++)); do
    git rev-parse -q --verify "$c^" >/dev/null || break
    files=$(git diff --name-only "$c^" "$c")
    if [ -z "$files" ] || grep -qvE "$PIPELINE_PATHS" <<<"$files"; then break; fi
    log "$c only changes overlays or the release pin: its code is that of its parent"
    c=$(git rev-parse "$c^")
  done
  echo "$c"
}

registry() {
  if [ -n "${REGISTRY:-}" ]; then printf '%s' "$REGISTRY"; return; fi
  if [ -z "${AWS_ACCOUNT_ID:-}" ] || [ -z "${AWS_REGION:-}" ]; then
    die "set REGISTRY, or AWS_ACCOUNT_ID and AWS_REGION"
  fi
  printf '%s.dkr.ecr.%s.amazonaws.com' "$AWS_ACCOUNT_ID" "$AWS_REGION"
}

kustomize_bin() {
  local k=${KUSTOMIZE:-kustomize}
  [ "$k" = none ] && return 1
  command -v "$k" >/dev/null 2>&1 || return 1
  printf '%s' "$k"
}

# Built-in equivalent of `kustomize edit set image NAME=NEWNAME:TAG` for the
# images: list of a kustomization: a line edit that keeps comments and layout,
# verified by parsing the result. Needs python3 with PyYAML.
set_image_builtin() { # set_image_builtin FILE NAME NEWNAME TAG
  python3 - "$@" <<'PY'
import re, sys, yaml

path, name, new_name, tag = sys.argv[1:5]
lines = open(path, encoding="utf-8").read().split("\n")

def top_key(line):
    m = re.match(r"^([A-Za-z_][\w-]*):", line)
    return m.group(1) if m else None

start = next((i for i, l in enumerate(lines) if top_key(l) == "images"), None)
if start is None:
    sys.exit(f"{path} has no images: list")
else:
    end = next((i for i in range(start + 1, len(lines)) if top_key(lines[i])), len(lines))
    items, cur = [], None
    for i in range(start + 1, end):
        m = re.match(r"^(\s*)- ", lines[i])
        if m:
            cur = [i, i + 1, len(m.group(1))]
            items.append(cur)
        elif cur and lines[i].strip() and not lines[i].lstrip().startswith("#"):
            cur[1] = i + 1
    target = None
    for s, e, ind in items:
        block = "\n".join(lines[s:e])
        if re.search(r"(^|\n)\s*-?\s*name:\s*['\"]?" + re.escape(name) + r"['\"]?\s*(#.*)?$", block, re.M):
            target = (s, e, ind)
    if target is None:
        sys.exit(f"{path} has no images entry named {name}")
    else:
        s, e, ind = target
        pad = " " * (ind + 2)
        body = [l for l in lines[s:e] if not re.match(r"^\s*-?\s*(newName|newTag|digest):", l)]
        # keep the "- name:" line first, then the fields kustomize writes
        first = body[0]
        if not re.match(r"^\s*- name:", first):
            # "- newName: ..." first line was dropped; rebuild the item head
            body = [" " * ind + f"- name: {name}"] + [l for l in body if not re.match(r"^\s*name:", l)]
        body[1:1] = [f"{pad}newName: {new_name}", f"{pad}newTag: {tag}"]
        lines[s:e] = body

text = "\n".join(lines)
doc = yaml.safe_load(text)
got = [i for i in (doc.get("images") or []) if i.get("name") == name]
if len(got) != 1 or got[0].get("newName") != new_name or str(got[0].get("newTag")) != tag or "digest" in got[0]:
    sys.exit(f"built-in image editor produced an unexpected images entry for {name}: {got}")
open(path, "w", encoding="utf-8").write(text)
PY
}

# The images: entry an image is set through: "main-api" as the contract names
# it, or "kantox-challenge/main-api" (the image name the base Deployments use).
# A bump must edit an entry that exists: adding one that matches no container
# would change nothing that runs, so a missing entry is an error.
entry_name() { # entry_name FILE IMAGE -> entry name
  python3 - "$1" "$2" "$PROJECT" <<'PY'
import sys, yaml
path, image, project = sys.argv[1:4]
doc = yaml.safe_load(open(path, encoding="utf-8")) or {}
names = [i.get("name") for i in doc.get("images") or []]
for n in (image, f"{project}/{image}"):
    if n in names:
        print(n)
        sys.exit(0)
sys.exit(f"{path}: no images entry named {image} or {project}/{image} (found: {names})")
PY
}

current_tag() { # current_tag FILE NAME -> newTag of that image entry (empty if none)
  python3 - "$1" "$2" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8")) or {}
for i in doc.get("images") or []:
    if i.get("name") == sys.argv[2]:
        print(i.get("newTag", "") or "")
PY
}

# version_lt A B: A is a lower vX.Y.Z than B
version_lt() {
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "${1#v}" ]
}

cmd_pin() {
  [ $# -eq 1 ] || die "usage: pin vX.Y.Z" 2
  local version=$1 current
  tag_for_env prod "$version"
  [ -f "$RELEASE_PIN" ] || die "no $RELEASE_PIN (run from the repository root)"
  current=$(python3 - "$RELEASE_PIN" <<'PY'
import sys, yaml
print((yaml.safe_load(open(sys.argv[1], encoding="utf-8")).get("data") or {}).get("version", ""))
PY
)
  if [ "$current" = "$version" ]; then echo unchanged; return 0; fi
  if is_version "$current" && version_lt "$version" "$current"; then
    log "prod is pinned to $current, newer than $version: not rolling back (edit $RELEASE_PIN in a pull request to roll back)"
    echo unchanged
    return 0
  fi
  # A line edit keeps the file's comments; the result is parsed to verify it.
  python3 - "$RELEASE_PIN" "$version" <<'PY'
import re, sys, yaml
path, version = sys.argv[1:3]
text = open(path, encoding="utf-8").read()
new, n = re.subn(r"(?m)^(  version:[ \t]*)\S+[ \t]*$", lambda m: m.group(1) + version, text)
doc = yaml.safe_load(new)
if n != 1 or doc.get("data", {}).get("version") != version:
    sys.exit(f"{path}: could not set data.version to {version}")
open(path, "w", encoding="utf-8").write(new)
PY
  log "prod pinned to $version (was ${current:-none})"
  echo changed
}

cmd_bump() {
  [ $# -eq 2 ] || die "usage: bump ENV TAG" 2
  local env=$1 tag=$2 dir reg k file before after
  tag_for_env "$env" "$tag"
  if [ "$env" = prod ]; then cmd_pin "$tag"; return; fi
  dir="manifests/overlays/$env"
  file="$dir/kustomization.yaml"
  [ -f "$file" ] || die "no $file (run from the repository root)"
  reg=$(registry)
  local names=() i
  for i in "${!IMAGES[@]}"; do names+=("$(entry_name "$file" "${IMAGES[$i]}")"); done

  if [ "$env" = dev ]; then
    # Out-of-order runs must not roll dev back: keep a newer trunk commit.
    local cur; cur=$(current_tag "$file" "${names[0]}")
    if is_sha "$cur" && [ "$cur" != "$tag" ] && git cat-file -e "$cur^{commit}" 2>/dev/null &&
      git merge-base --is-ancestor "$tag" "$cur" 2>/dev/null; then
      log "dev already runs $cur, a descendant of $tag: not rolling back"
      echo unchanged
      return 0
    fi
  fi

  before=$(sha256sum "$file")
  if k=$(kustomize_bin); then
    log "editing $dir with $k edit set image"
    local args=()
    for i in "${!IMAGES[@]}"; do args+=("${names[$i]}=$reg/$PROJECT/${IMAGES[$i]}:$tag"); done
    (cd "$dir" && "$k" edit set image "${args[@]}")
  else
    log "editing $dir with the built-in image editor (no kustomize binary)"
    for i in "${!IMAGES[@]}"; do set_image_builtin "$file" "${names[$i]}" "$reg/$PROJECT/${IMAGES[$i]}" "$tag"; done
  fi
  after=$(sha256sum "$file")
  if [ "$before" = "$after" ]; then echo unchanged; else echo changed; fi
}

cmd_publish() {
  [ $# -eq 2 ] || die "usage: publish ENV TAG" 2
  local env=$1 tag=$2 remote=${REMOTE:-origin} branch=${BRANCH:-main}
  local attempts=${PUSH_ATTEMPTS:-5} n result
  tag_for_env "$env" "$tag"
  local changes="manifests/overlays/$env"
  [ "$env" = prod ] && changes=$RELEASE_PIN
  for ((n = 1; n <= attempts; n++)); do
    git fetch -q "$remote" "+refs/heads/$branch:refs/remotes/$remote/$branch"
    git checkout -q -B "deploy-$env" "$remote/$branch"
    result=$(cmd_bump "$env" "$tag")
    if [ "$result" = unchanged ] || git diff --quiet -- "$changes"; then
      log "$env already at $tag on $remote/$branch: nothing to push"
      return 0
    fi
    git add -- "$changes"
    git commit -q -m "deploy($env): $tag [skip ci]" -- "$changes"
    if git push -q "$remote" "HEAD:refs/heads/$branch"; then
      log "pushed $env -> $tag to $remote/$branch ($(git rev-parse --short HEAD))"
      return 0
    fi
    log "push rejected (attempt $n/$attempts): fetching and re-applying on the new tip"
    sleep "$(( n < 4 ? n : 4 ))"
  done
  die "could not push the $env bump after $attempts attempts"
}

ecr_digest() { # ecr_digest REPO TAG -> digest or empty
  aws ecr describe-images --repository-name "$1" --image-ids "imageTag=$2" \
    --query 'imageDetails[0].imageDigest' --output text 2>/dev/null || true
}

cmd_image_digest() {
  [ $# -eq 2 ] || die "usage: image-digest REPO TAG" 2
  local d; d=$(ecr_digest "$PROJECT/$1" "$2")
  if [ -z "$d" ] || [ "$d" = None ]; then die "no image $PROJECT/$1:$2 in ECR"; fi
  echo "$d"
}

cmd_promote() {
  [ $# -eq 3 ] || die "usage: promote REPO SOURCE_TAG NEW_TAG" 2
  local repo="$PROJECT/$1" src=$2 new=$3 digest existing out manifest media
  is_sha "$src" || die "source tag must be a commit SHA, got '$src'" 2
  is_version "$new" || die "release tag must be vX.Y.Z, got '$new'" 2
  digest=$(cmd_image_digest "$1" "$src")
  existing=$(ecr_digest "$repo" "$new")
  if [ -n "$existing" ] && [ "$existing" != None ]; then
    [ "$existing" = "$digest" ] || die "$repo:$new already exists on $existing, not on $digest ($src)"
    log "$repo:$new already on $digest: nothing to do"
    echo "$digest"
    return 0
  fi
  out=$(mktemp); trap 'rm -f "$out"' RETURN
  aws ecr batch-get-image --repository-name "$repo" --image-ids "imageDigest=$digest" \
    --accepted-media-types \
      application/vnd.oci.image.index.v1+json \
      application/vnd.oci.image.manifest.v1+json \
      application/vnd.docker.distribution.manifest.list.v2+json \
      application/vnd.docker.distribution.manifest.v2+json \
    --output json >"$out"
  manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"][0]["imageManifest"])' "$out")
  media=$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1]))["images"][0]; print(i.get("imageManifestMediaType") or "")' "$out")
  local args=(--repository-name "$repo" --image-tag "$new" --image-manifest "$manifest" --image-digest "$digest")
  [ -n "$media" ] && args+=(--image-manifest-media-type "$media")
  aws ecr put-image "${args[@]}" >/dev/null
  [ "$(ecr_digest "$repo" "$new")" = "$digest" ] || die "$repo:$new does not point at $digest after put-image"
  log "tagged $repo@$digest as $new"
  echo "$digest"
}

# What Argo CD renders for services-prod: the prod overlay at the tag, with
# the Application's kustomize.images set (`kustomize edit set image`).
cmd_render_prod() ( # a subshell: its EXIT trap removes the work folder
  [ $# -le 1 ] || die "usage: render-prod [vX.Y.Z]" 2
  local version=${1:-} tmp apps k images img
  if [ -z "$version" ]; then
    version=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["version"])' "$RELEASE_PIN")
  fi
  tag_for_env prod "$version"
  git rev-parse -q --verify "refs/tags/release/$version^{commit}" >/dev/null ||
    die "no tag release/$version here (git fetch --tags)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  # The images come from the Application services-prod, rendered from the
  # current argocd/apps with the pin set to VERSION.
  mkdir -p "$tmp/apps"; cp -r argocd/apps/. "$tmp/apps/"
  (cd "$tmp/apps" && RELEASE_PIN=release-prod.yaml cmd_pin "$version" >/dev/null)
  if k=$(kustomize_bin); then apps=$("$k" build "$tmp/apps"); else apps=$(kubectl kustomize "$tmp/apps"); fi
  mapfile -t images < <(python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Application" and d["metadata"]["name"] == "services-prod":
        for i in d["spec"]["source"].get("kustomize", {}).get("images", []):
            print(i)
' <<<"$apps")
  [ ${#images[@]} -gt 0 ] || die "services-prod sets no images"
  git archive "release/$version" manifests | tar -x -C "$tmp"
  for img in "${images[@]}"; do
    if k=$(kustomize_bin); then
      (cd "$tmp/manifests/overlays/prod" && "$k" edit set image "$img")
    else
      [[ $img =~ ^([^=]+)=(.+):([^:]+)$ ]] || die "image override '$img' is not OLD=NEW:TAG"
      set_image_builtin "$tmp/manifests/overlays/prod/kustomization.yaml" \
        "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
    fi
  done
  if k=$(kustomize_bin); then "$k" build "$tmp/manifests/overlays/prod"; else kubectl kustomize "$tmp/manifests/overlays/prod"; fi
)

main() {
  [ $# -ge 1 ] || die "usage: release.sh plan|check-trunk|source-commit|bump|pin|publish|render-prod|image-digest|promote ..." 2
  local c=$1; shift
  case "$c" in
    plan) cmd_plan "$@" ;;
    check-trunk) cmd_check_trunk "$@" ;;
    source-commit) cmd_source_commit "$@" ;;
    bump) cmd_bump "$@" ;;
    pin) cmd_pin "$@" ;;
    render-prod) cmd_render_prod "$@" ;;
    publish) cmd_publish "$@" ;;
    image-digest) cmd_image_digest "$@" ;;
    promote) cmd_promote "$@" ;;
    *) die "unknown command '$c'" 2 ;;
  esac
}

main "$@"
