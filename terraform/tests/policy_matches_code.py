#!/usr/bin/env python3
"""The pod role allows exactly the AWS calls the auxiliary service makes.

Finds every AWS SDK operation called in the service's Rust sources (a method
call whose name is an operation of one of the aws-sdk-* crates in the Cargo
workspace), maps each to the IAM action it needs, and compares that set with
the Allow statements of each environment's pod role policy:

- an operation with no known IAM action fails (extend OPERATION_ACTIONS and the
  policy together);
- an action the code needs but the policy lacks fails;
- an action the policy grants but the code never needs fails;
- kms:Decrypt is needed only where SecureString values are decrypted
  (`.with_decryption(...)` in the code and decryption enabled for the
  environment), and must then be limited to one key and to calls through SSM;
- only actions that cannot be scoped may use Resource "*"; GetParameter must
  be limited to the environment's prefix.

Usage:
  policy_matches_code.py --source-dir aux/src --workspace . \\
      --policy dev=POLICY.json:PREFIX:DECRYPT [--policy prod=...]
  policy_matches_code.py --self-test --source-dir aux/src --workspace . --policy ...
      (also proves that altered policies and sources are rejected)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys
import tomllib

# SDK operation (the fluent method on the client) -> IAM actions it needs.
OPERATION_ACTIONS: dict[tuple[str, str], set[str]] = {
    ("s3", "list_buckets"): {"s3:ListAllMyBuckets"},
    ("s3", "get_object"): {"s3:GetObject"},
    ("s3", "head_object"): {"s3:GetObject"},
    ("s3", "put_object"): {"s3:PutObject"},
    ("s3", "list_objects_v2"): {"s3:ListBucket"},
    ("ssm", "describe_parameters"): {"ssm:DescribeParameters"},
    ("ssm", "get_parameter"): {"ssm:GetParameter"},
    ("ssm", "get_parameters"): {"ssm:GetParameters"},
    ("ssm", "get_parameters_by_path"): {"ssm:GetParametersByPath"},
    ("sts", "get_caller_identity"): set(),  # needs no permission
}

# Actions AWS does not let a policy scope to a resource.
UNSCOPABLE = {"s3:ListAllMyBuckets", "ssm:DescribeParameters"}

# IAM service prefix per SDK crate.
CRATE_SERVICE = {
    "aws-sdk-s3": "s3",
    "aws-sdk-ssm": "ssm",
    "aws-sdk-kms": "kms",
    "aws-sdk-sts": "sts",
    "aws-sdk-secretsmanager": "secretsmanager",
    "aws-sdk-dynamodb": "dynamodb",
    "aws-sdk-sqs": "sqs",
    "aws-sdk-sns": "sns",
}

CALL = re.compile(r"\.\s*([a-z][a-z0-9_]*)\s*\(")
DECRYPTION = re.compile(r"\.\s*with_decryption\s*\(")


class Failure(Exception):
    pass


def sdk_operations(workspace: pathlib.Path) -> dict[str, set[str]]:
    """Operation names per IAM service, read from the sources of the aws-sdk-*
    crates pinned in Cargo.lock (unpacked by the build into CARGO_HOME)."""
    lock = tomllib.loads((workspace / "Cargo.lock").read_text())
    cargo_home = pathlib.Path(os.environ.get("CARGO_HOME", pathlib.Path.home() / ".cargo"))
    ops: dict[str, set[str]] = {}
    for pkg in lock.get("package", []):
        name = pkg["name"]
        if not name.startswith("aws-sdk-"):
            continue
        dirs = sorted(cargo_home.glob(f"registry/src/*/{name}-{pkg['version']}/src/operation"))
        if not dirs:
            raise Failure(f"{name} {pkg['version']}: sources not found under {cargo_home}/registry/src (build the workspace first)")
        service = CRATE_SERVICE.get(name, name.removeprefix("aws-sdk-"))
        ops.setdefault(service, set()).update(p.name for p in dirs[0].iterdir() if p.is_dir())
    if not ops:
        raise Failure("no aws-sdk-* crate in Cargo.lock")
    return ops


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def code_calls(source_dir: pathlib.Path, ops: dict[str, set[str]], sources: dict[str, str] | None = None):
    """(service, operation) -> first 'file:line' where the code calls it; and whether it decrypts."""
    if sources is None:
        sources = {str(p): p.read_text() for p in sorted(source_dir.rglob("*.rs"))}
    if not sources:
        raise Failure(f"no Rust sources under {source_dir}")
    found: dict[tuple[str, str], str] = {}
    decrypts = False
    for path, raw in sources.items():
        text = strip_comments(raw)
        decrypts = decrypts or bool(DECRYPTION.search(text))
        for m in CALL.finditer(text):
            method = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            for service, names in ops.items():
                if method in names:
                    found.setdefault((service, method), f"{path}:{line}")
    return found, decrypts


def required_actions(found: dict[tuple[str, str], str]) -> set[str]:
    unknown = [f"{s}:{op} at {where}" for (s, op), where in sorted(found.items()) if (s, op) not in OPERATION_ACTIONS]
    if unknown:
        raise Failure("AWS operations without a known IAM action (add them to the map and the pod role): " + ", ".join(unknown))
    actions: set[str] = set()
    for key in found:
        actions |= OPERATION_ACTIONS[key]
    return actions


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def check_policy(env: str, policy: dict, prefix: str, decrypt_enabled: bool,
                 needed: set[str], code_decrypts: bool) -> list[str]:
    errors: list[str] = []
    granted: dict[str, list] = {}
    for st in policy.get("Statement", []):
        for bad in ("NotAction", "NotResource", "NotPrincipal"):
            if bad in st:
                errors.append(f"{env}: statement {st.get('Sid')} uses {bad}")
        if st.get("Effect") != "Allow":
            errors.append(f"{env}: statement {st.get('Sid')} is not an Allow")
            continue
        for action in as_list(st.get("Action", [])):
            if "*" in action:
                errors.append(f"{env}: wildcard action {action}")
            granted.setdefault(action, []).append(st)

    expected = set(needed)
    if decrypt_enabled:
        if not code_decrypts:
            errors.append(f"{env}: decryption is enabled but the code never asks for it (no .with_decryption)")
        expected.add("kms:Decrypt")

    for a in sorted(expected - granted.keys()):
        errors.append(f"{env}: the code needs {a} but the pod role does not allow it")
    for a in sorted(granted.keys() - expected):
        errors.append(f"{env}: the pod role allows {a} but the code never needs it")

    for action, statements in granted.items():
        for st in statements:
            resources = as_list(st.get("Resource", []))
            if action in UNSCOPABLE:
                continue
            if "*" in resources:
                errors.append(f"{env}: {action} on Resource '*' although it can be scoped")
            if action.startswith("ssm:GetParameter"):
                want = f":parameter{prefix}/*"
                if not all(r.endswith(want) and r.startswith("arn:") for r in resources):
                    errors.append(f"{env}: {action} must be limited to parameter{prefix}/*, got {resources}")
            if action == "kms:Decrypt":
                if len(resources) != 1 or ":key/" not in resources[0]:
                    errors.append(f"{env}: kms:Decrypt must name exactly one key, got {resources}")
                via = st.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", "")
                if not re.fullmatch(r"ssm\.[a-z0-9-]+\.amazonaws\.com", str(via)):
                    errors.append(f"{env}: kms:Decrypt must be limited to calls through SSM (kms:ViaService)")
    return errors


def parse_policy_arg(arg: str):
    env, rest = arg.split("=", 1)
    path, prefix, decrypt = rest.rsplit(":", 2)
    if decrypt not in ("true", "false"):
        raise SystemExit(f"--policy {arg}: DECRYPT must be true or false")
    return env, json.loads(pathlib.Path(path).read_text()), prefix, decrypt == "true"


def run(source_dir, workspace, policies, sources=None, ops=None) -> list[str]:
    ops = ops if ops is not None else sdk_operations(workspace)
    found, decrypts = code_calls(source_dir, ops, sources)
    needed = required_actions(found)
    errors = []
    for env, policy, prefix, decrypt in policies:
        errors += check_policy(env, policy, prefix, decrypt, needed, decrypts)
    return errors, found, needed, decrypts


def without_decrypt(policy: dict) -> dict:
    p = json.loads(json.dumps(policy))
    p["Statement"] = [s for s in p["Statement"] if "kms:Decrypt" not in as_list(s["Action"])]
    return p


def with_decrypt(policy: dict, key: str) -> dict:
    p = without_decrypt(policy)
    p["Statement"].append({"Sid": "Decrypt", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key,
                           "Condition": {"StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}}})
    return p


def self_test(source_dir, workspace, policies) -> None:
    """Each altered input must be rejected, or the check proves nothing."""
    ops = sdk_operations(workspace)
    sources = {str(p): p.read_text() for p in sorted(source_dir.rglob("*.rs"))}
    env, policy, prefix, decrypt = policies[0]

    def mutated_policy(fn):
        p = json.loads(json.dumps(policy))
        fn(p)
        return [(env, p, prefix, decrypt)]

    def add_statement(p, action, resource):
        p["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Action": action, "Resource": resource})

    def drop_action(p, action):
        p["Statement"] = [s for s in p["Statement"] if action not in as_list(s["Action"])]

    def widen(p, action):
        for s in p["Statement"]:
            if action in as_list(s["Action"]):
                s["Resource"] = "*"

    first = next(iter(sources))
    cases = {
        "policy grants ssm:GetParameters the code never calls":
            (mutated_policy(lambda p: add_statement(p, "ssm:GetParameters", "*")), sources),
        "policy lacks ssm:GetParameter": (mutated_policy(lambda p: drop_action(p, "ssm:GetParameter")), sources),
        "policy lacks s3:ListAllMyBuckets": (mutated_policy(lambda p: drop_action(p, "s3:ListAllMyBuckets")), sources),
        "GetParameter widened to '*'": (mutated_policy(lambda p: widen(p, "ssm:GetParameter")), sources),
        "wildcard action": (mutated_policy(lambda p: add_statement(p, "ssm:*", "*")), sources),
        "code calls an operation with no IAM mapping (put_parameter)":
            (policies, {**sources, first: sources[first] + "\nfn extra(c: &Client) { c.put_parameter(); }\n"}),
        "code calls get_parameters_by_path the policy does not allow":
            (policies, {**sources, first: sources[first] + "\nfn extra(c: &Client) { c.get_parameters_by_path(); }\n"}),
    }
    cases["kms:Decrypt granted where decryption is off"] = (
        [(env, with_decrypt(policy, "arn:aws:kms:eu-west-1:111122223333:key/x"), prefix, False)], sources)
    cases["decryption on but kms:Decrypt on '*'"] = (
        [(env, with_decrypt(policy, "*"), prefix, True)], sources)
    cases["decryption on but kms:Decrypt missing"] = (
        [(env, without_decrypt(policy), prefix, True)], sources)
    # Positive control: a correct decrypting policy passes.
    control = [(env, with_decrypt(policy, "arn:aws:kms:eu-west-1:111122223333:key/x"), prefix, True)]
    errors, *_ = run(source_dir, workspace, control, sources, ops)
    print(f"  self-test: a correct policy with decryption on: {'accepted' if not errors else 'REJECTED ' + str(errors)}")
    if errors:
        raise Failure("the check rejects a correct decrypting policy")
    bad = []
    for name, (pols, srcs) in cases.items():
        try:
            errors, *_ = run(source_dir, workspace, pols, srcs, ops)
        except Failure as e:
            errors = [str(e)]
        print(f"  self-test: {name}: {'rejected' if errors else 'NOT REJECTED'}")
        if not errors:
            bad.append(name)
    if bad:
        raise Failure("the check accepted altered inputs: " + "; ".join(bad))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source-dir", type=pathlib.Path, required=True)
    ap.add_argument("--workspace", type=pathlib.Path, required=True)
    ap.add_argument("--policy", action="append", required=True, help="ENV=POLICY.json:PREFIX:DECRYPT")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    policies = [parse_policy_arg(p) for p in args.policy]
    try:
        errors, found, needed, decrypts = run(args.source_dir, args.workspace, policies)
        for (service, op), where in sorted(found.items()):
            print(f"  code calls {service}:{op} ({where}) -> {sorted(OPERATION_ACTIONS[(service, op)]) or 'no permission'}")
        print(f"  code decrypts SecureString values on request: {decrypts}")
        print(f"  actions needed: {sorted(needed)}")
        for env, _, prefix, decrypt in policies:
            print(f"  {env}: prefix {prefix}, decryption {'enabled' if decrypt else 'disabled'}")
        if errors:
            raise Failure("\n    ".join(["policy and code disagree:"] + errors))
        if args.self_test:
            self_test(args.source_dir, args.workspace, policies)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("  pod role policies allow exactly what the code calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
