#!/usr/bin/env python3
"""Assertions on what Terraform created in the AWS emulator.

  moto_checks.py state-bucket --endpoint URL --bucket NAME
      The state bucket as bootstrap left it: versioning with every version
      kept, SSE-KMS, public access blocked, ACLs disabled, TLS-only policy.

  moto_checks.py drop-tls-policy --endpoint URL --bucket NAME
      Removes the TLS-only bucket policy again, in the emulator only: moto
      evaluates a Deny with a condition it cannot check (aws:SecureTransport)
      as a plain Deny, so every object request over its plain-HTTP endpoint
      would be refused and no backend could use the bucket.

  moto_checks.py deployed --endpoint URL --state-bucket NAME --shared OUT.json
                          --env dev=OUT.json [--env prod=OUT.json]
      Remote state objects, registry, roles, policies and parameters, compared
      with the outputs Terraform reported (terraform output -json).
"""

from __future__ import annotations

import argparse
import json
import sys

import boto3

REGION = "eu-west-1"


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def expect(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
            print(f"  ok   {what}")
        else:
            self.failed.append(what)
            print(f"  FAIL {what}")

    def done(self) -> int:
        print(f"  {self.passed} passed, {len(self.failed)} failed")
        return 1 if self.failed else 0


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


def bucket_hardening(c: Checks, s3, bucket: str, expires_old_versions: bool) -> None:
    c.expect(s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", f"{bucket}: versioning enabled")
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    c.expect([r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == ["aws:kms"],
             f"{bucket}: default encryption SSE-KMS")
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    c.expect(all(pab.get(k) for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")),
             f"{bucket}: every public access block setting on")
    owner = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    c.expect([r["ObjectOwnership"] for r in owner] == ["BucketOwnerEnforced"], f"{bucket}: ACLs disabled")
    try:
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchLifecycleConfiguration":
            raise
        lifecycle = []
    expiring = any("NoncurrentVersionExpiration" in r and r["Status"] == "Enabled" for r in lifecycle)
    if expires_old_versions:
        c.expect(expiring, f"{bucket}: old versions expire")
    else:
        c.expect(not expiring, f"{bucket}: every version is kept (no expiry rule)")
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    c.expect(any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                 for s in policy["Statement"]), f"{bucket}: policy denies requests without TLS")


def cmd_state_bucket(args) -> int:
    c = Checks()
    bucket_hardening(c, client("s3", args.endpoint), args.bucket, expires_old_versions=False)
    return c.done()


def cmd_drop_tls_policy(args) -> int:
    client("s3", args.endpoint).delete_bucket_policy(Bucket=args.bucket)
    print(f"  emulator only: removed the TLS-only policy of {args.bucket} (moto treats its conditional Deny as unconditional)")
    return 0


def outputs(path: str) -> dict:
    return {k: v["value"] for k, v in json.load(open(path)).items()}


def statement_subjects(trust: dict) -> list[str]:
    subs = []
    for st in trust["Statement"]:
        for op in ("StringEquals", "StringLike"):
            for k, v in st.get("Condition", {}).get(op, {}).items():
                if k.endswith(":sub"):
                    subs += v if isinstance(v, list) else [v]
    return subs


def cmd_deployed(args) -> int:
    c = Checks()
    ep = args.endpoint
    s3, ecr, iam, ssm = (client(s, ep) for s in ("s3", "ecr", "iam", "ssm"))
    shared = outputs(args.shared)
    envs = dict(e.split("=", 1) for e in args.env)

    # Remote state: one object per root, no lock left behind.
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=args.state_bucket).get("Contents", [])}
    for key in ["shared/terraform.tfstate"] + [f"{e}/terraform.tfstate" for e in envs]:
        c.expect(key in keys, f"state object s3://{args.state_bucket}/{key} exists")
    c.expect(not any(k.endswith(".tflock") for k in keys), "no state lock left after apply")

    # Registry.
    for image, url in shared["ecr_repository_urls"].items():
        name = f"kantox-challenge/{image}"
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        c.expect(repo["repositoryUri"] == url, f"{name}: URL matches the output")
        c.expect(repo["imageTagMutability"] == "IMMUTABLE", f"{name}: immutable tags")
        c.expect(repo["imageScanningConfiguration"]["scanOnPush"], f"{name}: scan on push")
        rules = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])["rules"]
        first = min(rules, key=lambda r: r["rulePriority"])
        c.expect(first["selection"].get("tagPatternList") == ["v*"], f"{name}: first lifecycle rule shields v* tags")
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    c.expect(shared["github_oidc_provider_arn"] in providers, "GitHub OIDC provider exists")
    c.expect(iam.list_users()["Users"] == [], "no IAM user (no static keys by default)")

    expected_subject = {
        "dev": "repo:{repo}:ref:refs/heads/main",
        "prod": "repo:{repo}:environment:prod",
    }
    for env, path in envs.items():
        out = outputs(path)
        # CI role.
        role = iam.get_role(RoleName=f"kantox-challenge-{env}-ci")["Role"]
        c.expect(role["Arn"] == out["ci_role_arn"], f"{env}: CI role ARN matches the output")
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        subs = statement_subjects(trust)
        repo = out["ci_trust_subject"].split(":")[1]
        c.expect(subs == [expected_subject[env].format(repo=repo)], f"{env}: CI role trusts exactly {subs}")
        c.expect(not any("*" in s for s in subs), f"{env}: no wildcard subject")
        # Pod role.
        pod = iam.get_role(RoleName=f"kantox-challenge-{env}-auxiliary-service")["Role"]
        c.expect(pod["Arn"] == out["auxiliary_service_role_arn"], f"{env}: pod role ARN matches the output")
        ptrust = pod["AssumeRolePolicyDocument"]
        ptrust = json.loads(ptrust) if isinstance(ptrust, str) else ptrust
        c.expect(statement_subjects(ptrust) == [f"system:serviceaccount:{env}:auxiliary-service"],
                 f"{env}: pod role trusts only {env}/auxiliary-service")
        doc = iam.get_role_policy(RoleName=pod["RoleName"], PolicyName="auxiliary-service")["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        c.expect(doc == json.loads(out["auxiliary_service_policy"]), f"{env}: pod policy in IAM equals the planned one")
        # Parameters.
        names = []
        for page in ssm.get_paginator("describe_parameters").paginate(
                ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [out["parameter_prefix"]]}]):
            names += [p for p in page["Parameters"]]
        c.expect(sorted(p["Name"] for p in names) == out["parameter_names"],
                 f"{env}: parameters under {out['parameter_prefix']} are exactly {out['parameter_names']}")
        secure = [p for p in names if p["Type"] == "SecureString"]
        c.expect(bool(secure) and all(p.get("KeyId") == out["parameters_kms_key_arn"] for p in secure),
                 f"{env}: SecureString parameters use the environment's KMS key")
        # Application bucket.
        bucket_hardening(c, s3, out["bucket_name"], expires_old_versions=True)
    return c.done()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("state-bucket", "drop-tls-policy"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True)
        p.add_argument("--bucket", required=True)
    p = sub.add_parser("deployed")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--state-bucket", required=True)
    p.add_argument("--shared", required=True)
    p.add_argument("--env", action="append", required=True)
    args = ap.parse_args()
    return {"state-bucket": cmd_state_bucket, "drop-tls-policy": cmd_drop_tls_policy,
            "deployed": cmd_deployed}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
