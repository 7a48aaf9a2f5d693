#!/usr/bin/env bash
# What the run and test commands need: checks the machine for its
# prerequisites and installs the project's own tools into .tools/ (git-ignored).
#
#   scripts/tools.sh GROUP ...              check and install these groups
#   scripts/tools.sh all                    every group (what `make test` needs)
#   scripts/tools.sh --check-only GROUP ... only check the machine, install nothing
#   scripts/tools.sh for-checks NAME ...    the groups the checks NAME need
#                                           (the "# Tools:" line of scripts/check-NAME.sh)
#   scripts/tools.sh requirements [GROUP]   the prerequisite ids of a group
#   scripts/tools.sh prerequisites          the prerequisites table of README.md
#   scripts/tools.sh env                    exports: eval "$(scripts/tools.sh env)"
#
# Groups:
#   run          `make run`: bash, Rust (>= rust-version of Cargo.toml), a C
#                compiler, cmake, curl, git, openssl, Python 3 with venv; then a
#                venv in .tools/venv with moto (scripts/requirements-run.txt)
#   python       the test tools venv (scripts/requirements-tools.txt, a superset)
#   checkov      checkov in a venv of its own
#   node         Node.js and npm; the npm schema packages in .tools/node
#   kubectl      kubectl with its built-in kustomize (never installed here)
#   terraform    Terraform >= the roots' required_version (never installed here)
#   prometheus   promtool and prometheus, extracted from the Debian packages
#                into .tools/root (not installed), or taken from PATH elsewhere
#   the system tools of single checks: shellcheck; image (buildah, runc,
#                musl-gcc); testssl (testssl.sh, host); slowhttptest
#
# System packages are never installed silently. A missing prerequisite is
# reported with the apt-get, dnf and Homebrew lines that install it, and the
# command stops. Only when running as root on Debian or Ubuntu does it install
# the missing packages itself with apt-get, after saying so (TOOLS_NO_APT=1:
# report only). Rust, kubectl and Terraform are never installed by this script.
#
# Every install step is idempotent and cached: a stamp file records the hash
# of what was installed, so a second run costs nothing.
set -euo pipefail

if [ -z "${BASH_VERSINFO:-}" ] || [ "${BASH_VERSINFO[0]}" -lt 4 ] ||
  { [ "${BASH_VERSINFO[0]}" -eq 4 ] && [ "${BASH_VERSINFO[1]}" -lt 3 ]; }; then
  echo "[tools] error: bash 4.3 or later is needed, this is bash ${BASH_VERSION:-?} (macOS: brew install bash)" >&2
  exit 1
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
SCRIPTS="$ROOT/scripts"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }

