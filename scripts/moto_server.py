#!/usr/bin/env python3
"""Runs a real moto server on 127.0.0.1 and optionally seeds it with the demo data.

    moto_server.py [--port N] [--seed] [--watch-stdin]

Prints one line, ``listening http://127.0.0.1:PORT``, once the server answers
(and is seeded). ``--port 0`` picks a free port. With ``--watch-stdin`` the
server stops when its standard input closes, so a test process that started it
cannot leave it behind. Otherwise it stops on SIGTERM or SIGINT.
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "demo-data.json")


def seed(endpoint: str, data_file: str = DEMO) -> None:
    """Creates the demo buckets and parameters through the real AWS API."""
    import boto3

    with open(data_file, encoding="utf-8") as f:
        data = json.load(f)
    region = data["region"]
    kwargs = dict(
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3 = boto3.client("s3", **kwargs)
    for bucket in data["buckets"]:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    ssm = boto3.client("ssm", **kwargs)
    for p in data["parameters"]:
        ssm.put_parameter(Name=p["name"], Value=p["value"], Type=p["type"], Overwrite=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", action="store_true", help="create the demo buckets and parameters")
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log every request moto serves")
    args = parser.parse_args()
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    if args.seed:
        seed(endpoint)
    print(f"listening {endpoint}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.watch_stdin:
        def watch() -> None:
            sys.stdin.read()
            stop.set()
        threading.Thread(target=watch, daemon=True).start()
    stop.wait()
    # Exit at once: handler threads may still hold keep-alive connections of
    # clients that are stopping too, and there is no state worth saving.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
