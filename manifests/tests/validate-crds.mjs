// Validates the custom-resource objects of rendered manifests (cert-manager
// kinds) against the @kubernetes-models schemas, then rejects unknown fields.
//
//   node validate-crds.mjs FILE.yaml ...
//
// The packages' validators check required fields, types and enums but accept
// unknown fields, which the API server would prune or reject. The field lists
// for that second step are read from the same packages' TypeScript
// declarations (one interface per schema object), so both steps use one
// schema source. Exit status 1 when any object fails, 2 on a usage error.
// Needs NODE_PATH pointing at the node_modules folder holding the packages.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const MODULES = process.env.NODE_PATH;
if (!MODULES) {
  console.error("NODE_PATH must point at the node_modules folder of the schema packages");
  process.exit(2);
}

// apiVersion group -> package folder. Kinds of these groups are validated;
// any other non-core group is an error (no schema source for it here).
const PACKAGES = {
  "cert-manager.io": "@kubernetes-models/cert-manager",
};

// ---- TypeScript declaration reader ----------------------------------------

const dtsCache = new Map();

function stripComments(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

// Splits "a; b; c" style member lists at depth 0 into [key, optional, type].
function parseMembers(body) {
  const members = new Map();
  let i = 0;
  while (i < body.length) {
    while (i < body.length && /[\s;,]/.test(body[i])) i++;
    if (i >= body.length) break;
    let key;
    if (body[i] === '"') {
      const end = body.indexOf('"', i + 1);
      key = body.slice(i + 1, end);
      i = end + 1;
    } else if (body[i] === "[") {
      // index signature: [key: string]: T
      const end = body.indexOf("]", i);
      key = "[index]";
      i = end + 1;
    } else {
      const m = /^[A-Za-z_$][\w$]*/.exec(body.slice(i));
      if (!m) throw new Error(`cannot parse member near: ${body.slice(i, i + 40)}`);
      key = m[0];
      i += key.length;
    }
    let optional = false;
    if (body[i] === "?") { optional = true; i++; }
    while (/\s/.test(body[i])) i++;
    if (body[i] !== ":") throw new Error(`expected ':' after ${key}`);
    i++;
    let depth = 0;
    const start = i;
    for (; i < body.length; i++) {
      const c = body[i];
      if ("{<(".includes(c)) depth++;
      else if ("}>)".includes(c)) depth--;
      else if (c === ";" && depth === 0) break;
    }
    members.set(key, { optional, type: body.slice(start, i).trim() });
    i++;
  }
  return members;
}

function resolveModule(fromFile, spec) {
  let p = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(MODULES, spec);
  p = p.replace(/\.js$/, "");
  return `${p}.d.ts`;
}

function loadDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const src = stripComments(fs.readFileSync(file, "utf8"));
  const info = { file, imports: new Map(), interfaces: new Map(), aliases: new Map(), exportAs: new Map() };
  for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [orig, local] = name.split(/\s+as\s+/);
      info.imports.set((local || orig).trim(), { file: resolveModule(file, m[2]), name: orig.trim() });
    }
  }
  for (const m of src.matchAll(/export type\s*\{([^}]*)\}/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [orig, alias] = name.split(/\s+as\s+/);
      if (alias) info.exportAs.set(alias.trim(), orig.trim());
    }
  }
  const ifaceRe = /export interface (\w+)(?:\s+extends\s+([\w\s,.<>]+?))?\s*\{/g;
  for (let m; (m = ifaceRe.exec(src)); ) {
    let depth = 1;
    let j = ifaceRe.lastIndex;
    for (; j < src.length && depth > 0; j++) {
      if (src[j] === "{") depth++;
      else if (src[j] === "}") depth--;
    }
    const body = src.slice(ifaceRe.lastIndex, j - 1);
    info.interfaces.set(m[1], { members: parseMembers(body), extends: (m[2] || "").split(",").map((s) => s.trim()).filter(Boolean) });
  }
  for (const m of src.matchAll(/export type (\w+)\s*=\s*([^;]+);/g)) info.aliases.set(m[1], m[2].trim());
  dtsCache.set(file, info);
  return info;
}

// Finds the declaration of a type name as seen from one file.
function lookup(info, name) {
  const local = info.exportAs.get(name) || name;
  if (info.interfaces.has(local)) return { kind: "interface", info, decl: info.interfaces.get(local) };
  if (info.aliases.has(local)) return { kind: "alias", info, type: info.aliases.get(local) };
  const imp = info.imports.get(name);
  if (imp) {
    if (!fs.existsSync(imp.file)) return { kind: "opaque" };
    return lookup(loadDts(imp.file), imp.name);
  }
  return { kind: "opaque" };
}

