#!/usr/bin/env python3
"""The benchmark: the edge beside nginx, measured in one run on one machine.

    bench.py --bin DIR --nginx PATH --wrk PATH --out DIR [--seconds N]

Servers under test are pinned to CPU 0, the load generator (wrk, one
thread) and helpers to CPU 1 (`taskset`). Every comparison is made in the
same run. Writes results.json and results.csv into --out; report.py turns
them into docs/benchmarks.md and the plot.

Scenarios:
  cache-hit   edge /parameter/param1 (warmed cache) vs nginx proxy_cache in
              front of the worker (warmed), and nginx `return 200` with the
              edge's exact body as the one-core ceiling
  proxied     edge /s3-buckets vs nginx proxy_pass to the same worker; the
              worker's S3 is a canned nginx (fixed ListBuckets XML)
  moto        edge /s3-buckets through the worker to moto vs moto alone
  resources   RSS idle and with 1,000 keep-alive connections, start-to-ready
              time, release binary sizes
"""
import argparse
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PREFIX = "/kantox-challenge/dev"
SERVER_CPU, LOAD_CPU = "0", "1"
A = None
PROCS = []
RESULTS = {"runs": [], "resources": {}, "machine": {}}


# ------------------------------------------------------------------ helpers

def log(msg):
    print(f"[bench] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu, argv):
    return ["taskset", "-c", cpu, *argv]


def start(argv, name, env=None, stdin=subprocess.DEVNULL):
    logf = open(os.path.join(A.workdir, f"{name}.log"), "ab")
    p = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=stdin)
    PROCS.append(p)
    return p


