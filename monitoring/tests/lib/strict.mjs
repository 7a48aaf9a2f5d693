// Unknown-field strictness for CRD objects. The kubernetes-models validators
// check required fields and types but accept any extra key, so a typo such as
// `namespaceSelecter` would pass them; the API server (with field validation)
// and the operator would drop it. This walker reads the allowed properties of
// every type from the package's own TypeScript declarations (.d.ts).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { resolve } from "./deps.mjs";

const cache = new Map();

function declFile(spec, fromFile) {
  if (spec.startsWith(".")) return join(dirname(fromFile), spec.replace(/\.js$/, "") + ".d.ts");
  return resolve(spec).replace(/\.(c|m)?js$/, ".d.ts");
}

// Splits `{ ... }` bodies into top-level `"name"?: type;` members.
function members(body) {
  const out = [];
  let depth = 0, cur = "";
  for (const ch of body) {
    if ("{<(".includes(ch)) depth++;
    if ("}>)".includes(ch)) depth--;
    if (ch === ";" && depth === 0) { out.push(cur.trim()); cur = ""; } else cur += ch;
  }
  return out
    .map((m) => m.replace(/\/\*\*[\s\S]*?\*\//g, "").trim())
    .map((m) => {
      const map = m.match(/^\[key: string\]:\s*([\s\S]+)$/); // any key
      if (map) return { name: "*", type: map[1].trim() };
      const prop = m.match(/^"?([^"?:\s]+)"?\??:\s*([\s\S]+)$/);
      return prop && { name: prop[1], type: prop[2].trim() };
    })
    .filter(Boolean);
}

function block(text, start) { // text[start] === "{"
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    if (text[i] === "{") depth++;
    if (text[i] === "}" && --depth === 0) return text.slice(start + 1, i);
  }
  throw new Error("unbalanced braces");
}

// The shape of the first interface (or type alias) a .d.ts file declares.
function shapeOfFile(file) {
  if (cache.has(file)) return cache.get(file);
  const text = readFileSync(file, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
  const imports = {};
  for (const m of text.matchAll(/import \{([^}]+)\} from "([^"]+)"/g)) {
    for (const n of m[1].split(",").map((s) => s.trim()).filter(Boolean)) imports[n] = declFile(m[2], file);
  }
  let shape;
  const iface = text.match(/export interface \w+(?: extends ([^{]+))?\s*\{/);
  if (iface) {
    const body = block(text, iface.index + iface[0].length - 1);
    shape = { kind: "object", props: {}, bases: [], file, imports };
    for (const base of (iface[1] || "").split(",").map((s) => s.trim()).filter((b) => b && b !== "TypeMeta")) shape.bases.push(base);
    for (const { name, type } of members(body)) shape.props[name] = type;
  } else {
    const alias = text.match(/export type \w+ = ([^;]+);/);
    shape = { kind: "alias", type: alias ? alias[1].trim() : "any", file, imports };
  }
  cache.set(file, shape);
  return shape;
}

function typeShape(type, ctx) {
  type = type.trim();
  const arr = type.match(/^Array<([\s\S]+)>$/);
  if (arr) return { kind: "array", item: arr[1], ctx };
  if (type.startsWith("{")) {
    const props = {};
    for (const { name, type: t } of members(block(type, 0))) props[name] = t;
    return { kind: "object", props, bases: [], ctx };
  }
  if (/^I\w+$/.test(type) && ctx.imports[type]) {
    const s = shapeOfFile(ctx.imports[type]);
    return s.kind === "alias" ? typeShape(s.type, s) : s;
  }
  return { kind: "leaf" };
}

function allProps(shape) {
  const props = { ...shape.props };
  for (const base of shape.bases || []) {
    const b = typeShape(base, shape.imports ? shape : shape.ctx);
    if (b.kind === "object") Object.assign(props, allProps(b));
  }
  return props;
}

function walk(value, shape, path, errors) {
  if (value === null || value === undefined) return;
  if (shape.kind === "array" && Array.isArray(value)) {
    value.forEach((v, i) => walk(v, typeShape(shape.item, shape.ctx), `${path}[${i}]`, errors));
  } else if (shape.kind === "object" && typeof value === "object" && !Array.isArray(value)) {
    const props = allProps(shape);
    const ctx = shape.imports ? shape : shape.ctx;
    for (const [k, v] of Object.entries(value)) {
      const t = props[k] ?? props["*"];
      if (t === undefined) { errors.push(`${path}.${k}: unknown field`); continue; }
      walk(v, typeShape(t, ctx), `${path}.${k}`, errors);
    }
  }
}

// Unknown fields of `object` against the model module `spec`, e.g.
// "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor".
export function unknownFields(object, spec, where) {
  const errors = [];
  walk(object, shapeOfFile(declFile(spec, "")), where, errors);
  return errors;
}
