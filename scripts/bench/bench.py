#!/usr/bin/env python3
"""The benchmark: the edge beside nginx, measured in one run on one machine.

    bench.py --bin DIR --nginx PATH --wrk PATH --out DIR [--seconds N] [--musl-edge PATH]

Servers under test are pinned to CPU 0, the load generator (wrk, one
thread) and helpers to CPU 1 (`taskset`). Every comparison is made in the
same run. Writes results.json and results.csv into --out; report.py turns
them into docs/benchmarks.md and the plot.

Scenarios (--only takes a comma-separated subset of these names):
  cache-hit      edge /parameter/param1 (warmed, x-cache: HIT), the same with
                 the static musl binary the image ships, nginx proxy_cache in
                 front of the worker (warmed HIT), and nginx `return 200` with
                 the edge's exact body (the one-core ceiling)
  cache-hit-logs the hit again with access logs on in both: the edge at
                 LOG_FORMAT=json RUST_LOG=info, stderr to a file; nginx
                 `access_log FILE` (combined format, unbuffered)
  proxied        edge /s3-buckets vs nginx proxy_pass to the same worker; the
                 worker's S3 is a canned nginx (fixed ListBuckets XML)
  proxied-canned the same with the worker replaced by a canned nginx; the
                 worker calls per client request are counted for both
  moto           edge /s3-buckets through the worker to moto vs moto alone
  memory         RSS idle and with 2,000 idle keep-alive connections, each
                 after one request on a cached key, plain HTTP and TLS, edge
                 and nginx; start-to-ready time; binary sizes
  instructions   user-space instructions per cache hit counted by callgrind
                 (edge glibc and musl, nginx proxy_cache), compared with the
                 budget in budget.json

Load hygiene: the one-minute load average is recorded before and after every
measurement. When it is above --max-load as the measurements start (after
waiting up to --settle-seconds for it to fall), the run stops with exit
status 3 unless --allow-busy is given, in which case the results say so and
the report marks every figure as unreliable. A run of the instruction counts
alone is not gated (callgrind counts do not depend on the load).
"""
import argparse
import http.client
import json
import os
import platform
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from procs import Procs, free_port, metric_sum, read_response, stop

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PREFIX = "/kantox-challenge/dev"
HIT_PATH = "/parameter/param1"
SERVER_CPU, LOAD_CPU = "0", "1"
SCENARIOS = ("cache-hit", "cache-hit-logs", "proxied", "proxied-canned", "moto", "memory", "instructions")
EXIT_BUSY = 3
# Scenarios whose figures do not depend on how busy the machine is.
LOAD_INDEPENDENT = {"instructions"}
A = None
PROCS = None  # procs.Procs, once the work directory exists
RESULTS = {"runs": [], "resources": {}, "memory": [], "instructions": {}, "machine": {}}


# ------------------------------------------------------------------ helpers

def log(msg):
    print(f"[bench] {msg}", flush=True)


def load1():
    return round(os.getloadavg()[0], 2)


def pinned(cpu, argv):
    return ["taskset", "-c", cpu, *argv]


def start(argv, name, env=None, stdin=subprocess.DEVNULL):
    return PROCS.start(argv, name, env=env, stdin=stdin)


def get(port, path, timeout=5, host="127.0.0.1", tls=None):
    if tls is None:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def wait_ok(port, path, proc, name, tries=600, tls=None):
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}); see {A.workdir}/{name}.log")
        try:
            if get(port, path, timeout=1, tls=tls)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{name} not ready at :{port}{path}")


def warm_hit(port, label, tls=None, header="x-cache"):
    """Two requests on the cached key; the second must be a HIT."""
    get(port, HIT_PATH, tls=tls)
    st, hdr, body = get(port, HIT_PATH, tls=tls)
    if st != 200 or hdr.get(header) != "HIT":
        raise SystemExit(f"{label}: {HIT_PATH} is not a cache HIT after warming: {st} {hdr}")
    return body


def metric(port, name, **labels):
    """Sum of the samples of one metric (matching labels) on an admin port."""
    st, _, body = get(port, "/metrics")
    if st != 200:
        raise SystemExit(f"/metrics on :{port} answered {st}")
    return metric_sum(body.decode(), name, **labels)


def stub_status(port):
    """nginx stub_status: active connections and the request counter."""
    _, _, body = get(port, "/__status")
    text = body.decode()
    active = int(re.search(r"Active connections:\s*(\d+)", text).group(1))
    accepts, handled, requests = (int(x) for x in re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)", text).groups())
    return {"active": active, "requests": requests}