function splitTopLevel(type, sep) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if ("{<(".includes(c)) depth++;
    else if ("}>)".includes(c)) depth--;
    else if (c === sep && depth === 0) { parts.push(type.slice(start, i).trim()); start = i + 1; }
  }
  parts.push(type.slice(start).trim());
  return parts.filter(Boolean);
}

const LEAF = /^(string|number|boolean|any|unknown|object|null|undefined|"[^"]*"|-?\d+(\.\d+)?|true|false)$/;

// Reports fields of `value` that `type` does not declare.
function checkUnknown(value, type, info, where, errors) {
  type = type.trim();
  if (value === null || value === undefined) return;
  const union = splitTopLevel(type, "|");
  if (union.length > 1) {
    const structured = union.filter((t) => !LEAF.test(t));
    if (structured.length === 0) return;
    // Accept the first alternative that reports nothing.
    let best = null;
    for (const alt of structured) {
      const errs = [];
      checkUnknown(value, alt, info, where, errs);
      if (errs.length === 0) return;
      if (!best || errs.length < best.length) best = errs;
    }
    errors.push(...best);
    return;
  }
  if (LEAF.test(type)) return;
  const arr = /^Array<([\s\S]*)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, k) => checkUnknown(v, arr[1], info, `${where}[${k}]`, errors));
    return;
  }
  if (type.startsWith("{")) {
    const members = parseMembers(type.slice(1, -1));
    checkObject(value, members, info, where, errors);
    return;
  }
  const name = /^[\w$.]+/.exec(type)?.[0];
  const found = name ? lookup(info, name) : { kind: "opaque" };
  if (found.kind === "alias") return checkUnknown(value, found.type, found.info, where, errors);
  if (found.kind === "interface") {
    const members = new Map(found.decl.members);
    for (const parent of found.decl.extends) {
      const p = lookup(found.info, parent.replace(/<.*$/, ""));
      if (p.kind === "interface") for (const [k, v] of p.decl.members) if (!members.has(k)) members.set(k, v);
    }
    checkObject(value, members, found.info, where, errors);
  }
  // opaque: a type from a package without declarations we read; nothing to say.
}

function checkObject(value, members, info, where, errors) {
  if (typeof value !== "object" || Array.isArray(value)) return;
  const index = members.get("[index]");
  for (const [key, v] of Object.entries(value)) {
    const m = members.get(key);
    if (m) checkUnknown(v, m.type, info, `${where}.${key}`, errors);
    else if (index) checkUnknown(v, index.type, info, `${where}.${key}`, errors);
    else errors.push(`${where}.${key}: unknown field`);
  }
}

// ---- main ------------------------------------------------------------------

async function validateObject(obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const pkg = PACKAGES[group];
  if (!pkg) return [`no schema source for ${obj.apiVersion}`];
  const base = path.join(MODULES, pkg, group, version, obj.kind);
  if (!fs.existsSync(`${base}.js`)) return [`${pkg} has no kind ${obj.kind} in ${obj.apiVersion}`];
  const mod = await import(pathToFileURL(`${base}.js`).href);
  const errors = [];
  try {
    new mod[obj.kind](obj).validate();
  } catch (err) {
    errors.push(`schema: ${err.message}`);
  }
  const info = loadDts(`${base}.d.ts`);
  checkUnknown(obj, `I${obj.kind}`, info, obj.kind, errors);
  return errors;
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: validate-crds.mjs FILE.yaml ...");
    process.exit(2);
  }
  const YAML = await import(pathToFileURL(path.join(MODULES, "yaml", "dist", "index.js")).href);
  let failed = 0;
  let checked = 0;
  for (const file of files) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
      const obj = doc.toJS();
      if (!obj || !obj.apiVersion) continue;
      const group = obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0] : "";
      if (!group.includes(".") || group.endsWith(".k8s.io")) continue; // core kinds: kubernetes-validate
      checked++;
      const id = `${file}: ${obj.kind}/${obj.metadata?.name}`;
      const errors = await validateObject(obj);
      if (errors.length) {
        failed++;
        for (const e of errors) console.log(`FAIL ${id}: ${e}`);
      } else {
        console.log(`ok   ${id}`);
      }
    }
  }
  console.log(`custom resources: ${checked} checked, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

await main();
