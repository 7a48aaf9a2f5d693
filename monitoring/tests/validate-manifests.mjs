// Validates the rendered monitoring/ kustomization (a multi-document YAML):
// CRD schemas (kubernetes-models) plus unknown-field strictness, the labels
// kube-prometheus-stack selects on, what the ServiceMonitors scrape, and every
// rule: PromQL syntax, metric names and label values against docs/metrics.md,
// alert labels, annotations and runbooks, unit-test coverage of each alert.
// Writes each PrometheusRule's .spec to OUT/<name>.yaml for promtool and the
// selectors the rules read to OUT/rule-selectors.json.
//
//   node validate-manifests.mjs RENDERED.yaml REPO_ROOT OUT_DIR
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "./lib/deps.mjs";
import { unknownFields } from "./lib/strict.mjs";
import { parseContract, seriesIndex } from "./lib/contract.mjs";
import { inspect, problems } from "./lib/promql.mjs";

const [rendered, root, out, ...serviceFiles] = process.argv.slice(2);
if (!out) { console.error("usage: validate-manifests.mjs RENDERED.yaml REPO_ROOT OUT_DIR [RENDERED_OVERLAY.yaml ...]"); process.exit(2); }

const YAML = await load("yaml");
const PO = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/";
const models = {
  ServiceMonitor: (await load(PO + "ServiceMonitor")).ServiceMonitor,
  PrometheusRule: (await load(PO + "PrometheusRule")).PrometheusRule,
};
const RELEASE = "kube-prometheus-stack";
const SERVICES = ["auxiliary-service", "main-api"];
const SEVERITIES = ["critical", "warning"];

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
let mark = 0; // errors seen when the last section ended
const ok = (msg) => { console.log(`  ${errors.length > mark ? "FAIL" : "ok  "} ${msg}`); mark = errors.length; };

const docs = YAML.parseAllDocuments(readFileSync(rendered, "utf8")).map((d) => {
  if (d.errors.length) throw new Error(`${rendered}: ${d.errors[0].message}`);
  return d.toJSON();
}).filter(Boolean);
const byKind = (k) => docs.filter((d) => d.kind === k);
console.log(`validating ${docs.length} rendered objects: ${docs.map((d) => `${d.kind}/${d.metadata.name}`).join(", ")}`);

for (const d of docs) {
  const where = `${d.kind}/${d.metadata?.name}`;
  if (d.metadata?.namespace !== "monitoring") fail(where, `namespace is ${d.metadata?.namespace}, not monitoring`);
  const Model = models[d.kind];
  if (Model) {
    try { new Model(d).validate(); } catch (e) { fail(where, `schema: ${e.message}`); }
    for (const e of unknownFields(d, PO + d.kind, where)) fail(where, e);
    if (d.metadata.labels?.release !== RELEASE) fail(where, `missing label release: ${RELEASE} (the stack would ignore it)`);
  } else if (d.kind !== "ConfigMap") {
    fail(where, "unexpected kind in monitoring/");
  }
}
ok("schemas (kubernetes-models), unknown fields, namespace monitoring, release label");

// --- ServiceMonitors -----------------------------------------------------
const monitors = byKind("ServiceMonitor");
const scraped = [];
for (const m of monitors) {
  const where = `ServiceMonitor/${m.metadata.name}`;
  const ns = [...(m.spec.namespaceSelector?.matchNames || [])].sort();
  if (JSON.stringify(ns) !== JSON.stringify(["dev", "prod"])) fail(where, `namespaceSelector.matchNames is ${ns}, want dev and prod`);
  const sel = m.spec.selector?.matchLabels || {};
  if (sel["app.kubernetes.io/part-of"] !== "kantox-challenge") fail(where, "selector lacks app.kubernetes.io/part-of: kantox-challenge");
  const name = sel["app.kubernetes.io/name"];
  if (!SERVICES.includes(name)) fail(where, `selector app.kubernetes.io/name is ${name}`);
  for (const e of m.spec.endpoints) {
    if (e.port !== "admin") fail(where, `endpoint port ${e.port}, want admin`);
    if ((e.path || "/metrics") !== "/metrics") fail(where, `endpoint path ${e.path}`);
  }
  scraped.push(name);
}
for (const s of SERVICES) if (!scraped.includes(s)) fail("ServiceMonitors", `nothing scrapes ${s}`);
// Each monitor must select a Service with the scraped port in every
// environment the services' overlays render.
for (const f of serviceFiles) {
  const services = YAML.parseAllDocuments(readFileSync(f, "utf8")).map((d) => d.toJSON()).filter((d) => d && d.kind === "Service");
  for (const m of monitors) {
    for (const ns of m.spec.namespaceSelector?.matchNames || []) {
      const inNs = services.filter((s) => s.metadata.namespace === ns);
      if (inNs.length === 0) continue; // this overlay renders another environment
      const hits = inNs.filter((s) => Object.entries(m.spec.selector?.matchLabels || {}).every(([k, v]) => s.metadata.labels?.[k] === v));
      if (hits.length !== 1) { fail(`ServiceMonitor/${m.metadata.name}`, `selects ${hits.length} Services in ${ns} (${f}), want 1`); continue; }
      for (const e of m.spec.endpoints) {
        if (!hits[0].spec.ports.some((p) => p.name === e.port)) fail(`ServiceMonitor/${m.metadata.name}`, `Service ${ns}/${hits[0].metadata.name} has no port named ${e.port}`);
      }
      console.log(`       ${m.metadata.name} selects Service ${ns}/${hits[0].metadata.name}, port ${m.spec.endpoints.map((e) => e.port).join(", ")}`);
    }
  }
}
ok(`ServiceMonitors scrape the admin port of ${scraped.join(", ")} in dev and prod`);
writeFileSync(join(out, "servicemonitors.json"), JSON.stringify(monitors.map((m) => ({
  name: m.metadata.name, service: m.spec.selector.matchLabels["app.kubernetes.io/name"], endpoints: m.spec.endpoints,
})), null, 2));

