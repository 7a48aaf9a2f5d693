// Unknown-field strictness for Argo CD objects.
//
// The validators of @kubernetes-models/argo-cd check required fields and types
// but accept any extra key, while the Kubernetes API server prunes unknown
// fields of a CRD without a word: a misspelt `selfHeal` or `syncOptions` would
// be dropped silently. The allowed field set is taken from the same package:
// its TypeScript declarations (generated from the Argo CD API types) are read
// with the TypeScript compiler API, and every key of an object is looked up in
// the declared properties of its type, recursively. Types declared with an
// index signature (labels, annotations) accept any key; types declared with
// no properties at all (RawExtension, such as helm.valuesObject) are opaque.
import fs from "node:fs";
import { depPath, requireDep } from "./deps.mjs";

const ts = requireDep("typescript");

const MODELS = {
  Application: "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application.d.ts",
  AppProject: "@kubernetes-models/argo-cd/argoproj.io/v1alpha1/AppProject.d.ts",
};

export function createStrictChecker(models = MODELS) {
  const files = Object.fromEntries(
    Object.entries(models).map(([kind, rel]) => [kind, depPath(rel)]),
  );
  for (const file of Object.values(files)) {
    if (!fs.existsSync(file)) throw new Error(`model declarations not installed: ${file}`);
  }
  const program = ts.createProgram(Object.values(files), {
    noEmit: true,
    types: [],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
  });
  const checker = program.getTypeChecker();

  const rootTypes = {};
  for (const [kind, file] of Object.entries(files)) {
    const sf = program.getSourceFile(file);
    if (!sf) throw new Error(`cannot load the model declarations ${file}`);
    const mod = checker.getSymbolAtLocation(sf);
    const sym = mod && checker.getExportsOfModule(mod).find((s) => s.getName() === `I${kind}`);
    if (!sym) throw new Error(`no interface I${kind} in ${file}`);
    rootTypes[kind] = checker.getDeclaredTypeOfSymbol(sym);
  }

  const isNullish = (t) =>
    (t.flags & (ts.TypeFlags.Null | ts.TypeFlags.Undefined | ts.TypeFlags.Void)) !== 0;
  const members = (t) => (t.isUnion() ? t.types : [t]).filter((m) => !isNullish(m));
  const isAnyLike = (t) => (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) !== 0;

  function walk(value, type, where, errors) {
    const ms = members(type);
    if (ms.some(isAnyLike)) return;
    if (Array.isArray(value)) {
      const arr = ms.find((m) => checker.isArrayType(m) || checker.isTupleType(m));
      if (!arr) return; // a type mismatch is the schema validator's to report
      const [elem] = checker.getTypeArguments(arr);
      value.forEach((v, i) => walk(v, elem, `${where}[${i}]`, errors));
      return;
    }
    if (value === null || typeof value !== "object") return;
    const objs = ms.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0 && !checker.isArrayType(m));
    if (objs.length === 0) return;
    const props = new Map();
    let indexType = null;
    for (const m of objs) {
      for (const p of checker.getPropertiesOfType(m)) props.set(p.getName(), p);
      const idx = checker.getIndexInfoOfType(m, ts.IndexKind.String);
      if (idx) indexType = idx.type;
    }
    if (props.size === 0 && !indexType) return; // opaque (RawExtension)
    for (const [key, v] of Object.entries(value)) {
      const p = props.get(key);
      if (p) {
        walk(v, checker.getTypeOfSymbol(p), `${where}.${key}`, errors);
      } else if (indexType) {
        walk(v, indexType, `${where}.${key}`, errors);
      } else {
        const known = [...props.keys()].sort().join(", ");
        errors.push(`unknown field ${where}.${key} (allowed here: ${known})`);
      }
    }
  }

  return {
    kinds: Object.keys(rootTypes),
    // Returns a list of "unknown field" messages for obj (empty when clean).
    check(obj) {
      const type = rootTypes[obj.kind];
      if (!type) return [`no model for kind ${obj.kind}`];
      const errors = [];
      walk(obj, type, "", errors);
      return errors.map((e) => e.replace(/^unknown field \./, "unknown field "));
    },
  };
}
