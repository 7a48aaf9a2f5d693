#!/usr/bin/env python3
"""Scale-out simulation: SSM calls per second against the number of edge pods.

    scale.py --bin DIR --out DIR [--edges 1,2,4,8] [--seconds 40] [--ttl 10] [--rate 100]

On loopback: moto behind a counting proxy (scripts/faults/aws_proxy.py,
which counts SSM calls by X-Amz-Target), W = 4 workers on 127.0.0.2-5 (one
port) behind ONE host name, and E edges. Each edge runs in a mount namespace
of its own where /etc/hosts is a temporary file giving that name the four
addresses (`unshare -m`, or `unshare -rm` when not root). A Zipf-distributed
stream of requests over --keys parameters (s = --zipf-s) is spread over the
edges at a constant rate for a bounded time.

Configurations, each on fresh processes (cold caches) with the same request
sequence:

  before  the previous release's arrangement: each edge pod caches on its own
          (CACHE_TTL_SECONDS=T) and the workers do not cache
          (CACHE_TTL_SECONDS=0: one SSM call per request reaching them, never
          shared). Each edge is given one worker address, round-robin (with
          no worker cache, which worker answers a miss does not change the
          number of SSM calls).
  after   keyed routing (every edge sees the four addresses behind the name)
          and the worker cache (CACHE_TTL_SECONDS=T on both).
  kill    `after` at the largest E with one worker SIGKILLed (by PID) half-way
          through the run, half a TTL after a refresh of the hot keys.

The ideal is the number of distinct keys requested in each TTL window
(windows of T seconds from the start of the load), summed, over the duration.
Writes scale.json into --out; scripts/scale/report.py turns it into the
table, the plot and the section for docs/benchmarks.md.
"""
import argparse
import asyncio
import bisect
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
from procs import Procs, free_port, metric_sum, stop  # noqa: E402
PYTHON = os.path.join(ROOT, ".tools/venv/bin/python")
NAME = "aux-worker.scale.test"  # .test is reserved for testing (RFC 2606)
WORKER_ADDRS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
PREFIX = "/scale-sim"
A = None
PROCS = None  # procs.Procs, once the work directory exists


def log(msg):
    print(f"[scale] {msg}", flush=True)


def load1():
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------- processes

def start(argv, name, env=None, stdin=subprocess.DEVNULL):
    return PROCS.start(argv, name, env=env, stdin=stdin)


def http_get(host, port, path, timeout=5):
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def wait_ready(host, port, proc, name, tries=500):
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}); see {A.workdir}/{name}.log")
        try:
            if http_get(host, port, "/readyz", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{name} not ready at {host}:{port}")


def metric(host, port, name, **labels):
    _, body = http_get(host, port, "/metrics")
    return metric_sum(body.decode(), name, **labels)


def port_free_everywhere(hosts):
    """One port number that can be bound on every one of hosts."""
    for _ in range(100):
        port = free_port(hosts[0])
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise SystemExit(f"no common free port on {hosts}")


# ----------------------------------------------------------------- AWS side

def moto_and_proxy():
    moto = start([PYTHON, os.path.join(ROOT, "scripts/moto_server.py"), "--port", "0", "--watch-stdin"], "moto",
                 stdin=subprocess.PIPE)
    moto_port = PROCS.listening_port(moto, "moto")
    seed(moto_port)
    proxy = start([PYTHON, os.path.join(ROOT, "scripts/faults/aws_proxy.py"), "--upstream",
                   f"http://127.0.0.1:{moto_port}"], "aws-proxy", stdin=subprocess.PIPE)
    return moto_port, PROCS.listening_port(proxy, "aws-proxy")


def seed(moto_port):
    import boto3

    t0 = time.monotonic()
    ssm = boto3.client("ssm", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="eu-west-1",
                       aws_access_key_id="test", aws_secret_access_key="test")

    def put(i):
        ssm.put_parameter(Name=f"{PREFIX}/{key(i)}", Value=f"value-{i}", Type="String", Overwrite=True)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(A.keys)))
    log(f"seeded {A.keys} parameters under {PREFIX} in {time.monotonic() - t0:.1f} s (straight to moto, not counted)")


def ssm_counts(proxy_port):
    _, body = http_get("127.0.0.1", proxy_port, "/__fault")
    return json.loads(body)