def count_lines(path, needle):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if needle is None or needle in line:
                n += 1
    return n


def cpu_seconds(pid):
    """utime + stime of a process and its direct children, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", encoding="ascii") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def rss_kib(pid):
    """VmRSS of a process plus its direct children (nginx workers)."""
    total = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------- wrk

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return round(float(m.group(1)) * UNIT[m.group(2)], 3) if m else None


def wrk(url, connections, seconds):
    argv = pinned(LOAD_CPU, [A.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                             "--timeout", "5s", url])
    env = dict(os.environ, LD_LIBRARY_PATH=A.wrk_lib)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30).stdout
    res = {"raw": out}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        res[f"p{q}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def measure(scenario, label, pids, url, connections=None, probe=None, extra=None):
    """wrk against url; CPU time is summed over pids (the servers under test).

    probe, when given, returns a dict of counters; the measurement records
    how much each grew during the measured run (not the warm-up)."""
    connections = connections or A.connections
    wrk(url, connections, A.warmup)  # warm-up, not recorded
    load_before = load1()
    before = probe() if probe else {}
    c0 = sum(cpu_seconds(p) for p in pids)
    r = wrk(url, connections, A.seconds)
    cpu = sum(cpu_seconds(p) for p in pids) - c0
    if probe:
        time.sleep(0.5)  # let log writers and counters catch up
        after = probe()
        r["counters"] = {k: after[k] - before[k] for k in after}
    r.pop("raw")
    r.update(scenario=scenario, server=label, url=url.split("/", 3)[-1], connections=connections,
             seconds=A.seconds, cpu_seconds=round(cpu, 3), loadavg_before=load_before, loadavg_after=load1(),
             cpu_us_per_request=round(cpu / r["requests"] * 1e6, 1) if r["requests"] else None)
    r.update(extra or {})
    RESULTS["runs"].append(r)
    log(f"{scenario:14} {label:38} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
        f"cpu {r['cpu_us_per_request']} us/req  non-2xx {r['non_2xx']}  errors {r['socket_errors']}  "
        f"load {r['loadavg_before']}->{r['loadavg_after']}" + (f"  {r['counters']}" if probe else ""))
    return r


# ------------------------------------------------------------------ servers

def nginx(name, server_blocks, upstreams="", cpu=SERVER_CPU, master=True, wrap=None):
    d = os.path.join(A.workdir, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(os.path.join(HERE, "nginx.conf.in"), encoding="utf-8") as f:
        text = f.read()
    text = (text.replace("@DIR@", d).replace("@UPSTREAMS@", upstreams).replace("@SERVERS@", server_blocks)
            .replace("@MASTER@", "on" if master else "off"))
    with open(conf, "w", encoding="utf-8") as f:
        f.write(text)
    argv = [A.nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")]
    return start(pinned(cpu, (wrap or []) + argv), name)


PROXY = """proxy_pass http://worker;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
CACHE = PROXY + """
            proxy_cache api;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating;
            add_header x-cache $upstream_cache_status;"""


class Site:
    """One nginx: `location / { LOCATION }` on a free port (TLS when tls is
    a (cert, key) pair), a plain status port with stub_status at /__status,
    and an upstream `worker` when upstream_port is given."""

    def __init__(self, name, location, upstream_port=None, cpu=SERVER_CPU, tls=None, access_log=None,
                 master=True, wrap=None, ready_tries=600):
        self.name, self.port, self.status_port = name, free_port(), free_port()
        listen = f"listen 127.0.0.1:{self.port}" + (" ssl" if tls else "") + ";"
        if tls:
            listen += f"\n        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};"
        log_line = f"access_log {access_log};" if access_log else ""
        server = f"""
    server {{
        {listen}
        {log_line}
        location / {{
            {location}
        }}
    }}
    server {{
        listen 127.0.0.1:{self.status_port};
        location = /__status {{ stub_status; }}
    }}"""
        upstream = f"upstream worker {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}" if upstream_port else ""
        self.proc = nginx(name, server, upstream, cpu=cpu, master=master, wrap=wrap)
        wait_ok(self.status_port, "/__status", self.proc, name, tries=ready_tries)

    def status(self):
        return stub_status(self.status_port)


def moto():
    p = start(pinned(SERVER_CPU, [os.path.join(ROOT, ".tools/venv/bin/python"),
                                  os.path.join(ROOT, "scripts/moto_server.py"), "--port", "0", "--seed",
                                  "--watch-stdin"]), "moto", stdin=subprocess.PIPE)
    return p, PROCS.listening_port(p, "moto")


