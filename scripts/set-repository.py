#!/usr/bin/env python3
"""Where a fork lives, set in one command and checked to agree everywhere.

    scripts/set-repository.py OWNER/REPO [BRANCH]   rewrite every place below
    scripts/set-repository.py --check               every place agrees (exit 1 if not)
    scripts/set-repository.py --self-test           the rewrite and the check on copies

The GitHub repository (OWNER/REPO) and the branch Argo CD deploys appear in:

  argocd/apps/source.yaml         repoURL https://github.com/OWNER/REPO.git and
                                  targetRevision BRANCH: the reference, copied by
                                  kustomize into every Argo CD Application
  monitoring/rules/*.yaml,        every alert's runbook_url,
  monitoring/tests/rules/*.yaml   https://github.com/OWNER/REPO/blob/BRANCH/docs/runbooks/ALERT.md
  terraform/envs/*/main.tf        github_repository = "OWNER/REPO": whose workflows
                                  may assume the CI roles (GitHub OIDC trust)

The rewrite edits those lines in place (comments and layout kept); the check
reads source.yaml and requires every other place to name the same repository
and branch, and every runbook link to point at a page that exists.
Standard library only, so it runs before any tool is installed.
"""
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "argocd/apps/source.yaml"
RULE_GLOBS = ["monitoring/rules/*.yaml", "monitoring/tests/rules/*.yaml"]
TFVARS_GLOB = "terraform/envs/*/main.tf"
NAME = r"[A-Za-z0-9_.-]+"
REPO = re.compile(rf"^{NAME}/{NAME}$")
BRANCH = re.compile(r"^[A-Za-z0-9_./-]+$")
REPO_URL = re.compile(rf"^(?:https://github\.com/|git@github\.com:)({NAME}/{NAME})$")
RUNBOOK = re.compile(r"(runbook_url:\s*)(\S+)")
RUNBOOK_URL = re.compile(rf"^https://github\.com/({NAME}/{NAME})/blob/([A-Za-z0-9_./-]+?)/docs/runbooks/([A-Za-z0-9_-]+\.md)$")
TFVAR = re.compile(r'^(\s*github_repository\s*=\s*")([^"]*)(")', re.M)


def source(root):
    text = (root / SOURCE).read_text()
    url = re.search(r"^\s+repoURL:\s*(\S+)\s*$", text, re.M)
    rev = re.search(r"^\s+targetRevision:\s*(\S+)\s*$", text, re.M)
    return (url.group(1) if url else None), (rev.group(1) if rev else None)


def files(root, *globs):
    return sorted(p for g in globs for p in root.glob(g))


def check(root):
    """Problems, empty when every place agrees with argocd/apps/source.yaml."""
    problems = []
    url, rev = source(root)
    m = REPO_URL.match(url.removesuffix(".git")) if url else None
    if not m:
        return [f"{SOURCE}: repoURL {url!r} is not a GitHub repository (https://github.com/OWNER/REPO.git): "
                "the workflows and the CI roles' OIDC trust are GitHub's"]
    repo = m.group(1)
    if not rev:
        problems.append(f"{SOURCE}: no targetRevision")
    seen = 0
    for path in files(root, *RULE_GLOBS):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            rb = RUNBOOK.search(line)
            if not rb:
                continue
            seen += 1
            where = f"{path.relative_to(root)}:{n}"
            u = RUNBOOK_URL.match(rb.group(2))
            if not u:
                problems.append(f"{where}: runbook_url {rb.group(2)} is not https://github.com/{repo}/blob/{rev}/docs/runbooks/<alert>.md")
                continue
            if u.group(1) != repo or u.group(2) != rev:
                problems.append(f"{where}: runbook_url names {u.group(1)} at {u.group(2)}, {SOURCE} says {repo} at {rev}")
            if not (root / "docs/runbooks" / u.group(3)).is_file():
                problems.append(f"{where}: runbook_url points at docs/runbooks/{u.group(3)}, which does not exist")
    if seen == 0:
        problems.append(f"no runbook_url found in {', '.join(RULE_GLOBS)}")
    tfvars = files(root, TFVARS_GLOB)
    if not tfvars:
        problems.append(f"no {TFVARS_GLOB}")
    for path in tfvars:
        got = TFVAR.findall(path.read_text())
        if len(got) != 1:
            problems.append(f"{path.relative_to(root)}: {len(got)} github_repository settings, expected one")
        elif got[0][1] != repo:
            problems.append(f"{path.relative_to(root)}: github_repository {got[0][1]!r}, {SOURCE} says {repo!r}")
    return problems


