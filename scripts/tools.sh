#!/usr/bin/env bash
# Installs the tools the run and test commands use, into .tools/ (git-ignored).
#
#   scripts/tools.sh [group ...]      groups: apt python checkov node prometheus all
#
# Every group is idempotent and cached: a stamp file records the hash of what
# was installed, so a second run costs nothing. Prints the exports to use with
# `eval "$(scripts/tools.sh env)"`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
SCRIPTS="$ROOT/scripts"
mkdir -p "$TOOLS/stamps"

# Debian packages the checks need on PATH (root installs them with apt-get).
APT_PACKAGES=(cmake shellcheck curl openssl buildah runc musl-tools testssl.sh bind9-host slowhttptest)
# Debian packages extracted into .tools/root without installing them system-wide.
EXTRACT_PACKAGES=(prometheus)

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

fresh() { # fresh NAME HASH -> 0 when the stamp matches
  [ -f "$TOOLS/stamps/$1" ] && [ "$(cat "$TOOLS/stamps/$1")" = "$2" ]
}
stamp() { echo "$2" >"$TOOLS/stamps/$1"; }

# Serialise installs between parallel callers.
lock() {
  exec 9>"$TOOLS/.lock"
  flock 9
}

apt_group() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})"
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_group() {
  local h; h=$(hash_of "$SCRIPTS/requirements-tools.txt")
  fresh python "$h" && [ -x "$TOOLS/venv/bin/moto_server" ] && return 0
  log "python venv (moto, boto3, validators, linters)"
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check -r "$SCRIPTS/requirements-tools.txt"
  stamp python "$h"
}

checkov_group() {
  local h; h=$(hash_of "$SCRIPTS/requirements-checkov.txt")
  fresh checkov "$h" && [ -x "$TOOLS/checkov/bin/checkov" ] && return 0
  log "checkov venv"
  [ -x "$TOOLS/checkov/bin/python" ] || python3 -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/pip" install -q --disable-pip-version-check -r "$SCRIPTS/requirements-checkov.txt"
  stamp checkov "$h"
}

node_group() {
  local h; h=$(hash_of "$SCRIPTS/node/package.json")
  fresh node "$h" && [ -d "$TOOLS/node/node_modules" ] && return 0
  command -v npm >/dev/null || die "npm is required (Node.js 18 or later)"
  log "npm schema packages"
  mkdir -p "$TOOLS/node"
  cp "$SCRIPTS/node/package.json" "$TOOLS/node/package.json"
  (cd "$TOOLS/node" && npm install --no-audit --no-fund --silent >/dev/null)
  stamp node "$h"
}

prometheus_group() {
  local h; h=$(echo "${EXTRACT_PACKAGES[*]}" | sha256sum | cut -c1-16)
  fresh prometheus "$h" && [ -x "$TOOLS/root/usr/bin/promtool" ] && return 0
  log "extracting ${EXTRACT_PACKAGES[*]} (Debian packages, not installed system-wide)"
  mkdir -p "$TOOLS/deb" "$TOOLS/root"
  (cd "$TOOLS/deb" && { apt-get download -qq "${EXTRACT_PACKAGES[@]}" 2>/dev/null ||
    { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && apt-get download -qq "${EXTRACT_PACKAGES[@]}"; }; }) ||
    die "apt-get download ${EXTRACT_PACKAGES[*]} failed"
  for d in "$TOOLS"/deb/*.deb; do dpkg -x "$d" "$TOOLS/root"; done
  [ -x "$TOOLS/root/usr/bin/promtool" ] || die "promtool not found after extraction"
  stamp prometheus "$h"
}

print_env() {
  cat <<EOF
export TOOLS_DIR="$TOOLS"
export PATH="$TOOLS/venv/bin:$TOOLS/checkov/bin:$TOOLS/root/usr/bin:$TOOLS/node/node_modules/.bin:\$PATH"
export NODE_PATH="$TOOLS/node/node_modules"
EOF
}

# Commands the machine must already have (a Rust toolchain, Python, Node.js,
# kubectl with kustomize, Terraform); reported together, loudly.
prerequisites() {
  local missing=()
  for c in cargo rustc python3 git curl openssl; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  for c in "$@"; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3 venv/ensurepip (Debian: python3-venv)")
  if [ ${#missing[@]} -gt 0 ]; then
    printf '[tools] error: missing prerequisites: %s\n' "${missing[*]}" >&2
    exit 1
  fi
}

main() {
  [ $# -eq 0 ] && set -- all
  for g in "$@"; do
    case "$g" in
      env) print_env; continue ;;
    esac
    lock
    case "$g" in
      apt) prerequisites; apt_group ;;
      python) python_group ;;
      checkov) checkov_group ;;
      node) node_group ;;
      prometheus) prometheus_group ;;
      all)
        prerequisites npm node kubectl terraform
        apt_group; python_group; checkov_group; node_group; prometheus_group ;;
      *) die "unknown group: $g" ;;
    esac
    exec 9>&-
  done
}

main "$@"
