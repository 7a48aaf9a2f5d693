#!/usr/bin/env bash
# What a newcomer and a fork rely on before anything runs (`make check-setup`):
#
#   tools        scripts/tools.sh on made-up machines (scripts/tests/test-tools.sh):
#                `make run` asks only for the run prerequisites, a missing one
#                is reported with its apt-get, dnf and Homebrew lines and
#                installed only as root on Debian/Ubuntu after saying so, a
#                single check needs only its own tool groups
#   readme       README.md's prerequisites table is the one scripts/tools.sh
#                prints (minimum Rust from Cargo.toml, minimum Terraform from
#                terraform/), and altered copies of it are rejected
#   msrv         rust-version of Cargo.toml against the editions, the resolved
#                dependencies, clippy's incompatible_msrv lint, the Dockerfiles,
#                CI's toolchains and CI's msrv job (scripts/tests/msrv.py), with
#                its self-test
#   repository   scripts/set-repository.py: argocd/apps/source.yaml, the runbook
#                links and Terraform's github_repository agree; its self-test
#                rewrites copies and breaks each place
#   tf-snippets  terraform/README.md never exports TF_DATA_DIR and every
#                snippet that uses $env sets it itself; .terraform-*/ folders
#                are git-ignored; broken copies are rejected
#
# Ends with "N passed, N failed".
# Tools: run python
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ -z "${TOOLS_DIR:-}" ]; then
  # shellcheck disable=SC2046  # one word per group
  scripts/tools.sh $(scripts/tools.sh for-checks setup)
  eval "$(scripts/tools.sh env)"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0; failed=0; failed_names=()
run() { # run NAME COMMAND...
  local name=$1; shift
  echo
  echo "=== $name: $*"
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "=== $name: FAILED"
  fi
}

# readme_table FILE: the lines between the prerequisites markers of FILE
# must be what scripts/tools.sh prints.
readme_table() {
  local got="$WORK/readme-table" want="$WORK/tools-table"
  sed -n '/^<!-- prerequisites:begin/,/^<!-- prerequisites:end/p' "$1" | sed '1d;$d' >"$got"
  scripts/tools.sh prerequisites >"$want"
  if [ ! -s "$got" ]; then
    echo "  FAIL $1 has no prerequisites table between <!-- prerequisites:begin --> and <!-- prerequisites:end -->"
    return 1
  fi
  if ! diff -u "$want" "$got" | sed 's/^/  /'; then
    echo "  FAIL $1's prerequisites table differs from 'scripts/tools.sh prerequisites' (- expected, + found): paste its output"
    return 1
  fi
  echo "  ok   $1's prerequisites table is the one scripts/tools.sh checks ($(wc -l <"$got") lines)"
}
readme() {
  readme_table README.md || return 1
  local rust terraform ok=0
  rust=$(python3 scripts/tests/msrv.py --declared)
  terraform=$(scripts/tools.sh prerequisites | sed -n 's/.*| Terraform \([0-9.]*\) or later.*/\1/p')
  if grep -qF "Rust $rust or later" README.md && grep -qF "Terraform $terraform or later" README.md; then echo "  ok   README.md states Rust $rust and Terraform $terraform as the minimums"; else echo "  FAIL README.md does not state Rust $rust or Terraform $terraform"; return 1; fi
  # Broken copies must be rejected.
  sed "s/Rust $rust or later/Rust 1.70 or later/" README.md >"$WORK/README-old-rust.md"
  sed '/^<!-- prerequisites:begin/,/^<!-- prerequisites:end/d' README.md >"$WORK/README-no-table.md"
  grep -v '| slowhttptest |' README.md >"$WORK/README-row-missing.md"
  local copy
  for copy in old-rust no-table row-missing; do
    if readme_table "$WORK/README-$copy.md" >/dev/null; then
      echo "  FAIL a README copy ($copy) was accepted"; ok=1
    else
      echo "  ok   a README copy ($copy) is rejected"
    fi
  done
  return "$ok"
}

# tf_snippets FILE: no snippet leans on state an earlier one left behind: no
# exported TF_DATA_DIR, and every code block that uses $env sets it itself
# (`for env in ...` or `env=...`), so a command never runs against the
# environment the previous snippet ended on.
tf_snippets() {
  local bad
  bad=$(grep -nE 'export +TF_DATA_DIR' "$1" || true)
  bad+=$(awk '
    /^```/ { if (inb) { if (uses && !sets) printf "%d: a code block uses $env without setting it\n", start; inb = 0 }
             else { inb = 1; uses = 0; sets = 0; start = NR } next }
    inb && /\$\{?env([^a-zA-Z0-9_]|$)/ { uses = 1 }
    inb && /^[[:space:]]*(for env in |env=)/ { sets = 1 }
  ' "$1")
  if [ -n "$bad" ]; then
    echo "  FAIL $1: a snippet depends on an environment set elsewhere:"
    echo "       ${bad//$'\n'/$'\n'       }"
    return 1
  fi
  echo "  ok   $1: every snippet names its own environment; TF_DATA_DIR is never exported"
}
terraform_readme() {
  tf_snippets terraform/README.md || return 1
  if git check-ignore -q terraform/envs/dev/.terraform-dev/x; then
    echo "  ok   .terraform-*/ folders are git-ignored"
  else
    echo "  FAIL .gitignore does not ignore .terraform-<env>/ folders"; return 1
  fi
  # shellcheck disable=SC2016  # $env is the README's own, not expanded here
  sed 's/^for env in dev prod; do$/&\n  export TF_DATA_DIR=.terraform-$env/' terraform/README.md >"$WORK/tf-exported.md"
  # shellcheck disable=SC2016
  sed '/^env=dev /d' terraform/README.md >"$WORK/tf-unset.md"
  for broken in "exports TF_DATA_DIR in the loop:tf-exported" "leaves the SecureString snippet without its env=:tf-unset"; do
    if tf_snippets "$WORK/${broken##*:}.md" >/dev/null; then
      echo "  FAIL a copy that ${broken%:*} was accepted"; return 1
    fi
    echo "  ok   a copy that ${broken%:*} is rejected"
  done
}

run tools bash scripts/tests/test-tools.sh
run readme readme
run msrv python scripts/tests/msrv.py
run msrv-self-test python scripts/tests/msrv.py --self-test
run repository python3 scripts/set-repository.py --check
run repository-self-test python3 scripts/set-repository.py --self-test
run tf-snippets terraform_readme

echo
[ $failed -eq 0 ] || echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
