// Offline check of the Argo CD app-of-apps.
//
//   node argocd/tests/main.mjs REPO_ROOT
//
// 1. renders argocd/apps with kustomize and validates every object (schema,
//    unknown fields, projects, children, paths, namespaces, kinds, waves);
// 2. checks the repository URL and revision are written in one file only;
// 3. re-renders a copy with another URL and revision and requires every
//    child and project to follow;
// 4. runs the Application health script of the Argo CD install values in Lua
//    against argocd/tests/health-cases.yaml, and checks the documented commands;
// 5. feeds the validator the broken variants of bad-cases.yaml and requires
//    each to be rejected.
// Exits 1 on any failure.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createContext, kustomize, parseYamlStream, validate, KPS } from "./checks.mjs";
import { requireDep } from "./deps.mjs";
import { checkHealthCases } from "./health.mjs";

const YAML = requireDep("yaml");
const APPS = "argocd/apps";
const SOURCE_FILE = "source.yaml";
const HEALTH_KEY = "resource.customizations.health.argoproj.io_Application";

const repoRoot = path.resolve(process.argv[2] || ".");
let failures = 0;
const ok = (msg) => console.log(`ok   ${msg}`);
const fail = (msg) => {
  failures++;
  console.log(`FAIL ${msg}`);
};
const expectNoErrors = (what, errors) => {
  if (errors.length) {
    fail(`${what}: ${errors.length} error(s)`);
    for (const e of errors) console.log(`     - ${e}`);
  } else ok(what);
};

function readSource(appsDir) {
  const [cm] = parseYamlStream(fs.readFileSync(path.join(appsDir, SOURCE_FILE), "utf8"), SOURCE_FILE);
  const { repoURL, targetRevision } = cm?.data || {};
  if (!repoURL || !targetRevision) throw new Error(`${APPS}/${SOURCE_FILE} must set data.repoURL and data.targetRevision`);
  return { repoURL, targetRevision };
}

function setPath(obj, keys, value, del) {
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === undefined) cur[k] = {};
    cur = cur[k];
  }
  const last = keys[keys.length - 1];
  if (del) delete cur[last];
  else cur[last] = value;
}
const splitPath = (p) => (Array.isArray(p) ? p : String(p).split("."));

function mutate(docs, c) {
  const out = structuredClone(docs);
  const i = out.findIndex((o) => o.kind === c.target.kind && o.metadata.name === c.target.name);
  if (i < 0) throw new Error(`bad case "${c.name}": no ${c.target.kind}/${c.target.name} in the render`);
  if (c.remove) {
    out.splice(i, 1);
    return out;
  }
  const sets = Array.isArray(c.set) ? c.set : Object.entries(c.set || {}).map(([p, value]) => ({ path: p, value }));
  for (const s of sets) setPath(out[i], splitPath(s.path), s.value, false);
  for (const d of c.delete || []) setPath(out[i], splitPath(d), undefined, true);
  return out;
}

