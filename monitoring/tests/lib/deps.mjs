// Loads the pinned npm packages from NODE_PATH (set by `scripts/tools.sh env`);
// ES modules do not search NODE_PATH themselves, so the package's "exports"
// map is read here (import condition first).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const roots = (process.env.NODE_PATH || "").split(":").filter(Boolean);
if (roots.length === 0) throw new Error('NODE_PATH is not set: run eval "$(scripts/tools.sh env)" first');

function pick(target) {
  if (typeof target === "string") return target;
  for (const cond of ["import", "default", "require"]) if (target && target[cond]) return pick(target[cond]);
  return null;
}

export function resolve(spec) {
  const parts = spec.split("/");
  const name = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  const sub = "." + spec.slice(name.length);
  for (const root of roots) {
    const dir = join(root, name);
    if (!existsSync(join(dir, "package.json"))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const exp = pkg.exports;
    if (exp && typeof exp === "object" && !Array.isArray(exp) && Object.keys(exp).some((k) => k.startsWith("."))) {
      if (exp[sub]) return join(dir, pick(exp[sub]));
      for (const [key, target] of Object.entries(exp)) {
        const star = key.indexOf("*");
        if (star < 0 || !sub.startsWith(key.slice(0, star)) || !sub.endsWith(key.slice(star + 1))) continue;
        const hole = sub.slice(star, sub.length - (key.length - star - 1));
        return join(dir, pick(target).replace("*", hole));
      }
      throw new Error(`${spec}: not exported by ${name}`);
    }
    if (sub !== ".") return join(dir, sub);
    return join(dir, pkg.module || pkg.main || "index.js");
  }
  throw new Error(`${spec}: package ${name} not found under NODE_PATH`);
}

export const load = (spec) => import(pathToFileURL(resolve(spec)).href);