def worker_env(aws_port, port, admin, ttl="3600"):
    # CACHE_TTL_SECONDS: the worker's SSM cache; its max-age bounds the
    # edge's freshness, so the hit scenarios give it an hour.
    return dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
                SERVICE_VERSION="0.1.0-bench", PARAMETER_PREFIX=PREFIX,
                AWS_ENDPOINT_URL=f"http://127.0.0.1:{aws_port}", AWS_REGION="eu-west-1",
                AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true",
                MAX_CONCURRENT_REQUESTS="4096", CACHE_TTL_SECONDS=ttl, SHUTDOWN_DRAIN_SECONDS="0",
                LOG_FORMAT="json", RUST_LOG="warn")


def worker(aws_port, cpu, name="aux-worker", ttl="3600"):
    port, admin = free_port(), free_port()
    p = start(pinned(cpu, [os.path.join(A.bin, "aux-worker")]), name, env=worker_env(aws_port, port, admin, ttl))
    wait_ok(admin, "/readyz", p, name)
    return p, port, admin


def edge_env(upstream_port, port, admin, **extra):
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
               AUXILIARY_SERVICE_URL=f"http://127.0.0.1:{upstream_port}", SERVICE_VERSION="0.1.0-bench",
               CACHE_TTL_SECONDS="3600", SHUTDOWN_DRAIN_SECONDS="0", SHUTDOWN_TIMEOUT_SECONDS="2",
               LOG_FORMAT="json", RUST_LOG="warn",
               # One client address sends everything: no per-client miss limit.
               CLIENT_MISS_RATE_PER_SECOND="0",
               # 2,000+ held connections, and none closed while they idle.
               MAX_CONNECTIONS="100000", KEEPALIVE_TIMEOUT_SECONDS="3600")
    env.update(extra)
    return env


class Edge:
    def __init__(self, upstream_port, name="edge", binary=None, wrap=None, ready_tries=600, **extra):
        self.port, self.admin = free_port(), free_port()
        self.binary = binary or os.path.join(A.bin, "edge")
        if "TLS_LISTEN_ADDR" in extra:
            extra["TLS_LISTEN_ADDR"] = extra["TLS_LISTEN_ADDR"].replace("PORT", str(free_port()))
            self.tls_port = int(extra["TLS_LISTEN_ADDR"].rsplit(":", 1)[1])
        self.proc = start(pinned(SERVER_CPU, (wrap or []) + [self.binary]), name,
                          env=edge_env(upstream_port, self.port, self.admin, **extra))
        self.pid = self.proc.pid
        wait_ok(self.admin, "/readyz", self.proc, name, tries=ready_tries)

    def stop(self):
        stop(self.proc)


def location_return(body, content_type):
    # nginx single-quoted string: the bodies used here hold no quote or backslash.
    assert "'" not in body and "\\" not in body
    return f"default_type {content_type}; return 200 '{body}';"


def url(port, path=HIT_PATH):
    return f"http://127.0.0.1:{port}{path}"


# ---------------------------------------------------------------- scenarios

def scenario_cache_hit(moto_port):
    log("cache hit: edge (glibc, musl) vs nginx proxy_cache vs nginx return 200")
    w, wport, _ = worker(moto_port, LOAD_CPU)
    e = Edge(wport)
    body = warm_hit(e.port, "edge")
    measure("cache-hit", "edge (cache hit)", [e.pid], url(e.port))
    e.stop()

    if A.musl_edge:
        e = Edge(wport, name="edge-musl", binary=A.musl_edge)
        if warm_hit(e.port, "edge (musl)") != body:
            raise SystemExit("the musl edge's body differs from the glibc edge's")
        measure("cache-hit", "edge, static musl (as shipped)", [e.pid], url(e.port))
        e.stop()
    else:
        log("no --musl-edge given: the shipped binary is not measured")

    ng = Site("nginx-cache", CACHE, wport)
    nbody = warm_hit(ng.port, "nginx proxy_cache")
    RESULTS["bodies"] = {"edge": len(body), "nginx_cache": len(nbody)}
    measure("cache-hit", "nginx proxy_cache (hit)", [ng.proc.pid], url(ng.port))
    stop(ng.proc)

    ceil = Site("nginx-return", location_return(body.decode(), "application/json"))
    measure("cache-hit", "nginx return 200 (ceiling)", [ceil.proc.pid], url(ceil.port))
    stop(ceil.proc)
    stop(w)