// --- Dashboards ----------------------------------------------------------
const dashboards = byKind("ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1");
if (dashboards.length === 0) fail("ConfigMaps", 'no ConfigMap labelled grafana_dashboard: "1"');
for (const c of dashboards) {
  for (const [key, text] of Object.entries(c.data || {})) {
    if (!key.endsWith(".json")) fail(`ConfigMap/${c.metadata.name}`, `key ${key} is not a .json dashboard`);
    writeFileSync(join(out, `dashboard-${key}`), text);
  }
}
ok(`${dashboards.length} dashboard ConfigMap(s) labelled grafana_dashboard: "1"`);

// --- PrometheusRules -----------------------------------------------------
const contract = parseContract(join(root, "docs/metrics.md"));
writeFileSync(join(out, "contract.json"), JSON.stringify(contract, null, 2));
const index = seriesIndex(contract);
const rules = byKind("PrometheusRule");
const recorded = {};
const groupNames = new Set();
const alerts = {};
for (const r of rules) {
  for (const g of r.spec.groups) {
    if (groupNames.has(g.name)) fail(`PrometheusRule/${r.metadata.name}`, `duplicate group ${g.name}`);
    groupNames.add(g.name);
    for (const rule of g.rules) {
      if (rule.record) {
        if (!/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/.test(rule.record)) fail(rule.record, "recording rule name is not level:metric:operations");
        if (recorded[rule.record]) fail(rule.record, "recorded twice");
        const { grouping } = inspect(String(rule.expr));
        recorded[rule.record] = grouping.filter((l) => l !== "le");
      }
    }
  }
}
// A rule without `by (...)` (arithmetic on other recorded series) keeps the
// labels of the recorded series it reads.
for (let pass = 0; pass < 3; pass++) {
  for (const r of rules) for (const g of r.spec.groups) for (const rule of g.rules) {
    if (!rule.record || recorded[rule.record].length) continue;
    const { selectors } = inspect(String(rule.expr));
    recorded[rule.record] = [...new Set(selectors.flatMap((x) => recorded[x.name] || []))];
  }
}
const selectors = [];
for (const r of rules) {
  writeFileSync(join(out, `${r.metadata.name}.yaml`), YAML.stringify(r.spec));
  for (const g of r.spec.groups) {
    for (const rule of g.rules) {
      const name = rule.record || rule.alert;
      const where = `PrometheusRule/${r.metadata.name} ${name}`;
      const res = problems(String(rule.expr), index, recorded);
      res.problems.forEach((p) => fail(where, p));
      for (const s of res.selectors) if (!recorded[s.name]) selectors.push({ source: where, ...s });
      if (!rule.alert) continue;
      alerts[rule.alert] = { expr: String(rule.expr), where };
      if (!SEVERITIES.includes(rule.labels?.severity)) fail(where, `severity must be one of ${SEVERITIES}`);
      // Alertmanager routes and inhibits by these: an SLO alert carries the
      // SLO it guards; every other alert is a cause (signal: cause), held back
      // while the SLO page of its namespace fires.
      if (rule.labels?.slo) {
        if (!["availability", "latency"].includes(rule.labels.slo)) fail(where, `slo label ${rule.labels.slo} is not availability or latency`);
        if (rule.labels.signal) fail(where, "an SLO alert is not a cause (no signal label)");
      } else if (rule.labels?.signal !== "cause") {
        fail(where, "a cause alert needs the label signal: cause (the SLO page inhibits it in Alertmanager)");
      }
      for (const a of ["summary", "description", "runbook_url"]) if (!rule.annotations?.[a]) fail(where, `no ${a} annotation`);
      const url = rule.annotations?.runbook_url || "";
      const m = url.match(/^https:\/\/\S+\/(docs\/runbooks\/([\w-]+)\.md)$/);
      if (!m || m[2] !== rule.alert) fail(where, `runbook_url ${url} does not point at docs/runbooks/${rule.alert}.md`);
      else if (!existsSync(join(root, m[1]))) fail(where, `runbook ${m[1]} does not exist`);
      else if (!readFileSync(join(root, m[1]), "utf8").startsWith(`# ${rule.alert}`)) fail(where, `${m[1]} does not start with "# ${rule.alert}"`);
    }
  }
}
// runbook_url points into the platform's repository: the one GitOps deploys.
const source = join(root, "argocd/apps/source.yaml");
if (existsSync(source)) {
  const repo = YAML.parse(readFileSync(source, "utf8")).data.repoURL.replace(/\.git$/, "");
  const rev = YAML.parse(readFileSync(source, "utf8")).data.targetRevision;
  for (const r of rules) for (const g of r.spec.groups) for (const rule of g.rules) {
    if (rule.alert && !String(rule.annotations?.runbook_url).startsWith(`${repo}/blob/${rev}/docs/runbooks/`)) {
      fail(`PrometheusRule/${r.metadata.name} ${rule.alert}`, `runbook_url is not under ${repo}/blob/${rev}/ (argocd/apps/source.yaml)`);
    }
  }
}
ok(`${rules.length} PrometheusRules: ${Object.keys(recorded).length} recording rules, ${Object.keys(alerts).length} alerts; PromQL parsed; metrics, labels and values match docs/metrics.md; runbooks exist`);
writeFileSync(join(out, "rule-selectors.json"), JSON.stringify(selectors, null, 2));
writeFileSync(join(out, "rule-files.txt"), rules.map((r) => `${r.metadata.name}.yaml`).join("\n") + "\n");

