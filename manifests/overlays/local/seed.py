"""Seed the in-cluster moto with the demo data the worker serves.

Idempotent: creating what exists is not an error, so the Job can run again
after a moto restart. Waits for moto to answer before writing.
"""
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

PREFIX = os.environ["PARAMETER_PREFIX"].rstrip("/")
BUCKET = os.environ["BUCKET"]
REGION = os.environ.get("AWS_REGION", "eu-west-1")

PARAMETERS = [
    ("param1", "String", "value-1"),
    ("param2", "String", "value-2"),
    ("feature/flags", "StringList", "search,cache,metrics"),
    ("database/password", "SecureString", "not-a-real-password"),
] + [(f"extra/param{i:02d}", "String", f"extra-value-{i}") for i in range(1, 13)]


def wait_for_moto(s3, deadline_s=120):
    start = time.monotonic()
    while True:
        try:
            s3.list_buckets()
            return
        except EndpointConnectionError as err:
            if time.monotonic() - start > deadline_s:
                sys.exit(f"moto not reachable: {err}")
            time.sleep(2)


def main():
    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    wait_for_moto(s3)
    try:
        s3.create_bucket(
            Bucket=BUCKET,
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    for name, kind, value in PARAMETERS:
        ssm.put_parameter(Name=f"{PREFIX}/{name}", Type=kind, Value=value, Overwrite=True)
    count = 0
    for page in ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [PREFIX + "/"]}]
    ):
        count += len(page["Parameters"])
    print(f"seeded bucket {BUCKET} and {count} parameters under {PREFIX}/")
    if count < len(PARAMETERS):
        sys.exit(f"expected {len(PARAMETERS)} parameters, found {count}")


if __name__ == "__main__":
    main()
