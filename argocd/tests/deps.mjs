// Locates the pinned npm packages that scripts/tools.sh installs. ES modules
// ignore NODE_PATH, so the validators resolve their dependencies through it
// explicitly (`eval "$(scripts/tools.sh env)"` sets it).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const NODE_MODULES = (process.env.NODE_PATH || "").split(path.delimiter).find((p) => p && fs.existsSync(p));
if (!NODE_MODULES) {
  throw new Error('NODE_PATH is unset or missing: run `eval "$(scripts/tools.sh env)"` first');
}

export const depPath = (rel) => path.join(NODE_MODULES, rel);
export const requireDep = createRequire(depPath("noop.js"));
export const importDep = (rel) => import(pathToFileURL(depPath(rel)).href);