# Minimum versions, read from where they are decided.
RUST_MIN=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
TERRAFORM_MIN=$(sed -n 's/.*required_version *= *">= *\([0-9.]*\)".*/\1/p' \
  "$ROOT"/terraform/{bootstrap,shared}/versions.tf "$ROOT"/terraform/envs/*/main.tf 2>/dev/null | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
PYTHON_MIN=3.11
NODE_MIN=18
BASH_MIN=4.3

# Debian packages extracted into .tools/root without installing them system-wide
# (prometheus-alertmanager: amtool and Alertmanager for the monitoring check).
EXTRACT_PACKAGES=(prometheus prometheus-alertmanager)

# The system prerequisites, one per line:
#   ID  GROUPS  APT  DNF  BREW  WHAT
# ID is the command looked for (detect() has the exceptions). GROUPS is a
# comma-separated list. "-" in a package column: that package manager does not
# provide it; HOW below says what to do instead.
REQUIREMENTS='
bash          run                 -                -                bash         bash 4.3 or later
rust          run                 -                -                rustup       Rust (cargo, rustc)
cc            run                 build-essential  gcc              -            a C compiler and linker
cmake         run                 cmake            cmake            cmake        cmake
curl          run                 curl             curl             curl         curl
git           run                 git              git              git          git
openssl       run                 openssl          openssl          openssl      the openssl command
python3       run,python,checkov  python3          python3          python       Python 3.11 or later
venv          run,python,checkov  python3-venv     python3          python       Python venv and ensurepip
node          node                nodejs           nodejs           node         Node.js 18 or later
npm           node                npm              npm              node         npm
kubectl       kubectl             -                -                kubectl      kubectl (with its built-in kustomize)
terraform     terraform           -                -                hashicorp/tap/terraform Terraform
promtool      prometheus          -                -                prometheus   promtool and prometheus
shellcheck    shellcheck          shellcheck       ShellCheck       shellcheck   shellcheck
buildah       image               buildah          buildah          -            buildah (Linux only)
runc          image               runc             runc             -            runc (Linux only)
musl-gcc      image               musl-tools       musl-gcc         -            musl-gcc (Linux only)
testssl       testssl             testssl.sh       testssl          testssl      testssl.sh
host          testssl             bind9-host       bind-utils       bind         host (DNS lookups of testssl.sh)
slowhttptest  slowhttptest        slowhttptest     slowhttptest     slowhttptest slowhttptest
'
declare -A HOW=(
  [bash]="bash ${BASH_MIN} or later is part of every Linux distribution; macOS ships 3.2: brew install bash"
  [rust]="Rust ${RUST_MIN} or later (the rust-version of Cargo.toml) from rustup: https://rustup.rs, then: rustup toolchain install stable"
  [cc]="macOS: xcode-select --install (the Command Line Tools)"
  [kubectl]="kubectl on Debian/Ubuntu and Fedora: from the Kubernetes package repository, see https://kubernetes.io/docs/tasks/tools/"
  [terraform]="Terraform ${TERRAFORM_MIN} or later on Debian/Ubuntu and Fedora: from HashiCorp's package repository, see https://developer.hashicorp.com/terraform/install"
  [promtool]="promtool and prometheus: on Debian/Ubuntu extracted from the Debian archive into .tools/ (needs apt-get and dpkg, nothing installed); elsewhere put both on PATH (macOS: brew install prometheus)"
)
ALL_GROUPS=(run python checkov node kubectl terraform prometheus shellcheck image testssl slowhttptest)

req_field() { # req_field ID COLUMN(1..6)
  awk -v id="$1" -v col="$2" '$1 == id { if (col == 6) { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print } else print $col; exit }' <<<"$REQUIREMENTS"
}
req_ids() { # req_ids [GROUP]: prerequisite ids, in table order
  awk -v g="${1:-}" 'NF { n = split($2, gs, ","); for (i = 1; i <= n; i++) if (g == "" || gs[i] == g) { print $1; break } }' <<<"$REQUIREMENTS"
}

version_of() { # the first dotted number in a string
  grep -oE '[0-9]+(\.[0-9]+)+' <<<"$1" | head -n 1
}
version_ge() { # version_ge A B: A >= B, numerically per component
  local i a b
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  for ((i = 0; i < ${#a[@]} || i < ${#b[@]}; i++)); do
    ((10#${a[i]:-0} > 10#${b[i]:-0})) && return 0
    ((10#${a[i]:-0} < 10#${b[i]:-0})) && return 1
  done
  return 0
}

# at_least NAME VERSION-TEXT MIN [HINT]: the version in VERSION-TEXT >= MIN,
# else WHY says so (a version that is there but too old: TOO_OLD=1).
at_least() {
  local v; v=$(version_of "$2")
  [ -n "$v" ] && version_ge "$v" "$3" && return 0
  WHY="$1 ${v:-?} is older than $3${4:+ $4}"; TOO_OLD=1; return 1
}

# detect ID: 0 when present and recent enough. Sets WHY to the reason otherwise
# and TOO_OLD=1 when it is there but too old (never fixed by a package install).
detect() {
  WHY="not found"; TOO_OLD=0
  case "$1" in
    bash) at_least bash "$BASH_VERSION" "$BASH_MIN" ;;
    rust)
      if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then WHY="cargo or rustc not found"; return 1; fi
      [ -n "$RUST_MIN" ] || die "no rust-version in Cargo.toml"
      at_least rustc "$(rustc --version 2>/dev/null)" "$RUST_MIN" "(the rust-version of Cargo.toml; rustup update stable)" ;;
    python3) command -v python3 >/dev/null && at_least python3 "$(python3 --version 2>&1)" "$PYTHON_MIN" ;;
    venv)
      command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null && return 0
      WHY="python3 cannot create a venv (no venv or ensurepip module)"; return 1 ;;
    node) command -v node >/dev/null && at_least node "$(node --version 2>/dev/null)" "$NODE_MIN" ;;
    kubectl)
      command -v kubectl >/dev/null || return 1
      kubectl kustomize --help >/dev/null 2>&1 && return 0
      WHY="this kubectl has no built-in kustomize (1.14 or later has)"; TOO_OLD=1; return 1 ;;
    terraform)
      command -v terraform >/dev/null &&
        at_least terraform "$(terraform version 2>/dev/null | head -n 1)" "$TERRAFORM_MIN" "(required_version of terraform/)" ;;
    promtool)
      # Debian/Ubuntu: extracted from the archive by the prometheus group.
      command -v apt-get >/dev/null && command -v dpkg >/dev/null && return 0
      command -v promtool >/dev/null && command -v prometheus >/dev/null && return 0
      WHY="no Debian archive to extract them from, and not on PATH"; return 1 ;;
    *) command -v "$1" >/dev/null ;;
  esac
}

is_debian() {
  local f=${TOOLS_OS_RELEASE:-/etc/os-release} id="" like=""
  [ -r "$f" ] || return 1
  id=$(sed -n 's/^ID=//p' "$f" | tr -d '"')
  like=$(sed -n 's/^ID_LIKE=//p' "$f" | tr -d '"')
  case " $id $like " in *" debian "* | *" ubuntu "*) ;; *) return 1 ;; esac
  command -v apt-get >/dev/null
}

# report IDS...: what is missing and how to install it, for every manager.
report() {
  local id apt=() dnf=() brew=() how=() p
  log "missing prerequisites:"
  for id in "$@"; do
    detect "$id" || true
    log "  - $(req_field "$id" 6) [$id]: $WHY (needed by: $(users_of "$id"))"
    p=$(req_field "$id" 3); [ "$p" = - ] || apt+=("$p")
    p=$(req_field "$id" 4); [ "$p" = - ] || dnf+=("$p")
    p=$(req_field "$id" 5); [ "$p" = - ] || brew+=("$p")
    [ -z "${HOW[$id]:-}" ] || how+=("${HOW[$id]}")
  done
  log "install them with:"
  [ ${#apt[@]} -eq 0 ] || log "  Debian/Ubuntu:  sudo apt-get install -y $(words "${apt[@]}")"
  [ ${#dnf[@]} -eq 0 ] || log "  Fedora/RHEL:    sudo dnf install -y $(words "${dnf[@]}")"
  [ ${#brew[@]} -eq 0 ] || log "  macOS:          brew install $(words "${brew[@]}")"
  for p in "${how[@]}"; do log "  $p"; done
  log "then run the command again."
}
words() { printf '%s\n' "$@" | awk '!s[$0]++' | paste -sd ' ' -; }

# require GROUP...: every prerequisite of these groups, or a report and exit 1.
# As root on Debian/Ubuntu the absent ones apt provides are installed, announced first.
require() {
  local g id missing=() installable=() pkgs=() p
  for g in "$@"; do
    for id in $(req_ids "$g"); do
      [[ " ${missing[*]} " == *" $id "* ]] && continue
      detect "$id" || missing+=("$id")
    done
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  for id in "${missing[@]}"; do
    detect "$id" || true
    p=$(req_field "$id" 3)
    if [ "$p" != - ] && [ "$TOO_OLD" = 0 ]; then installable+=("$id"); pkgs+=("$p"); fi
  done
  if [ ${#pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && [ "${TOOLS_NO_APT:-0}" != 1 ] && is_debian; then
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk '!s[$0]++')
    log "missing: ${installable[*]}"
    log "running as root on Debian/Ubuntu: installing them with apt-get (TOOLS_NO_APT=1 only reports):"
    log "  apt-get install -y --no-install-recommends ${pkgs[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    hash -r
    local still=()
    for id in "${missing[@]}"; do detect "$id" || still+=("$id"); done
    missing=("${still[@]}")
    [ ${#missing[@]} -eq 0 ] && return 0
  fi
  report "${missing[@]}"
  exit 1
}

# Which checks (and `make run`) use a prerequisite, from the checks' Tools lines.
users_of() { # users_of ID
  local groups g f n out=()
  groups=$(req_field "$1" 2)
  [[ ",$groups," == *,run,* ]] && out+=("make run")
  for f in "$SCRIPTS"/check-*.sh; do
    n=${f##*/check-}; n=${n%.sh}
    for g in ${groups//,/ }; do
      if [[ " $(check_groups "$n") " == *" $g "* ]]; then out+=("$n"); break; fi
    done
  done
  local s
  s=$(printf '%s, ' "${out[@]}")
  echo "${s%, }"
}

