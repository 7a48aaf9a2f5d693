"""Offline test of the Alertmanager configuration that kube-prometheus-stack
gets from argocd/apps/children/kube-prometheus-stack.yaml
(`alertmanager.config`):

1. `amtool check-config` accepts it;
2. `amtool config routes test`: prod pages on critical, dev only opens
   tickets, every other alert is a ticket, the chart's heartbeat goes nowhere;
   the same for every alert the PrometheusRules of monitoring/ define;
3. a real Alertmanager on 127.0.0.1 (a free port) receives the alerts: the
   SLO page of prod holds back every cause alert of prod (inhibited), and
   nothing of dev; a ticket-level SLO alert holds back nothing;
4. self-test: broken copies of the configuration (dev paging, no inhibition,
   inhibition across namespaces, a misspelt field, a secret outside the
   mounted Secret) must each fail the check that guards against them.

    python alertmanager_test.py --root REPO --rendered-rules MONITORING.yaml --work DIR

Needs amtool and prometheus-alertmanager (Debian package prometheus-alertmanager,
extracted by scripts/tools.sh). Debian's build reads its default notification
template from /usr/share/prometheus/alertmanager, so the server runs in a
private mount namespace (`unshare -rm`) with the extracted templates mounted
there; nothing outside the work directory is written.
"""

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts"))
from ports import free_port  # noqa: E402  (below the ephemeral range)

SECRET_DIR = "/etc/alertmanager/secrets/alertmanager-receivers/"
SECRET_NAME = "alertmanager-receivers"

# (labels, receiver it must reach)
ROUTES = [
    ({"alertname": "MainApiAvailabilityBudgetBurnFast", "namespace": "prod", "severity": "critical", "slo": "availability"}, "pager"),
    ({"alertname": "MainApiLatencyBudgetBurnSlow", "namespace": "prod", "severity": "warning", "slo": "latency"}, "tickets"),
    ({"alertname": "MainApiAvailabilityBudgetBurnFast", "namespace": "dev", "severity": "critical", "slo": "availability"}, "tickets"),
    ({"alertname": "PlatformNoAvailableReplicas", "namespace": "dev", "severity": "critical", "signal": "cause"}, "tickets"),
    ({"alertname": "KubeNodeNotReady", "namespace": "kube-system", "severity": "critical"}, "pager"),
    ({"alertname": "KubePodCrashLooping", "namespace": "monitoring", "severity": "warning"}, "tickets"),
    ({"alertname": "Watchdog", "namespace": "monitoring", "severity": "none"}, "null"),
    ({"alertname": "InfoInhibitor", "namespace": "prod", "severity": "none"}, "null"),
]


def tool(name):
    path = shutil.which(name)
    if not path:
        sys.exit(f"FAIL {name} not found on PATH (scripts/tools.sh extracts prometheus-alertmanager)")
    return path


def load_kps(root):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(root, "argocd/apps")], check=True,
                         capture_output=True, text=True).stdout
    for doc in yaml.safe_load_all(out):
        if doc and doc.get("kind") == "Application" and doc["spec"]["source"].get("chart") == "kube-prometheus-stack":
            return doc["spec"]["source"]["helm"]["valuesObject"]
    sys.exit("FAIL no kube-prometheus-stack Application in argocd/apps")


def alerts_of(rendered):
    """Every alert rule of the rendered monitoring/: name and static labels."""
    out = []
    for doc in yaml.safe_load_all(open(rendered, encoding="utf-8")):
        if doc and doc.get("kind") == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert"):
                        out.append({"alertname": rule["alert"], **(rule.get("labels") or {})})
    return out


def files_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file"):
                yield key, value
            else:
                yield from files_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from files_in(item)


