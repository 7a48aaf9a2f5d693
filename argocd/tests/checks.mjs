// The rules the rendered app-of-apps must satisfy. validate() takes the objects
// `kubectl kustomize argocd/apps` renders and returns a list of errors; it never
// throws for a rule violation, so a test can feed it broken variants and assert
// which rule catches them.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { importDep, requireDep } from "./deps.mjs";
import { createStrictChecker } from "./strict-fields.mjs";

const YAML = requireDep("yaml");

export const ARGOCD_NAMESPACE = "argocd";
export const IN_CLUSTER = "https://kubernetes.default.svc";
export const FINALIZER = "resources-finalizer.argocd.argoproj.io";
export const WAVE = "argocd.argoproj.io/sync-wave";
export const KPS = {
  repoURL: "https://prometheus-community.github.io/helm-charts",
  chart: "kube-prometheus-stack",
  releaseName: "kube-prometheus-stack",
  namespace: "monitoring",
};

// What the platform contract says the root must deploy: source path (or chart)
// and destination namespace ("" for cluster-scoped objects only).
export const REQUIRED_CHILDREN = [
  { path: "manifests/namespaces", namespace: "" },
  { path: "manifests/overlays/dev", namespace: "dev" },
  { path: "manifests/overlays/prod", namespace: "prod" },
  { path: "monitoring", namespace: "monitoring" },
  { chart: KPS.chart, namespace: KPS.namespace },
];

// Scope of every kind a child path may render. A kind missing here fails the
// check: add it with its scope rather than guessing.
const CLUSTER_SCOPED = new Set([
  "/Namespace",
  "apiextensions.k8s.io/CustomResourceDefinition",
  "rbac.authorization.k8s.io/ClusterRole",
  "rbac.authorization.k8s.io/ClusterRoleBinding",
  "admissionregistration.k8s.io/MutatingWebhookConfiguration",
  "admissionregistration.k8s.io/ValidatingWebhookConfiguration",
  "scheduling.k8s.io/PriorityClass",
  "storage.k8s.io/StorageClass",
  "cert-manager.io/ClusterIssuer",
]);
const NAMESPACED = new Set([
  "/ConfigMap", "/Secret", "/Service", "/ServiceAccount", "/PersistentVolumeClaim",
  "/LimitRange", "/ResourceQuota",
  "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet",
  "batch/Job", "batch/CronJob",
  "autoscaling/HorizontalPodAutoscaler",
  "policy/PodDisruptionBudget",
  "networking.k8s.io/NetworkPolicy", "networking.k8s.io/Ingress",
  "rbac.authorization.k8s.io/Role", "rbac.authorization.k8s.io/RoleBinding",
  "cert-manager.io/Certificate", "cert-manager.io/Issuer",
  "monitoring.coreos.com/ServiceMonitor", "monitoring.coreos.com/PodMonitor",
  "monitoring.coreos.com/PrometheusRule", "monitoring.coreos.com/Prometheus",
  "monitoring.coreos.com/Alertmanager",
  "argoproj.io/Application", "argoproj.io/AppProject",
  "policy.linkerd.io/Server", "policy.linkerd.io/AuthorizationPolicy",
  "policy.linkerd.io/MeshTLSAuthentication", "policy.linkerd.io/NetworkAuthentication",
  "security.istio.io/PeerAuthentication", "networking.istio.io/VirtualService",
  "networking.istio.io/DestinationRule",
]);

export const groupOf = (apiVersion) => (apiVersion.includes("/") ? apiVersion.split("/")[0] : "");
const gk = (o) => `${groupOf(o.apiVersion || "")}/${o.kind}`;

// Argo CD matches project patterns with globs; * is the only wildcard used here.
export function globMatch(pattern, value) {
  const re = new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return re.test(value ?? "");
}
const inList = (list, group, kind) =>
  (list || []).some((e) => globMatch(e.group, group) && globMatch(e.kind, kind));