check_groups() { # check_groups NAME: the "# Tools:" line of scripts/check-NAME.sh
  local f="$SCRIPTS/check-$1.sh" line
  [ -f "$f" ] || die "unknown check: $1 (no scripts/check-$1.sh)"
  line=$(sed -n 's/^# Tools: *//p' "$f" | head -n 1)
  [ -n "$line" ] || die "scripts/check-$1.sh has no '# Tools:' line naming the groups it needs"
  echo "$line"
}

for_checks() { # the union of the checks' groups, in ALL_GROUPS order
  local n g want=" "
  for n in "$@"; do
    for g in $(check_groups "$n"); do
      [[ " ${ALL_GROUPS[*]} " == *" $g "* ]] || die "scripts/check-$n.sh names an unknown tool group: $g"
      want+="$g "
    done
  done
  local out=()
  for g in "${ALL_GROUPS[@]}"; do [[ "$want" == *" $g "* ]] && out+=("$g"); done
  echo "${out[*]}"
}

BT='`'
cell() { if [ "$1" = - ]; then printf '%s' "$2"; else printf '%s' "$BT$1$BT"; fi; }

# The table of README.md's quick start (checked by scripts/tests/test-tools.sh).
prerequisites_table() {
  local id what apt dnf brew
  echo "| prerequisite | needed by | Debian/Ubuntu (\`apt-get install\`) | Fedora (\`dnf install\`) | macOS (\`brew install\`) |"
  echo "|---|---|---|---|---|"
  for id in $(req_ids); do
    what=$(req_field "$id" 6)
    case "$id" in
      rust) what="Rust ${RUST_MIN} or later (cargo, rustc)" ;;
      terraform) what="Terraform ${TERRAFORM_MIN} or later" ;;
    esac
    case "$id" in
      rust) apt="rustup (https://rustup.rs)"; dnf=$apt; brew="${BT}rustup$BT" ;;
      kubectl) apt="${BT}kubectl$BT from the Kubernetes package repository"; dnf=$apt; brew="${BT}kubectl$BT" ;;
      terraform) apt="${BT}terraform$BT from HashiCorp's package repository"; dnf=$apt; brew="${BT}hashicorp/tap/terraform$BT" ;;
      promtool) apt="${BT}prometheus$BT, extracted into .tools/ (not installed)"; dnf="on PATH"; brew="${BT}prometheus$BT" ;;
      *)
        apt=$(cell "$(req_field "$id" 3)" "included")
        dnf=$(cell "$(req_field "$id" 4)" "—")
        brew=$(cell "$(req_field "$id" 5)" "—")
        [ "$id" = cc ] && brew="xcode-select --install"
        [ "$id" = bash ] && { apt="included"; dnf="included"; } ;;
    esac
    echo "| $what | $(users_of "$id") | $apt | $dnf | $brew |"
  done
}