def scenario_cache_hit_logs(moto_port):
    log("cache hit with access logs on: edge JSON at info to a file vs nginx access_log to a file")
    w, wport, _ = worker(moto_port, LOAD_CPU)
    e = Edge(wport, name="edge-logs", LOG_FORMAT="json", RUST_LOG="info")
    logfile = os.path.join(A.workdir, "edge-logs.log")  # the edge's stdout and stderr
    warm_hit(e.port, "edge (logs)")

    def edge_probe():
        return {"access_lines": count_lines(logfile, b'"target":"access"'),
                "dropped_lines": metric(e.admin, "edge_log_lines_dropped_total")}

    r = measure("cache-hit-logs", "edge, access log on", [e.pid], url(e.port), probe=edge_probe)
    r["log_lines_per_request"] = round(r["counters"]["access_lines"] / r["requests"], 3) if r["requests"] else None
    e.stop()

    access = os.path.join(A.workdir, "nginx-logs-access.log")
    ng = Site("nginx-cache-logs", CACHE, wport, access_log=access)
    warm_hit(ng.port, "nginx proxy_cache (logs)")
    r = measure("cache-hit-logs", "nginx proxy_cache, access_log on", [ng.proc.pid], url(ng.port),
                probe=lambda: {"access_lines": count_lines(access, b"GET ")})
    r["log_lines_per_request"] = round(r["counters"]["access_lines"] / r["requests"], 3) if r["requests"] else None
    stop(ng.proc)
    stop(w)


def canned_aws(moto_port):
    """nginx answering every request with moto's ListBuckets XML (helper, CPU 1)."""
    _, _, xml = get(moto_port, "/")
    return Site("nginx-canned-s3", location_return(xml.decode().replace("\n", ""), "application/xml"), cpu=LOAD_CPU)


def per_request(r, key):
    return round(r["counters"][key] / r["requests"], 3) if r.get("requests") else None


def scenario_proxied(aws_port):
    w, wport, wadmin = worker(aws_port, LOAD_CPU, name="aux-worker-canned")
    assert get(wport, "/s3-buckets")[0] == 200
    _, _, worker_body = get(wport, "/s3-buckets")
    if "proxied" in A.only:
        proxied_worker(w, wport, wadmin)
    stop(w)
    if "proxied-canned" in A.only:
        proxied_canned(worker_body)


def proxied_worker(w, wport, wadmin):
    log("proxied: edge /s3-buckets vs nginx proxy_pass, worker (CPU 1) on a canned S3 (CPU 1)")

    def worker_calls():
        return {"worker_calls": metric(wadmin, "aux_http_requests_total", route="/s3-buckets")}

    e = Edge(wport, name="edge-proxied")
    assert get(e.port, "/s3-buckets")[0] == 200
    r = measure("proxied", "edge /s3-buckets", [e.pid], url(e.port, "/s3-buckets"), probe=worker_calls)
    r["worker_calls_per_request"] = per_request(r, "worker_calls")
    e.stop()
    ng = Site("nginx-proxy", PROXY, wport)
    r = measure("proxied", "nginx proxy_pass /s3-buckets", [ng.proc.pid], url(ng.port, "/s3-buckets"),
                probe=worker_calls)
    r["worker_calls_per_request"] = per_request(r, "worker_calls")
    stop(ng.proc)
    measure("proxied", "worker alone /s3-buckets (reference)", [w.pid], url(wport, "/s3-buckets"))


def proxied_canned(worker_body):
    # The same comparison with the worker replaced by an nginx returning the
    # worker's exact answer (CPU 1): the proxies, not the worker, are the
    # bottleneck here. The edge shares one in-flight worker call among
    # concurrent /s3-buckets requests; nginx proxy_pass makes one per request:
    # the canned worker's request counter (stub_status) says how many.
    log("proxied, canned worker: edge vs nginx proxy_pass in front of a fixed answer")
    fake = Site("nginx-canned-worker", location_return(worker_body.decode(), "application/json"), cpu=LOAD_CPU)

    def canned_calls():
        return {"worker_calls": fake.status()["requests"]}

    def calls_per_request(r):
        # Each stub_status read counts itself: the second read adds one.
        r["counters"]["worker_calls"] -= 1
        r["worker_calls_per_request"] = per_request(r, "worker_calls")

    e = Edge(fake.port, name="edge-proxied-canned")
    assert get(e.port, "/s3-buckets")[0] == 200

    def edge_and_canned():
        c = canned_calls()
        c["edge_upstream_requests"] = metric(e.admin, "edge_upstream_requests_total", route="/s3-buckets")
        return c

    calls_per_request(measure("proxied-canned", "edge /s3-buckets", [e.pid], url(e.port, "/s3-buckets"),
                              probe=edge_and_canned))
    e.stop()
    ng = Site("nginx-proxy-canned", PROXY, fake.port)
    calls_per_request(measure("proxied-canned", "nginx proxy_pass /s3-buckets", [ng.proc.pid],
                              url(ng.port, "/s3-buckets"), probe=canned_calls))
    stop(ng.proc)
    stop(fake.proc)