// Same semantics as AppProject.IsGroupKindPermitted in Argo CD: a missing
// namespaced whitelist allows every namespaced kind, a missing cluster
// whitelist allows no cluster-scoped kind.
export function kindPermitted(project, group, kind, namespaced) {
  const s = project.spec || {};
  if (namespaced) {
    const wl = s.namespaceResourceWhitelist;
    const white = wl === undefined || wl === null || (wl.length > 0 && inList(wl, group, kind));
    return white && !inList(s.namespaceResourceBlacklist, group, kind);
  }
  return inList(s.clusterResourceWhitelist, group, kind) && !inList(s.clusterResourceBlacklist, group, kind);
}

export function destinationPermitted(project, dest) {
  return (project.spec.destinations || []).some(
    (d) =>
      (d.server ? globMatch(d.server, dest.server) : globMatch(d.name, dest.name)) &&
      globMatch(d.namespace ?? "", dest.namespace ?? ""),
  );
}

const sourceRepoPermitted = (project, url) => (project.spec.sourceRepos || []).some((r) => globMatch(r, url));

export function parseYamlStream(text, where) {
  return YAML.parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`${where}: ${d.errors[0].message}`);
      return d.toJS();
    })
    .filter((o) => o !== null && o !== undefined);
}

export function kustomize(dir) {
  const out = execFileSync("kubectl", ["kustomize", dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 << 20,
  });
  return parseYamlStream(out, dir);
}

export async function createContext({ repoRoot, appsDir, source }) {
  const { Application, AppProject } = await importDep("@kubernetes-models/argo-cd/argoproj.io/v1alpha1/index.js");
  const renders = new Map();
  return {
    repoRoot,
    appsDir, // repository-relative path of the root's source (argocd/apps)
    source, // { repoURL, targetRevision } read from the one config file
    models: { Application, AppProject },
    strict: createStrictChecker(),
    // Render a repository path once, remembering failures as strings.
    render(rel) {
      if (!renders.has(rel)) {
        try {
          renders.set(rel, kustomize(path.join(repoRoot, rel)));
        } catch (e) {
          renders.set(rel, String(e.stderr || e.message).trim().split("\n").slice(-3).join(" | "));
        }
      }
      return renders.get(rel);
    },
    log: () => {},
  };
}

const waveOf = (o) => {
  const w = o.metadata?.annotations?.[WAVE];
  return w === undefined ? 0 : Number(w);
};

