"""Real-scrape test: the services' /metrics against the rules and dashboard.

Starts, on 127.0.0.1 and free ports only: moto (emulated AWS) behind a small
fault proxy, the worker (aux-worker) and, when its crate exists, the edge, and
a real Prometheus whose scrape configuration is derived from the rendered
ServiceMonitors and which loads the extracted PrometheusRules. Sends traffic
through healthy, throttled and failing AWS phases and with the worker gone,
then proves through Prometheus' HTTP API that:

- every target is up and every rule evaluates without error;
- every metric of docs/metrics.md is scraped with exactly its documented
  labels (plus the target labels) and only documented label values;
- every selector the rules and the dashboard read returns data;
- every recording rule over the scraped services produces series;
- the dashboard's variable queries return the environment and the pods;
- `promtool check metrics` passes on each /metrics output.

Inputs come from the monitoring check (OUT holds servicemonitors.json,
rule-selectors.json, dashboard-selectors.json, rule-files.txt and the rule
files). Every process it starts is stopped by PID when it ends.

    python scrape_test.py --root REPO --out OUT
"""

import argparse
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts"))
from ports import free_port  # noqa: E402  (below the ephemeral range)

ENV = "dev"  # the namespace label every local target gets
PREFIX = "/kantox-challenge/dev"
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
SERVICES = {  # Service name -> (metric prefix, crate dir, cargo package, binary = container name)
    "auxiliary-service": ("aux", "aux", "aux-worker", "aux-worker"),
    "main-api": ("edge", "edge", "edge", "edge"),
}
EXTERNAL = ("kube_", "container_")  # kube-state-metrics and cAdvisor: not running here
SHARED = ("process_",)  # both services serve the process collector

failures = []
procs = []


T0 = time.time()


def say(msg):
    print(msg, flush=True)


def step(msg):
    print(f"  [{time.time() - T0:5.1f}s] {msg}", flush=True)


def check(ok, msg):
    say(f"  {'ok  ' if ok else 'FAIL'} {msg}")
    if not ok:
        failures.append(msg)