async function main() {
  const appsDir = path.join(repoRoot, APPS);
  const source = readSource(appsDir);
  console.log(`repository ${source.repoURL} at ${source.targetRevision} (from ${APPS}/${SOURCE_FILE})`);

  // 1. The app-of-apps as Argo CD renders it.
  const docs = kustomize(appsDir);
  const summary = docs.map((o) => `${o.kind}/${o.metadata?.name}`).join(", ");
  console.log(`${APPS} renders ${docs.length} objects: ${summary}`);
  const ctx = await createContext({ repoRoot, appsDir: APPS, source });
  ctx.log = (m) => console.log(m);
  expectNoErrors("app-of-apps: schema, unknown fields, projects, children, paths, namespaces, kinds, waves", validate(docs, ctx));
  ctx.log = () => {};

  // 2. The repository URL is written once. Files in argocd/apps other than
  //    source.yaml must not repeat it (they carry a placeholder).
  const repeats = fs
    .readdirSync(appsDir, { recursive: true })
    .filter((f) => f !== SOURCE_FILE && fs.statSync(path.join(appsDir, f)).isFile())
    .filter((f) => fs.readFileSync(path.join(appsDir, f), "utf8").includes(source.repoURL));
  if (repeats.length) fail(`repository URL repeated outside ${SOURCE_FILE}: ${repeats.join(", ")}`);
  else ok(`repository URL written only in ${APPS}/${SOURCE_FILE}`);

  // 3. A fork changes the one value: re-render a copy and compare.
  const fork = { repoURL: "https://git.example.org/fork-owner/fork-repo.git", targetRevision: "fork-release" };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "argocd-fork-"));
  try {
    const copy = path.join(tmp, "apps");
    fs.cpSync(appsDir, copy, { recursive: true });
    const srcDoc = YAML.parseDocument(fs.readFileSync(path.join(copy, SOURCE_FILE), "utf8"));
    srcDoc.setIn(["data", "repoURL"], fork.repoURL);
    srcDoc.setIn(["data", "targetRevision"], fork.targetRevision);
    fs.writeFileSync(path.join(copy, SOURCE_FILE), srcDoc.toString());
    const forked = kustomize(copy);
    const text = YAML.stringify(forked);
    const problems = [];
    if (forked.length !== docs.length) problems.push(`object count changed: ${docs.length} -> ${forked.length}`);
    if (text.includes(source.repoURL)) problems.push(`the old URL ${source.repoURL} is still rendered`);
    let followed = 0;
    for (const o of forked) {
      const id = `${o.kind}/${o.metadata.name}`;
      const before = docs.find((d) => d.kind === o.kind && d.metadata.name === o.metadata.name);
      if (o.kind === "Application") {
        const s = o.spec.source;
        if (s.repoURL === KPS.repoURL) {
          if (JSON.stringify(o) !== JSON.stringify(before)) problems.push(`${id} (chart source) changed`);
          continue;
        }
        if (s.repoURL !== fork.repoURL) problems.push(`${id} repoURL stayed ${s.repoURL}`);
        else if (s.targetRevision !== fork.targetRevision) problems.push(`${id} targetRevision stayed ${s.targetRevision}`);
        else followed++;
      } else if (o.kind === "AppProject") {
        if (!o.spec.sourceRepos.includes(fork.repoURL)) problems.push(`${id} sourceRepos lacks the new URL`);
        else followed++;
      }
    }
    const forkCtx = await createContext({ repoRoot, appsDir: APPS, source: fork });
    const forkErrors = validate(forked, forkCtx);
    problems.push(...forkErrors.map((e) => `after the change: ${e}`));
    if (followed === 0) problems.push("no object followed the change");
    if (problems.length) {
      fail(`changing ${SOURCE_FILE} re-renders every child: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`     - ${p}`);
    } else {
      ok(`changing only ${SOURCE_FILE} moves all ${followed} git-sourced Applications and AppProjects to ${fork.repoURL}@${fork.targetRevision}; the chart app is unchanged`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  // 4. Argo CD install: values with the Application health check, and the
  //    README's commands pin the chart and apply the root.
  const read = (rel) => (fs.existsSync(path.join(repoRoot, rel)) ? fs.readFileSync(path.join(repoRoot, rel), "utf8") : "");
  const values = YAML.parse(read("argocd/install/values.yaml")) || {};
  const lua = values?.configs?.cm?.[HEALTH_KEY];
  const healthCases = YAML.parse(read("argocd/tests/health-cases.yaml")) || [];
  if (typeof lua !== "string") {
    fail(`argocd/install/values.yaml: configs.cm["${HEALTH_KEY}"] missing`);
  } else if (healthCases.length === 0) {
    fail("argocd/tests/health-cases.yaml has no cases");
  } else {
    const failures = checkHealthCases(lua, healthCases);
    // The cases must be able to fail: a script calling everything healthy may not pass them.
    const naive = checkHealthCases('return { status = "Healthy", message = "" }', healthCases);
    if (failures.length) {
      fail(`${HEALTH_KEY} health script: ${failures.length} case(s) wrong`);
      for (const f of failures) console.log(`     - ${f}`);
    } else if (!naive.length) {
      fail("argocd/tests/health-cases.yaml cannot tell a real health script from one that says Healthy");
    } else {
      ok(`argocd/install/values.yaml: the ${HEALTH_KEY} script gives the expected health in all ${healthCases.length} cases (run in Lua; an always-Healthy script fails ${naive.length})`);
    }
  }
  const readme = read("argocd/README.md");
  const install = readme.match(/helm (?:upgrade --install|install) \S+ \S*argo-cd .*--version (\S+).*/);
  if (!install) fail("argocd/README.md: no `helm install ... argo-cd --version X` command");
  else if (!/^\d+\.\d+\.\d+$/.test(install[1])) fail(`argocd/README.md: argo-cd chart version ${install[1]} is not pinned`);
  else if (!install[0].includes("argocd/install/values.yaml")) fail("argocd/README.md: the install command does not use argocd/install/values.yaml");
  else ok(`argocd/README.md installs the argo-cd chart ${install[1]} with argocd/install/values.yaml`);
  if (readme.includes(`kubectl apply -k ${APPS}`)) ok(`argocd/README.md applies the root with \`kubectl apply -k ${APPS}\``);
  else fail(`argocd/README.md: no \`kubectl apply -k ${APPS}\` command`);

  // 5. The validator rejects every broken variant.
  const cases = YAML.parse(fs.readFileSync(path.join(repoRoot, "argocd/tests/bad-cases.yaml"), "utf8"));
  let rejected = 0;
  for (const c of cases) {
    const errors = validate(mutate(docs, c), ctx);
    const re = new RegExp(c.expect);
    const hit = errors.find((e) => re.test(e));
    if (hit) {
      rejected++;
      console.log(`     rejects ${c.name}: ${hit}`);
    } else {
      fail(`bad case "${c.name}" was not rejected with /${c.expect}/; errors: ${errors.length ? errors.join(" | ") : "none"}`);
    }
  }
  if (rejected === cases.length) ok(`validator rejects all ${cases.length} broken variants in argocd/tests/bad-cases.yaml`);

  console.log(failures ? `${failures} failure(s)` : "argocd: all checks passed");
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