export function validate(docs, ctx) {
  const errors = [];
  const err = (o, msg) => errors.push(`${o ? `${o.kind}/${o.metadata?.name}: ` : ""}${msg}`);

  // 1. Every object is an Application or AppProject, valid for its CRD schema,
  //    with no field the schema does not know, in the argocd namespace.
  const names = new Set();
  for (const o of docs) {
    if (o.apiVersion !== "argoproj.io/v1alpha1" || !["Application", "AppProject"].includes(o.kind)) {
      err(o, `unexpected ${o.apiVersion} ${o.kind}: argocd/apps renders only Applications and AppProjects`);
      continue;
    }
    const id = `${o.kind}/${o.metadata?.name}`;
    if (names.has(id)) err(o, "duplicate name");
    names.add(id);
    try {
      new ctx.models[o.kind](structuredClone(o)).validate();
    } catch (e) {
      err(o, `schema: ${e.message}`);
    }
    for (const m of ctx.strict.check(o)) err(o, m);
    if (o.metadata?.namespace !== ARGOCD_NAMESPACE) err(o, `metadata.namespace must be ${ARGOCD_NAMESPACE}`);
  }

  const projects = new Map(docs.filter((o) => o.kind === "AppProject").map((p) => [p.metadata.name, p]));
  const apps = docs.filter((o) => o.kind === "Application");
  const { repoURL, targetRevision } = ctx.source;

  // 2. Projects: dedicated, limited to this repository (plus the chart
  //    repository), to in-cluster destinations and to listed kinds.
  for (const p of projects.values()) {
    const s = p.spec || {};
    if (p.metadata.name === "default") err(p, "the default project must not be defined here");
    if (!(s.sourceRepos || []).includes(repoURL)) err(p, `sourceRepos must include the repository ${repoURL}`);
    const chartApps = apps.filter((a) => a.spec?.project === p.metadata.name && a.spec?.source?.chart);
    for (const r of s.sourceRepos || []) {
      if (r === repoURL) continue;
      if (r !== KPS.repoURL) err(p, `sourceRepos entry ${r} is neither this repository nor the chart repository`);
      else if (!chartApps.length) err(p, `sourceRepos allows the chart repository ${r} but no chart app uses this project`);
    }
    if (!(s.destinations || []).length) err(p, "no destinations");
    for (const d of s.destinations || []) {
      if (d.server !== IN_CLUSTER) err(p, `destination server ${d.server ?? d.name} is not ${IN_CLUSTER}`);
      if ((d.namespace ?? "").includes("*") && !inList(s.namespaceResourceBlacklist, "*", "*")) {
        err(p, `wildcard destination namespace ${d.namespace} needs every namespaced kind denied`);
      }
    }
    const wl = s.namespaceResourceWhitelist;
    if ((wl === undefined || wl === null) && !inList(s.namespaceResourceBlacklist, "*", "*")) {
      err(p, "namespaceResourceWhitelist is missing, which allows every namespaced kind");
    }
    for (const e of [...(wl || []), ...(s.clusterResourceWhitelist || [])]) {
      if (e.group === "*" || e.kind === "*") err(p, `wildcard kind ${e.group}/${e.kind} in a whitelist`);
    }
    for (const w of s.syncWindows || []) {
      for (const a of w.applications || []) {
        if (!apps.some((x) => x.metadata.name === a)) err(p, `sync window names unknown application ${a}`);
      }
    }
  }

  // 3. Applications: one root rendering argocd/apps, the children the contract
  //    asks for, each in its own project, pinned to the one repository and
  //    revision, with a finalizer, automated prune and self-heal, and a wave.
  const roots = apps.filter((a) => a.spec?.source?.path === ctx.appsDir);
  if (roots.length !== 1) err(null, `expected exactly one root Application with source.path ${ctx.appsDir}, found ${roots.length}`);
  const root = roots[0];

  for (const a of apps) {
    const s = a.spec || {};
    const src = s.source || {};
    const dest = s.destination || {};
    if (s.sources) err(a, "use a single source; spec.sources is not supported by this check");
    if (s.project === "default") err(a, "uses the default project");
    const proj = projects.get(s.project);
    if (!proj) {
      err(a, `project ${s.project} is not defined in ${ctx.appsDir}`);
      continue;
    }
    if (!(a.metadata.finalizers || []).includes(FINALIZER)) err(a, `finalizer ${FINALIZER} missing`);
    const auto = s.syncPolicy?.automated;
    if (!auto || auto.prune !== true || auto.selfHeal !== true || auto.enabled === false) {
      err(a, "syncPolicy.automated with prune: true and selfHeal: true is required");
    }
    const w = a.metadata.annotations?.[WAVE];
    if (a !== root && (w === undefined || !/^-?\d+$/.test(w))) err(a, `integer ${WAVE} annotation required`);
    if (dest.server !== IN_CLUSTER) err(a, `destination.server must be ${IN_CLUSTER}`);
    if (!destinationPermitted(proj, dest)) {
      err(a, `project ${proj.metadata.name} does not allow destination ${dest.server} namespace "${dest.namespace ?? ""}"`);
    }
    if (!sourceRepoPermitted(proj, src.repoURL)) err(a, `project ${proj.metadata.name} does not allow source ${src.repoURL}`);
    for (const p of projects.values()) {
      if (waveOf(p) >= waveOf(a)) err(a, `AppProject ${p.metadata.name} must sync in an earlier wave than this app`);
    }

    if (src.chart) {
      checkChartApp(a, err);
      continue;
    }
    if (src.repoURL !== repoURL) err(a, `source.repoURL ${src.repoURL} is not the repository ${repoURL}`);
    if (src.targetRevision !== targetRevision) err(a, `source.targetRevision ${src.targetRevision} is not ${targetRevision}`);
    checkPath(a, proj, ctx, err);
  }

  // 4. The children the platform needs, and the order between them.
  const children = apps.filter((a) => a !== root);
  for (const want of REQUIRED_CHILDREN) {
    const found = children.filter((a) =>
      want.chart ? a.spec?.source?.chart === want.chart : a.spec?.source?.path === want.path,
    );
    const label = want.chart ? `chart ${want.chart}` : `path ${want.path}`;
    if (found.length !== 1) {
      err(null, `expected exactly one child Application for ${label}, found ${found.length}`);
      continue;
    }
    if ((found[0].spec.destination?.namespace ?? "") !== want.namespace) {
      err(found[0], `destination namespace must be "${want.namespace}" for ${label}`);
    }
  }
  const byPath = (p) => children.find((a) => a.spec?.source?.path === p);
  const nsApp = byPath("manifests/namespaces");
  const kps = children.find((a) => a.spec?.source?.chart === KPS.chart);
  const mon = byPath("monitoring");
  if (nsApp && !/(^|,)\s*Delete=false/.test(nsApp.spec.source.kustomize?.commonAnnotations?.["argocd.argoproj.io/sync-options"] || "")) {
    err(nsApp, "Namespaces must carry argocd.argoproj.io/sync-options: Delete=false (kustomize.commonAnnotations)");
  }
  if (nsApp) {
    for (const a of children) {
      if (a !== nsApp && waveOf(a) <= waveOf(nsApp)) err(a, "must sync in a later wave than the namespaces");
    }
  }
  if (kps && mon && waveOf(mon) <= waveOf(kps)) err(mon, "must sync in a later wave than kube-prometheus-stack (CRDs first)");
  if (kps && mon) checkPickedUp(kps, mon, ctx, err);
  const prodProject = projects.get(byPath("manifests/overlays/prod")?.spec.project);
  if (prodProject && !(prodProject.spec.syncWindows || []).length) {
    err(prodProject, "prod is protected by a sync window: syncWindows missing");
  }
  return errors;
}

