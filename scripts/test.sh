#!/usr/bin/env bash
# The test command: every check of the repository, what `make test` and CI run.
#
#   scripts/test.sh            all checks
#   scripts/test.sh NAME ...   only these (rust, manifests, argocd, terraform, ...)
#
# Each check is scripts/check-NAME.sh; its "# Tools:" line names the tool
# groups of scripts/tools.sh it needs, and only those are checked and
# installed (`make check-argocd` needs Node.js and kubectl, not Terraform).
# They run in parallel (cargo serialises the builds among them); each writes
# its log to .run/test-logs/NAME.log, and a failed check's log tail is printed
# at the end, just above the last line, "checks: N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOGS="$ROOT/.run/test-logs"
mkdir -p "$LOGS"

if [ $# -eq 0 ]; then
  set --
  for f in scripts/check-*.sh; do
    n=${f#scripts/check-}; set -- "$@" "${n%.sh}"
  done
fi
for n in "$@"; do
  [ -f "scripts/check-$n.sh" ] || { echo "unknown check: $n (no scripts/check-$n.sh)" >&2; exit 2; }
done

groups=$(scripts/tools.sh for-checks "$@")
echo "==> tools for $*: $groups (installed into .tools/ once, then cached)"
# shellcheck disable=SC2086  # one word per group
scripts/tools.sh $groups
eval "$(scripts/tools.sh env)"

declare -A pids
for n in "$@"; do
  (
    t0=$(date +%s)
    rc=0
    bash "scripts/check-$n.sh" >"$LOGS/$n.log" 2>&1 || rc=$?
    # wall seconds, then the CPU seconds (user + system) of the check's processes
    # (`times` itself, not in a pipe: a forked shell has no children's times)
    times >"$LOGS/$n.times"
    cpu=$(tail -n 1 "$LOGS/$n.times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
    echo "$(( $(date +%s) - t0 ))s, ${cpu}s CPU" >"$LOGS/$n.seconds"
    exit "$rc"
  ) &
  pids[$n]=$!
  echo "==> $n started (log: .run/test-logs/$n.log)"
done

passed=0; failed=0; failed_names=()
for n in "$@"; do
  if wait "${pids[$n]}"; then
    passed=$((passed + 1)); echo "==> $n: ok ($(cat "$LOGS/$n.seconds"))"
  else
    failed=$((failed + 1)); failed_names+=("$n")
    echo "==> $n: FAILED ($(cat "$LOGS/$n.seconds" 2>/dev/null))"
  fi
done

for n in "$@"; do
  grep -hE '^(test result:|     Summary|Success! |[0-9]+ passed)' "$LOGS/$n.log" 2>/dev/null | sed "s/^/    [$n] /" || true
done
# The failures' tails come last, right above the verdict, where a reader of
# only the end of the output (a CI page, a terminal) sees them.
for n in "${failed_names[@]}"; do
  echo "==> $n FAILED; the last lines of .run/test-logs/$n.log:"
  tail -n 60 "$LOGS/$n.log" | sed "s/^/    [$n] /"
done
[ $failed -eq 0 ] || echo "failed checks: ${failed_names[*]}"
echo "checks: $passed passed, $failed failed"
[ $failed -eq 0 ]