def scenario_moto(moto_proc, moto_port):
    log("uncached through moto: edge -> worker -> moto vs moto alone (all on CPU 0)")
    conns = A.moto_connections
    measure("moto", "moto alone (ListBuckets)", [moto_proc.pid], f"http://127.0.0.1:{moto_port}/", conns)
    w, wport, wadmin = worker(moto_port, SERVER_CPU, name="aux-worker-moto")
    e = Edge(wport, name="edge-moto")
    # CPU here is the edge's and the worker's: our overhead beside moto's work.
    # The edge shares one in-flight worker call among concurrent /s3-buckets
    # requests: the worker's request counter says how many reached it.
    r = measure("moto", "edge -> worker -> moto /s3-buckets", [e.pid, w.pid], url(e.port, "/s3-buckets"), conns,
                probe=lambda: {"worker_calls": metric(wadmin, "aux_http_requests_total", route="/s3-buckets")})
    r["worker_calls_per_request"] = per_request(r, "worker_calls")
    e.stop()
    stop(w)


# ------------------------------------------------------------------- memory

def hold_connections(port, n, tls=None, header="x-cache"):
    """n keep-alive connections, each having made one request on the cached
    key (all must be HITs), left open and idle."""
    held = []
    req = f"GET {HIT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="127.0.0.1")
        s.sendall(req)
        f = s.makefile("rb")
        st, hdr = read_response(f)
        if st != 200 or hdr.get(header) != "HIT":
            raise SystemExit(f"held connection on :{port}: {st} {hdr.get(header)} (want 200 HIT)")
        held.append((s, f))
    return held


def release(held):
    for s, f in held:
        f.close()
        s.close()


def memory_one(label, transport, pid, port, open_now, tls=None):
    """RSS idle (after warming), then with N idle connections on the hit."""
    n = A.memory_connections
    time.sleep(0.5)
    idle = rss_kib(pid)
    t0 = time.monotonic()
    load_before = load1()
    held = hold_connections(port, n, tls=tls)
    opened_s = time.monotonic() - t0
    time.sleep(1.0)  # all established and idle
    busy = rss_kib(pid)
    open_count = open_now()
    load_after = load1()
    release(held)
    row = {"server": label, "transport": transport, "connections": n, "rss_idle_kib": idle, "rss_with_kib": busy,
           "per_connection_kib": round((busy - idle) / n, 2), "open_connections_seen": open_count,
           "seconds_to_open": round(opened_s, 1), "loadavg_before": load_before, "loadavg_after": load_after}
    if open_count < n:
        raise SystemExit(f"{label} {transport}: only {open_count} of {n} connections open when RSS was read")
    RESULTS["memory"].append(row)
    log(f"memory {label:8} {transport:5} idle {idle} KiB, with {n} idle connections {busy} KiB: "
        f"{row['per_connection_kib']} KiB each ({open_count} open, load {load_before}->{load_after})")
    return row


def tls_pair():
    d = os.path.join(A.workdir, "tls")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=cert)
    return cert, key, ctx


