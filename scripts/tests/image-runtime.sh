#!/usr/bin/env bash
# The runtime stage of a service's Dockerfile, built and started here without
# Docker:
#
#   scripts/tests/image-runtime.sh [aux|edge]     (default aux)
#
# 1. builds the service's binary: a static musl binary when the musl target and musl-gcc
#    are available (as the real image does), otherwise the host (glibc) binary
#    plus the libraries ldd lists, copied into the image for this test only;
# 2. takes the final stage of <crate>/Dockerfile (it must be FROM scratch), turns
#    its COPY --from=<build stage> lines into copies of the files built here,
#    and builds it with buildah (vfs storage, private to this run);
# 3. checks the image config (user 10001:10001, entrypoint, ports, labels) and
#    that the image has no shell;
# 4. runs it with runc: UID/GID from the image, read-only root filesystem, no
#    capabilities, no new privileges, and the host's network namespace so the
#    service can bind 127.0.0.1 on free ports; then GET /healthz must answer 200
#    while its dependencies (AWS, the worker) are unreachable.
#
# Needs root, buildah and runc (the image group of scripts/tools.sh). Where they
# cannot run it prints "SKIPPED: <reason>" and exits 3 (the caller decides).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MUSL=x86_64-unknown-linux-musl
SERVICE=${1:-aux}
# Per service: crate dir, package (= binary), exposed ports, and the
# environment that starts it with its dependencies unreachable.
case "$SERVICE" in
  aux)
    CRATE=aux; BIN=aux-worker; PORTS='["8001/tcp", "9001/tcp"]'
    RUN_ENV='["PARAMETER_PREFIX=/kantox-challenge/test", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL=http://127.0.0.1:9"]' ;;
  edge)
    CRATE=edge; BIN=edge; PORTS='["8000/tcp", "8443/tcp", "9000/tcp"]'
    RUN_ENV='["AUXILIARY_SERVICE_URL=http://127.0.0.1:9"]' ;;
  *) echo "usage: image-runtime.sh [aux|edge]"; exit 2 ;;
esac
DOCKERFILE="$ROOT/$CRATE/Dockerfile"

