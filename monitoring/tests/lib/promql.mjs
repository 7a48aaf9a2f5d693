// PromQL inspection with the grammar of Prometheus' own UI (lezer-promql):
// syntax errors, the selectors an expression reads and the labels it groups by.
import { load } from "./deps.mjs";

const { parser } = await load("@prometheus-io/lezer-promql");

const unquote = (s) => JSON.parse(s.startsWith("'") ? `"${s.slice(1, -1).replace(/"/g, '\\"')}"` : s.startsWith("`") ? JSON.stringify(s.slice(1, -1)) : s);

// Grafana's variables are not PromQL: give them values of the right kind.
export function substituteGrafana(expr, vars = {}) {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}|\$__interval|\$\{__interval\}|\$__range|\$\{__range\}/g, "5m")
    .replace(/\$\{?(\w+)\}?/g, (m, name) => (name in vars ? vars[name] : m));
}

export function inspect(expr) {
  const tree = parser.parse(expr);
  const errors = [];
  const selectors = [];
  const grouping = new Set();
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push(`syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 20), node.to + 20))}`);
      }
      if (node.name === "GroupingLabels") {
        for (let c = node.node.firstChild; c; c = c.nextSibling) {
          if (c.name === "LabelName") grouping.add(expr.slice(c.from, c.to));
        }
      }
      if (node.name === "VectorSelector") {
        const sel = { name: null, matchers: [], text: expr.slice(node.from, node.to) };
        for (let c = node.node.firstChild; c; c = c.nextSibling) {
          if (c.name === "Identifier") sel.name = expr.slice(c.from, c.to);
          if (c.name === "LabelMatchers") {
            for (let m = c.firstChild; m; m = m.nextSibling) {
              if (m.name !== "UnquotedLabelMatcher") continue;
              const label = m.getChild("LabelName"), op = m.getChild("MatchOp"), val = m.getChild("StringLiteral");
              sel.matchers.push({ label: expr.slice(label.from, label.to), op: expr.slice(op.from, op.to), value: unquote(expr.slice(val.from, val.to)) });
            }
          }
        }
        if (!sel.name) errors.push(`selector without a metric name: ${sel.text}`);
        selectors.push(sel);
      }
    },
  });
  return { errors, selectors, grouping: [...grouping] };
}

// Problems of one expression against the series index (see contract.mjs):
// unknown metric names, labels the metric lacks, undocumented label values.
export function problems(expr, index, recorded = {}) {
  const { errors, selectors, grouping } = inspect(expr);
  const out = [...errors];
  const known = new Set(["le"]);
  for (const s of selectors) {
    const entry = index[s.name];
    const rec = recorded[s.name];
    if (!entry && !rec) { out.push(`metric ${s.name} is neither in docs/metrics.md, nor a known kube-state-metrics/cAdvisor/Prometheus series, nor a recording rule`); continue; }
    const labels = entry ? entry.labels : rec;
    labels.forEach((l) => known.add(l));
    for (const m of s.matchers) {
      if (m.label === "__name__") continue;
      if (!labels.includes(m.label)) { out.push(`${s.name} has no label ${m.label} (in ${s.text})`); continue; }
      const allowed = entry && entry.values[m.label];
      if (!allowed || m.value.includes("$")) continue;
      if (m.op === "=" || m.op === "!=") {
        if (!allowed.includes(m.value)) out.push(`${s.name}{${m.label}${m.op}"${m.value}"}: value not documented (documented: ${allowed.join(", ")})`);
      } else {
        const re = new RegExp(`^(?:${m.value})$`);
        const hits = allowed.filter((v) => re.test(v));
        const alts = /^[\w|/{}-]+$/.test(m.value) ? m.value.split("|") : [];
        const strays = alts.filter((a) => !allowed.includes(a));
        if (hits.length === 0 || strays.length) out.push(`${s.name}{${m.label}${m.op}"${m.value}"}: matches no documented value or names undocumented ones (documented: ${allowed.join(", ")})`);
      }
    }
  }
  for (const g of grouping) if (!known.has(g)) out.push(`groups by label ${g}, which none of its series carries`);
  return { problems: out, selectors, grouping };
}