hash_of() {
  if command -v sha256sum >/dev/null; then cat "$@" | sha256sum | cut -c1-16; else cat "$@" | shasum -a 256 | cut -c1-16; fi
}
fresh() { # fresh NAME HASH -> 0 when the stamp matches
  [ -f "$TOOLS/stamps/$1" ] && [ "$(cat "$TOOLS/stamps/$1")" = "$2" ]
}
stamp() { echo "$2" >"$TOOLS/stamps/$1"; }

# Serialise installs between parallel callers (where flock exists).
lock() {
  mkdir -p "$TOOLS/stamps"
  exec 9>"$TOOLS/.lock"
  if command -v flock >/dev/null; then flock 9; fi
}

venv_install() { # venv_install STAMP REQUIREMENTS-FILE...
  local name=$1; shift
  local h; h=$(hash_of "$@")
  fresh "$name" "$h" && [ -x "$TOOLS/venv/bin/moto_server" ] && return 0
  log "python venv .tools/venv: ${*##*/}"
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check -r "${@: -1}"
  stamp "$name" "$h"
}

run_group() { # the run venv, unless the full tools venv (a superset) is current
  fresh venv-tools "$(hash_of "$SCRIPTS/requirements-run.txt" "$SCRIPTS/requirements-tools.txt")" &&
    [ -x "$TOOLS/venv/bin/moto_server" ] && return 0
  venv_install venv-run "$SCRIPTS/requirements-run.txt"
}