def stop(p, grace=5):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def get(port, path, timeout=5, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def wait_ok(port, path, proc, name, tries=600):
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited ({proc.returncode}); see {A.workdir}/{name}.log")
        try:
            if get(port, path, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{name} not ready at :{port}{path}")


def cpu_seconds(pid):
    """utime + stime of a process and its direct children, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = [pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def rss_kib(pid):
    """VmRSS of a process plus its direct children (nginx workers)."""
    total = 0
    pids = [pid] + [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(d) == pid]
    for p in pids:
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def _ppid(d):
    try:
        with open(f"/proc/{d}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# --------------------------------------------------------------------- wrk

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


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


def measure(scenario, label, pids, url, connections=None):
    """wrk against url; CPU time is summed over pids (the servers under test)."""
    connections = connections or A.connections
    wrk(url, connections, A.warmup)  # warm-up, not recorded
    c0 = sum(cpu_seconds(p) for p in pids)
    r = wrk(url, connections, A.seconds)
    cpu = sum(cpu_seconds(p) for p in pids) - c0
    r.pop("raw")
    r.update(scenario=scenario, server=label, url=url.split("/", 3)[-1], connections=connections,
             seconds=A.seconds, cpu_seconds=round(cpu, 3), loadavg=round(os.getloadavg()[0], 2),
             cpu_us_per_request=round(cpu / r["requests"] * 1e6, 1) if r["requests"] else None)
    RESULTS["runs"].append(r)
    log(f"{scenario:10} {label:34} {r['rps']:>10.0f} req/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
        f"cpu {r['cpu_us_per_request']} us/req  non-2xx {r['non_2xx']}  errors {r['socket_errors']}")
    return r


# ------------------------------------------------------------------ servers

def nginx(name, server_blocks, upstreams="", cpu=SERVER_CPU):
    d = os.path.join(A.workdir, name)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(os.path.join(HERE, "nginx.conf.in"), encoding="utf-8") as f:
        text = f.read()
    text = text.replace("@DIR@", d).replace("@UPSTREAMS@", upstreams).replace("@SERVERS@", server_blocks)
    with open(conf, "w", encoding="utf-8") as f:
        f.write(text)
    p = start(pinned(cpu, [A.nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")]), name)
    return p


PROXY = """proxy_pass http://worker;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
CACHE = PROXY + """
            proxy_cache api;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout updating;
            add_header x-cache $upstream_cache_status;"""


def nginx_site(name, location, ready_path, upstream_port=None, cpu=SERVER_CPU):
    """One nginx server on a free port with `location / { LOCATION }`, and an
    upstream `worker` when upstream_port is given. Returns (process, port)."""
    port = free_port()
    server = f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {location}
        }}
    }}"""
    upstream = f"upstream worker {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}" if upstream_port else ""
    p = nginx(name, server, upstream, cpu=cpu)
    wait_ok(port, ready_path, p, name)
    return p, port


def moto():
    p = start(pinned(SERVER_CPU, [os.path.join(ROOT, ".tools/venv/bin/python"),
                                  os.path.join(ROOT, "scripts/moto_server.py"), "--port", "0", "--seed",
                                  "--watch-stdin"]), "moto", stdin=subprocess.PIPE)
    path = os.path.join(A.workdir, "moto.log")
    for _ in range(600):
        with open(path, encoding="utf-8", errors="replace") as f:
            m = re.search(r"^listening http://127.0.0.1:(\d+)", f.read(), re.M)
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            raise SystemExit("moto exited")
        time.sleep(0.1)
    raise SystemExit("moto did not start")


def worker(aws_port, cpu, name="aux-worker"):
    port, admin = free_port(), free_port()
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
               SERVICE_VERSION="0.1.0-bench", PARAMETER_PREFIX=PREFIX,
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{aws_port}", AWS_REGION="eu-west-1",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true",
               MAX_CONCURRENT_REQUESTS="4096", SHUTDOWN_DRAIN_SECONDS="0", LOG_FORMAT="json", RUST_LOG="warn")
    p = start(pinned(cpu, [os.path.join(A.bin, "aux-worker")]), name, env=env)
    wait_ok(admin, "/readyz", p, name)
    return p, port, admin


def edge_env(upstream_port, port, admin):
    return dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
                AUXILIARY_SERVICE_URL=f"http://127.0.0.1:{upstream_port}", SERVICE_VERSION="0.1.0-bench",
                CACHE_TTL_SECONDS="3600", SHUTDOWN_DRAIN_SECONDS="0", SHUTDOWN_TIMEOUT_SECONDS="2",
                LOG_FORMAT="json", RUST_LOG="warn")


def edge(upstream_port, name="edge"):
    port, admin = free_port(), free_port()
    p = start(pinned(SERVER_CPU, [os.path.join(A.bin, "edge")]), name, env=edge_env(upstream_port, port, admin))
    wait_ok(admin, "/readyz", p, name)
    return p, port, admin


def location_return(body, content_type):
    # nginx single-quoted string: the bodies used here hold no quote or backslash.
    assert "'" not in body and "\\" not in body
    return f"default_type {content_type}; return 200 '{body}';"


# ---------------------------------------------------------------- scenarios

def scenario_cache_hit(moto_port):
    log("cache hit: edge vs nginx proxy_cache vs nginx return 200")
    w, wport, _ = worker(moto_port, LOAD_CPU)
    e, eport, _ = edge(wport)
    st, hdr, body = get(eport, "/parameter/param1")
    st2, hdr2, _ = get(eport, "/parameter/param1")
    assert st == st2 == 200 and hdr2.get("x-cache") == "HIT", (st, hdr2)
    measure("cache-hit", "edge (moka cache hit)", [e.pid], f"http://127.0.0.1:{eport}/parameter/param1")
    stop(e)

    ng, nport = nginx_site("nginx-cache", CACHE, "/parameter/param1", wport)
    st, hdr, nbody = get(nport, "/parameter/param1")
    assert hdr.get("x-cache") == "HIT", hdr
    RESULTS["bodies"] = {"edge": len(body), "nginx_cache": len(nbody)}
    measure("cache-hit", "nginx proxy_cache (hit)", [ng.pid], f"http://127.0.0.1:{nport}/parameter/param1")
    stop(ng)

    ceil, cport = nginx_site("nginx-return", location_return(body.decode(), "application/json"), "/parameter/param1")
    measure("cache-hit", "nginx return 200 (ceiling)", [ceil.pid], f"http://127.0.0.1:{cport}/parameter/param1")
    stop(ceil)
    stop(w)


def canned_aws(moto_port):
    """nginx answering every request with moto's ListBuckets XML (helper, CPU 1)."""
    _, _, xml = get(moto_port, "/")
    return nginx_site("nginx-canned-s3", location_return(xml.decode().replace("\n", ""), "application/xml"), "/",
                      cpu=LOAD_CPU)


