"""The README's API examples, run against a live edge.

    python3 readme_curls.py --base http://127.0.0.1:8000 [--version local] [--readme README.md]
    python3 readme_curls.py --self-test [--readme README.md]

Reads every `$ curl -s localhost:8000/...` line of README.md's console blocks
and the JSON answer printed under it, sends the same request to --base, and
compares: every documented field must be there with the documented value;
a list written with a trailing `…` must start with the items shown; the
`*_version` fields must be present (equal to --version when given, since
the README prints the version of a local build). Exit status 1 on a mismatch.

--self-test checks the parser and the comparison offline: the README must
yield at least five examples, each documented answer must match itself, and
altered answers (a changed value, a missing field, a shorter list, a wrong
version) must be rejected.
"""
import argparse
import copy
import json
import re
import sys
import urllib.error
import urllib.request

CURL = re.compile(r"^\$ curl -s (?:http://)?localhost:8000(?P<path>/\S*)")
ELLIPSIS = "\u2026"


def examples(readme):
    """[(path, expected)] from the README's console blocks."""
    out = []
    lines = open(readme, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        m = CURL.match(line)
        if not m or i + 1 >= len(lines):
            continue
        text = lines[i + 1].strip()
        # `, …]` marks a list shown only in part
        text = re.sub(r",\s*" + ELLIPSIS + r"\s*\]", ', "' + ELLIPSIS + '"]', text)
        out.append((m.group("path"), json.loads(text)))
    return out


def compare(expected, actual, version=None, where="$"):
    """Problems of `actual` against the documented `expected`."""
    problems = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: want an object, got {actual!r}"]
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            elif key.endswith("_version"):
                if not actual[key] or (version and actual[key] != version):
                    problems.append(f"{where}.{key}: {actual[key]!r}, want {version or 'a version'}")
            else:
                problems += compare(value, actual[key], version, f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: want a list, got {actual!r}"]
        partial = bool(expected) and expected[-1] == ELLIPSIS
        shown = expected[:-1] if partial else expected
        if (actual[:len(shown)] if partial else actual) != shown:
            problems.append(f"{where}: {actual!r} does not {'start with' if partial else 'equal'} {shown!r}")
        return problems
    if expected != actual:
        problems.append(f"{where}: {actual!r}, want {expected!r}")
    return problems


def fill(expected, version="0.1.0-local"):
    """A complete answer the documented one describes (for the self-test)."""
    if isinstance(expected, dict):
        return {k: (version if k.endswith("_version") else fill(v, version)) for k, v in expected.items()}
    if isinstance(expected, list):
        return [x for x in expected if x != ELLIPSIS] + (["/z/more"] if expected and expected[-1] == ELLIPSIS else [])
    return expected


def self_test(readme):
    found = examples(readme)
    failures = 0
    if len(found) < 5:
        print(f"FAIL {readme}: {len(found)} curl examples with answers, want at least 5")
        return 1
    for path, expected in found:
        good = fill(expected)
        if compare(expected, good, "0.1.0-local"):
            failures += 1
            print(f"FAIL {path}: the documented answer does not match itself: {compare(expected, good, '0.1.0-local')}")
        broken = []
        b = copy.deepcopy(good)
        key = next(k for k in b if not k.endswith("_version"))
        b.pop(key)
        broken.append(("a missing field", b))
        b = copy.deepcopy(good)
        b["main_api_version"] = "0.0.0-other"
        broken.append(("another version", b))
        for k, v in good.items():
            if isinstance(v, str) and not k.endswith("_version"):
                b = copy.deepcopy(good)
                b[k] = v + "-changed"
                broken.append((f"a changed {k}", b))
            if isinstance(v, list) and v:
                b = copy.deepcopy(good)
                b[k] = v[1:]
                broken.append((f"a shorter {k}", b))
        for what, body in broken:
            if not compare(expected, body, "0.1.0-local"):
                failures += 1
                print(f"FAIL {path}: {what} was not rejected")
        print(f"{'ok  ' if not failures else 'FAIL'} {path}: documented answer parsed; {len(broken)} altered answers rejected")
    return failures


def live(readme, base, version):
    failures = 0
    found = examples(readme)
    if len(found) < 5:
        print(f"FAIL {readme}: only {len(found)} curl examples found")
        return 1
    for path, expected in found:
        try:
            with urllib.request.urlopen(base.rstrip("/") + path, timeout=10) as r:
                body = r.read()
        except urllib.error.HTTPError as err:  # documented error answers are JSON too
            body = err.read()
        except OSError as err:
            failures += 1
            print(f"FAIL curl -s localhost:8000{path}: {err}")
            continue
        try:
            problems = compare(expected, json.loads(body), version)
        except ValueError:
            problems = [f"not JSON: {body[:200]!r}"]
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} curl -s localhost:8000{path}{': ' + '; '.join(problems) if problems else ''}")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--base")
    ap.add_argument("--version")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return 1 if self_test(a.readme) else 0
    if not a.base:
        ap.error("--base is required unless --self-test")
    return 1 if live(a.readme, a.base, a.version) else 0


if __name__ == "__main__":
    sys.exit(main())