python_group() {
  venv_install venv-tools "$SCRIPTS/requirements-run.txt" "$SCRIPTS/requirements-tools.txt"
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
  log "npm schema packages"
  mkdir -p "$TOOLS/node"
  cp "$SCRIPTS/node/package.json" "$TOOLS/node/package.json"
  (cd "$TOOLS/node" && npm install --no-audit --no-fund --silent >/dev/null)
  stamp node "$h"
}

prometheus_group() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    log "promtool $(promtool --version 2>&1 | head -n 1 | awk '{print $3}') from PATH (no Debian archive here)"
    return 0
  fi
  local h; h=$(echo "${EXTRACT_PACKAGES[*]}" | sha256sum | cut -c1-16)
  fresh prometheus "$h" && [ -x "$TOOLS/root/usr/bin/promtool" ] && return 0
  log "extracting ${EXTRACT_PACKAGES[*]} (Debian packages, not installed system-wide)"
  mkdir -p "$TOOLS/deb" "$TOOLS/root"
  (cd "$TOOLS/deb" && { apt-get download -qq "${EXTRACT_PACKAGES[@]}" 2>/dev/null ||
    { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && apt-get download -qq "${EXTRACT_PACKAGES[@]}"; }; }) ||
    die "apt-get download ${EXTRACT_PACKAGES[*]} failed (as a user, run 'sudo apt-get update' once)"
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

main() {
  local check_only=0 g groups=()
  [ $# -eq 0 ] && set -- all
  case "$1" in
    env) print_env; return ;;
    for-checks) shift; for_checks "$@"; return ;;
    requirements) shift; req_ids "${1:-}"; return ;;
    prerequisites) prerequisites_table; return ;;
    --check-only) check_only=1; shift ;;
  esac
  for g in "$@"; do
    if [ "$g" = all ]; then groups+=("${ALL_GROUPS[@]}"); continue; fi
    [[ " ${ALL_GROUPS[*]} " == *" $g "* ]] || die "unknown group: $g (groups: ${ALL_GROUPS[*]} all)"
    groups+=("$g")
  done
  # Every prerequisite of every group first, reported together.
  require "${groups[@]}"
  [ "$check_only" = 1 ] && return 0
  lock
  for g in "${groups[@]}"; do
    case "$g" in
      run) run_group ;;
      python) python_group ;;
      checkov) checkov_group ;;
      node) node_group ;;
      prometheus) prometheus_group ;;
      *) ;; # system tools only
    esac
  done
  exec 9>&-
}

main "$@"