def scenario_proxied(aws_port):
    log("proxied: edge /s3-buckets vs nginx proxy_pass, worker (CPU 1) on a canned S3 (CPU 1)")
    w, wport, _ = worker(aws_port, LOAD_CPU, name="aux-worker-canned")
    assert get(wport, "/s3-buckets")[0] == 200
    e, eport, _ = edge(wport, name="edge-proxied")
    assert get(eport, "/s3-buckets")[0] == 200
    measure("proxied", "edge /s3-buckets", [e.pid], f"http://127.0.0.1:{eport}/s3-buckets")
    stop(e)
    ng, nport = nginx_site("nginx-proxy", PROXY, "/s3-buckets", wport)
    measure("proxied", "nginx proxy_pass /s3-buckets", [ng.pid], f"http://127.0.0.1:{nport}/s3-buckets")
    stop(ng)
    measure("proxied", "worker alone /s3-buckets (reference)", [w.pid], f"http://127.0.0.1:{wport}/s3-buckets")
    _, _, worker_body = get(wport, "/s3-buckets")
    stop(w)

    # The same comparison with the worker replaced by an nginx returning the
    # worker's exact answer (CPU 1): the proxies, not the worker, are the
    # bottleneck here.
    log("proxied, canned worker: edge vs nginx proxy_pass in front of a fixed answer")
    fake, fport = nginx_site("nginx-canned-worker", location_return(worker_body.decode(), "application/json"),
                             "/s3-buckets", cpu=LOAD_CPU)
    e, eport, _ = edge(fport, name="edge-proxied-canned")
    assert get(eport, "/s3-buckets")[0] == 200
    measure("proxied-canned", "edge /s3-buckets", [e.pid], f"http://127.0.0.1:{eport}/s3-buckets")
    stop(e)
    ng, nport = nginx_site("nginx-proxy-canned", PROXY, "/s3-buckets", fport)
    measure("proxied-canned", "nginx proxy_pass /s3-buckets", [ng.pid], f"http://127.0.0.1:{nport}/s3-buckets")
    stop(ng)
    stop(fake)


def scenario_moto(moto_proc, moto_port):
    log("uncached through moto: edge -> worker -> moto vs moto alone (all on CPU 0)")
    conns = A.moto_connections
    alone = measure("moto", "moto alone (ListBuckets)", [moto_proc.pid], f"http://127.0.0.1:{moto_port}/", conns)
    w, wport, _ = worker(moto_port, SERVER_CPU, name="aux-worker-moto")
    e, eport, _ = edge(wport, name="edge-moto")
    # CPU here is the edge's and the worker's: our overhead beside moto's work.
    through = measure("moto", "edge -> worker -> moto /s3-buckets", [e.pid, w.pid],
                      f"http://127.0.0.1:{eport}/s3-buckets", conns)
    stop(e)
    stop(w)
    return alone, through


def hold_connections(port, path, n):
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        socks.append(s)
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("connection closed while holding keep-alive connections")
            data += chunk
    return socks


