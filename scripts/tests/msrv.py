#!/usr/bin/env python3
"""The minimum Rust version (`rust-version` of Cargo.toml) against what needs it.

    msrv.py [--root DIR]           every rule below; exit 1 when one breaks
    msrv.py --declared             print the declared version (CI installs it)
    msrv.py --self-test            each rule must reject a copy broken on purpose

Only one toolchain exists where `make test` runs, so building with the
declared version is CI's job (the `msrv` job of .github/workflows/ci.yml).
What is checked here, offline of any other toolchain:

  declared     [workspace.package] rust-version is set (X.Y or X.Y.Z) and every
               workspace member inherits it;
  edition      it is not older than the first Rust of each member's edition;
  dependencies it is not older than the rust-version of any package cargo
               resolves from Cargo.lock for Linux (gnu, musl) and macOS
               (cargo refuses to build those with an older compiler);
  std APIs     clippy's incompatible_msrv lint (a std API newer than the
               declared version) is left on: not allowed in the workspace
               lints or the sources, and no other msrv in clippy.toml; the
               clippy run of the rust check denies it like every warning;
  toolchains   the Dockerfiles' rust image and CI's pinned toolchain are not
               older than the declared version;
  ci           a CI job installs the declared toolchain and builds the whole
               workspace with it (--workspace --all-targets --locked).

Not checked here: language features newer than the declared version (no lint
sees them); the CI job does, by building.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

EDITION_FIRST_RUST = {"2015": "1.0", "2018": "1.31", "2021": "1.56", "2024": "1.85"}
PLATFORMS = ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl", "aarch64-apple-darwin"]
VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")


def v(text):
    """1.88 and 1.88.0 compare equal."""
    parts = [int(x) for x in str(text).split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def declared_version(cargo_toml):
    """The workspace's rust-version, or (None, problem)."""
    doc = tomllib.loads(cargo_toml)
    rv = doc.get("workspace", {}).get("package", {}).get("rust-version")
    if rv is None:
        return None, "Cargo.toml: [workspace.package] has no rust-version"
    if not VERSION.match(str(rv)):
        return None, f"Cargo.toml: rust-version {rv!r} is not X.Y or X.Y.Z"
    return str(rv), None


def check_members(members, declared):
    """members: [{name, rust_version, edition}] of the workspace."""
    problems = []
    for m in members:
        if m.get("rust_version") != declared:
            problems.append(f"member {m['name']}: rust-version {m.get('rust_version')} is not the workspace's "
                            f"{declared} (use rust-version.workspace = true)")
        first = EDITION_FIRST_RUST.get(str(m.get("edition")))
        if first and v(declared) < v(first):
            problems.append(f"member {m['name']}: edition {m['edition']} needs Rust {first}, rust-version says {declared}")
    return problems


def check_dependencies(packages, declared):
    """packages: {(name, version): rust_version} resolved for the platforms."""
    newer = sorted(((v(rv), n, ver, rv) for (n, ver), rv in packages.items() if rv and v(rv) > v(declared)), reverse=True)
    return [f"dependency {n} {ver} needs Rust {rv}, newer than rust-version {declared}" for _, n, ver, rv in newer]


def check_lints(cargo_toml, clippy_toml, sources, declared):
    problems = []
    lints = tomllib.loads(cargo_toml).get("workspace", {}).get("lints", {}).get("clippy", {})
    level = lints.get("incompatible_msrv")
    if isinstance(level, dict):
        level = level.get("level")
    if level in ("allow", "expect"):
        problems.append(f"Cargo.toml: clippy::incompatible_msrv is {level}ed: std APIs newer than {declared} go unnoticed")
    for group in ("suspicious", "all"):
        g = lints.get(group)
        g = g.get("level") if isinstance(g, dict) else g
        if g == "allow":
            problems.append(f"Cargo.toml: clippy::{group} (which holds incompatible_msrv) is allowed")
    msrv = tomllib.loads(clippy_toml).get("msrv") if clippy_toml else None
    if msrv is not None and str(msrv) != declared:
        problems.append(f"clippy.toml: msrv {msrv} differs from rust-version {declared}")
    for path, text in sources.items():
        if re.search(r"allow\s*\(\s*(clippy::incompatible_msrv|clippy::suspicious)", text):
            problems.append(f"{path}: allows clippy::incompatible_msrv")
    return problems


