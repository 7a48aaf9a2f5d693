#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of moto, for the worker's AWS calls.

    aws_proxy.py --upstream http://127.0.0.1:MOTO_PORT

Listens on a free port of 127.0.0.1 and prints ``listening http://127.0.0.1:PORT``.
Every request is forwarded to moto, except SSM calls (``X-Amz-Target:
AmazonSSM.*``) while a fault is set:

    throttle  400 {"__type": "ThrottlingException"}
    error     500 {"__type": "InternalServerError"}
    hang      reads the request, never answers (until the client gives up)

``POST /__fault/MODE`` sets the fault (``pass`` clears it); ``GET /__fault``
answers ``{"mode": ..., "ssm_attempts": N, "ssm_by_target": {...}}``: every
SSM request seen, faulted or not, in all and by operation (the
``X-Amz-Target`` value, e.g. ``AmazonSSM.GetParameter``). The fault tests
inject faults with it; the scale-out simulation (``scripts/scale/``) counts
SSM calls with it. Stops when its standard input closes.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {
    "throttle": (400, {"__type": "ThrottlingException", "message": "Rate exceeded"}),
    "error": (500, {"__type": "InternalServerError", "message": "Internal error"}),
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class State:
    lock = threading.Lock()
    mode = "pass"
    ssm_attempts = 0
    ssm_by_target: dict = {}
    upstream = ("127.0.0.1", 0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent SDK connections


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):  # quiet
        pass

    def reply(self, status, body, content_type="application/x-amz-json-1.1"):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def control(self):
        if self.command == "POST":
            mode = self.path.rsplit("/", 1)[-1]
            if mode not in ("pass", "hang", *FAULTS):
                return self.reply(400, {"error": f"unknown mode {mode}"}, "application/json")
            with State.lock:
                State.mode = mode
        with State.lock:
            self.reply(200, {"mode": State.mode, "ssm_attempts": State.ssm_attempts,
                             "ssm_by_target": dict(State.ssm_by_target)}, "application/json")

    def proxy(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        if target.startswith("AmazonSSM."):
            with State.lock:
                State.ssm_attempts += 1
                State.ssm_by_target[target] = State.ssm_by_target.get(target, 0) + 1
                mode = State.mode
            if mode in FAULTS:
                return self.reply(*FAULTS[mode])
            if mode == "hang":
                time.sleep(60)
                self.close_connection = True
                return None
        conn = http.client.HTTPConnection(*State.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return None

    def handle_any(self):
        if self.path.startswith("/__fault"):
            return self.control()
        return self.proxy()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    up = urllib.parse.urlsplit(args.upstream)
    State.upstream = (up.hostname, up.port)
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