function checkChartApp(a, err) {
  const src = a.spec.source;
  if (src.chart !== KPS.chart || src.repoURL !== KPS.repoURL) {
    err(a, `only ${KPS.chart} from ${KPS.repoURL} is expected as a chart source`);
    return;
  }
  if (!/^\d+\.\d+\.\d+$/.test(String(src.targetRevision))) err(a, `chart version ${src.targetRevision} is not pinned (x.y.z)`);
  if (src.helm?.releaseName !== KPS.releaseName) err(a, `helm.releaseName must be ${KPS.releaseName}`);
  if (!(a.spec.syncPolicy?.syncOptions || []).includes("ServerSideApply=true")) {
    err(a, "ServerSideApply=true is required (the chart's CRDs are too large for client-side apply)");
  }
  const v = src.helm?.valuesObject || {};
  if (v.nodeExporter?.enabled !== false) err(a, "nodeExporter.enabled must be false (monitoring enforces PSS restricted)");
  const spec = v.prometheus?.prometheusSpec || {};
  for (const kind of ["serviceMonitor", "podMonitor", "rule"]) {
    const sel = spec[`${kind}Selector`]?.matchLabels?.release === KPS.releaseName;
    const all = spec[`${kind}SelectorNilUsesHelmValues`] === false;
    if (!sel && !all) err(a, `prometheusSpec.${kind}Selector must select release: ${KPS.releaseName}`);
  }
  const dash = v.grafana?.sidecar?.dashboards || {};
  if (dash.enabled !== true || dash.label !== "grafana_dashboard" || dash.labelValue !== "1") {
    err(a, 'grafana.sidecar.dashboards must load ConfigMaps labelled grafana_dashboard: "1"');
  }
  if (!["ALL", KPS.namespace].includes(dash.searchNamespace)) {
    err(a, `grafana.sidecar.dashboards.searchNamespace must be ALL or ${KPS.namespace}`);
  }
}

