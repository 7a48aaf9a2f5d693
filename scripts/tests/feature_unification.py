#!/usr/bin/env python3
"""The test build and the binaries' build resolve every shared dependency
with the same features.

Cargo compiles a dependency once per feature set. When a dev-dependency turns
on a feature of a crate the binaries also use (tokio's `process`, a crate's
`test-util`), `cargo test` resolves that crate, and every crate above it, with
other features than `cargo build -p aux-worker -p edge`: a cold `make test`
then compiles most of the tree twice, and the integration tests run binaries
built differently from the ones that ship. This check compares the two
resolutions (`cargo tree`, offline) and names every crate whose features
differ. `--self-test` first checks that the comparison catches a difference.

    python3 scripts/tests/feature_unification.py [--root DIR] [--self-test]
"""
import argparse
import re
import subprocess
import sys

LINE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+) v(?P<version>\S+)(?: \([^)]*\))* \[(?P<features>[^\]]*)\]")


def tree(root, args):
    out = subprocess.run(["cargo", "tree", "--offline", "--locked", "--prefix", "none", "-f", "{p} [{f}]", *args],
                         cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"FAIL: cargo tree {' '.join(args)}\n{out.stderr[-2000:]}")
    return out.stdout.splitlines()


def resolved(lines):
    """{(name, version): frozenset(features)} from `cargo tree -f '{p} [{f}]'` lines."""
    out = {}
    for line in lines:
        m = LINE.match(line.strip())
        if m:
            feats = frozenset(f for f in m["features"].split(",") if f)
            out[(m["name"], m["version"])] = feats
    return out


def differences(binaries, tests):
    problems = []
    for key, feats in sorted(binaries.items()):
        other = tests.get(key)
        if other is None:
            problems.append(f"{key[0]} {key[1]}: in the binaries' build, not in the test build")
        elif other != feats:
            extra, missing = sorted(other - feats), sorted(feats - other)
            problems.append(f"{key[0]} {key[1]}: the test build adds {extra or 'nothing'}"
                            f" and lacks {missing or 'nothing'}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()

    binaries = resolved(tree(a.root, ["-p", "aux-worker", "-p", "edge", "-e", "no-dev"]))
    tests = resolved(tree(a.root, ["--workspace", "-e", "normal,build,dev"]))
    if len(binaries) < 100 or not any(k[0] == "tokio" for k in binaries):
        raise SystemExit(f"FAIL: could not read the resolution ({len(binaries)} crates)")

    failed = False
    if a.self_test:
        broken = dict(tests)
        key = next(k for k in broken if k[0] == "tokio")
        broken[key] = broken[key] | {"test-util-only-in-tests"}
        caught = differences(binaries, broken)
        ok = any(p.startswith("tokio ") for p in caught)
        print(f"  {'ok  ' if ok else 'FAIL'} self-test: a feature only the test build turns on in tokio is reported")
        failed |= not ok

    problems = differences(binaries, tests)
    for p in problems:
        print(f"  FAIL {p}")
    if not problems:
        print(f"  ok   all {len(binaries)} crates of the binaries' build resolve with the same features in the test build")
    failed |= bool(problems)
    if problems:
        print("  (turn the feature on for every build, as the workspace Cargo.toml does for tokio's `process`)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
