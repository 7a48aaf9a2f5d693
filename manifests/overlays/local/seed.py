"""Seed the in-cluster moto with the demo data the worker serves.

The data is demo-data.json, the file `make run` seeds too (scripts/demo-data.json
links to it), so the README's examples answer the same on both. It must be
next to this script (the Job mounts both from one ConfigMap) or named by
DEMO_DATA. Its prefix must be the worker's PARAMETER_PREFIX.

Idempotent: creating what exists is not an error, so the Job can run again
after a moto restart. Waits for moto to answer before writing.
"""
import json
import os
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

DATA_FILE = os.environ.get("DEMO_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo-data.json"))


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
    with open(DATA_FILE, encoding="utf-8") as f:
        data = json.load(f)
    prefix = data["prefix"].rstrip("/")
    expected_prefix = os.environ.get("PARAMETER_PREFIX", prefix).rstrip("/")
    if prefix != expected_prefix:
        sys.exit(f"{DATA_FILE} seeds {prefix}, but the worker reads PARAMETER_PREFIX={expected_prefix}")
    region = data["region"]
    s3 = boto3.client("s3", region_name=region)
    ssm = boto3.client("ssm", region_name=region)
    wait_for_moto(s3)
    for bucket in data["buckets"]:
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    for p in data["parameters"]:
        ssm.put_parameter(Name=p["name"], Type=p["type"], Value=p["value"], Overwrite=True)
    count = 0
    for page in ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [prefix + "/"]}]
    ):
        count += len(page["Parameters"])
    under = sum(1 for p in data["parameters"] if not p.get("outside_prefix"))
    print(f"seeded {len(data['buckets'])} buckets and {count} parameters under {prefix}/ "
          f"(plus {len(data['parameters']) - under} outside it) from {os.path.basename(DATA_FILE)}")
    if count < under:
        sys.exit(f"expected {under} parameters under {prefix}/, found {count}")


if __name__ == "__main__":
    main()