def scenario_memory(moto_port):
    log(f"memory: RSS idle and with {A.memory_connections:,} idle keep-alive connections on a cached key")
    cert, key, ctx = tls_pair()
    w, wport, wadmin = worker(moto_port, LOAD_CPU, name="aux-worker-mem")

    def edge_open(e):
        return lambda: int(metric(e.admin, "edge_client_connections"))

    e = Edge(wport, name="edge-mem-plain")
    warm_hit(e.port, "edge")
    memory_one("edge", "plain", e.pid, e.port, edge_open(e))
    e.stop()

    e = Edge(wport, name="edge-mem-tls", TLS_LISTEN_ADDR="127.0.0.1:PORT", TLS_CERT_FILE=cert, TLS_KEY_FILE=key)
    warm_hit(e.tls_port, "edge (TLS)", tls=ctx)
    memory_one("edge", "TLS", e.pid, e.tls_port, edge_open(e), tls=ctx)
    e.stop()

    for transport, tls in (("plain", None), ("TLS", (cert, key))):
        ng = Site(f"nginx-mem-{transport.lower()}", CACHE, wport, tls=tls)
        warm_hit(ng.port, "nginx proxy_cache", tls=ctx if tls else None)
        # stub_status counts its own connection too.
        memory_one("nginx", transport, ng.proc.pid, ng.port, lambda: ng.status()["active"] - 1,
                   tls=ctx if tls else None)
        stop(ng.proc)

    res = RESULTS["resources"]
    res["worker_rss_idle_kib"] = rss_kib(w.pid)

    def ready_times(binary_path, mk_env, n=5):
        times = []
        name = os.path.basename(binary_path)
        for _ in range(n):
            port, admin = free_port(), free_port()
            t0 = time.monotonic()
            p = start(pinned(SERVER_CPU, [binary_path]), f"{name}-start", env=mk_env(port, admin))
            while True:
                try:
                    if get(admin, "/readyz", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                if p.poll() is not None or time.monotonic() - t0 > 30:
                    raise SystemExit(f"{name} did not become ready")
                time.sleep(0.002)
            times.append(time.monotonic() - t0)
            stop(p)
        return round(statistics.median(times) * 1000, 1)

    res["edge_start_to_ready_ms"] = ready_times(os.path.join(A.bin, "edge"), lambda p, a: edge_env(wport, p, a))
    res["worker_start_to_ready_ms"] = ready_times(os.path.join(A.bin, "aux-worker"),
                                                  lambda p, a: worker_env(moto_port, p, a))
    for key, path in (("edge_binary_mib", os.path.join(A.bin, "edge")),
                      ("aux_worker_binary_mib", os.path.join(A.bin, "aux-worker")),
                      ("edge_musl_binary_mib", A.musl_edge)):
        if path:
            res[key] = round(os.path.getsize(path) / 2**20, 1)
    stop(w)
    log(f"resources: {json.dumps(res)}")


# ------------------------------------------------------------- instructions

def callgrind_totals(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


class Counted:
    """A process under `valgrind --tool=callgrind`: zero the counters, run
    something, dump, read the instruction total of that interval."""

    def __init__(self, name):
        self.base = os.path.join(A.workdir, f"{name}.callgrind")
        self.wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.base}", "--dump-line=no"]
        self.pid = None

    def ctl(self, flag):
        r = subprocess.run(["callgrind_control", flag, str(self.pid)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or "OK" not in r.stdout:
            raise SystemExit(f"callgrind_control {flag} {self.pid} failed: {r.stdout} {r.stderr}")

    def interval(self, action):
        d = os.path.dirname(self.base)
        before = set(os.listdir(d))
        self.ctl("-z")
        action()
        self.ctl("-d")
        new = [n for n in set(os.listdir(d)) - before if n.startswith(os.path.basename(self.base))]
        if len(new) != 1:
            raise SystemExit(f"expected one new callgrind dump, found {new}")
        return callgrind_totals(os.path.join(d, new[0]))


def hits_on(port, header="x-cache"):
    """A keep-alive connection that sends n hit requests one after another."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    f = s.makefile("rb")
    req = f"GET {HIT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    def send(n):
        for _ in range(n):
            s.sendall(req)
            st, hdr = read_response(f)
            if st != 200 or hdr.get(header) != "HIT":
                raise SystemExit(f"counted request on :{port}: {st} {hdr.get(header)} (want 200 HIT)")
    return s, send


def count_per_hit(name, label, counted, port):
    n1, n2 = A.callgrind_requests
    sock, send = hits_on(port)
    send(200)  # lazy initialisation, buffers grown: not counted
    load_before = load1()
    i1 = counted.interval(lambda: send(n1))
    i2 = counted.interval(lambda: send(n2))
    t0 = time.monotonic()
    idle = counted.interval(lambda: time.sleep(1.0))
    idle_rate = idle / (time.monotonic() - t0)
    sock.close()
    per_hit = (i2 - i1) / (n2 - n1)
    row = {"label": label, "n1": n1, "n2": n2, "instructions_n1": i1, "instructions_n2": i2,
           "per_hit": round(per_hit), "per_hit_including_fixed": round(i2 / n2),
           "idle_instructions_per_second": round(idle_rate), "loadavg_before": load_before, "loadavg_after": load1()}
    RESULTS["instructions"].setdefault("subjects", {})[name] = row
    log(f"instructions {label}: {per_hit:,.0f} per hit ((I({n2}) - I({n1})) / {n2 - n1}; idle "
        f"{idle_rate:,.0f}/s)")
    return row


def budget_verdict(measured, budget, tolerance):
    if not budget:
        return {"status": "no budget", "text": "no budget recorded (record one with BENCH_RECORD_BUDGET=1)"}
    delta = (measured - budget) / budget * 100
    if delta > tolerance:
        return {"status": "regression", "delta_percent": round(delta, 1), "text": f"REGRESSION: +{delta:.1f}%"}
    return {"status": "within", "delta_percent": round(delta, 1),
            "text": f"within budget ({delta:+.1f}%, tolerance {tolerance:g}%)"}


def scenario_instructions(moto_port):
    log("instructions per cache hit, counted by callgrind (user space; servers under valgrind)")
    w, wport, _ = worker(moto_port, LOAD_CPU, name="aux-worker-cg")
    subjects = [("edge", "edge (glibc release)", os.path.join(A.bin, "edge"))]
    if A.musl_edge:
        subjects.append(("edge-musl", "edge, static musl (as shipped)", A.musl_edge))
    for name, label, binary in subjects:
        c = Counted(name)
        e = Edge(wport, name=f"{name}-callgrind", binary=binary, wrap=c.wrap, ready_tries=6000)
        c.pid = e.pid
        warm_hit(e.port, label)
        count_per_hit(name, label, c, e.port)
        e.stop()
    c = Counted("nginx")
    ng = Site("nginx-callgrind", CACHE, wport, master=False, wrap=c.wrap, ready_tries=6000)
    c.pid = ng.proc.pid
    warm_hit(ng.port, "nginx proxy_cache (callgrind)")
    count_per_hit("nginx", "nginx proxy_cache (hit)", c, ng.port)
    stop(ng.proc)
    stop(w)

    with open(A.budget, encoding="utf-8") as f:
        budget = json.load(f)
    tol = float(budget.get("tolerance_percent", 5))
    subj = RESULTS["instructions"]["subjects"]
    if A.record_budget:
        for name in budget["instructions_per_hit"]:
            if name in subj:
                budget["instructions_per_hit"][name] = subj[name]["per_hit"]
        budget["recorded"] = {"date": RESULTS["machine"]["date"], "commit": RESULTS["machine"]["commit"],
                              "valgrind": RESULTS["machine"].get("valgrind")}
        with open(A.budget, "w", encoding="utf-8") as f:
            json.dump(budget, f, indent=2)
            f.write("\n")
        log(f"recorded the instruction budget in {os.path.relpath(A.budget, ROOT)}: {budget['instructions_per_hit']}")
    verdicts = {}
    for name, value in budget["instructions_per_hit"].items():
        if name in subj:
            verdicts[name] = dict(budget_verdict(subj[name]["per_hit"], value, tol), budget=value)
            log(f"instructions {name}: {subj[name]['per_hit']:,} per hit, {verdicts[name]['text']}")
    RESULTS["instructions"].update(budget_file=os.path.relpath(A.budget, ROOT), tolerance_percent=tol,
                                   verdicts=verdicts, recorded=budget.get("recorded"))


# ------------------------------------------------------------------ machine

def tool_version(argv, stream="stdout", env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    except OSError:
        return None
    return (r.stdout if stream == "stdout" else r.stderr).strip().split("\n")[0]


def machine():
    m = RESULTS["machine"]
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as f:
        mem = int(f.readline().split()[1]) // 1024
    m.update(cpu=model, cpus=os.cpu_count(), memory_mib=mem, kernel=platform.release(),
             date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             nginx=tool_version([A.nginx, "-v"], "stderr"),
             wrk=tool_version([A.wrk, "-v"], env=dict(os.environ, LD_LIBRARY_PATH=A.wrk_lib)),
             valgrind=tool_version(["valgrind", "--version"]),
             rustc=tool_version(["rustc", "--version"]),
             commit=subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                   text=True).stdout.strip(),
             seconds=A.seconds, warmup=A.warmup, connections=A.connections, moto_connections=A.moto_connections,
             memory_connections=A.memory_connections, callgrind_requests=list(A.callgrind_requests),
             max_load=A.max_load, only=sorted(A.only))


def settle():
    """Waits (bounded) for the load average to fall below --max-load, then
    records it. Refuses to run on a busy machine unless --allow-busy."""
    m = RESULTS["machine"]
    if A.only <= LOAD_INDEPENDENT:
        one, five, fifteen = os.getloadavg()
        m.update(loadavg_before=round(one, 2), loadavg_before_5=round(five, 2),
                 loadavg_before_15=round(fifteen, 2), busy=False, allow_busy=bool(A.allow_busy), load_gated=False)
        log(f"load average {one:.2f}: not gated, instruction counts do not depend on the load")
        return
    m["load_gated"] = True
    # With the override there is nothing to wait for: the report says busy.
    deadline = time.monotonic() + (0 if A.allow_busy else A.settle_seconds)
    while load1() > A.max_load and time.monotonic() < deadline:
        log(f"load average {load1()} > {A.max_load}: waiting for the machine to settle "
            f"(up to {max(0, deadline - time.monotonic()):.0f} s more)")
        time.sleep(min(15, max(1, deadline - time.monotonic())))
    one, five, fifteen = os.getloadavg()
    m.update(loadavg_before=round(one, 2), loadavg_before_5=round(five, 2), loadavg_before_15=round(fifteen, 2))
    m["busy"] = one > A.max_load
    m["allow_busy"] = bool(A.allow_busy)
    if m["busy"] and not A.allow_busy:
        log(f"REFUSED: the one-minute load average is {one:.2f} (> {A.max_load}) as the measurements would start; "
            "figures from a busy machine are not written. Run it on a quiet machine, or set BENCH_ALLOW_BUSY=1 "
            "for a run whose report marks every figure as unreliable.")
        sys.exit(EXIT_BUSY)
    if m["busy"]:
        log(f"load average {one:.2f} > {A.max_load}: BENCH_ALLOW_BUSY is set, every figure will be marked unreliable")


def main():
    global A, PROCS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="directory of the release edge and aux-worker (glibc)")
    ap.add_argument("--musl-edge", default="", help="the static musl edge, built as edge/Dockerfile builds it")
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--wrk-lib", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--moto-connections", type=int, default=16)
    ap.add_argument("--memory-connections", type=int, default=2000)
    ap.add_argument("--callgrind-requests", default="500,1500", help="N1,N2: per hit = (I(N2) - I(N1)) / (N2 - N1)")
    ap.add_argument("--budget", default=os.path.join(HERE, "budget.json"))
    ap.add_argument("--record-budget", action="store_true")
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--settle-seconds", type=int, default=180)
    ap.add_argument("--allow-busy", action="store_true")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    A = ap.parse_args()
    A.only = {s.strip() for s in A.only.split(",") if s.strip()}
    unknown = A.only - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    A.callgrind_requests = tuple(int(x) for x in A.callgrind_requests.split(","))
    if len(A.callgrind_requests) != 2 or not 0 < A.callgrind_requests[0] < A.callgrind_requests[1]:
        raise SystemExit("--callgrind-requests wants N1,N2 with 0 < N1 < N2")
    # On SIGTERM/SIGINT unwind through `finally`, which stops what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("the bench needs two CPUs (servers on CPU 0, load on CPU 1)")
    # 2,000 held connections (client side) and the servers' own: raise the
    # soft descriptor limit to the hard one; children inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * A.memory_connections + 1024
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(f"the open-file limit is {hard}; {need} descriptors are needed (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, need), hard))
    A.workdir = tempfile.mkdtemp(prefix="bench.")
    PROCS = Procs(A.workdir)
    machine()
    settle()
    log(f"measuring {', '.join(s for s in SCENARIOS if s in A.only)} (work files in {A.workdir})")
    try:
        moto_proc, moto_port = moto()
        aws = canned_aws(moto_port)
        if "cache-hit" in A.only:
            scenario_cache_hit(moto_port)
        if "cache-hit-logs" in A.only:
            scenario_cache_hit_logs(moto_port)
        if "proxied" in A.only or "proxied-canned" in A.only:
            scenario_proxied(aws.port)
        if "moto" in A.only:
            scenario_moto(moto_proc, moto_port)
        if "memory" in A.only:
            scenario_memory(moto_port)
        if "instructions" in A.only:
            scenario_instructions(moto_port)
    finally:
        PROCS.stop_all()
    one, five, fifteen = os.getloadavg()
    RESULTS["machine"].update(loadavg_after=round(one, 2), loadavg_after_5=round(five, 2),
                              loadavg_after_15=round(fifteen, 2))
    os.makedirs(A.out, exist_ok=True)
    with open(os.path.join(A.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(RESULTS, f, indent=2, sort_keys=True)
        f.write("\n")
    cols = ["scenario", "server", "url", "connections", "seconds", "rps", "p50_ms", "p75_ms", "p90_ms", "p99_ms",
            "requests", "non_2xx", "socket_errors", "cpu_seconds", "cpu_us_per_request", "loadavg_before",
            "loadavg_after", "worker_calls_per_request", "log_lines_per_request"]
    with open(os.path.join(A.out, "results.csv"), "w", encoding="utf-8") as f:
        f.write(",".join(cols) + "\n")
        for r in RESULTS["runs"]:
            f.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + "\n")
    log(f"wrote {A.out}/results.json and results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
