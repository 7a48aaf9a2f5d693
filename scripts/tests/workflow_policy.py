"""Delivery rules for .github/workflows and the Dockerfiles that actionlint,
zizmor and hadolint do not check themselves.

    python3 scripts/tests/workflow_policy.py [REPO_ROOT]

Prints one line per rule and file; exits 1 when any rule is broken.
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
WF = ROOT / ".github" / "workflows"
README = ROOT / ".github" / "README.md"
failures = []


def rule(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def load(path):
    # PyYAML reads the key `on` as True
    doc = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(job):
    return job.get("steps") or []


def uses(step):
    return step.get("uses", "") or ""


USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")

workflows = sorted(WF.glob("*.yml")) + sorted(WF.glob("*.yaml"))
names = {p.name for p in workflows}
rule({"ci.yml", "deploy.yml", "release.yml"} <= names, f"workflows ci, deploy and release exist (found {sorted(names)})")
readme = README.read_text() if README.exists() else ""
rule(bool(readme), ".github/README.md exists")

pins = {}
for path in workflows:
    rel = path.relative_to(ROOT)
    text = path.read_text()
    lines = text.split("\n")
    # every remote action and reusable workflow: full SHA plus a version comment
    for n, line in enumerate(lines, 1):
        m = USES_LINE.match(line)
        if not m:
            continue
        ref, rest = m.groups()
        if ref.startswith(("./", "$/", "docker://")):
            continue
        rule(bool(PIN.match(ref)) and bool(VERSION_COMMENT.search(rest)),
             f"{rel}:{n} {ref.split('@')[0]} pinned by full SHA with a version comment")
        if PIN.match(ref):
            action, sha = ref.split("@")
            vc = VERSION_COMMENT.search(rest)
            pins.setdefault(action, set()).add((sha, vc.group(0).lstrip("# ") if vc else ""))
    # inline suppressions carry their reason on the line or the comment line above
    for n, line in enumerate(lines, 1):
        if "zizmor: ignore[" in line:
            above = lines[n - 2].strip() if n >= 2 else ""
            rule(above.startswith("#"),
                 f"{rel}:{n} zizmor suppression explained in the comment above it")

    doc = load(path)
    rule(doc.get("permissions") == {"contents": "read"}, f"{rel}: top-level permissions are contents: read")
    triggers = doc.get("on") or {}
    is_release = "tags" in (triggers.get("push") or {}) if isinstance(triggers, dict) else False
    for jid, job in (doc.get("jobs") or {}).items():
        where = f"{rel} job {jid}"
        perms = job.get("permissions")
        all_uses = [uses(s) for s in steps(job)]
        assumes_role = any(u.startswith("aws-actions/configure-aws-credentials@") for u in all_uses)
        signs = any(u.startswith("sigstore/cosign-installer@") for u in all_uses)
        if perms and perms.get("id-token") == "write":
            rule(assumes_role, f"{where}: id-token: write only where a role is assumed")
        if assumes_role:
            rule(bool(perms) and perms.get("id-token") == "write", f"{where}: assumes a role with id-token: write")
        if signs and not is_release:
            rule(bool(perms) and perms.get("id-token") == "write", f"{where}: keyless signing has id-token: write")
        pushes = bool(perms) and perms.get("contents") == "write"
        for s in steps(job):
            if uses(s).startswith("actions/checkout@"):
                persist = (s.get("with") or {}).get("persist-credentials")
                if pushes:
                    rule(persist is True, f"{where}: the pushing job keeps its checkout credentials")
                else:
                    rule(persist is False, f"{where}: checkout with persist-credentials: false")
        if pushes:
            conc = job.get("concurrency") or {}
            rule(conc.get("group") == "gitops-bump" and conc.get("cancel-in-progress") is False,
                 f"{where}: bump job in concurrency group gitops-bump that never cancels")
            run = " ".join(s.get("run", "") for s in steps(job))
            rule("scripts/release.sh publish" in run, f"{where}: pushes through scripts/release.sh publish")
        if is_release:
            cached = [u for u in all_uses if u.startswith(("actions/cache", "Swatinem/rust-cache"))]
            cached += [k for s in steps(job) for k in (s.get("with") or {}) if k in ("cache-from", "cache-to")]
            rule(not cached, f"{where}: no cache on the tag path ({cached or 'none'})")
            rule(not any(u.startswith("docker/build-push-action@") for u in all_uses), f"{where}: the tag path does not rebuild")
        for s in steps(job):
            if uses(s).startswith("docker/build-push-action@") and (s.get("with") or {}).get("push") is True:
                w = s["with"]
                rule(w.get("sbom") is True and str(w.get("provenance", "")).startswith("mode=max"),
                     f"{where}: pushed images carry SBOM and provenance attestations")
                rule("${{ github.sha }}" in str(w.get("tags")), f"{where}: pushed images are tagged with the commit SHA")

# the end-to-end workflow: pull requests touching what runs start it, it runs
# scripts/e2e-kind.sh (the steps `make check-ci` lints), with no credentials
E2E = WF / "e2e.yml"
rule(E2E.exists(), ".github/workflows/e2e.yml exists")
if E2E.exists():
    e2e = load(E2E)
    paths = ((e2e.get("on") or {}).get("pull_request") or {}).get("paths") or []
    for needed in ("manifests/**", "argocd/**", "edge/**", "aux/**", "common/**", "scripts/e2e-kind.sh"):
        rule(needed in paths, f"e2e.yml runs on pull requests touching {needed}")
    runs = [st.get("run", "") for j in (e2e.get("jobs") or {}).values() for st in steps(j)]
    rule(any(r.strip() == "bash scripts/e2e-kind.sh" for r in runs), "e2e.yml runs scripts/e2e-kind.sh")
    text = E2E.read_text()
    rule("secrets." not in text and "id-token" not in text, "e2e.yml uses no secret and assumes no role")

# the README lists every pinned action with its SHA
for action, versions in sorted(pins.items()):
    rule(len(versions) == 1, f"{action}: one pinned version across workflows ({sorted(versions)})")
    for sha, version in versions:
        rule(sha in readme and action in readme, f".github/README.md lists {action} at {sha[:12]}... ({version})")

# Dockerfiles: the runtime contract of the platform
CONTRACT = {
    "aux/Dockerfile": {"binary": "/aux-worker", "ports": {"8001", "9001"}},
    "edge/Dockerfile": {"binary": "/edge", "ports": {"8000", "8443", "9000"}},
}
for rel, want in CONTRACT.items():
    path = ROOT / rel
    rule(path.exists(), f"{rel} exists")
    if not path.exists():
        continue
    text = re.sub(r"\\\n", " ", path.read_text())
    instrs = [l.strip() for l in text.split("\n") if l.strip() and not l.strip().startswith("#")]
    froms = [i for i, l in enumerate(instrs) if l.upper().startswith("FROM ")]
    rule(len(froms) >= 2, f"{rel}: multi-stage build")
    final = instrs[froms[-1]:]
    base = final[0].split()[1]
    rule(base == "scratch" or base.startswith("gcr.io/distroless/"), f"{rel}: final stage is scratch or distroless ({base})")
    rule(not any(re.match(r"(?i)^(RUN|ADD)\b", l) for l in final), f"{rel}: the runtime stage runs nothing (no shell needed)")
    users = [l.split()[1] for l in final if l.upper().startswith("USER ")]
    rule(users == ["10001:10001"], f"{rel}: runs as 10001:10001 ({users})")
    ep = [l for l in final if l.upper().startswith("ENTRYPOINT ")]
    rule(ep == [f'ENTRYPOINT ["{want["binary"]}"]'], f"{rel}: exec-form entrypoint {want['binary']}")
    exposed = {p.split("/")[0] for l in final if l.upper().startswith("EXPOSE ") for p in l.split()[1:]}
    rule(exposed == want["ports"], f"{rel}: exposes {sorted(want['ports'])} ({sorted(exposed)})")
    labels = " ".join(l for l in final if l.upper().startswith("LABEL "))
    for key, arg in (("source", "SOURCE"), ("revision", "REVISION")):
        rule(f'org.opencontainers.image.{key}="${{{arg}}}"' in labels and any(l.startswith(f"ARG {arg}") for l in final),
             f"{rel}: label org.opencontainers.image.{key} from build arg {arg}")
    rule(any("--locked" in l for l in instrs if l.upper().startswith("RUN ") and "cargo build" in l),
         f"{rel}: cargo build --locked")

print(f"policy: {len(failures)} rule(s) broken" if failures else "policy: all rules hold")
sys.exit(1 if failures else 0)
