// Offline check of the Argo CD app-of-apps.
//
//   node argocd/tests/main.mjs REPO_ROOT
//
// 1. renders argocd/apps (EKS) and argocd/kind/apps (kind) with kustomize and
//    validates every object (schema, unknown fields, projects, children,
//    paths, namespaces, kinds, waves, health coupling, release pin, charts);
// 2. renders the bootstraps and requires only the AppProjects and the root;
// 3. checks the repository URL and revision, the cluster facts and the prod
//    release are each written in one file only, and that changing each file
//    moves every consumer;
// 4. runs the Application health script of the Argo CD install values in Lua
//    against argocd/tests/health-cases.yaml, and checks the documented commands;
// 5. feeds the validator the broken variants of bad-cases.yaml and requires
//    each to be rejected.
// Exits 1 on any failure.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createContext, kustomize, parseYamlStream, validate, validateBootstrap, VARIANTS } from "./checks.mjs";
import { requireDep } from "./deps.mjs";
import { checkHealthCases } from "./health.mjs";

const YAML = requireDep("yaml");
const APPS = "argocd/apps";
const SOURCE_FILE = "source.yaml";
const CLUSTER_FILE = "cluster.yaml";
const RELEASE_FILE = "release-prod.yaml";
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

function readData(appsDir, file) {
  const [cm] = parseYamlStream(fs.readFileSync(path.join(appsDir, file), "utf8"), file);
  return cm?.data || {};
}
function readSource(appsDir) {
  const { repoURL, targetRevision } = readData(appsDir, SOURCE_FILE);
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
  if (del) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else cur[last] = value;
}
const splitPath = (p) => (Array.isArray(p) ? p : String(p).split("."));

