// Checks a Grafana dashboard (JSON model) as shipped in its ConfigMap:
// valid JSON, a fixed uid, a Prometheus datasource variable used by every
// panel and query, environment and pod variables used by the service
// queries, a unit on every panel, $__rate_interval in every rate()/increase(),
// and every metric of every query in docs/metrics.md or the known
// kube-state-metrics/cAdvisor/Prometheus set. Writes the selectors the
// dashboard reads to OUT/dashboard-selectors.json.
//
//   node check-dashboard.mjs DASHBOARD.json REPO_ROOT OUT_DIR
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseContract, seriesIndex } from "./lib/contract.mjs";
import { problems, substituteGrafana } from "./lib/promql.mjs";

const [file, root, out] = process.argv.slice(2);
if (!out) { console.error("usage: check-dashboard.mjs DASHBOARD.json REPO_ROOT OUT_DIR"); process.exit(2); }

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
let dash;
try { dash = JSON.parse(readFileSync(file, "utf8")); } catch (e) { console.error(`FAIL ${file}: not valid JSON: ${e.message}`); process.exit(1); }

if (!/^[a-z0-9-]{6,40}$/.test(dash.uid || "")) fail("dashboard", `uid ${JSON.stringify(dash.uid)} is not a fixed, readable uid`);
if (!dash.title) fail("dashboard", "no title");
if ("id" in dash && dash.id !== null) fail("dashboard", "carries a database id; provisioned dashboards must not");

const vars = Object.fromEntries((dash.templating?.list || []).map((v) => [v.name, v]));
const ds = Object.values(vars).find((v) => v.type === "datasource" && v.query === "prometheus");
if (!ds) fail("templating", "no Prometheus datasource variable");
const dsRef = ds && `\${${ds.name}}`;
for (const name of ["env", "pod"]) {
  if (vars[name]?.type !== "query") fail("templating", `no query variable ${name}`);
}
const usesDs = (d) => d && d.type === "prometheus" && d.uid === dsRef;
for (const v of Object.values(vars).filter((v) => v.type === "query")) {
  if (!usesDs(v.datasource)) fail(`variable ${v.name}`, `datasource is not ${dsRef}`);
}

const index = seriesIndex(parseContract(join(root, "docs/metrics.md")));
// Recording rules (written by validate-manifests.mjs): name -> labels.
const recordedFile = join(out, "recorded.json");
const recorded = existsSync(recordedFile) ? JSON.parse(readFileSync(recordedFile, "utf8")) : {};
const selectors = [];
const queries = [];
for (const v of Object.values(vars).filter((v) => v.type === "query")) {
  const q = typeof v.query === "string" ? v.query : v.query?.query;
  const m = q && q.match(/^label_values\((.*),\s*(\w+)\)$/s);
  if (!m) { fail(`variable ${v.name}`, `query ${q} is not label_values(selector, label)`); continue; }
  queries.push({ where: `variable ${v.name}`, expr: m[1], label: m[2] });
}

const panels = [];
const flatten = (ps) => ps.forEach((p) => { panels.push(p); if (p.panels) flatten(p.panels); });
flatten(dash.panels || []);
const ids = new Set();
for (const p of panels) {
  const where = `panel ${p.id} "${p.title}"`;
  if (ids.has(p.id)) fail(where, "duplicate panel id");
  ids.add(p.id);
  if (p.type === "row") continue;
  if (!usesDs(p.datasource)) fail(where, `panel datasource is not ${dsRef}`);
  if (!p.fieldConfig?.defaults?.unit) fail(where, "no unit (fieldConfig.defaults.unit)");
  if (!p.targets?.length) fail(where, "no queries");
  for (const t of p.targets || []) {
    if (!usesDs(t.datasource)) fail(`${where} ${t.refId}`, `query datasource is not ${dsRef}`);
    queries.push({ where: `${where} ${t.refId}`, expr: t.expr || "" });
  }
}

for (const q of queries) {
  if (!q.expr.trim()) { fail(q.where, "empty query"); continue; }
  for (const m of q.expr.matchAll(/\b(rate|irate|increase)\s*\(([^[]*)\[([^\]]+)\]/g)) {
    if (m[3] !== "$__rate_interval") fail(q.where, `${m[1]}() over [${m[3]}]; use [$__rate_interval]`);
  }
  const res = problems(substituteGrafana(q.expr), index, recorded);
  res.problems.forEach((p) => fail(q.where, p));
  for (const s of res.selectors) {
    const entry = index[s.name];
    const service = entry && !entry.external;
    const has = (label, value) => s.matchers.some((m) => m.label === label && m.value === value);
    // Recorded series per environment must be filtered by it; account-wide
    // ones (no namespace label, e.g. the SSM quota) cannot be.
    if (recorded[s.name]?.includes("namespace") && q.where.startsWith("panel") && !has("namespace", "$env")) fail(q.where, `${s.name} is not filtered by namespace="$env"`);
    if ((service || s.name === "up" || ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "kube_pod_status_ready", "kube_deployment_status_replicas_available"].includes(s.name))
        && q.where.startsWith("panel") && !has("namespace", "$env")) fail(q.where, `${s.name} is not filtered by namespace="$env"`);
    if (service && !has("pod", "$pod")) fail(q.where, `${s.name} is not filtered by pod=~"$pod"`);
    selectors.push({ source: `dashboard ${q.where}`, ...s });
  }
}
const metrics = new Set(selectors.map((s) => s.name));
console.log(`  checked ${basename(file)}: uid ${dash.uid}, ${panels.length} panels, ${queries.length} queries over ${metrics.size} series names, variables ${Object.keys(vars).join(", ")}`);
writeFileSync(join(out, "dashboard-selectors.json"), JSON.stringify(selectors, null, 2));
if (errors.length) {
  console.error(`\n${errors.length} problem(s):`);
  for (const e of errors) console.error(`  FAIL ${e}`);
  process.exit(1);
}
console.log("  ok  valid JSON, fixed uid, datasource variable on every panel and query, env and pod variables, units, $__rate_interval, metrics in docs/metrics.md");