skip() { echo "SKIPPED: $*"; exit 3; }
fail() { echo "FAIL: $*"; exit 1; }
say() { echo "image-runtime: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root for buildah (vfs) and runc"
for t in buildah runc cargo curl python3; do
  command -v "$t" >/dev/null || skip "$t is not installed (scripts/tools.sh image checks for buildah, runc and musl-gcc)"
done
[ -f "$DOCKERFILE" ] || fail "no $DOCKERFILE"
[ -f "$ROOT/$CRATE/Cargo.toml" ] || fail "no $CRATE/Cargo.toml: the $BIN crate is missing"

WORK=$(mktemp -d)
CTR_ID="ci-image-runtime-$$"
STORE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
RUNC=(runc --root "$WORK/runc")
IMAGE=localhost/$BIN:image-runtime-test
MOUNTED=""
cleanup() {
  "${RUNC[@]}" kill "$CTR_ID" KILL >/dev/null 2>&1 || true
  "${RUNC[@]}" delete -f "$CTR_ID" >/dev/null 2>&1 || true
  if [ -n "$MOUNTED" ]; then buildah "${STORE[@]}" umount "$MOUNTED" >/dev/null 2>&1 || true; fi
  buildah "${STORE[@]}" rm -a >/dev/null 2>&1 || true
  buildah "${STORE[@]}" rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------ the binary
cd "$ROOT"
# Where cargo builds (CARGO_TARGET_DIR and cargo's configuration included).
TARGET=$(cargo metadata --format-version 1 --no-deps --offline |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
static=no
if command -v rustup >/dev/null && command -v musl-gcc >/dev/null; then
  if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
    say "adding the $MUSL target"
    timeout 120 rustup target add "$MUSL" >/dev/null 2>&1 || say "could not add $MUSL (offline?)"
  fi
  if rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then static=yes; fi
fi
if [ "$static" = yes ]; then
  say "building $BIN for $MUSL (static, as in the real image)"
  # Both packages, as for the other image: one feature set, one build.
  cargo build --locked -q -p aux-worker -p edge --target "$MUSL"
  bin="$TARGET/$MUSL/debug/$BIN"
  if ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
    say "$bin is statically linked"
  else
    fail "$bin built for $MUSL is not static: $(ldd "$bin" 2>&1 | tr '\n' ' ')"
  fi
else
  say "NOTE: no $MUSL target or musl-gcc here: testing the host (glibc) binary with its ldd libraries copied into the image; the real image ships a static musl binary alone"
  cargo build --locked -q -p aux-worker -p edge
  bin="$TARGET/debug/$BIN"
fi
[ -x "$bin" ] || fail "no binary at $bin"

# ------------------------------------------------------------ the build context
CTX="$WORK/context"; mkdir -p "$CTX/files"
python3 - "$DOCKERFILE" "$CTX" "$bin" "$BIN" <<'PY'
import os, re, shutil, sys
dockerfile, ctx, binary, name = sys.argv[1:5]
raw = open(dockerfile, encoding="utf-8").read().split("\n")
# join continuation lines so instructions can be told apart
instrs, cur = [], ""
for line in raw:
    if not cur and (not line.strip() or line.lstrip().startswith("#")):
        continue
    cur += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
    if not line.rstrip().endswith("\\"):
        instrs.append(cur.strip()); cur = ""
froms = [i for i, s in enumerate(instrs) if s.upper().startswith("FROM ")]
final = instrs[froms[-1]:]
if not re.match(r"(?i)^FROM\s+scratch(\s+AS\s+\S+)?$", final[0]):
    sys.exit(f"the final stage must be FROM scratch to be built offline, got: {final[0]}")
out, n = [], 0
for s in final:
    m = re.match(r"(?i)^COPY\s+--from=\S+\s+(\S+)\s+(\S+)$", s)
    if m:
        src, dst = m.groups()
        n += 1
        local = f"files/{n}"
        if os.path.basename(src) == name:
            shutil.copy2(binary, os.path.join(ctx, local))
        elif os.path.isfile(src):
            # a file of the build stage that this host has too (the CA bundle)
            shutil.copy2(src, os.path.join(ctx, local))
        else:
            sys.exit(f"cannot provide {src} for: {s}")
        s = f"COPY {local} {dst}"
    elif re.match(r"(?i)^(RUN|ADD)\b", s):
        sys.exit(f"the runtime stage runs nothing at build time (no shell): {s}")
    out.append(s)
open(os.path.join(ctx, "Containerfile"), "w").write("\n".join(out) + "\n")
PY
if [ "$static" = no ]; then
  mkdir -p "$CTX/libs"
  for lib in $(ldd "$bin" | grep -oE '/[^ ]+' | sort -u); do
    mkdir -p "$CTX/libs$(dirname "$lib")"
    cp -L "$lib" "$CTX/libs$lib"
  done
  # before USER: the libraries belong to root like everything else
  sed -i '0,/^USER /s//COPY libs\/ \/\nUSER /' "$CTX/Containerfile"
fi
say "runtime stage as built here:"
sed 's/^/    /' "$CTX/Containerfile"

# ------------------------------------------------------------------- the image
REV=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
SRC=https://example.invalid/kantox-challenge
buildah "${STORE[@]}" bud -q --isolation chroot --layers=false \
  --build-arg "SOURCE=$SRC" --build-arg "REVISION=$REV" \
  -f "$CTX/Containerfile" -t "$IMAGE" "$CTX" >/dev/null || fail "buildah could not build the runtime stage"
buildah "${STORE[@]}" inspect --type image "$IMAGE" >"$WORK/image.json"

python3 - "$WORK/image.json" "$SRC" "$REV" "$BIN" "$PORTS" >"$WORK/config.env" <<'PY'
import json, shlex, sys
img, src, rev, binary, ports = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
c = img["OCIv1"]["config"]
errors = []
def expect(what, got, want):
    if got != want:
        errors.append(f"{what}: expected {want!r}, got {got!r}")
expect("user", c.get("User"), "10001:10001")
expect("entrypoint", c.get("Entrypoint"), [f"/{binary}"])
expect("exposed ports", sorted((c.get("ExposedPorts") or {}).keys()), sorted(ports))
labels = c.get("Labels") or {}
expect("label org.opencontainers.image.source", labels.get("org.opencontainers.image.source"), src)
expect("label org.opencontainers.image.revision", labels.get("org.opencontainers.image.revision"), rev)
if errors:
    sys.exit("image config:\n  " + "\n  ".join(errors))
uid, gid = c["User"].split(":")
print(f"IMG_UID={uid}\nIMG_GID={gid}")
print("IMG_ARGS=" + shlex.quote(json.dumps((c.get("Entrypoint") or []) + (c.get("Cmd") or []))))
print("IMG_ENV=" + shlex.quote(json.dumps(c.get("Env") or [])))
PY
# shellcheck disable=SC1091
. "$WORK/config.env"
say "image config ok: user $IMG_UID:$IMG_GID, entrypoint $IMG_ARGS, ports $PORTS, source and revision labels"

ctr=$(buildah "${STORE[@]}" from -q "$IMAGE")
MOUNTED=$ctr
rootfs=$(buildah "${STORE[@]}" mount "$ctr")
for sh in bin/sh usr/bin/sh bin/bash bin/busybox; do
  [ ! -e "$rootfs/$sh" ] || fail "the image has a shell: /$sh"
done
say "no shell in the image; its files:"
(cd "$rootfs" && find . -type f -printf '    /%P %s bytes\n' | sort)
size=$(du -sb "$rootfs" | cut -f1)
say "image content: $size bytes ($(( size / 1024 / 1024 )) MiB, $([ "$static" = yes ] && echo "static debug build" || echo "glibc debug build plus libraries"))"

# --------------------------------------------------------------------- run it
free_port() { python3 "$ROOT/scripts/ports.py"; }  # below the ephemeral range: see ports.py
ADMIN_PORT=$(free_port); API_PORT=$(free_port)
BUNDLE="$WORK/bundle"; mkdir -p "$BUNDLE"
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" "$rootfs" "$IMG_UID" "$IMG_GID" "$IMG_ARGS" "$IMG_ENV" "$ADMIN_PORT" "$API_PORT" "$RUN_ENV" <<'PY'
import json, sys
path, rootfs, uid, gid, args, env, admin, api, run_env = sys.argv[1:10]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
p = c["process"]
p["terminal"] = False
p["user"] = {"uid": int(uid), "gid": int(gid)}
p["args"] = json.loads(args)
# the service's dependencies point at 127.0.0.1:9, where nothing listens
p["env"] = json.loads(env) + [
    f"ADMIN_ADDR=127.0.0.1:{admin}",
    f"LISTEN_ADDR=127.0.0.1:{api}",
    "RUST_LOG=info",
] + json.loads(run_env)
p["noNewPrivileges"] = True
p["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
# the host's network namespace: bind 127.0.0.1 without any network setup
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"), indent=1)
PY

say "starting the container (uid $IMG_UID, read-only root, no capabilities), admin on 127.0.0.1:$ADMIN_PORT"
"${RUNC[@]}" run -d -b "$BUNDLE" "$CTR_ID" >"$WORK/container.log" 2>&1 </dev/null ||
  { cat "$WORK/container.log"; fail "runc could not start the container"; }
pid=$("${RUNC[@]}" state "$CTR_ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')

code=""
for _ in $(seq 1 100); do
  "${RUNC[@]}" state "$CTR_ID" 2>/dev/null | grep -q '"status": "running"' ||
    { cat "$WORK/container.log"; fail "the container exited before answering /healthz"; }
  code=$(curl -s -o "$WORK/healthz.body" -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/healthz" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || { cat "$WORK/container.log"; fail "GET /healthz answered '${code:-nothing}', expected 200"; }
say "GET /healthz -> 200: $(head -c 200 "$WORK/healthz.body")"

uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[ "$uids" = "$IMG_UID $IMG_UID $IMG_UID $IMG_UID" ] || fail "the process runs with uids '$uids', expected $IMG_UID"
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[ "$gids" = "$IMG_GID $IMG_GID $IMG_GID $IMG_GID" ] || fail "the process runs with gids '$gids', expected $IMG_GID"
rootopts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -1)
[[ "$rootopts" == ro* ]] || fail "the root filesystem is mounted '$rootopts', expected read-only"
capeff=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[ "$capeff" = 0000000000000000 ] || fail "the process has capabilities $capeff"
say "process $pid: uid/gid $IMG_UID/$IMG_GID, root filesystem $rootopts, no capabilities"
echo "image runtime: ok"