def scenario_resources(moto_port, aws_port):
    log("resources: RSS idle and with 1,000 keep-alive connections, start-to-ready, sizes")
    res = RESULTS["resources"]
    w, wport, _ = worker(aws_port, SERVER_CPU, name="aux-worker-rss")
    e, eport, _ = edge(wport, name="edge-rss")
    get(eport, "/s3-buckets")
    time.sleep(0.5)
    res["edge_rss_idle_kib"] = rss_kib(e.pid)
    res["worker_rss_idle_kib"] = rss_kib(w.pid)
    for label, pid, port in (("edge", e.pid, eport), ("worker", w.pid, wport)):
        socks = hold_connections(port, "/s3-buckets", 1000)
        time.sleep(0.5)
        res[f"{label}_rss_1000_conns_kib"] = rss_kib(pid)
        for sock in socks:
            sock.close()
        time.sleep(0.3)
    stop(e)
    ng, nport = nginx_site("nginx-rss", CACHE, "/s3-buckets", wport)
    time.sleep(0.3)
    res["nginx_rss_idle_kib"] = rss_kib(ng.pid)
    socks = hold_connections(nport, "/s3-buckets", 1000)
    time.sleep(0.5)
    res["nginx_rss_1000_conns_kib"] = rss_kib(ng.pid)
    for sock in socks:
        sock.close()
    stop(ng)

    def ready_times(binary, mk_env, n=5):
        times = []
        for i in range(n):
            port, admin = free_port(), free_port()
            t0 = time.monotonic()
            p = start(pinned(SERVER_CPU, [os.path.join(A.bin, binary)]), f"{binary}-start", env=mk_env(port, admin))
            while True:
                try:
                    if get(admin, "/readyz", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                if p.poll() is not None or time.monotonic() - t0 > 30:
                    raise SystemExit(f"{binary} did not become ready")
                time.sleep(0.002)
            times.append(time.monotonic() - t0)
            stop(p)
        return round(statistics.median(times) * 1000, 1)

    def worker_env(port, admin):
        return dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", ADMIN_ADDR=f"127.0.0.1:{admin}",
                    PARAMETER_PREFIX=PREFIX, AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
                    AWS_REGION="eu-west-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                    AWS_EC2_METADATA_DISABLED="true", SHUTDOWN_DRAIN_SECONDS="0", RUST_LOG="warn")

    res["edge_start_to_ready_ms"] = ready_times("edge", lambda p, a: edge_env(wport, p, a))
    res["worker_start_to_ready_ms"] = ready_times("aux-worker", worker_env)
    for b in ("edge", "aux-worker"):
        res[f"{b.replace('-', '_')}_binary_mib"] = round(os.path.getsize(os.path.join(A.bin, b)) / 2**20, 1)
    stop(w)
    log(f"resources: {json.dumps(res)}")


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
             loadavg_before=os.getloadavg()[0],
             nginx=subprocess.run([A.nginx, "-v"], capture_output=True, text=True).stderr.strip(),
             wrk=subprocess.run([A.wrk, "-v"], capture_output=True, text=True,
                                env=dict(os.environ, LD_LIBRARY_PATH=A.wrk_lib)).stdout.split("\n")[0].strip(),
             commit=subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                   text=True).stdout.strip(),
             seconds=A.seconds, connections=A.connections, moto_connections=A.moto_connections)


def main():
    global A
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--wrk-lib", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--moto-connections", type=int, default=16)
    ap.add_argument("--only", default="cache-hit,proxied,moto,resources")
    A = ap.parse_args()
    # On SIGTERM/SIGINT unwind through `finally`, which stops what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("the bench needs two CPUs (servers on CPU 0, load on CPU 1)")
    A.workdir = tempfile.mkdtemp(prefix="bench.")
    only = set(A.only.split(","))
    machine()
    try:
        moto_proc, moto_port = moto()
        _, aws_port = canned_aws(moto_port)
        if "cache-hit" in only:
            scenario_cache_hit(moto_port)
        if "proxied" in only:
            scenario_proxied(aws_port)
        if "moto" in only:
            scenario_moto(moto_proc, moto_port)
        if "resources" in only:
            scenario_resources(moto_port, aws_port)
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in PROCS:
            stop(p, grace=3)
    RESULTS["machine"]["loadavg_after"] = os.getloadavg()[0]
    os.makedirs(A.out, exist_ok=True)
    with open(os.path.join(A.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(RESULTS, f, indent=2, sort_keys=True)
        f.write("\n")
    cols = ["scenario", "server", "url", "connections", "seconds", "rps", "p50_ms", "p75_ms", "p90_ms", "p99_ms",
            "requests", "non_2xx", "socket_errors", "cpu_seconds", "cpu_us_per_request"]
    with open(os.path.join(A.out, "results.csv"), "w", encoding="utf-8") as f:
        f.write(",".join(cols) + "\n")
        for r in RESULTS["runs"]:
            f.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + "\n")
    log(f"wrote {A.out}/results.json and results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