writeFileSync(join(out, "recorded.json"), JSON.stringify(recorded, null, 2));

// --- Unit-test coverage: every alert fires and stays silent somewhere;
// every burn-rate window pair has a test group of its own that fires it.
const testDir = join(root, "monitoring/tests/rules");
const fires = {}, silent = {}, groupsFiring = {};
const exprTested = new Set();
for (const f of readdirSync(testDir).filter((f) => f.endsWith(".test.yaml"))) {
  const t = YAML.parse(readFileSync(join(testDir, f), "utf8"));
  for (const group of t.tests || []) {
    for (const pt of group.promql_expr_test || []) {
      for (const m of String(pt.expr).matchAll(/[a-z_]+:[a-z0-9_]+:[a-z0-9_]+/g)) if ((pt.exp_samples || []).length) exprTested.add(m[0]);
    }
    for (const at of group.alert_rule_test || []) {
      const firing = (at.exp_alerts || []).length > 0;
      (firing ? fires : silent)[at.alertname] = true;
      if (firing) (groupsFiring[at.alertname] ||= []).push(group.name || "");
    }
  }
}
for (const [alert, { expr, where }] of Object.entries(alerts)) {
  if (!fires[alert]) fail(where, "no unit test in which it fires");
  if (!silent[alert]) fail(where, "no unit test in which it stays silent");
  const pairs = [...expr.matchAll(/ratio_rate(\w+) > \(([\d.]+) \* [\d.]+\)\s*and\s*\S+ratio_rate(\w+) >/g)];
  for (const [, long, factor, short] of pairs) {
    const label = `${factor}x ${long}/${short}`;
    if (!(groupsFiring[alert] || []).some((n) => n.includes(label))) fail(where, `no unit-test group named "... ${label} ..." in which it fires`);
  }
}
// The error-budget rules feed the dashboard, not an alert: each has a
// promql_expr_test with expected samples.
const budgetRules = rules.filter((r) => r.metadata.name === "main-api-slo-budget").flatMap((r) => r.spec.groups.flatMap((g) => g.rules));
if (!budgetRules.length) fail("PrometheusRule/main-api-slo-budget", "missing: the error budget and burn rates are not recorded");
for (const r of budgetRules) {
  if (r.record && !exprTested.has(r.record)) fail(`PrometheusRule/main-api-slo-budget ${r.record}`, "no promql_expr_test with expected samples");
}
ok(`unit tests make each of the ${Object.keys(alerts).length} alerts fire and stay silent, and fire each burn-rate window pair; the ${budgetRules.length} error-budget rules have expected samples`);

if (errors.length) {
  console.error(`\n${errors.length} problem(s):`);
  for (const e of errors) console.error(`  FAIL ${e}`);
  process.exit(1);
}
