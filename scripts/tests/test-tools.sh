#!/usr/bin/env bash
# Tests of scripts/tools.sh, the prerequisite checker of the run and test
# commands, on a made-up machine: a PATH holding only the commands a case
# needs (fakes that print a version), fake apt-get, dnf, brew and sudo that
# record every call, a fake `id` for root or not, and an os-release file for
# Debian or Fedora. Nothing is installed and .tools/ is not touched (the
# checker runs with --check-only, the same checks `scripts/tools.sh GROUP`
# makes before installing anything).
#
#   scripts/tests/test-tools.sh [TOOLS_SH]     (default scripts/tools.sh)
#
# Ends with "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS_SH=$(cd "$(dirname "${1:-$ROOT/scripts/tools.sh}")" && pwd)/$(basename "${1:-scripts/tools.sh}")
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

passed=0; failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
show() { sed 's/^/     | /' "$WORK/out"; }

RUST_MIN=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
RUN_IDS="bash rust cc cmake curl git openssl python3 venv"
# What only the test command uses: never a prerequisite of `make run`.
TEST_ONLY="shellcheck buildah runc musl-gcc musl-tools testssl testssl.sh host bind9-host slowhttptest node nodejs npm kubectl terraform promtool prometheus"

# ---------------------------------------------------------------- a machine
# machine NAME CMD...: a bin directory with the basic utilities the checker
# uses, fakes for CMD..., and the recording package managers.
machine() {
  local bin="$WORK/$1" c p; shift
  rm -rf "$bin"; mkdir -p "$bin"
  for c in bash env sed grep awk cat head tail sort tr dirname basename paste mkdir rm cp cut sha256sum flock uname ls; do
    if p=$(command -v "$c"); then ln -s "$p" "$bin/$c"; fi
  done
  for c in "$@"; do fake "$bin" "$c"; done
  for c in apt-get dnf brew sudo; do
    cat >"$bin/$c" <<EOF
#!$(command -v bash)
echo "$c \$*" >>"$WORK/calls"
echo "CALLED $c \$*" >&2
if [ "$c" = apt-get ] && [ "\$1" = install ]; then
  for p in "\$@"; do
    case "\$p" in -*|install) ;; build-essential) $(command -v cp) "$bin/.fake" "$bin/cc" ;; *) $(command -v cp) "$bin/.fake" "$bin/\$p" ;; esac
  done
fi
EOF
    chmod +x "$bin/$c"
  done
  printf '#!%s\necho 0\n' "$(command -v bash)" >"$bin/.fake"; chmod +x "$bin/.fake"
  cat >"$bin/id" <<EOF
#!$(command -v bash)
echo "\${FAKE_UID:-1000}"
EOF
  chmod +x "$bin/id"
  echo "$bin"
}
fake() { # fake BIN CMD: a command that answers --version like the real one
  local bin=$1 c=$2 out
  case "$c" in
    python3) ln -s "$(python3 -c 'import sys; print(sys.executable)')" "$bin/python3"; return ;;
    rustc) out="rustc ${FAKE_RUSTC:-$RUST_MIN} (fake)" ;;
    cargo) out="cargo ${FAKE_RUSTC:-$RUST_MIN} (fake)" ;;
    node) out="v20.19.2" ;;
    terraform) out="Terraform v1.11.4" ;;
    *) out="$c 1.0 (fake)" ;;
  esac
  printf '#!%s\necho "%s"\n' "$(command -v bash)" "$out" >"$bin/$c"
  chmod +x "$bin/$c"
}
printf 'ID=debian\nVERSION_ID="12"\n' >"$WORK/debian"
printf 'ID=fedora\nID_LIKE="rhel centos"\n' >"$WORK/fedora"
RUN_CMDS=(cargo rustc cc cmake curl git openssl python3)

# tools MACHINE-BIN OS UID ARGS...: runs the checker there; output in $WORK/out,
# package manager calls in $WORK/calls, exit status in $rc.
tools() {
  local bin=$1 os=$2 uid=$3; shift 3
  rm -f "$WORK/calls"; touch "$WORK/calls"
  rc=0
  env -i PATH="$bin" HOME="$WORK" FAKE_UID="$uid" TOOLS_OS_RELEASE="$WORK/$os" ${NO_APT:+TOOLS_NO_APT=1} \
    "$bin/bash" "$TOOLS_SH" "$@" >"$WORK/out" 2>&1 || rc=$?
}
has() { grep -qF -- "$1" "$WORK/out"; }
no_calls() { [ ! -s "$WORK/calls" ]; }

echo "== the run group: only what running the stack needs"
calls=$(grep -oE '^[^#]*scripts/tools\.sh [^|;&)]*' "$ROOT/scripts/run-local.sh" | sed 's/^ *//; s/ *$//' | sort -u | paste -sd ';' -)
if [ "$calls" = "scripts/tools.sh run" ]; then ok "make run (scripts/run-local.sh) asks scripts/tools.sh for the run group only"; else bad "scripts/run-local.sh calls: '$calls', expected 'scripts/tools.sh run'"; fi
got=$("$TOOLS_SH" requirements run 2>&1 | tr '\n' ' ' | sed 's/ $//') || true
if [ "$got" = "$RUN_IDS" ]; then ok "run group prerequisites are exactly: $RUN_IDS"; else bad "run group prerequisites: expected '$RUN_IDS', got '$got'"; fi
leaks=()
run_ids=$("$TOOLS_SH" requirements run 2>/dev/null) || run_ids=""
for id in $run_ids; do
  line=$(awk -v id="$id" '$1 == id' <(sed -n "/^REQUIREMENTS='/,/^'/p" "$TOOLS_SH"))
  for t in $TEST_ONLY; do [[ " $line " == *" $t "* ]] && leaks+=("$id:$t"); done