function mutate(docs, c) {
  const out = structuredClone(docs);
  if (c.add) {
    out.push(structuredClone(c.add));
    return out;
  }
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

// Renders a copy of argocd/apps (and argocd/kind) after `edit` changed its
// config files.
function renderCopy(edit) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "argocd-fork-"));
  try {
    fs.cpSync(path.join(repoRoot, "argocd"), path.join(tmp, "argocd"), { recursive: true });
    edit(path.join(tmp, APPS));
    return { eks: kustomize(path.join(tmp, APPS)), kind: kustomize(path.join(tmp, VARIANTS.kind.appsDir)) };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
function setData(appsDir, file, values) {
  const doc = YAML.parseDocument(fs.readFileSync(path.join(appsDir, file), "utf8"));
  for (const [k, v] of Object.entries(values)) doc.setIn(["data", k], v);
  fs.writeFileSync(path.join(appsDir, file), doc.toString());
}

async function main() {
  const appsDir = path.join(repoRoot, APPS);
  const source = readSource(appsDir);
  const cluster = readData(appsDir, CLUSTER_FILE);
  const release = readData(appsDir, RELEASE_FILE);
  console.log(`repository ${source.repoURL} at ${source.targetRevision} (${APPS}/${SOURCE_FILE}); prod pinned to ${release.version} (${APPS}/${RELEASE_FILE})`);

  // 1. The app-of-apps of both variants as Argo CD renders them.
  const renders = {};
  const contexts = {};
  for (const variant of Object.keys(VARIANTS)) {
    const dir = VARIANTS[variant].appsDir;
    const docs = kustomize(path.join(repoRoot, dir));
    renders[variant] = docs;
    console.log(`${dir} renders ${docs.length} objects: ${docs.map((o) => `${o.kind}/${o.metadata?.name}`).join(", ")}`);
    const ctx = await createContext({ repoRoot, variant, source, cluster });
    ctx.log = (m) => console.log(m);
    expectNoErrors(`${dir}: schema, unknown fields, projects, children, paths, namespaces, kinds, waves, health coupling, release pin, charts`, validate(docs, ctx));
    ctx.log = () => {};
    contexts[variant] = ctx;

    // 2. The bootstrap: the projects and the root, nothing else.
    const bootDir = VARIANTS[variant].bootstrapDir;
    const boot = kustomize(path.join(repoRoot, bootDir));
    expectNoErrors(`${bootDir} applies only the ${boot.length - 1} AppProjects and the root`, validateBootstrap(boot, docs, ctx));
    const child = docs.find((o) => o.kind === "Application" && o.spec?.source?.path !== ctx.appsDir);
    const broken = validateBootstrap([...boot, child], docs, ctx);
    if (broken.length) console.log(`     rejects a bootstrap that also applies a child: ${broken[0]}`);
    else fail(`${bootDir}: the bootstrap check accepts a bootstrap that applies ${child.metadata.name}`);
  }

  // 3. Each value is written once: the repository URL, the cluster facts
  //    and the prod release appear in no other file of argocd/.
  const files = ["argocd/apps", "argocd/kind", "argocd/bootstrap"].flatMap((d) =>
    fs.readdirSync(path.join(repoRoot, d), { recursive: true }).map((f) => path.join(d, f)))
    .filter((f) => fs.statSync(path.join(repoRoot, f)).isFile());
  const once = [
    [source.repoURL, SOURCE_FILE],
    [cluster.vpcId, CLUSTER_FILE],
    [cluster.loadBalancerControllerRoleArn, CLUSTER_FILE],
    [`: ${release.version}`, RELEASE_FILE],
  ];
  for (const [value, file] of once) {
    const repeats = files.filter((f) => !f.endsWith(`${APPS}/${file}`) && fs.readFileSync(path.join(repoRoot, f), "utf8").includes(value));
    if (repeats.length) fail(`"${value}" repeated outside ${APPS}/${file}: ${repeats.join(", ")}`);
    else ok(`"${value.replace(/^: /, "")}" written only in ${APPS}/${file}`);
  }

  //    A fork changes the repository: every git-sourced app and project follows.
  const fork = { repoURL: "https://git.example.org/fork-owner/fork-repo.git", targetRevision: "fork-release" };
  const forked = renderCopy((dir) => setData(dir, SOURCE_FILE, fork));
  for (const variant of Object.keys(VARIANTS)) {
    const docs = renders[variant];
    const problems = [];
    const text = YAML.stringify(forked[variant]);
    if (forked[variant].length !== docs.length) problems.push(`object count changed: ${docs.length} -> ${forked[variant].length}`);
    if (text.includes(source.repoURL)) problems.push(`the old URL ${source.repoURL} is still rendered`);
    let followed = 0;
    for (const o of forked[variant]) {
      const id = `${o.kind}/${o.metadata.name}`;
      const before = docs.find((d) => d.kind === o.kind && d.metadata.name === o.metadata.name);
      if (o.kind === "Application") {
        const s = o.spec.source;
        if (s.chart) {
          if (JSON.stringify(o) !== JSON.stringify(before)) problems.push(`${id} (chart source) changed`);
          continue;
        }
        const wantRev = s.path === "manifests/overlays/prod" ? before.spec.source.targetRevision : fork.targetRevision;
        if (s.repoURL !== fork.repoURL) problems.push(`${id} repoURL stayed ${s.repoURL}`);
        else if (s.targetRevision !== wantRev) problems.push(`${id} targetRevision is ${s.targetRevision}, want ${wantRev}`);
        else followed++;
      } else if (o.kind === "AppProject") {
        if (!o.spec.sourceRepos.includes(fork.repoURL)) problems.push(`${id} sourceRepos lacks the new URL`);
        else followed++;
      }
    }
    const forkCtx = await createContext({ repoRoot, variant, source: fork, cluster });
    problems.push(...validate(forked[variant], forkCtx).map((e) => `after the change: ${e}`));
    if (followed === 0) problems.push("no object followed the change");
    if (problems.length) {
      fail(`${variant}: changing ${SOURCE_FILE} re-renders every child: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`     - ${p}`);
    } else {
      ok(`${variant}: changing only ${SOURCE_FILE} moves all ${followed} git-sourced Applications and AppProjects to ${fork.repoURL}@${fork.targetRevision} (prod stays on its release); chart apps unchanged`);
    }
  }

  //    A fork describes its cluster: the add-ons' values follow.
  const otherCluster = {
    clusterName: "fork-cluster", region: "us-east-2", vpcId: "vpc-0fedcba9876543210", publicZone: "kantox-challenge.example.com",
    loadBalancerControllerRoleArn: "arn:aws:iam::210987654321:role/fork-lbc",
    externalDnsRoleArn: "arn:aws:iam::210987654321:role/fork-external-dns",
    certManagerRoleArn: "arn:aws:iam::210987654321:role/fork-cert-manager",
  };
  {
    const r = renderCopy((dir) => setData(dir, CLUSTER_FILE, otherCluster)).eks;
    const problems = [];
    const text = YAML.stringify(r);
    // (the cluster name and region are common words of other values too)
    for (const k of ["vpcId", "loadBalancerControllerRoleArn", "externalDnsRoleArn", "certManagerRoleArn"]) {
      if (text.includes(cluster[k])) problems.push(`the old ${k} ${cluster[k]} is still rendered`);
    }
    const app = (n) => r.find((o) => o.kind === "Application" && o.metadata.name === n)?.spec.source.helm.valuesObject || {};
    const expect = [
      [app("aws-load-balancer-controller").clusterName, otherCluster.clusterName, "LBC clusterName"],
      [app("aws-load-balancer-controller").region, otherCluster.region, "LBC region"],
      [app("aws-load-balancer-controller").vpcId, otherCluster.vpcId, "LBC vpcId"],
      [app("aws-load-balancer-controller").serviceAccount?.annotations?.["eks.amazonaws.com/role-arn"], otherCluster.loadBalancerControllerRoleArn, "LBC role"],
      [app("external-dns").txtOwnerId, otherCluster.clusterName, "ExternalDNS owner id"],
      [app("external-dns").env?.[0]?.value, otherCluster.region, "ExternalDNS region"],
      [app("external-dns").serviceAccount?.annotations?.["eks.amazonaws.com/role-arn"], otherCluster.externalDnsRoleArn, "ExternalDNS role"],
      [app("cert-manager").serviceAccount?.annotations?.["eks.amazonaws.com/role-arn"], otherCluster.certManagerRoleArn, "cert-manager role"],
    ];
    for (const [got, want, what] of expect) if (got !== want) problems.push(`${what} is ${got}, want ${want}`);
    const ctx = await createContext({ repoRoot, variant: "eks", source, cluster: otherCluster });
    problems.push(...validate(r, ctx).map((e) => `after the change: ${e}`));
    if (problems.length) {
      fail(`changing ${CLUSTER_FILE} re-renders the add-ons: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`     - ${p}`);
    } else ok(`changing only ${CLUSTER_FILE} moves the ${expect.length} cluster values of the add-ons`);
  }

  //    A release moves prod's tag and images, and nothing else.
  {
    const r = renderCopy((dir) => setData(dir, RELEASE_FILE, { version: "v9.8.7" })).eks;
    const problems = [];
    for (const o of r) {
      const before = renders.eks.find((d) => d.kind === o.kind && d.metadata.name === o.metadata.name);
      const isProd = o.kind === "Application" && o.metadata.name === "services-prod";
      if (!isProd && JSON.stringify(o) !== JSON.stringify(before)) problems.push(`${o.kind}/${o.metadata.name} changed`);
      if (isProd) {
        const src = o.spec.source;
        if (src.targetRevision !== "release/v9.8.7") problems.push(`services-prod targetRevision is ${src.targetRevision}`);
        if (!(src.kustomize?.images || []).every((i) => i.endsWith(":v9.8.7")) || (src.kustomize?.images || []).length !== 2) {
          problems.push(`services-prod images are ${src.kustomize?.images}`);
        }
      }
    }
    if (problems.length) {
      fail(`changing ${RELEASE_FILE} pins prod: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`     - ${p}`);
    } else ok(`changing only ${RELEASE_FILE} moves services-prod to release/v9.8.7 with both images at v9.8.7; nothing else changes`);
  }

  //    What prod runs, as Argo CD renders it, passes the manifests policy.
  {
    const prodApp = renders.eks.find((o) => o.kind === "Application" && o.metadata.name === "services-prod");
    const objs = contexts.eks.render(prodApp.spec.source.path, prodApp.spec.source.kustomize.images);
    if (typeof objs === "string") fail(`services-prod does not render: ${objs}`);
    else {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "argocd-prod-"));
      try {
        const kust = YAML.parse(fs.readFileSync(path.join(repoRoot, "manifests/overlays/prod/kustomization.yaml"), "utf8"));
        for (const img of prodApp.spec.source.kustomize.images) {
          const [, name, newName, tag] = /^([^=]+)=(.+):([^:]+)$/.exec(img);
          Object.assign(kust.images.find((e) => e.name === name), { newName, newTag: tag });
        }
        fs.writeFileSync(path.join(tmp, "kustomization.yaml"), YAML.stringify(kust));
        fs.writeFileSync(path.join(tmp, "prod.yaml"), objs.map((o) => YAML.stringify(o)).join("---\n"));
        execFileSync("python", ["manifests/tests/policy.py", "check", "--env", "prod", "--kustomization",
          path.join(tmp, "kustomization.yaml"), path.join(tmp, "prod.yaml")], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
        ok(`services-prod as Argo CD renders it (release ${release.version}, images set by the Application) passes manifests/tests/policy.py`);
      } catch (e) {
        fail(`services-prod as Argo CD renders it fails the manifests policy: ${String(e.stdout || e.message)}`);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
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
    // The cases must be able to fail: a script calling everything healthy may
    // not pass them, nor one passing on every child's own health (which lets a
    // degraded environment hold the root).
    const naive = checkHealthCases('return { status = "Healthy", message = "" }', healthCases);
    const coupled = checkHealthCases(
      'local hs = { status = "Progressing", message = "" }\n' +
      "if obj.status ~= nil and obj.status.health ~= nil then hs.status = obj.status.health.status end\nreturn hs",
      healthCases,
    );
    if (failures.length) {
      fail(`${HEALTH_KEY} health script: ${failures.length} case(s) wrong`);
      for (const f of failures) console.log(`     - ${f}`);
    } else if (!naive.length || !coupled.length) {
      fail("argocd/tests/health-cases.yaml cannot tell the real health script from one that says Healthy or one that couples every child");
    } else {
      ok(`argocd/install/values.yaml: the ${HEALTH_KEY} script gives the expected health in all ${healthCases.length} cases (run in Lua; an always-Healthy script fails ${naive.length}, one passing on every child's own health fails ${coupled.length})`);
    }
  }
  const readme = read("argocd/README.md");
  const install = readme.match(/helm (?:upgrade --install|install) \S+ \S*argo-cd .*--version (\S+).*/);
  if (!install) fail("argocd/README.md: no `helm install ... argo-cd --version X` command");
  else if (!/^\d+\.\d+\.\d+$/.test(install[1])) fail(`argocd/README.md: argo-cd chart version ${install[1]} is not pinned`);
  else if (!install[0].includes("argocd/install/values.yaml")) fail("argocd/README.md: the install command does not use argocd/install/values.yaml");
  else ok(`argocd/README.md installs the argo-cd chart ${install[1]} with argocd/install/values.yaml`);
  if (readme.includes("kubectl apply -k argocd/bootstrap") && !/kubectl apply -k argocd\/apps\b/.test(readme)) {
    ok("argocd/README.md bootstraps with `kubectl apply -k argocd/bootstrap` (never applies argocd/apps directly)");
  } else fail("argocd/README.md: the install must apply argocd/bootstrap (projects and root only), never argocd/apps");

  // 5. The validator rejects every broken variant.
  const cases = YAML.parse(fs.readFileSync(path.join(repoRoot, "argocd/tests/bad-cases.yaml"), "utf8"));
  let rejected = 0;
  for (const c of cases) {
    const variant = c.variant || "eks";
    const errors = validate(mutate(renders[variant], c), contexts[variant]);
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