def check_toolchains(dockerfiles, ci_text, declared):
    problems = []
    for path, text in dockerfiles.items():
        for tag in re.findall(r"(?im)^FROM\s+rust:(\d+\.\d+(?:\.\d+)?)", text):
            if v(tag) < v(declared):
                problems.append(f"{path}: builds with rust:{tag}, older than rust-version {declared}")
    for ver in re.findall(r"rustup toolchain install (\d+\.\d+(?:\.\d+)?)", ci_text):
        if v(ver) < v(declared):
            problems.append(f"ci.yml: installs Rust {ver}, older than rust-version {declared}")
    return problems


def check_ci_job(ci_text):
    """A job installs the declared toolchain (read by this script) and builds everything with it."""
    import yaml

    doc = yaml.safe_load(ci_text) or {}
    for job in (doc.get("jobs") or {}).values():
        run = "\n".join(s.get("run", "") for s in job.get("steps") or [])
        build = re.search(r'cargo \+"?\$\{?(\w+)\}?"? build([^\n]*)', run)
        if not build:
            continue
        var, flags = build.group(1), build.group(2)
        reads = re.search(rf'{var}=\$\(python3 scripts/tests/msrv\.py --declared\)', run)
        installs = re.search(rf'rustup toolchain install "?\$\{{?{var}\}}?"?', run)
        if reads and installs and all(f in flags for f in ("--workspace", "--all-targets", "--locked")):
            return []
    return ["ci.yml: no job installs the declared rust-version (msrv.py --declared) and runs "
            "cargo +<it> build --workspace --all-targets --locked"]


def metadata(root, platform):
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", platform],
                         cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"cargo metadata --filter-platform {platform} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def gather(root):
    root = Path(root)
    cargo_toml = (root / "Cargo.toml").read_text()
    clippy = root / "clippy.toml"
    sources = {str(p.relative_to(root)): p.read_text() for d in ("common", "aux", "edge", "testkit")
               for p in (root / d).rglob("*.rs") if "target" not in p.parts}
    dockerfiles = {str(p.relative_to(root)): p.read_text() for p in (root / "aux/Dockerfile", root / "edge/Dockerfile") if p.exists()}
    ci_text = (root / ".github/workflows/ci.yml").read_text()
    members, packages = [], {}
    for platform in PLATFORMS:
        m = metadata(root, platform)
        resolved = {n["id"] for n in m["resolve"]["nodes"]}
        ws = set(m["workspace_members"])
        for p in m["packages"]:
            if p["id"] in ws:
                if platform == PLATFORMS[0]:
                    members.append({"name": p["name"], "rust_version": p.get("rust_version"), "edition": p.get("edition")})
            elif p["id"] in resolved:
                packages[(p["name"], p["version"])] = p.get("rust_version")
    return dict(cargo_toml=cargo_toml, clippy_toml=clippy.read_text() if clippy.exists() else "", sources=sources,
                dockerfiles=dockerfiles, ci_text=ci_text, members=members, packages=packages)


def run_rules(g):
    declared, problem = declared_version(g["cargo_toml"])
    if problem:
        return None, [problem]
    problems = []
    problems += check_members(g["members"], declared)
    problems += check_dependencies(g["packages"], declared)
    problems += check_lints(g["cargo_toml"], g["clippy_toml"], g["sources"], declared)
    problems += check_toolchains(g["dockerfiles"], g["ci_text"], declared)
    problems += check_ci_job(g["ci_text"])
    return declared, problems


def clippy_fixture():
    """clippy flags a std API newer than the crate's rust-version, and only then."""
    code = "pub fn three() -> Vec<u8> {\n    std::iter::repeat_n(1u8, 3).collect()\n}\n"  # repeat_n: Rust 1.82
    results = {}
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/src")
        Path(f"{d}/src/lib.rs").write_text(code)
        for rv in ("1.81", "1.82"):
            Path(f"{d}/Cargo.toml").write_text(
                f'[package]\nname = "msrv-fixture"\nversion = "0.0.0"\nedition = "2021"\nrust-version = "{rv}"\n[workspace]\n')
            env = dict(os.environ, CARGO_TARGET_DIR=f"{d}/target")
            out = subprocess.run(["cargo", "clippy", "--quiet", "--offline", "--", "-D", "warnings"], cwd=d, env=env,
                                 capture_output=True, text=True)
            results[rv] = (out.returncode, "incompatible_msrv" in out.stderr)
    ok = results["1.81"][0] != 0 and results["1.81"][1] and results["1.82"][0] == 0
    print(f"  {'ok  ' if ok else 'FAIL'} clippy -D warnings rejects repeat_n (Rust 1.82) under rust-version 1.81 "
          f"and accepts it under 1.82: {results}")
    return ok