def rewrite(root, repo, branch=None):
    """Sets every place to repo (and branch); returns the files changed."""
    if not REPO.match(repo) or "/" not in repo:
        sys.exit(f"not OWNER/REPO: {repo!r}")
    if branch is not None and not BRANCH.match(branch):
        sys.exit(f"not a branch name: {branch!r}")
    changed = []

    def save(path, new):
        if path.read_text() != new:
            path.write_text(new)
            changed.append(str(path.relative_to(root)))

    src = root / SOURCE
    text = src.read_text()
    _, old_rev = source(root)
    rev = branch or old_rev or "main"
    text = re.sub(r"^(\s+repoURL:\s*)\S+", lambda m: f"{m.group(1)}https://github.com/{repo}.git", text, count=1, flags=re.M)
    text = re.sub(r"^(\s+targetRevision:\s*)\S+", lambda m: f"{m.group(1)}{rev}", text, count=1, flags=re.M)
    save(src, text)

    def runbook(m):
        u = RUNBOOK_URL.match(m.group(2))
        page = u.group(3) if u else m.group(2).rsplit("/", 1)[-1]
        return f"{m.group(1)}https://github.com/{repo}/blob/{rev}/docs/runbooks/{page}"

    for path in files(root, *RULE_GLOBS):
        save(path, RUNBOOK.sub(runbook, path.read_text()))
    for path in files(root, TFVARS_GLOB):
        save(path, TFVAR.sub(lambda m: f"{m.group(1)}{repo}{m.group(3)}", path.read_text()))
    return changed


def self_test():
    """On copies of the places: the rewrite makes them agree on new values, and
    the check rejects each place set apart."""
    results = []

    def copy(into):
        for rel in [SOURCE] + [str(p.relative_to(ROOT)) for p in files(ROOT, *RULE_GLOBS, TFVARS_GLOB)]:
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, into / rel)
        shutil.copytree(ROOT / "docs/runbooks", into / "docs/runbooks")

    def expect(name, ok, detail=""):
        results.append(ok)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}" + (f" ({detail})" if detail else ""))

    def edit(path, old, new):
        text = path.read_text()
        if old not in text:
            sys.exit(f"self-test: {old!r} not in {path}")
        path.write_text(text.replace(old, new, 1))

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "fork"
        copy(root)
        problems = check(root)
        expect("the repository as it is agrees", not problems, "; ".join(problems[:2]))
        out = subprocess.run([sys.executable, __file__, "acme-corp/kc-platform", "trunk", "--root", str(root)],
                             capture_output=True, text=True)
        problems = check(root)
        url, rev = source(root)
        leftovers = [str(p.relative_to(root)) for p in files(root, SOURCE, *RULE_GLOBS, TFVARS_GLOB)
                     if re.search(r"^[^#]*(OWNER/REPO|blob/main/)", p.read_text(), re.M)]
        expect("set-repository.py acme-corp/kc-platform trunk: every place agrees on the new values",
               out.returncode == 0 and not problems and url == "https://github.com/acme-corp/kc-platform.git"
               and rev == "trunk" and not leftovers, (out.stderr.strip() or "; ".join(problems[:2]) or ", ".join(leftovers)))
        again = subprocess.run([sys.executable, __file__, "acme-corp/kc-platform", "trunk", "--root", str(root)],
                               capture_output=True, text=True)
        expect("a second run changes nothing", again.returncode == 0 and "0 files changed" in again.stdout, again.stdout.strip())

        cases = [
            ("a tfvars with another repository", lambda r: edit(next(iter(files(r, TFVARS_GLOB))),
                                                                 '"acme-corp/kc-platform"', '"kantox-challenge/platform"')),
            ("a runbook link to another repository", lambda r: edit(next(iter(files(r, RULE_GLOBS[0]))),
                                                                     "github.com/acme-corp/kc-platform/", "github.com/OWNER/REPO/")),
            ("a runbook link to another branch", lambda r: edit(next(iter(files(r, RULE_GLOBS[1]))), "/blob/trunk/", "/blob/main/")),
            ("a runbook link to a missing page", lambda r: edit(next(iter(files(r, RULE_GLOBS[0]))), ".md", "-typo.md")),
            ("source.yaml off GitHub", lambda r: edit(r / SOURCE, "https://github.com/acme-corp/kc-platform.git",
                                                      "https://gitlab.example.com/acme-corp/kc-platform.git")),
        ]
        for name, breaks in cases:
            broken = Path(d) / "broken"
            shutil.rmtree(broken, ignore_errors=True)
            shutil.copytree(root, broken)
            breaks(broken)
            problems = check(broken)
            expect(f"rejects {name}", bool(problems), problems[0] if problems else "not caught")
    return all(results)


def main(argv):
    root = ROOT
    if "--root" in argv:
        i = argv.index("--root")
        root = Path(argv[i + 1]).resolve()
        argv = argv[:i] + argv[i + 2:]
    if argv == ["--self-test"]:
        return 0 if self_test() else 1
    if argv == ["--check"]:
        problems = check(root)
        url, rev = source(root)
        for p in problems:
            print(f"  FAIL {p}")
        if not problems:
            print(f"  ok   {SOURCE} ({url} at {rev}), every runbook_url and every github_repository agree")
        return 1 if problems else 0
    if len(argv) in (1, 2) and not argv[0].startswith("-"):
        changed = rewrite(root, *argv)
        for c in changed:
            print(f"changed {c}")
        print(f"{len(changed)} files changed")
        problems = check(root)
        for p in problems:
            print(f"  FAIL {p}")
        return 1 if problems else 0
    print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