done
if [ ${#leaks[@]} -eq 0 ] && [ -n "$run_ids" ]; then ok "no run prerequisite names a test-only package"; else bad "run prerequisites name test-only packages: ${leaks[*]:-none listed}"; fi
extra=$(grep -vE '^\s*(#|$)' "$ROOT/scripts/requirements-run.txt" 2>/dev/null | grep -vE '^(moto\[server\]|boto3)==' || true)
if [ -f "$ROOT/scripts/requirements-run.txt" ] && [ -z "$extra" ]; then ok "the run venv holds moto and boto3 only"; else bad "the run venv pulls in more than moto and boto3: ${extra:-no scripts/requirements-run.txt}"; fi

M=$(machine run-only "${RUN_CMDS[@]}")
tools "$M" debian 1000 --check-only run
if [ "$rc" = 0 ] && no_calls; then ok "a machine with only the run prerequisites passes the run group, as a user, no package manager called"; else bad "run group on a machine with only its prerequisites: exit $rc, calls: $(cat "$WORK/calls")"; show; fi
tools "$M" debian 0 --check-only run
if [ "$rc" = 0 ] && no_calls; then ok "... and as root on Debian nothing is installed"; else bad "run group as root with everything present: exit $rc, calls: $(cat "$WORK/calls")"; show; fi

echo "== something missing: say what, print apt, dnf and Homebrew lines, install nothing silently"
M=$(machine no-cmake cargo rustc cc curl git openssl python3)
tools "$M" debian 1000 --check-only run
if [ "$rc" != 0 ] && no_calls && has "[cmake]" && has "sudo apt-get install -y cmake" && has "sudo dnf install -y cmake" && has "brew install cmake"; then
  ok "cmake missing, as a user on Debian: fails naming cmake with the apt-get, dnf and brew lines, installs nothing"
else bad "cmake missing as a user: exit $rc, calls: $(cat "$WORK/calls")"; show; fi
tools "$M" fedora 0 --check-only run
if [ "$rc" != 0 ] && no_calls && has "sudo dnf install -y cmake"; then ok "cmake missing, as root on Fedora: reports, never installs"; else bad "cmake missing as root on Fedora: exit $rc, calls: $(cat "$WORK/calls")"; show; fi
NO_APT=1 tools "$M" debian 0 --check-only run
if [ "$rc" != 0 ] && no_calls && has "sudo apt-get install -y cmake"; then ok "cmake missing, as root on Debian with TOOLS_NO_APT=1: reports, never installs"; else bad "TOOLS_NO_APT=1 as root: exit $rc, calls: $(cat "$WORK/calls")"; show; fi
tools "$M" debian 0 --check-only run
announce=$(grep -n "installing them with apt-get" "$WORK/out" | head -n 1 | cut -d: -f1 || true)
called=$(grep -n "^CALLED apt-get install" "$WORK/out" | head -n 1 | cut -d: -f1 || true)
if [ "$rc" = 0 ] && grep -q "^apt-get install .*cmake" "$WORK/calls" && [ -n "$announce" ] && [ -n "$called" ] && [ "$announce" -lt "$called" ] &&
  ! grep -qE "^apt-get install .*(shellcheck|buildah|runc|musl|testssl|slowhttptest|bind9)" "$WORK/calls"; then
  ok "cmake missing, as root on Debian: says so, then apt-get installs cmake and nothing a test needs"
else bad "cmake missing as root on Debian: exit $rc, announce line ${announce:-none}, apt-get line ${called:-none}, calls: $(cat "$WORK/calls")"; show; fi

M=$(FAKE_RUSTC=1.80.0 machine old-rust "${RUN_CMDS[@]}")
tools "$M" debian 0 --check-only run
if [ "$rc" != 0 ] && no_calls && has "older than $RUST_MIN" && has "rustup"; then ok "rustc 1.80 (rust-version $RUST_MIN): fails with the rustup line, never apt-get"; else bad "old rustc: exit $rc, calls: $(cat "$WORK/calls")"; show; fi

M=$(machine run-only "${RUN_CMDS[@]}")
tools "$M" debian 1000 --check-only all
missing_all=0
for id in node npm kubectl terraform shellcheck buildah runc musl-gcc testssl host slowhttptest; do has "[$id]" || missing_all=$((missing_all + 1)); done
if [ "$rc" != 0 ] && no_calls && [ "$missing_all" = 0 ]; then ok "all groups on a run-only machine: one report listing every missing test tool"; else bad "all groups on a run-only machine: exit $rc, $missing_all test tools not named"; show; fi

echo "== a single check needs only its own tools"
got=$("$TOOLS_SH" for-checks argocd 2>&1) || true
if [ "$got" = "node kubectl" ]; then ok "make check-argocd needs the groups: node kubectl"; else bad "for-checks argocd: expected 'node kubectl', got '$got'"; fi
M=$(machine argocd-only node npm kubectl)
# shellcheck disable=SC2086  # one word per group
tools "$M" debian 1000 --check-only $got
if [ "$rc" = 0 ] && no_calls; then ok "a machine with Node.js, npm and kubectl only (no Rust, Terraform, apt packages) passes check-argocd's groups"; else bad "argocd groups on a node+kubectl machine: exit $rc"; show; fi
all_checks=()
for f in "$ROOT"/scripts/check-*.sh; do n=${f##*/check-}; all_checks+=("${n%.sh}"); done
got=$("$TOOLS_SH" for-checks "${all_checks[@]}" 2>&1) || true
want="run python checkov node kubectl terraform prometheus shellcheck image testssl slowhttptest"
if [ "$got" = "$want" ]; then ok "every group is needed by some check (${#all_checks[@]} checks)"; else bad "groups of all checks: expected '$want', got '$got'"; fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