def self_test(g):
    """Each rule on a copy broken on purpose must report a problem."""
    base_declared, base = run_rules(g)
    cases = []

    def mutant(name, **changes):
        m = dict(g)
        m.update(changes)
        _, problems = run_rules(m)
        cases.append((name, bool(problems), problems[:1]))

    ct = g["cargo_toml"]
    mutant("rust-version removed", cargo_toml=re.sub(r'(?m)^rust-version = .*\n', "", ct, count=1))
    mutant("rust-version not a version", cargo_toml=re.sub(r'(?m)^rust-version = .*$', 'rust-version = "latest"', ct, count=1))
    mutant("rust-version below a dependency's", cargo_toml=re.sub(r'(?m)^rust-version = .*$', 'rust-version = "1.88"', ct, count=1),
           members=[dict(m, rust_version="1.88") for m in g["members"]],
           ci_text=g["ci_text"], dockerfiles=g["dockerfiles"])
    mutant("rust-version below the edition's first Rust", cargo_toml=re.sub(r'(?m)^rust-version = .*$', 'rust-version = "1.80"', ct, count=1),
           members=[dict(m, rust_version="1.80") for m in g["members"]], packages={})
    mutant("a member with its own rust-version", members=g["members"][:1] + [dict(g["members"][1], rust_version="1.70")] + g["members"][2:])
    mutant("incompatible_msrv allowed in the workspace lints",
           cargo_toml=ct.replace("[workspace.lints.clippy]\n", '[workspace.lints.clippy]\nincompatible_msrv = "allow"\n'))
    mutant("clippy.toml with another msrv", clippy_toml=g["clippy_toml"] + '\nmsrv = "1.70"\n')
    mutant("incompatible_msrv allowed in a source file", sources=dict(g["sources"], **{"x.rs": "#![allow(clippy::incompatible_msrv)]"}))
    mutant("a Dockerfile on an older rust image",
           dockerfiles={k: re.sub(r"rust:\d+\.\d+", "rust:1.80", t) for k, t in g["dockerfiles"].items()})
    mutant("CI pinned to an older toolchain", ci_text=g["ci_text"].replace("rustup toolchain install 1.95.0", "rustup toolchain install 1.80.0"))
    mutant("CI job without the declared toolchain build", ci_text=g["ci_text"].replace("msrv.py --declared", "msrv.py"))
    mutant("CI job building only part of the workspace", ci_text=g["ci_text"].replace("--all-targets --locked", "--locked"))

    ok = not base
    print(f"  {'ok  ' if ok else 'FAIL'} the repository as it is passes ({base_declared}; {len(base)} problems)")
    for name, caught, first in cases:
        print(f"  {'ok  ' if caught else 'FAIL'} rejects: {name}" + (f" ({first[0]})" if first else ""))
        ok = ok and caught
    return clippy_fixture() and ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--declared", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.declared:
        declared, problem = declared_version((Path(args.root) / "Cargo.toml").read_text())
        if problem:
            sys.exit(problem)
        print(declared)
        return 0
    g = gather(args.root)
    if args.self_test:
        return 0 if self_test(g) else 1
    declared, problems = run_rules(g)
    newest = max((rv for rv in g["packages"].values() if rv), key=v, default="none")
    print(f"rust-version {declared}; {len(g['packages'])} resolved packages for {', '.join(PLATFORMS)}, "
          f"the newest rust-version among them {newest}")
    for p in problems:
        print(f"  FAIL {p}")
    if not problems:
        print("  ok   declared, inherited by every member, not older than the editions, the dependencies, "
              "the Dockerfiles' and CI's toolchains; clippy's incompatible_msrv on; CI builds with it")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