// The monitors, rules and dashboards the monitoring app deploys must be
// selected by the Prometheus and Grafana that kube-prometheus-stack runs.
function checkPickedUp(kps, mon, ctx, err) {
  const objs = ctx.render(mon.spec.source.path);
  if (typeof objs === "string") return; // already reported by checkPath
  const v = kps.spec.source.helm?.valuesObject || {};
  const spec = v.prometheus?.prometheusSpec || {};
  const selectorFor = {
    ServiceMonitor: "serviceMonitor",
    PodMonitor: "podMonitor",
    PrometheusRule: "rule",
  };
  const matches = (sel, labels) =>
    Object.entries(sel?.matchLabels || {}).every(([k, val]) => labels?.[k] === val) && !sel?.matchExpressions;
  let dashboards = 0;
  for (const o of objs) {
    const field = selectorFor[o.kind];
    const labels = o.metadata?.labels || {};
    if (field) {
      const all = spec[`${field}SelectorNilUsesHelmValues`] === false && !spec[`${field}Selector`];
      if (!all && !matches(spec[`${field}Selector`], labels)) {
        err(mon, `${o.kind} ${o.metadata?.name} is not selected by kube-prometheus-stack (prometheusSpec.${field}Selector)`);
      }
    }
    const d = v.grafana?.sidecar?.dashboards || {};
    if (o.kind === "ConfigMap" && d.label && labels[d.label] === d.labelValue) dashboards++;
  }
  if (!dashboards) err(mon, "renders no ConfigMap the Grafana dashboard sidecar loads");
}

function checkPath(a, proj, ctx, err) {
  const rel = a.spec.source.path;
  if (typeof rel !== "string" || !rel || path.isAbsolute(rel) || rel.split("/").includes("..")) {
    err(a, `source.path "${rel}" must be a repository-relative path`);
    return;
  }
  const dir = path.join(ctx.repoRoot, rel);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    err(a, `source.path ${rel} does not exist in the repository`);
    return;
  }
  if (!["kustomization.yaml", "kustomization.yml", "Kustomization"].some((f) => fs.existsSync(path.join(dir, f)))) {
    err(a, `source.path ${rel} has no kustomization`);
    return;
  }
  const objs = ctx.render(rel);
  if (typeof objs === "string") {
    err(a, `kustomize build ${rel} failed: ${objs}`);
    return;
  }
  if (!objs.length) err(a, `source.path ${rel} renders nothing`);
  const destNs = a.spec.destination.namespace ?? "";
  const seen = new Set();
  for (const o of objs) {
    const key = gk(o);
    const [group, kind] = [groupOf(o.apiVersion || ""), o.kind];
    const namespaced = NAMESPACED.has(key);
    if (!namespaced && !CLUSTER_SCOPED.has(key)) {
      err(a, `${rel} renders ${key}, whose scope this check does not know (add it to checks.mjs)`);
      continue;
    }
    const name = `${key} ${o.metadata?.name}`;
    if (namespaced) {
      const ns = o.metadata?.namespace ?? destNs;
      if (!destNs) err(a, `${rel} renders namespaced ${name} but the destination has no namespace`);
      else if (ns !== destNs) err(a, `namespace mismatch: ${rel} renders ${name} in "${ns}", destination is "${destNs}"`);
    }
    if (!kindPermitted(proj, group, kind, namespaced) && !seen.has(key)) {
      err(a, `project ${proj.metadata.name} does not allow ${namespaced ? "namespaced" : "cluster-scoped"} kind ${key} rendered by ${rel}`);
    }
    seen.add(key);
  }
  ctx.log(`  ${a.metadata.name}: ${rel} renders ${objs.length} objects (${[...seen].sort().join(", ")}) into "${destNs || "(cluster)"}"`);
}