class Check:
    def __init__(self, work, alerts):
        self.work = work
        self.alerts = alerts
        self.amtool = tool("amtool")
        self.server = tool("prometheus-alertmanager")
        self.templates = os.path.join(os.path.dirname(os.path.dirname(self.server)), "share/prometheus/alertmanager")
        if not os.path.exists(os.path.join(self.templates, "default.tmpl")):
            sys.exit(f"FAIL no default.tmpl in {self.templates}")

    def write(self, config, name):
        path = os.path.join(self.work, f"{name}.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        return path

    # -- 1 ----------------------------------------------------------------
    def syntax(self, path, values):
        problems = []
        r = subprocess.run([self.amtool, "check-config", path], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"amtool check-config: {(r.stdout + r.stderr).strip().splitlines()[-3:]}")
        mounted = ((values.get("alertmanagerSpec") or {}).get("secrets") or [])
        if SECRET_NAME not in mounted:
            problems.append(f"alertmanagerSpec.secrets does not mount the Secret {SECRET_NAME}")
        for key, value in files_in(values.get("config") or {}):
            if not str(value).startswith(SECRET_DIR):
                problems.append(f"{key} {value} is not a file of the mounted Secret ({SECRET_DIR})")
        return problems

    # -- 2 ----------------------------------------------------------------
    def routes(self, path):
        problems = []
        cases = list(ROUTES)
        for alert in self.alerts:
            for ns in ("prod", "dev"):
                want = "pager" if ns == "prod" and alert.get("severity") == "critical" else "tickets"
                cases.append(({**alert, "namespace": ns}, want))
        for labels, want in cases:
            args = [f"{k}={v}" for k, v in labels.items()]
            r = subprocess.run([self.amtool, "config", "routes", "test", f"--config.file={path}",
                                f"--verify.receivers={want}", *args], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"{' '.join(args)} reaches {r.stdout.strip() or r.stderr.strip()}, want {want}")
        return problems, len(cases)

    # -- 3 ----------------------------------------------------------------
    def inhibition(self, path):
        port = free_port()
        data = os.path.join(self.work, f"data-{port}")
        os.makedirs(data)
        log = open(os.path.join(self.work, f"alertmanager-{port}.log"), "w")
        script = ('mount -t tmpfs tmpfs /usr/share && mkdir -p /usr/share/prometheus/alertmanager && '
                  'cp "$1"/*.tmpl /usr/share/prometheus/alertmanager/ && shift && exec "$@"')
        proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script, "sh", self.templates, self.server,
                                 f"--config.file={path}", f"--storage.path={data}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None:
                        return [f"Alertmanager exited: {open(log.name).read()[-800:]}"]
                    time.sleep(0.1)
            else:
                return ["Alertmanager did not become ready"]
            causes = [a for a in self.alerts if a.get("signal") == "cause"]
            page = next(a for a in self.alerts if a.get("slo") and a.get("severity") == "critical")
            ticket = next(a for a in self.alerts if a.get("slo") and a.get("severity") == "warning")
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            sent = [{**page, "namespace": "prod"}, {**ticket, "namespace": "dev"}]
            sent += [{**c, "namespace": ns} for c in causes for ns in ("prod", "dev")]
            body = json.dumps([{"labels": labels, "startsAt": now} for labels in sent]).encode()
            req = urllib.request.Request(f"{base}/api/v2/alerts", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).close()
            want = {(page["alertname"], "prod"): "active", (ticket["alertname"], "dev"): "active"}
            for c in causes:
                want[(c["alertname"], "prod")] = "suppressed"
                want[(c["alertname"], "dev")] = "active"
            # The API computes inhibition when it answers, once the inhibitor
            # has seen the source alert: a broken configuration never matches,
            # so the wait is short.
            got = {}
            for _ in range(20):
                with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5) as r:
                    got = {(a["labels"]["alertname"], a["labels"]["namespace"]): a["status"]["state"] for a in json.load(r)}
                if got == want:
                    break
                time.sleep(0.1)
            problems = [f"{name} in {ns} is {got.get((name, ns))}, want {state}"
                        for (name, ns), state in sorted(want.items()) if got.get((name, ns)) != state]
            self.inhibited = sum(1 for s in want.values() if s == "suppressed")
            return problems
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    def run(self, values, name, verbose=False, only=None):
        path = self.write(values.get("config") or {}, name)
        problems = {"syntax": self.syntax(path, values)}
        if only == "syntax" or any(p.startswith("amtool") for p in problems["syntax"]):
            return problems
        n = 0
        if only in (None, "routes"):
            problems["routes"], n = self.routes(path)
        if only in (None, "inhibition"):
            problems["inhibition"] = self.inhibition(path)
        if verbose:
            print(f"  {'ok  ' if not problems['syntax'] else 'FAIL'} amtool check-config; the mounted Secret holds every *_file")
            print(f"  {'ok  ' if not problems['routes'] else 'FAIL'} amtool config routes test: {n} alerts reach their receiver")
            print(f"  {'ok  ' if not problems['inhibition'] else 'FAIL'} a real Alertmanager: the SLO page of prod inhibits "
                  f"{getattr(self, 'inhibited', 0)} cause alerts of prod, none of dev; a ticket inhibits nothing")
        return problems