def get_parameter_calls(proxy_port):
    return ssm_counts(proxy_port).get("ssm_by_target", {}).get("AmazonSSM.GetParameter", 0)


# ---------------------------------------------------------------- namespace

def hosts_file():
    path = os.path.join(A.workdir, "hosts")
    with open("/etc/hosts", encoding="utf-8") as f:
        base = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(base.rstrip("\n") + "\n# scale-out simulation: four workers behind one name\n")
        for addr in WORKER_ADDRS:
            f.write(f"{addr} {NAME}\n")
    return path


def namespace_wrap(hosts):
    """argv prefix running a command with `hosts` bind-mounted on /etc/hosts in
    a private mount namespace; proven with getent before any edge starts."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    tried = []
    for flags in (["-m"], ["-rm"]) if os.geteuid() == 0 else (["-rm"],):
        wrap = ["unshare", *flags, "sh", "-c", script, hosts]
        r = subprocess.run(wrap + ["getent", "ahostsv4", NAME], capture_output=True, text=True)
        got = sorted({line.split()[0] for line in r.stdout.splitlines() if line.strip()})
        if r.returncode == 0 and got == WORKER_ADDRS:
            log(f"namespace: `unshare {' '.join(flags)}` + bind-mounted hosts file resolves {NAME} to {', '.join(got)}")
            return wrap
        tried.append(f"unshare {' '.join(flags)}: exit {r.returncode}, {got or r.stderr.strip()}")
    raise SystemExit("cannot give the edges a hosts file of their own (needed to put four worker addresses "
                     f"behind one name): {'; '.join(tried)}. Run as root, or where unprivileged user "
                     "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1).")


# ------------------------------------------------------------------ services

def start_workers(proxy_port, ttl, tag):
    port = admin = port_free_everywhere(WORKER_ADDRS)
    while admin == port:
        admin = port_free_everywhere(WORKER_ADDRS)
    workers = []
    for i, addr in enumerate(WORKER_ADDRS):
        env = dict(os.environ, LISTEN_ADDR=f"{addr}:{port}", ADMIN_ADDR=f"{addr}:{admin}",
                   SERVICE_VERSION="0.1.0-scale", PARAMETER_PREFIX=PREFIX,
                   AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}", AWS_REGION="eu-west-1",
                   AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true",
                   CACHE_TTL_SECONDS=str(ttl), MAX_CONCURRENT_REQUESTS="4096", SHUTDOWN_DRAIN_SECONDS="0",
                   LOG_FORMAT="json", RUST_LOG="warn")
        p = start([os.path.join(A.bin, "aux-worker")], f"{tag}-worker-{i}", env=env)
        workers.append({"proc": p, "addr": addr, "port": port, "admin": admin})
    for i, w in enumerate(workers):
        wait_ready(w["addr"], w["admin"], w["proc"], f"{tag}-worker-{i}")
    return workers


def start_edges(n, upstream_for, wrap_for, ttl, tag):
    edges = []
    for i in range(n):
        port, admin = free_port(), free_port()
        env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
                   AUXILIARY_SERVICE_URL=upstream_for(i), SERVICE_VERSION="0.1.0-scale",
                   CACHE_TTL_SECONDS=str(ttl), UPSTREAM_RESOLVE_INTERVAL_SECONDS="1",
                   CLIENT_MISS_RATE_PER_SECOND="0", SHUTDOWN_DRAIN_SECONDS="0", SHUTDOWN_TIMEOUT_SECONDS="2",
                   LOG_FORMAT="json", RUST_LOG="warn")
        p = start(wrap_for(i) + [os.path.join(A.bin, "edge")], f"{tag}-edge-{i}", env=env)
        edges.append({"proc": p, "port": port, "admin": admin})
    for i, e in enumerate(edges):
        wait_ready("127.0.0.1", e["admin"], e["proc"], f"{tag}-edge-{i}")
    time.sleep(1.5)  # one more resolution round (UPSTREAM_RESOLVE_INTERVAL_SECONDS=1)
    return edges


# ---------------------------------------------------------------------- load

def key(i):
    return f"p{i + 1:04d}"


def zipf_sequence(n):
    """n key indexes, Zipf(s) over A.keys ranks, the same for every configuration."""
    weights = [1 / (k ** A.zipf_s) for k in range(1, A.keys + 1)]
    cum = list(itertools.accumulate(weights))
    rnd = random.Random(A.seed)
    ranks = list(range(A.keys))
    rnd.shuffle(ranks)  # which name is hot does not matter; spread them over the hash ring
    return [ranks[min(bisect.bisect_left(cum, rnd.random() * cum[-1]), A.keys - 1)] for _ in range(n)]


async def read_response(reader):
    status = await reader.readline()
    if not status:
        raise ConnectionError("connection closed")
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status.split()[1]), headers


async def drive(edges, sequence, proxy_port, kill=None):
    """Sends sequence[i] to edge i % E at A.rate per second; samples the SSM
    counter every second; kill = (seconds, callable) runs once at that time."""
    loop = asyncio.get_running_loop()
    queues = [asyncio.Queue() for _ in edges]
    records = []
    timeline = []
    t_start = loop.time()

    async def connection(edge_i, port):
        reader = writer = None
        q = queues[edge_i]
        while True:
            item = await q.get()
            if item is None:
                break
            scheduled, k = item
            sent = loop.time()
            rec = {"t": round(sent - t_start, 4), "key": k, "edge": edge_i, "status": None, "cache": None}
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET /parameter/{key(k)} HTTP/1.1\r\nHost: edge\r\n\r\n".encode())
                st, hdr = await asyncio.wait_for(read_response(reader), 15)
                rec.update(status=st, cache=hdr.get("x-cache"))
                if hdr.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                rec["error"] = type(e).__name__
                if writer is not None:
                    writer.close()
                writer = None
            rec["latency_ms"] = round((loop.time() - scheduled) * 1000, 2)
            records.append(rec)
        if writer is not None:
            writer.close()

    async def sampler():
        while True:
            try:
                calls = await loop.run_in_executor(None, get_parameter_calls, proxy_port)
                timeline.append((round(loop.time() - t_start, 2), calls))
            except OSError as e:
                log(f"could not read the SSM counter: {e}")
            await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(connection(i, e["port"])) for i, e in enumerate(edges)
             for _ in range(A.connections_per_edge)]
    sampling = asyncio.create_task(sampler())
    killed_at = None
    for i, k in enumerate(sequence):
        at = t_start + i / A.rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if kill and killed_at is None and at - t_start >= kill[0]:
            killed_at = round(loop.time() - t_start, 2)
            kill[1]()
        queues[i % len(edges)].put_nowait((at, k))
    for q in queues:
        for _ in range(A.connections_per_edge):
            q.put_nowait(None)
    await asyncio.gather(*tasks)
    sampling.cancel()
    return records, timeline, killed_at


def ideal(records, ttl):
    """Distinct keys requested in each TTL window from the start, summed, and
    the number of windows."""
    windows = {}
    for r in records:
        windows.setdefault(int(r["t"] // ttl), set()).add(r["key"])
    distinct = sum(len(s) for s in windows.values())
    return distinct, len(windows)


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def run_config(mode, n_edges, proxy_port, wrap, sequence, kill=False):
    tag = f"{mode}{'-kill' if kill else ''}-e{n_edges}"
    ttl = A.ttl
    workers = start_workers(proxy_port, 0 if mode == "before" else ttl, tag)
    port = workers[0]["port"]
    if mode == "before":
        edges = start_edges(n_edges, lambda i: f"http://{WORKER_ADDRS[i % len(WORKER_ADDRS)]}:{port}",
                            lambda i: [], ttl, tag)
    else:
        edges = start_edges(n_edges, lambda i: f"http://{NAME}:{port}", lambda i: wrap, ttl, tag)
    victim = workers[1]
    kill_spec = None
    if kill:
        def do_kill():
            os.kill(victim["proc"].pid, signal.SIGKILL)
            log(f"{tag}: SIGKILL worker {victim['addr']} (pid {victim['proc'].pid})")
        # Half-way, and half a TTL after the hot keys' refresh: not at the
        # moment their refresh was due anyway, which would hide the cost.
        at = (A.seconds / 2 // ttl) * ttl + ttl / 2
        kill_spec = (min(at, A.seconds * 0.75), do_kill)
    load_before = load1()
    calls0 = get_parameter_calls(proxy_port)
    t0 = time.monotonic()
    records, timeline, killed_at = asyncio.run(drive(edges, sequence, proxy_port, kill_spec))
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # answers in flight at the proxy
    calls = get_parameter_calls(proxy_port) - calls0
    timeline = [(t, c - calls0) for t, c in timeline]
    distinct, windows = ideal(records, ttl)
    errors = [r for r in records if r["status"] != 200]
    caches = {}
    for r in records:
        caches[r["cache"] or "none"] = caches.get(r["cache"] or "none", 0) + 1
    fallbacks = sum(metric("127.0.0.1", e["admin"], "edge_upstream_keyed_fallbacks_total") for e in edges)
    worker_calls = {}
    for w in workers:
        if w["proc"].poll() is None:
            worker_calls[w["addr"]] = metric(w["addr"], w["admin"], "aux_aws_calls_total", operation="GetParameter")
    for e in edges:
        stop(e["proc"])
    for w in workers:
        stop(w["proc"])
    latencies = [r["latency_ms"] for r in records if r["status"] == 200]
    row = {
        "mode": mode, "kill": kill, "edges": n_edges, "workers": len(workers), "ttl_seconds": ttl,
        "seconds": A.seconds, "elapsed_seconds": round(elapsed, 2), "rate": A.rate, "requests": len(records),
        "ssm_get_parameter_calls": calls, "ssm_calls_per_second": round(calls / A.seconds, 2),
        "ideal_calls": distinct, "ideal_windows": windows, "ideal_per_second": round(distinct / A.seconds, 2),
        "ratio_to_ideal": round(calls / distinct, 3) if distinct else None,
        "client_errors": len(errors),
        "client_error_kinds": sorted({str(r.get("status") or r.get("error")) for r in errors}),
        "x_cache": caches, "keyed_fallbacks": fallbacks, "worker_get_parameter_calls": worker_calls,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "killed_at_seconds": killed_at, "timeline": timeline,
        "loadavg_before": load_before, "loadavg_after": load1(),
    }
    log(f"{tag:14} {len(records)} requests, {calls} GetParameter ({row['ssm_calls_per_second']}/s), ideal "
        f"{distinct} ({row['ideal_per_second']}/s), ratio {row['ratio_to_ideal']}, client errors {len(errors)} "
        f"{row['client_error_kinds'] or ''}, x-cache {caches}, keyed fallbacks {fallbacks:.0f}, "
        f"load {load_before}->{row['loadavg_after']}")
    return row


def main():
    global A, PROCS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="directory of the release edge and aux-worker")
    ap.add_argument("--out", required=True)
    ap.add_argument("--edges", default="1,2,4,8")
    ap.add_argument("--seconds", type=float, default=40, help="load duration per configuration")
    ap.add_argument("--ttl", type=int, default=10, help="CACHE_TTL_SECONDS of edges and workers")
    ap.add_argument("--rate", type=float, default=100, help="requests per second, over all edges")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--zipf-s", type=float, default=1.1)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--connections-per-edge", type=int, default=4)
    ap.add_argument("--no-kill", action="store_true", help="skip the worker-killed run")
    A = ap.parse_args()
    A.edge_counts = [int(x) for x in A.edges.split(",") if x.strip()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("unshare"):
        raise SystemExit("unshare (util-linux) is required")
    A.workdir = tempfile.mkdtemp(prefix="scale.")
    PROCS = Procs(A.workdir)
    log(f"work files in {A.workdir}")
    results = {"machine": {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "kernel": platform.release(),
        "cpus": os.cpu_count(), "loadavg_before": load1(),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()},
        "params": {"edges": A.edge_counts, "workers": len(WORKER_ADDRS), "seconds": A.seconds, "ttl": A.ttl,
                   "rate": A.rate, "keys": A.keys, "zipf_s": A.zipf_s, "seed": A.seed, "name": NAME,
                   "worker_addresses": WORKER_ADDRS, "connections_per_edge": A.connections_per_edge},
        "runs": []}
    try:
        wrap = namespace_wrap(hosts_file())
        _, proxy_port = moto_and_proxy()
        sequence = zipf_sequence(int(A.seconds * A.rate))
        for n in A.edge_counts:
            for mode in ("before", "after"):
                results["runs"].append(run_config(mode, n, proxy_port, wrap, sequence))
        if not A.no_kill:
            results["runs"].append(run_config("after", max(A.edge_counts), proxy_port, wrap, sequence, kill=True))
    finally:
        PROCS.stop_all()
    results["machine"]["loadavg_after"] = load1()
    os.makedirs(A.out, exist_ok=True)
    path = os.path.join(A.out, "scale.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