def http_get(url, timeout=10.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return None, str(e).encode()


def start(name, argv, out, env=None):
    log = open(os.path.join(out, f"{name}.log"), "wb")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs.append((name, p))
    step(f"started {name} (pid {p.pid})")
    return p


def stop(name, p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        say(f"  stopped {name} (pid {p.pid})")


def stop_all(*_):
    for name, p in reversed(procs):
        stop(name, p)


def wait_http(url, what, proc, out, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        status, _ = http_get(url, timeout=2)
        if status == 200:
            return
        time.sleep(0.3)
    name = next(n for n, p in procs if p is proc)
    with open(os.path.join(out, f"{name}.log"), "rb") as f:
        tail = f.read()[-3000:].decode(errors="replace")
    raise SystemExit(f"FAIL: {what} did not become ready at {url}\n--- {name}.log (tail) ---\n{tail}")


# (mode, is an SSM call) -> the answer AWS gives: SSM speaks JSON, S3 XML.
FAULTS = {
    ("throttle", True): (400, "application/x-amz-json-1.1",
                         b'{"__type":"ThrottlingException","message":"Rate exceeded"}'),
    ("throttle", False): (503, "application/xml",
                          b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"),
    ("error", True): (500, "application/x-amz-json-1.1",
                      b'{"__type":"InternalServerError","message":"internal error"}'),
    ("error", False): (500, "application/xml",
                       b"<Error><Code>InternalError</Code><Message>internal error</Message></Error>"),
}


class FaultProxy(http.server.ThreadingHTTPServer):
    """Forwards to moto; in `throttle` or `error` mode answers as AWS does then."""

    daemon_threads = True
    mode = "pass"


class FaultHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = FAULTS.get((self.server.mode, "X-Amz-Target" in self.headers))
        if fault:
            status, content_type, body = fault
            return self._answer(status, body, {"Content-Type": content_type})
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self._answer(r.status, data, {k: v for k, v in r.getheaders()
                                      if k.lower() not in ("connection", "content-length", "transfer-encoding")})
        conn.close()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any


def seed(moto_port):
    import boto3

    kw = dict(endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="eu-west-1",
              aws_access_key_id="test", aws_secret_access_key="test")
    boto3.client("s3", **kw).create_bucket(
        Bucket="platform-assets", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    ssm = boto3.client("ssm", **kw)
    for name in ("db-host", "feature-flags", "region"):
        ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=f"value-of-{name}", Type="String")
    say("  seeded moto: 1 bucket, 3 parameters")


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url)
    data = json.loads(body) if status in (200, 400, 422) else {"status": "error", "error": body.decode(errors="replace")}
    if data.get("status") != "success":
        raise SystemExit(f"FAIL: query {expr}: {data.get('error')}")
    return data["data"]["result"]


def api(prom, path, **params):
    status, body = http_get(f"{prom}{path}?" + urllib.parse.urlencode(params, doseq=True))
    if status != 200:
        raise SystemExit(f"FAIL: {path}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)["data"]


def selector_text(sel):
    subst = {"$env": ENV, "${env}": ENV, "$pod": ".+", "${pod}": ".+"}
    parts = []
    for m in sel["matchers"]:
        v = m["value"]
        for k, r in subst.items():
            v = v.replace(k, r)
        parts.append(f'{m["label"]}{m["op"]}{json.dumps(v)}')
    return f'{sel["name"]}{{{", ".join(parts)}}}'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    root, out = args.root, os.path.abspath(args.out)
    tools = os.environ.get("TOOLS_DIR", os.path.join(root, ".tools"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    contract = json.load(open(os.path.join(out, "contract.json")))
    monitors = json.load(open(os.path.join(out, "servicemonitors.json")))
    selectors = (json.load(open(os.path.join(out, "rule-selectors.json")))
                 + json.load(open(os.path.join(out, "dashboard-selectors.json"))))

    present = [s for s, (_, crate, _, _) in SERVICES.items() if os.path.exists(os.path.join(root, crate, "Cargo.toml"))]
    if "auxiliary-service" not in present:
        raise SystemExit("FAIL: aux/Cargo.toml not found: the worker is required for the real-scrape test")
    if "main-api" not in present:
        say("  edge crate not present: edge metrics not scraped (their names are still checked against docs/metrics.md)")
    prefixes = tuple(SERVICES[s][0] + "_" for s in present)

    # --- build -----------------------------------------------------------
    # Every package in one build, as every check builds them: one feature
    # set, so the dependencies the other checks compiled are reused.
    selection = [a for s in present for a in ("-p", SERVICES[s][2])]
    step(f"cargo build --locked {' '.join(selection)}")
    r = subprocess.run(["cargo", "build", "--locked", *selection], cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: cargo build {' '.join(selection)}\n{r.stderr[-4000:]}")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))

    try:
        # --- emulated AWS behind the fault proxy ---------------------------
        moto_port = free_port()
        moto = start("moto", [os.path.join(tools, "venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], out)
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", "moto", moto, out)
        seed(moto_port)
        proxy = FaultProxy(("127.0.0.1", 0), FaultHandler)
        proxy.upstream = moto_port
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        aws_url = f"http://127.0.0.1:{proxy.server_address[1]}"

        # --- the services ----------------------------------------------------
        addr = {s: (free_port(), free_port()) for s in present}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        aux_api, aux_admin = addr["auxiliary-service"]
        aux = start("aux-worker", [os.path.join(target, "debug/aux-worker")], out, env={
            **base_env, "LISTEN_ADDR": f"127.0.0.1:{aux_api}", "ADMIN_ADDR": f"127.0.0.1:{aux_admin}",
            "PARAMETER_PREFIX": PREFIX, "AWS_ENDPOINT_URL": aws_url, "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "LOG_FORMAT": "text",
            "AWS_CALL_TIMEOUT_SECONDS": "3", "SERVICE_VERSION": "0.0.0-scrape-test"})
        wait_http(f"http://127.0.0.1:{aux_admin}/readyz", "aux-worker", aux, out)
        if "main-api" in present:
            edge_api, edge_admin = addr["main-api"]
            edge = start("edge", [os.path.join(target, "debug/edge")], out, env={
                **base_env, "LISTEN_ADDR": f"127.0.0.1:{edge_api}", "ADMIN_ADDR": f"127.0.0.1:{edge_admin}",
                "AUXILIARY_SERVICE_URL": f"http://127.0.0.1:{aux_api}", "LOG_FORMAT": "text",
                "CACHE_TTL_SECONDS": "1", "UPSTREAM_TIMEOUT_SECONDS": "5", "SERVICE_VERSION": "0.0.0-scrape-test"})
            wait_http(f"http://127.0.0.1:{edge_admin}/readyz", "edge", edge, out)

        # --- Prometheus, configured like the ServiceMonitors -----------------
        jobs = []
        for m in monitors:
            if m["service"] not in present:
                continue
            for i, e in enumerate(m["endpoints"]):
                admin = addr[m["service"]][1]
                jobs.append({
                    "job_name": f"serviceMonitor/monitoring/{m['name']}/{i}",
                    # faster than the monitors' interval, so the test takes seconds
                    "scrape_interval": "1s", "scrape_timeout": "1s",
                    "metrics_path": e.get("path", "/metrics"), "scheme": e.get("scheme", "http"),
                    "static_configs": [{"targets": [f"127.0.0.1:{admin}"], "labels": {
                        # what the operator's kubernetes_sd relabelling yields in the cluster
                        "job": m["service"], "namespace": ENV, "service": m["service"],
                        "pod": f"{m['service']}-local-0", "container": SERVICES[m["service"]][3],
                        "endpoint": e["port"]}}],
                })
        rule_files = [os.path.join(out, f) for f in open(os.path.join(out, "rule-files.txt")).read().split()]
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "rule_files": rule_files, "scrape_configs": jobs}
        with open(os.path.join(out, "prometheus.yml"), "w") as f:
            yaml.safe_dump(cfg, f)
        prom_port = free_port()
        prom_bin = os.path.join(tools, "root/usr/bin/prometheus")
        prom_p = start("prometheus", [prom_bin, f"--config.file={out}/prometheus.yml",
                                      f"--storage.tsdb.path={out}/tsdb", f"--web.listen-address=127.0.0.1:{prom_port}"], out)
        prom = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom}/-/ready", "prometheus", prom_p, out)
        say(f"  Prometheus scrapes {', '.join(j['job_name'] for j in jobs)} and loads {len(rule_files)} rule files")

        # --- traffic ---------------------------------------------------------
        paths = ["/s3-buckets", "/parameters", "/parameter/db-host", "/parameter/missing", "/no-such-route",
                 "/api/parameters"]
        fronts = [f"http://127.0.0.1:{aux_api}"]
        if "main-api" in present:
            fronts.append(f"http://127.0.0.1:{edge_api}")

        def round_(label, extra=()):
            codes = {}
            if "main-api" in present:
                # a burst on one expired entry: the edge coalesces the worker calls
                with ThreadPoolExecutor(max_workers=12) as pool:
                    for status, _ in pool.map(lambda _: http_get(f"http://127.0.0.1:{edge_api}/parameters", timeout=15),
                                              range(12)):
                        codes[status] = codes.get(status, 0) + 1
            for front in fronts:
                for p in [*paths, *extra]:
                    for _ in range(2):  # the second one may be a cache hit
                        status, _ = http_get(front + p, timeout=15)
                        codes[status] = codes.get(status, 0) + 1
            step(f"traffic {label}: {sorted(codes.items(), key=lambda kv: str(kv[0]))}")
            time.sleep(1.2)  # past the edge's 1 s cache TTL

        for _ in range(2):
            round_("AWS healthy")
        for mode in ("throttle", "error"):
            proxy.mode = mode
            round_(f"AWS {mode}")
            round_(f"AWS {mode}")
        proxy.mode = "pass"
        round_("AWS healthy again")
        time.sleep(2.5)

        # promtool check metrics on each /metrics before the worker goes away
        promtool = os.path.join(tools, "root/usr/bin/promtool")
        for s in present:
            status, body = http_get(f"http://127.0.0.1:{addr[s][1]}/metrics")
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
            check(status == 200 and r.returncode == 0,
                  f"promtool check metrics on {s} /metrics ({len(body)} bytes) {r.stdout.decode().strip()} {r.stderr.decode().strip()}")

        if "main-api" in present:
            stop("aux-worker", aux)  # the edge now sees the worker unreachable
            fronts = [f"http://127.0.0.1:{edge_api}"]
            round_("worker stopped", extra=["/parameter/region"])
        time.sleep(3)

        # --- assertions ------------------------------------------------------
        say("")
        step("targets and rules")
        targets = api(prom, "/api/v1/targets")["activeTargets"]
        for t in targets:
            job = t["labels"]["job"]
            if job == "auxiliary-service" and "main-api" in present:
                continue  # stopped on purpose
            check(t["health"] == "up", f"target {job} {t['scrapeUrl']} is {t['health']} {t.get('lastError', '')}")
        groups = api(prom, "/api/v1/rules")["groups"]
        n_rules = sum(len(g["rules"]) for g in groups)
        bad = [f"{r.get('name')}: {r.get('lastError')}" for g in groups for r in g["rules"] if r.get("health") != "ok"]
        check(n_rules > 0 and not bad, f"{n_rules} rules loaded by Prometheus evaluate without error {bad}")

        say("\n  every metric of docs/metrics.md, with its documented labels and values")
        start_ts = time.time() - 600
        for name, m in sorted(contract.items()):
            shared = name.startswith(SHARED)
            if not shared and not name.startswith(prefixes):
                say(f"  skip {name}: its service is not running here")
                continue
            names = [f"{name}_bucket", f"{name}_count", f"{name}_sum"] if m["type"] == "histogram" else [name]
            for series_name in names:
                series = api(prom, "/api/v1/series", **{"match[]": series_name, "start": start_ts})
                if shared:  # served by every service: one series per running one
                    jobs = sorted({s.get("job", "") for s in series})
                    check(jobs == sorted(present), f"{series_name}: served by {jobs}, want {sorted(present)}")
                want = set(m["labels"]) | TARGET_LABELS | ({"le"} if series_name.endswith("_bucket") else set())
                problems = []
                for s in series:
                    got = set(s) - {"__name__"}
                    if got != want:
                        problems.append(f"labels {sorted(got)} != {sorted(want)}")
                    for label, values in m["values"].items():
                        if label in s and values and s[label] not in values:
                            problems.append(f'{label}="{s[label]}" not documented')
                check(series and not problems,
                      f"{series_name}: {len(series)} series{'; ' + '; '.join(sorted(set(problems))) if problems else ''}")

        say("\n  every selector the rules and the dashboard read returns data")
        seen = set()
        for sel in selectors:
            text = selector_text(sel)
            if text in seen:
                continue
            seen.add(text)
            if sel["name"].startswith(EXTERNAL):
                say(f"  skip {text}: kube-state-metrics/cAdvisor series, not available locally (name checked statically)")
                continue
            # recording rules (level:metric:operations) are evaluated here too
            if (sel["name"] != "up" and ":" not in sel["name"] and not sel["name"].startswith(prefixes)
                    and not sel["name"].startswith(SHARED)):
                say(f"  skip {text}: its service is not running here")
                continue
            res = query(prom, f"last_over_time({text}[10m])")
            check(len(res) > 0, f"{text}: {len(res)} series  ({sel['source']})")

        say("\n  every recording rule over the running services produces series")
        for f in rule_files:
            for g in yaml.safe_load(open(f))["groups"]:
                for r in g["rules"]:
                    if "record" not in r:
                        continue
                    reads = {m + "_" for m in re.findall(r"\b(edge|aux)_", r["expr"])}
                    # a rule that reads no service (a configured constant) is evaluated too
                    if not reads <= set(prefixes):
                        say(f"  skip {r['record']}: reads a service that is not running here")
                        continue
                    res = query(prom, f"last_over_time({r['record']}[10m])")
                    # The level of a rule's name says what it keeps: per
                    # environment (`namespace...:`), or across environments
                    # (`platform:`, the SSM quota view).
                    per_env = r["record"].startswith("namespace")
                    ok = len(res) > 0 and all((x["metric"].get("namespace") == ENV) == per_env for x in res)
                    check(ok, f"{r['record']}: {len(res)} series, " + (f"namespace {ENV}" if per_env else "across environments"))

        say("\n  dashboard variables")
        ns = api(prom, "/api/v1/label/namespace/values",
                 **{"match[]": 'up{job=~"main-api|auxiliary-service"}', "start": start_ts})
        check(ns == [ENV], f"env variable values {ns}")
        pods = api(prom, "/api/v1/label/pod/values",
                   **{"match[]": f'up{{job=~"main-api|auxiliary-service", namespace="{ENV}"}}', "start": start_ts})
        check(len(pods) == len(present), f"pod variable values {pods}")
        proxy.shutdown()
    finally:
        stop_all()

    if failures:
        say(f"\nreal scrape: {len(failures)} failure(s)")
        for f in failures:
            say(f"  FAIL {f}")
        sys.exit(1)
    say("\nreal scrape: all assertions passed")


if __name__ == "__main__":
    main()