def route_index(config, matcher):
    return next(i for i, r in enumerate(config["route"]["routes"]) if matcher in r.get("matchers", []))


def mutations(values):
    """(description, broken values, check that must fail)."""
    def broken(change):
        v = copy.deepcopy(values)
        change(v)
        return v

    cfg = lambda v: v["config"]  # noqa: E731
    yield ("dev pages: its ticket-only route removed",
           broken(lambda v: cfg(v)["route"]["routes"].pop(route_index(cfg(v), 'namespace = "dev"'))), "routes")
    yield ("prod criticals sent to tickets",
           broken(lambda v: cfg(v)["route"]["routes"][route_index(cfg(v), 'severity = "critical"')].update(receiver="tickets")), "routes")
    yield ("the SLO page inhibits nothing",
           broken(lambda v: cfg(v)["inhibit_rules"].pop(0)), "inhibition")
    yield ("a page in prod inhibits dev too (no equal: [namespace])",
           broken(lambda v: cfg(v)["inhibit_rules"][0].pop("equal")), "inhibition")
    yield ("the ticket-level SLO alert inhibits causes",
           broken(lambda v: cfg(v)["inhibit_rules"][0].update(source_matchers=['slo =~ "availability|latency"'])), "inhibition")
    yield ("misspelt field",
           broken(lambda v: cfg(v).update(recievers=cfg(v).pop("receivers"))), "syntax")
    yield ("a routing key read from a file the pod does not have",
           broken(lambda v: next(r for r in cfg(v)["receivers"] if r["name"] == "pager")["pagerduty_configs"][0].update(
               routing_key_file="/var/run/secrets/pagerduty")), "syntax")
    yield ("the receivers' Secret not mounted",
           broken(lambda v: v["alertmanagerSpec"].update(secrets=[])), "syntax")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--rendered-rules", required=True, help="kubectl kustomize monitoring")
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    values = load_kps(a.root).get("alertmanager") or {}
    alerts = alerts_of(a.rendered_rules)
    if not alerts:
        sys.exit("FAIL no alert rules in the rendered monitoring/")
    check = Check(a.work, alerts)
    r = subprocess.run([check.amtool, "--version"], capture_output=True, text=True)
    print(f"  {(r.stdout or r.stderr).splitlines()[0]}; alert rules: {len(alerts)}")
    failures = 0
    problems = check.run(values, "alertmanager", verbose=True)
    for kind, found in problems.items():
        for p in found:
            failures += 1
            print(f"    FAIL {kind}: {p}")
    rejected = 0
    cases = list(mutations(values))
    for i, (desc, broken, guard) in enumerate(cases):
        found = check.run(broken, f"mutation-{i}", only=guard).get(guard) or []
        if found:
            rejected += 1
            print(f"  ok   rejects {desc}: {found[0][:160]}")
        else:
            failures += 1
            print(f"  FAIL {desc}: not rejected by the {guard} check")
    print(f"  alertmanager: {rejected} of {len(cases)} broken configurations rejected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
