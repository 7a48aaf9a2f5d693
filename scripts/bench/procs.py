"""Helpers shared by the bench (scripts/bench/bench.py) and the scale-out
simulation (scripts/scale/scale.py): the processes they start, free ports,
Prometheus text and HTTP/1.1 answers read off a socket."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ports import free_port  # noqa: E402,F401  (re-exported for bench and scale)


class Procs:
    """Every process started, each with its output in WORKDIR/NAME.log, so
    that all of them can be stopped however the run ends."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def log_path(self, name):
        return os.path.join(self.workdir, f"{name}.log")

    def start(self, argv, name, env=None, stdin=subprocess.DEVNULL):
        with open(self.log_path(name), "ab") as logf:
            p = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=stdin)
        self.started.append(p)
        return p

    def listening_port(self, p, name):
        """The port of a helper that prints `listening http://127.0.0.1:PORT`."""
        path = self.log_path(name)
        for _ in range(600):
            with open(path, encoding="utf-8", errors="replace") as f:
                m = re.search(r"^listening http://127.0.0.1:(\d+)", f.read(), re.M)
            if m:
                return int(m.group(1))
            if p.poll() is not None:
                raise SystemExit(f"{name} exited; see {path}")
            time.sleep(0.1)
        raise SystemExit(f"{name} did not start")

    def stop_all(self):
        for p in self.started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.started:
            stop(p, grace=3)


def stop(p, grace=5):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def metric_sum(text, name, **labels):
    """Sum of the samples of one metric whose labels include `labels`, in
    Prometheus text format; 0 when there is none."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def read_response(f):
    """One HTTP/1.1 answer from a buffered socket file: (status, headers);
    the body (Content-Length) is read and dropped."""
    status = f.readline()
    if not status:
        raise ConnectionError("connection closed")
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    f.read(int(headers.get("content-length", "0")))
    return int(status.split()[1]), headers
