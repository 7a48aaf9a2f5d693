"""The local overlay serves the demo data `make run` serves.

    demo_data.py rendered RENDER.yaml DATA.json   the rendered moto-seed ConfigMap carries
                                                  DATA.json unchanged, and the seed Job and
                                                  the worker use its prefix
    demo_data.py seeded ENDPOINT DATA.json        moto at ENDPOINT holds every bucket and
                                                  parameter of DATA.json (type and value)

DATA.json is scripts/demo-data.json, the file the run command seeds.
"""
import json
import sys

import yaml


def rendered(render, data_file):
    text = open(data_file, encoding="utf-8").read()
    data = json.loads(text)
    docs = [d for d in yaml.safe_load_all(open(render, encoding="utf-8")) if d]
    problems = []
    seed = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("moto-seed")]
    if len(seed) != 1:
        return [f"expected one moto-seed ConfigMap, found {len(seed)}"]
    shipped = (seed[0].get("data") or {}).get("demo-data.json")
    if shipped is None:
        problems.append("the moto-seed ConfigMap has no demo-data.json")
    elif json.loads(shipped) != data:
        problems.append(f"the moto-seed ConfigMap's demo-data.json differs from {data_file}")
    job = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "moto-seed"]
    env = {e["name"]: e.get("value") for j in job for c in j["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    if env.get("PARAMETER_PREFIX") != data["prefix"]:
        problems.append(f"the seed Job's PARAMETER_PREFIX {env.get('PARAMETER_PREFIX')} is not the data's {data['prefix']}")
    worker = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("auxiliary-service-config")]
    prefixes = {(w.get("data") or {}).get("PARAMETER_PREFIX") for w in worker}
    if prefixes != {data["prefix"]}:
        problems.append(f"the worker's PARAMETER_PREFIX {prefixes} is not the data's {data['prefix']}")
    return problems


def seeded(endpoint, data_file):
    import boto3

    data = json.load(open(data_file, encoding="utf-8"))
    kw = dict(endpoint_url=endpoint, region_name=data["region"], aws_access_key_id="local-emulator",
              aws_secret_access_key="local-emulator")
    problems = []
    buckets = {b["Name"] for b in boto3.client("s3", **kw).list_buckets()["Buckets"]}
    missing = [b for b in data["buckets"] if b not in buckets]
    if missing:
        problems.append(f"buckets missing: {missing}")
    ssm = boto3.client("ssm", **kw)
    for p in data["parameters"]:
        try:
            got = ssm.get_parameter(Name=p["name"], WithDecryption=True)["Parameter"]
        except ssm.exceptions.ParameterNotFound:
            problems.append(f"parameter missing: {p['name']}")
            continue
        if (got["Type"], got["Value"]) != (p["type"], p["value"]):
            problems.append(f"{p['name']}: {got['Type']} {got['Value']!r}, expected {p['type']} {p['value']!r}")
    return problems


def main():
    mode, target, data_file = sys.argv[1:4]
    problems = rendered(target, data_file) if mode == "rendered" else seeded(target, data_file)
    for p in problems:
        print(f"  FAIL {p}")
    if not problems:
        what = "carries" if mode == "rendered" else "holds"
        print(f"  ok   {target} {what} the demo data of {data_file}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
