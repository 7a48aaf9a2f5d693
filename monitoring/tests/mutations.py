"""Mutation tests of the monitoring checks: each case breaks one thing in a
copy of the rendered manifests, the dashboard or an extracted rule file and
requires the matching check to fail with the expected message. A check that
passes a broken copy fails this test.

    python mutations.py --root REPO --rendered RENDERED.yaml --out OUT [--overlays DEV.yaml PROD.yaml]
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def rule(docs, pr, name):
    for g in find(docs, "PrometheusRule", pr)["spec"]["groups"]:
        for r in g["rules"]:
            if r.get("alert") == name or r.get("record") == name:
                return r
    raise KeyError(name)


def sm(docs):
    return find(docs, "ServiceMonitor", "main-api")


def set_expr(pr, name, old, new):
    def mutate(docs):
        r = rule(docs, pr, name)
        assert old in r["expr"], (name, old)
        r["expr"] = r["expr"].replace(old, new)
    return mutate


# (description, mutation of the rendered objects, text the failure must contain)
MANIFEST_CASES = [
    ("ServiceMonitor without the release label",
     lambda d: sm(d)["metadata"]["labels"].pop("release"), "missing label release"),
    ("ServiceMonitor field typo",
     lambda d: sm(d)["spec"]["endpoints"][0].update(portt="admin"), "endpoints[0].portt: unknown field"),
    ("ServiceMonitor endpoints of the wrong type",
     lambda d: sm(d)["spec"].update(endpoints="admin"), "schema"),
    ("ServiceMonitor selecting a label no Service carries",
     lambda d: sm(d)["spec"]["selector"]["matchLabels"].update(tier="web"), "selects 0 Services in dev"),
    ("ServiceMonitor scraping the API port",
     lambda d: sm(d)["spec"]["endpoints"][0].update(port="http"), "endpoint port http"),
    ("ServiceMonitor watching dev only",
     lambda d: sm(d)["spec"]["namespaceSelector"].update(matchNames=["dev"]), "namespaceSelector.matchNames"),
    ("PrometheusRule in another namespace",
     lambda d: find(d, "PrometheusRule", "platform-alerts")["metadata"].update(namespace="default"), "not monitoring"),
    ("rule field typo",
     lambda d: rule(d, "platform-alerts", "PlatformPodNotReady").update(fro="10m"), "fro: unknown field"),
    ("metric name not in docs/metrics.md",
     set_expr("platform-alerts", "AuxiliaryServiceUnreachable", "edge_upstream_requests_total{", "edge_upstream_request_total{"),
     "edge_upstream_request_total is neither in docs/metrics.md"),
    ("undocumented label value",
     set_expr("platform-alerts", "AuxiliaryServiceAwsThrottled", 'outcome="throttled"', 'outcome="throttle"'),
     "value not documented"),
    ("label the metric does not carry",
     set_expr("platform-alerts", "AuxiliaryServiceAwsErrors", "by (namespace, operation)", "by (namespace, route)"),
     "groups by label route"),
    ("PromQL syntax error",
     set_expr("platform-alerts", "PlatformNoAvailableReplicas", "== 0", "== ="), "syntax error"),
    ("alert without runbook_url",
     lambda d: rule(d, "platform-alerts", "AuxiliaryServiceAwsErrors")["annotations"].pop("runbook_url"),
     "no runbook_url annotation"),
    ("alert without severity",
     lambda d: rule(d, "platform-alerts", "PlatformPodNotReady")["labels"].pop("severity"), "severity must be one of"),
    ("alert renamed: no runbook, no unit test",
     lambda d: rule(d, "platform-alerts", "PlatformPodNotReady").update(alert="PlatformPodUnready"),
     "no unit test in which it fires"),
    ("cause alert without signal: cause (the SLO page could not inhibit it)",
     lambda d: rule(d, "platform-alerts", "AuxiliaryServiceAwsErrors")["labels"].pop("signal"),
     "a cause alert needs the label signal: cause"),
    ("SLO page marked as a cause",
     lambda d: rule(d, "main-api-slo", "MainApiLatencyBudgetBurnFast")["labels"].update(signal="cause"),
     "an SLO alert is not a cause"),
    ("error-budget rule renamed: no unit test covers it",
     lambda d: rule(d, "main-api-slo-budget", "namespace:edge_slo_latency_burn_rate:ratio_rate6h").update(
         record="namespace:edge_slo_latency_burn_rate:ratio_rate12h"),
     "no promql_expr_test with expected samples"),
    ("burn-rate window pair without its own unit test",
     set_expr("main-api-slo", "MainApiLatencyBudgetBurnSlow", "ratio_rate3d > (1 * 0.01)", "ratio_rate3d > (2 * 0.01)"),
     'no unit-test group named "... 2x 3d/6h ..."'),
]


def dash_panel(d, title):
    return next(p for p in d["panels"] if p.get("title") == title)


def dash_expr(title, old, new):
    def mutate(d):
        t = dash_panel(d, title)["targets"][0]
        assert old in t["expr"], (title, old)
        t["expr"] = t["expr"].replace(old, new)
    return mutate


DASHBOARD_CASES = [
    ("panel without a unit",
     lambda d: dash_panel(d, "Cache entries")["fieldConfig"]["defaults"].pop("unit"), "no unit"),
    ("rate() over a fixed window",
     dash_expr("Calls to the worker by outcome", "$__rate_interval", "5m"), "use [$__rate_interval]"),
    ("query on a fixed datasource",
     lambda d: dash_panel(d, "CPU per pod")["targets"][0].update(datasource={"type": "prometheus", "uid": "prom1"}),
     "query datasource is not ${datasource}"),
    ("dashboard without uid", lambda d: d.pop("uid"), "uid"),
    ("no pod variable",
     lambda d: d["templating"].update(list=[v for v in d["templating"]["list"] if v["name"] != "pod"]),
     "no query variable pod"),
    ("unknown metric in a panel",
     dash_expr("Cache entries", "edge_cache_entries", "edge_cache_size"), "edge_cache_size is neither"),
    ("service query without the pod filter",
     dash_expr("Cache entries", ', pod=~"$pod"', ""), 'not filtered by pod=~"$pod"'),
    ("budget panel showing every environment at once",
     dash_expr("Availability error budget left (30 d)", '{namespace="$env"}', ""), 'is not filtered by namespace="$env"'),
    ("burn-rate panel reading a rule that does not exist",
     dash_expr("Latency burn rate", "ratio_rate1h", "ratio_rate2h"), "nor a recording rule"),
    ("undocumented label value in a panel",
     dash_expr("Cache hit ratio by route", 'result="hit"', 'result="hits"'), "value not documented"),
]

def alert_field(name, field, value):
    def mutate(spec):
        for g in spec["groups"]:
            for r in g["rules"]:
                if r.get("alert") == name:
                    if value is None:
                        r.pop(field)
                    else:
                        r[field] = value
    return mutate


def alert_expr(name, old, new):
    def mutate(spec):
        for g in spec["groups"]:
            for r in g["rules"]:
                if r.get("alert") == name:
                    assert old in r["expr"], (name, old)
                    r["expr"] = r["expr"].replace(old, new)
    return mutate


def record_expr(name, old, new):
    def mutate(spec):
        for g in spec["groups"]:
            for r in g["rules"]:
                if r.get("record") == name:
                    assert old in r["expr"], (name, old)
                    r["expr"] = r["expr"].replace(old, new)
    return mutate


# (description, extracted rule file, mutation of its spec, unit-test file
#  and, after a colon, the prefix of the test groups to run: the long SLO
#  groups take seconds each)
RULE_CASES = [
    ("page threshold 14.4x raised to 16x", "main-api-slo.yaml",
     alert_expr("MainApiAvailabilityBudgetBurnFast", "(14.4 * 0.001)", "(16 * 0.001)"),
     "slo.test.yaml:MainApiAvailabilityBudgetBurnFast 14.4x"),
    ("latency page threshold 6x raised to 7x", "main-api-slo.yaml",
     alert_expr("MainApiLatencyBudgetBurnFast", "(6 * 0.01)", "(7 * 0.01)"),
     "slo.test.yaml:MainApiLatencyBudgetBurnFast 6x"),
    ("ticket pair 1x over 3d/6h raised to 3x", "main-api-slo.yaml",
     alert_expr("MainApiAvailabilityBudgetBurnSlow", "ratio_rate6h > (1 * 0.001)", "ratio_rate6h > (3 * 0.001)"),
     "slo.test.yaml:MainApiAvailabilityBudgetBurnSlow 1x"),
    ("fast burn without its short window", "main-api-slo.yaml",
     alert_expr("MainApiAvailabilityBudgetBurnFast", "ratio_rate5m > (14.4 * 0.001)", "ratio_rate1h > (14.4 * 0.001)"),
     "slo.test.yaml:MainApiAvailabilityBudgetBurnFast 14.4x"),
    ("availability budget measured against the latency objective", "main-api-slo-budget.yaml",
     record_expr("namespace:edge_slo_availability_error_budget_remaining:ratio30d", "/ 0.001", "/ 0.01"),
     "budget.test.yaml"),
    ("burn rate over the wrong window", "main-api-slo-budget.yaml",
     record_expr("namespace:edge_slo_availability_burn_rate:ratio_rate6h", "ratio_rate6h", "ratio_rate1h"),
     "budget.test.yaml"),
    ("stale-cache alert without its for", "platform-alerts.yaml",
     alert_field("MainApiServingStaleCache", "for", None), "alerts.test.yaml"),
    ("not_found counted as an AWS error", "platform-alerts.yaml",
     alert_expr("AuxiliaryServiceAwsErrors", 'outcome=~"unavailable|timeout|error"',
                'outcome=~"unavailable|timeout|error|not_found"'), "alerts.test.yaml"),
    ("pod readiness regex matching every pod", "platform-alerts.yaml",
     alert_expr("PlatformPodNotReady", 'pod=~"(main-api|auxiliary-service)-.+"', 'pod=~".+"'), "alerts.test.yaml"),
    ("runbook_url changed", "platform-alerts.yaml",
     alert_field("AuxiliaryServiceUnreachable", "annotations", {"summary": "x", "description": "y"}), "alerts.test.yaml"),
]


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--overlays", nargs="*", default=[], help="rendered service overlays (dev, prod)")
    a = ap.parse_args()
    tests = os.path.join(a.root, "monitoring/tests")
    docs = list(yaml.safe_load_all(open(a.rendered)))
    dash = json.load(open(os.path.join(a.out, "dashboard-platform.json")))
    failures = 0
    ran = 0

    def verdict(desc, rc, output, expect):
        nonlocal failures, ran
        ran += 1
        caught = rc != 0 and expect in output
        print(f"  {'ok  ' if caught else 'FAIL'} {desc}: {'rejected' if caught else 'NOT rejected as expected'}")
        if not caught:
            failures += 1
            print("    expected a failure mentioning: " + expect)
            print("    " + output[-1500:].replace("\n", "\n    "))

    with tempfile.TemporaryDirectory() as tmp:
        # the dashboard check reads the recording rules' names from here
        shutil.copy(os.path.join(a.out, "recorded.json"), tmp)
        for desc, mutate, expect in MANIFEST_CASES:
            if expect.startswith("selects 0 Services") and not a.overlays:
                print(f"  skip manifests: {desc}: no service overlays rendered to match against")
                continue
            d = copy.deepcopy(docs)
            mutate(d)
            path = os.path.join(tmp, "rendered.yaml")
            yaml.safe_dump_all(d, open(path, "w"))
            os.makedirs(os.path.join(tmp, "out"), exist_ok=True)
            rc, out = run(["node", os.path.join(tests, "validate-manifests.mjs"), path, a.root, os.path.join(tmp, "out"), *a.overlays])
            verdict(f"manifests: {desc}", rc, out, expect)
        for desc, mutate, expect in DASHBOARD_CASES:
            d = copy.deepcopy(dash)
            mutate(d)
            path = os.path.join(tmp, "dashboard.json")
            json.dump(d, open(path, "w"))
            rc, out = run(["node", os.path.join(tests, "check-dashboard.mjs"), path, a.root, tmp])
            verdict(f"dashboard: {desc}", rc, out, expect)
        path = os.path.join(tmp, "dashboard.json")
        open(path, "w").write(json.dumps(dash)[:-20])
        rc, out = run(["node", os.path.join(tests, "check-dashboard.mjs"), path, a.root, tmp])
        verdict("dashboard: truncated JSON", rc, out, "not valid JSON")
        for desc, file, mutate, test in RULE_CASES:
            work = os.path.join(tmp, "rules")
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(a.out, work, ignore=shutil.ignore_patterns("tsdb", "*.log"))
            spec = yaml.safe_load(open(os.path.join(work, file)))
            mutate(spec)
            yaml.safe_dump(spec, open(os.path.join(work, file), "w"))
            test, _, only = test.partition(":")
            tests = yaml.safe_load(open(os.path.join(work, test)))
            tests["tests"] = [t for t in tests["tests"] if t["name"].startswith(only)]
            yaml.safe_dump(tests, open(os.path.join(work, "mutation.test.yaml"), "w"))
            r = subprocess.run(["promtool", "test", "rules", "mutation.test.yaml"], cwd=work, capture_output=True, text=True)
            verdict(f"unit tests: {desc}", r.returncode, r.stdout + r.stderr, "FAILED")
    print(f"  mutations: {ran - failures} of {ran} rejected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
