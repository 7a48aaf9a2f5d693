// The metrics contract, read from docs/metrics.md: every service metric with
// its type, labels and the documented values of each label. Also the series
// the monitoring may use from kube-state-metrics, cAdvisor and Prometheus.
import { readFileSync } from "node:fs";

const ticks = (s) => [...s.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

// Series from outside the services that rules and dashboards may read.
export const EXTERNAL = {
  up: { type: "gauge", labels: ["job", "instance", "namespace", "pod", "service", "container", "endpoint"], values: {} },
  kube_pod_status_ready: { type: "gauge", labels: ["namespace", "pod", "uid", "condition"], values: { condition: ["true", "false", "unknown"] } },
  kube_deployment_status_replicas_available: { type: "gauge", labels: ["namespace", "deployment"], values: {} },
  container_cpu_usage_seconds_total: { type: "counter", labels: ["namespace", "pod", "container", "cpu", "id", "image", "name"], values: {} },
  container_memory_working_set_bytes: { type: "gauge", labels: ["namespace", "pod", "container", "id", "image", "name"], values: {} },
};

// Labels Prometheus (kube-prometheus-stack) attaches to every scraped series.
export const TARGET_LABELS = ["job", "instance", "namespace", "pod", "service", "container", "endpoint"];

export function parseContract(path) {
  const text = readFileSync(path, "utf8");
  const metrics = {};
  const globalValues = {};
  let section = "";
  const sectionGlobals = {};
  // Join wrapped prose lines into one paragraph line; tables and headings stay.
  const lines = text.split("\n").reduce((acc, l) => {
    const prose = l.trim() && !/^[|#]/.test(l);
    const prevProse = acc.length && acc[acc.length - 1].trim() && !/^[|#]/.test(acc[acc.length - 1]);
    if (prose && prevProse) acc[acc.length - 1] += " " + l.trim();
    else acc.push(l);
    return acc;
  }, []);
  for (const line of lines) {
    if (line.startsWith("## ")) { section = line.slice(3).trim(); continue; }
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    const sentences = line.split(/\.\s+/).map((s) => s.match(/^`(\w+)` is one of (.*)$/)).filter(Boolean);
    for (const [, label, list] of sentences) (sectionGlobals[section] ||= {})[label] = ticks(list);
    if (sentences.length) continue;
    if (cells.length === 2) {
      const [label] = ticks(cells[0]);
      // Parenthesised remarks ("the /api/ aliases ...") are not values.
      const values = ticks(cells[1].replace(/\([^)]*\)/g, ""));
      if (label && values.length) globalValues[label] = values;
      continue;
    }
    if (cells.length !== 4) continue;
    const [name] = ticks(cells[0]);
    if (!name || !/^(edge|aux|process)_/.test(name)) continue;
    const type = cells[1].split(" ")[0];
    if (!["counter", "gauge", "histogram"].includes(type)) throw new Error(`${path}: ${name}: unknown type ${cells[1]}`);
    const labels = ticks(cells[2]);
    const values = {};
    // "`outcome` is `ok` (...), `connect_error`, ..." or "by `result`: `hit`, ..."
    const meaning = ticks(cells[3]);
    const at = meaning.findIndex((t) => labels.includes(t));
    if (at >= 0 && meaning.length > at + 1) values[meaning[at]] = meaning.slice(at + 1);
    metrics[name] = { type, labels, values, section };
  }
  for (const m of Object.values(metrics)) {
    for (const l of m.labels) {
      m.values[l] ||= (sectionGlobals[m.section] || {})[l] || globalValues[l];
    }
  }
  if (Object.keys(metrics).length === 0) throw new Error(`${path}: no metric rows found`);
  return metrics;
}

// Every series name a metric exposes, with its labels (histograms add `le`).
export function seriesIndex(contract) {
  const index = {};
  for (const [name, m] of Object.entries({ ...contract, ...EXTERNAL })) {
    const external = name in EXTERNAL;
    const labels = external ? m.labels : [...m.labels, ...TARGET_LABELS];
    if (m.type === "histogram") {
      index[`${name}_bucket`] = { metric: name, labels: [...labels, "le"], values: m.values, external };
      index[`${name}_count`] = { metric: name, labels, values: m.values, external };
      index[`${name}_sum`] = { metric: name, labels, values: m.values, external };
    } else {
      index[name] = { metric: name, labels, values: m.values, external };
    }
  }
  return index;
}
