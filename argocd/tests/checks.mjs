// The rules the rendered app-of-apps must satisfy. validate() takes the objects
// `kubectl kustomize argocd/apps` renders and returns a list of errors; it never
// throws for a rule violation, so a test can feed it broken variants and assert
// which rule catches them.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
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
export const BLOCKS_PARENT = "kantox-challenge/blocks-parent";
export const SKIP_DRY_RUN = "SkipDryRunOnMissingResource=true";
const RELEASE_REVISION = /^release\/(v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))$/;
const ECR_IMAGE = /^(kantox-challenge\/(main-api|auxiliary-service))=(\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com\/kantox-challenge\/(main-api|auxiliary-service)):(\S+)$/;

// The Helm charts the platform deploys: chart repository, the namespace and
// project they go to, and the checks of their values (see the check* below).
export const CHARTS = {
  "kube-prometheus-stack": { repoURL: KPS.repoURL, namespace: "monitoring", project: "monitoring", values: checkKpsValues },
  "cert-manager": { repoURL: "https://charts.jetstack.io", namespace: "cert-manager", project: "cluster-addons", values: checkCertManagerValues },
  "aws-load-balancer-controller": { repoURL: "https://aws.github.io/eks-charts", namespace: "kube-system", project: "cluster-addons", values: checkLbcValues },
  "metrics-server": { repoURL: "https://kubernetes-sigs.github.io/metrics-server/", namespace: "kube-system", project: "cluster-addons", values: () => [] },
  "external-dns": { repoURL: "https://kubernetes-sigs.github.io/external-dns/", namespace: "external-dns", project: "cluster-addons", values: checkExternalDnsValues },
};
// API groups whose kinds a chart Application installs (its CRDs): a child
// rendering them must sync after that chart, with SkipDryRunOnMissingResource.
const CRD_PROVIDERS = { "monitoring.coreos.com": "kube-prometheus-stack", "cert-manager.io": "cert-manager" };

// What each variant of the app-of-apps must deploy: source path (or chart)
// and destination namespace ("" for cluster-scoped objects only).
export const VARIANTS = {
  eks: {
    appsDir: "argocd/apps",
    bootstrapDir: "argocd/bootstrap",
    children: [
      { path: "manifests/namespaces", namespace: "" },
      { path: "manifests/cluster-issuers", namespace: "cert-manager" },
      { path: "manifests/overlays/dev", namespace: "dev" },
      { path: "manifests/overlays/prod", namespace: "prod" },
      { path: "monitoring", namespace: "monitoring" },
      ...["kube-prometheus-stack", "cert-manager", "aws-load-balancer-controller", "metrics-server", "external-dns"].map(
        (chart) => ({ chart, namespace: CHARTS[chart].namespace })),
    ],
  },
  kind: {
    appsDir: "argocd/kind/apps",
    bootstrapDir: "argocd/kind/bootstrap",
    children: [
      { path: "manifests/namespaces", namespace: "" },
      { path: "manifests/overlays/local", namespace: "local" },
      { path: "monitoring", namespace: "monitoring" },
      ...["kube-prometheus-stack", "cert-manager", "metrics-server"].map((chart) => ({ chart, namespace: CHARTS[chart].namespace })),
    ],
  },
};
export const REQUIRED_CHILDREN = VARIANTS.eks.children;

// Scope of every kind a child path may render. A kind missing here fails the
// check: add it with its scope rather than guessing.
const CLUSTER_SCOPED = new Set([
  "/Namespace",
  "apiregistration.k8s.io/APIService",
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

export async function createContext({ repoRoot, variant = "eks", source, cluster }) {
  const { Application, AppProject } = await importDep("@kubernetes-models/argo-cd/argoproj.io/v1alpha1/index.js");
  const renders = new Map();
  const v = VARIANTS[variant];
  return {
    repoRoot,
    variant,
    appsDir: v.appsDir, // repository-relative path of the root's source
    requiredChildren: v.children,
    source, // { repoURL, targetRevision } read from the one config file
    cluster: cluster || {}, // the data of argocd/apps/cluster.yaml
    models: { Application, AppProject },
    strict: createStrictChecker(),
    // Render a repository path once (with an Application's kustomize.images
    // applied as Argo CD does), remembering failures as strings.
    render(rel, images = []) {
      const key = `${rel}\n${images.join("\n")}`;
      if (!renders.has(key)) {
        try {
          renders.set(key, images.length ? kustomizeWithImages(repoRoot, rel, images) : kustomize(path.join(repoRoot, rel)));
        } catch (e) {
          renders.set(key, String(e.stderr || e.message).trim().split("\n").slice(-3).join(" | "));
        }
      }
      return renders.get(key);
    },
    log: () => {},
  };
}

// Argo CD applies `spec.source.kustomize.images` by running
// `kustomize edit set image OLD=NEW:TAG` in the source path before building.
// The same edit on a copy of manifests/ (the path's relative bases come
// along), then a build.
export function kustomizeWithImages(repoRoot, rel, images) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "argocd-images-"));
  try {
    const top = rel.split("/")[0];
    fs.cpSync(path.join(repoRoot, top), path.join(tmp, top), { recursive: true });
    const file = path.join(tmp, rel, "kustomization.yaml");
    const doc = YAML.parse(fs.readFileSync(file, "utf8"));
    for (const img of images) {
      const m = /^([^=]+)=(.+):([^:/]+)$/.exec(img);
      if (!m) throw new Error(`kustomize.images entry ${img} is not OLD=NEW:TAG`);
      const entry = (doc.images ||= []).find((e) => e.name === m[1]);
      if (entry) Object.assign(entry, { newName: m[2], newTag: m[3] });
      else doc.images.push({ name: m[1], newName: m[2], newTag: m[3] });
    }
    fs.writeFileSync(file, YAML.stringify(doc));
    return kustomize(path.join(tmp, rel));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const waveOf = (o) => {
  const w = o.metadata?.annotations?.[WAVE];
  return w === undefined ? 0 : Number(w);
};
const gates = (a) => a.metadata?.annotations?.[BLOCKS_PARENT] !== "false";
const isEnvironment = (a) => String(a.spec?.source?.path || "").startsWith("manifests/overlays/");
const syncOptions = (a) => a.spec?.syncPolicy?.syncOptions || [];

export function validate(docs, ctx) {
  const errors = [];
  const err = (o, msg) => errors.push(`${o ? `${o.kind}/${o.metadata?.name}: ` : ""}${msg}`);

  // 1. Every object is an Application or AppProject, valid for its CRD schema,
  //    with no field the schema does not know, in the argocd namespace.
  const names = new Set();
  for (const o of docs) {
    if (o.apiVersion !== "argoproj.io/v1alpha1" || !["Application", "AppProject"].includes(o.kind)) {
      err(o, `unexpected ${o.apiVersion} ${o.kind}: the app-of-apps renders only Applications and AppProjects`);
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
    const leftover = JSON.stringify(o).match(/from-(gitops-source|release-pin|cluster-config|root)/);
    if (leftover) err(o, `placeholder ${leftover[0]} left unreplaced`);
  }

  const projects = new Map(docs.filter((o) => o.kind === "AppProject").map((p) => [p.metadata.name, p]));
  const apps = docs.filter((o) => o.kind === "Application");
  const { repoURL, targetRevision } = ctx.source;
  const chartRepos = new Map(Object.entries(CHARTS).map(([chart, c]) => [c.repoURL, chart]));

  // 2. Projects: dedicated, limited to this repository (plus the chart
  //    repositories their apps use), to in-cluster destinations and to listed kinds.
  for (const p of projects.values()) {
    const s = p.spec || {};
    if (p.metadata.name === "default") err(p, "the default project must not be defined here");
    if (!(s.sourceRepos || []).includes(repoURL)) err(p, `sourceRepos must include the repository ${repoURL}`);
    for (const r of s.sourceRepos || []) {
      if (r === repoURL) continue;
      const chart = chartRepos.get(r);
      if (!chart) err(p, `sourceRepos entry ${r} is neither this repository nor a chart repository of the platform`);
      else if (!apps.some((a) => a.spec?.project === p.metadata.name && a.spec?.source?.chart === chart)) {
        err(p, `sourceRepos allows the chart repository ${r} but no chart app uses this project`);
      }
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

  // 3. Applications: one root rendering the app-of-apps, the children the
  //    contract asks for, each in its own project, pinned to the one
  //    repository and revision, with a finalizer (the root without),
  //    automated prune and self-heal, and a wave.
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
    const finalizer = (a.metadata.finalizers || []).includes(FINALIZER);
    if (a === root && finalizer) err(a, `the root must not carry ${FINALIZER}: deleting it would cascade to every child, prod included`);
    if (a !== root && !finalizer) err(a, `finalizer ${FINALIZER} missing`);
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
      checkChartApp(a, ctx, err);
      continue;
    }
    if (src.repoURL !== repoURL) err(a, `source.repoURL ${src.repoURL} is not the repository ${repoURL}`);
    if (src.path === "manifests/overlays/prod") {
      checkReleasePin(a, err);
    } else if (src.targetRevision !== targetRevision) {
      err(a, `source.targetRevision ${src.targetRevision} is not ${targetRevision}`);
    }
    checkPath(a, proj, ctx, err);
  }

  // 4. The children the platform needs, and the order between them.
  const children = apps.filter((a) => a !== root);
  for (const want of ctx.requiredChildren) {
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
  const byChart = (c) => children.find((a) => a.spec?.source?.chart === c);
  const nsApp = byPath("manifests/namespaces");
  if (nsApp && !/(^|,)\s*Delete=false/.test(nsApp.spec.source.kustomize?.commonAnnotations?.["argocd.argoproj.io/sync-options"] || "")) {
    err(nsApp, "Namespaces must carry argocd.argoproj.io/sync-options: Delete=false (kustomize.commonAnnotations)");
  }
  if (nsApp) {
    for (const a of children) {
      if (a !== nsApp && waveOf(a) <= waveOf(nsApp)) err(a, "must sync in a later wave than the namespaces");
    }
  }
  // Kinds from another app's CRDs: a later wave, and no dry-run failure when
  // the CRD is not known yet.
  for (const a of children.filter((x) => x.spec?.source?.path)) {
    const objs = ctx.render(a.spec.source.path, a.spec.source.kustomize?.images || []);
    if (typeof objs === "string") continue;
    const groups = new Set(objs.map((o) => groupOf(o.apiVersion || "")).filter((g) => CRD_PROVIDERS[g]));
    for (const g of groups) {
      const provider = byChart(CRD_PROVIDERS[g]);
      if (provider && waveOf(a) <= waveOf(provider)) err(a, `must sync in a later wave than ${provider.metadata.name} (CRDs of ${g} first)`);
      if (!syncOptions(a).includes(SKIP_DRY_RUN)) {
        err(a, `renders ${g} kinds, whose CRDs another Application installs: ${SKIP_DRY_RUN} is required`);
      }
    }
  }
  // Health coupling: the environments never gate the root, and sync last;
  // everything else (the platform) gates.
  const envs = children.filter(isEnvironment);
  for (const a of children) {
    if (isEnvironment(a) && gates(a)) {
      err(a, `an environment must not gate the root: ${BLOCKS_PARENT}: "false" is required (a degraded environment would stop every later change to the app-of-apps)`);
    }
    if (!isEnvironment(a) && !gates(a)) err(a, `${BLOCKS_PARENT}: "false" is for environments only; the platform's apps gate the waves after them`);
  }
  for (const e of envs) {
    for (const a of children.filter((x) => !isEnvironment(x))) {
      if (waveOf(a) >= waveOf(e)) err(a, `must sync in an earlier wave than the environment ${e.metadata.name} (environments come last)`);
    }
  }
  const kps = byChart(KPS.chart);
  const mon = byPath("monitoring");
  if (kps && mon) checkPickedUp(kps, mon, ctx, err);
  const cm = byChart("cert-manager");
  for (const name of ["aws-load-balancer-controller"]) {
    const a = byChart(name);
    if (a && cm && waveOf(a) <= waveOf(cm)) err(a, "must sync in a later wave than cert-manager (its webhook certificate comes from it)");
  }
  const prodApp = byPath("manifests/overlays/prod");
  const prodProject = projects.get(prodApp?.spec.project);
  if (prodProject && !(prodProject.spec.syncWindows || []).length) {
    err(prodProject, "prod is protected by a sync window: syncWindows missing");
  }
  if (prodApp) checkPublicName(prodApp, byChart("external-dns"), ctx, err);
  return errors;
}

// prod follows a release: the tag release/vX.Y.Z and that version's images.
function checkReleasePin(a, err) {
  const src = a.spec.source;
  const m = RELEASE_REVISION.exec(String(src.targetRevision));
  if (!m) {
    err(a, `prod must follow a release tag release/vX.Y.Z, not ${src.targetRevision} (a change on the branch would reach prod without a release)`);
    return;
  }
  const version = m[1];
  const images = src.kustomize?.images || [];
  const seen = new Set();
  for (const img of images) {
    const im = ECR_IMAGE.exec(img);
    if (!im || im[2] !== im[4]) err(a, `kustomize.images entry ${img} is not kantox-challenge/<service>=<ECR>/kantox-challenge/<service>:<tag>`);
    else if (im[5] !== version) err(a, `kustomize.images ${im[1]} runs ${im[5]}, not the release ${version}`);
    else seen.add(im[2]);
  }
  for (const svc of ["main-api", "auxiliary-service"]) {
    if (!seen.has(svc)) err(a, `kustomize.images must set kantox-challenge/${svc} to the release ${version}`);
  }
}

// ExternalDNS may write the zone of the host name prod's Service publishes.
function checkPublicName(prodApp, edns, ctx, err) {
  const objs = ctx.render(prodApp.spec.source.path, prodApp.spec.source.kustomize?.images || []);
  if (typeof objs === "string" || !edns) return;
  const filters = edns.spec.source.helm?.valuesObject?.domainFilters || [];
  for (const svc of objs.filter((o) => o.kind === "Service" && o.spec?.type === "LoadBalancer")) {
    const host = svc.metadata.annotations?.["external-dns.alpha.kubernetes.io/hostname"] || "";
    for (const h of host.split(",").filter(Boolean)) {
      if (!filters.some((z) => h === z || h.endsWith(`.${z}`))) {
        err(edns, `domainFilters ${JSON.stringify(filters)} do not cover ${h}, the host name of prod's ${svc.metadata.name}`);
      }
    }
  }
}

function checkChartApp(a, ctx, err) {
  const src = a.spec.source;
  const c = CHARTS[src.chart];
  if (!c || src.repoURL !== c.repoURL) {
    err(a, `chart ${src.chart} from ${src.repoURL} is not one of the platform's charts (${Object.keys(CHARTS).join(", ")})`);
    return;
  }
  if (!/^v?\d+\.\d+\.\d+$/.test(String(src.targetRevision))) err(a, `chart version ${src.targetRevision} is not pinned (x.y.z)`);
  if (src.helm?.releaseName !== src.chart) err(a, `helm.releaseName must be ${src.chart}`);
  if (a.spec.project !== c.project) err(a, `chart ${src.chart} belongs to the project ${c.project}, not ${a.spec.project}`);
  if ((a.spec.destination?.namespace ?? "") !== c.namespace) err(a, `chart ${src.chart} is installed in ${c.namespace}`);
  for (const m of c.values(src.helm?.valuesObject || {}, a, ctx)) err(a, m);
}

function checkKpsValues(v, a) {
  const out = [];
  if (!(a.spec.syncPolicy?.syncOptions || []).includes("ServerSideApply=true")) {
    out.push("ServerSideApply=true is required (the chart's CRDs are too large for client-side apply)");
  }
  if (v.nodeExporter?.enabled !== false) out.push("nodeExporter.enabled must be false (monitoring enforces PSS restricted)");
  const spec = v.prometheus?.prometheusSpec || {};
  for (const kind of ["serviceMonitor", "podMonitor", "rule"]) {
    const sel = spec[`${kind}Selector`]?.matchLabels?.release === KPS.releaseName;
    const all = spec[`${kind}SelectorNilUsesHelmValues`] === false;
    if (!sel && !all) out.push(`prometheusSpec.${kind}Selector must select release: ${KPS.releaseName}`);
  }
  // 30 days of data (the SLO window) on a volume, with room to spare.
  if (spec.retention !== "30d") out.push(`prometheusSpec.retention is ${spec.retention}, want 30d (the SLOs' window)`);
  const size = bytes(spec.storageSpec?.volumeClaimTemplate?.spec?.resources?.requests?.storage);
  const keep = bytes(spec.retentionSize);
  if (!size) out.push("prometheusSpec.storageSpec.volumeClaimTemplate must request a persistent volume (an emptyDir loses the 30 days on every restart)");
  else if (!keep || keep >= size) out.push(`prometheusSpec.retentionSize ${spec.retentionSize} must be set below the volume's ${spec.storageSpec.volumeClaimTemplate.spec.resources.requests.storage}`);
  const am = v.alertmanager || {};
  if (!am.config?.route || !(am.config?.receivers || []).length) out.push("alertmanager.config must route the alerts (checked by monitoring/tests/alertmanager_test.py)");
  if (!bytes(am.alertmanagerSpec?.storage?.volumeClaimTemplate?.spec?.resources?.requests?.storage)) {
    out.push("alertmanager.alertmanagerSpec.storage must keep silences and notification state on a volume");
  }
  const dash = v.grafana?.sidecar?.dashboards || {};
  if (dash.enabled !== true || dash.label !== "grafana_dashboard" || dash.labelValue !== "1") {
    out.push('grafana.sidecar.dashboards must load ConfigMaps labelled grafana_dashboard: "1"');
  }
  if (!["ALL", KPS.namespace].includes(dash.searchNamespace)) {
    out.push(`grafana.sidecar.dashboards.searchNamespace must be ALL or ${KPS.namespace}`);
  }
  return out;
}

// Kubernetes quantities (Ki, Mi, Gi, Ti) and Prometheus byte sizes (KiB, GB, ...).
function bytes(q) {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?$/.exec(String(q ?? ""));
  if (!m) return 0;
  const base = m[3] ? 1024 : 1000;
  return Number(m[1]) * base ** " KMGTP".indexOf(m[2] || " ");
}

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+$/;
const roleOf = (v) => v.serviceAccount?.annotations?.["eks.amazonaws.com/role-arn"];

function checkCertManagerValues(v, a, ctx) {
  const out = [];
  if (v.crds?.enabled !== true) out.push("crds.enabled must be true (the chart installs the CRDs the platform's Certificates and Issuers use)");
  if (v.crds?.keep !== true) out.push("crds.keep must be true (removing the chart must not delete every certificate)");
  if (ctx.variant === "eks" && !ROLE_ARN.test(roleOf(v) || "")) out.push("serviceAccount.annotations needs the IRSA role for Route 53 (DNS-01)");
  return out;
}

function checkLbcValues(v, a, ctx) {
  const out = [];
  const cl = ctx.cluster;
  if (!v.clusterName || v.clusterName !== cl.clusterName) out.push(`clusterName must be the cluster's (${cl.clusterName}), from cluster.yaml`);
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(v.region || "") || v.region !== cl.region) out.push("region must be set from cluster.yaml");
  if (!/^vpc-[0-9a-f]{8,17}$/.test(v.vpcId || "")) out.push(`vpcId ${v.vpcId} is not a VPC id`);
  if (!ROLE_ARN.test(roleOf(v) || "")) out.push("serviceAccount.annotations needs the controller's IRSA role");
  if (v.enableCertManager !== true) out.push("enableCertManager must be true (a self-generated webhook certificate changes on every render)");
  return out;
}

function checkExternalDnsValues(v, a, ctx) {
  const out = [];
  if (v.provider?.name !== "aws") out.push("provider.name must be aws");
  if (!["upsert-only", "sync"].includes(v.policy)) out.push("policy must be upsert-only or sync");
  if (!(v.domainFilters || []).length) out.push("domainFilters must limit it to the public zone");
  if (!v.txtOwnerId || v.txtOwnerId !== ctx.cluster.clusterName) out.push("txtOwnerId must be the cluster name (from cluster.yaml)");
  if (!ROLE_ARN.test(roleOf(v) || "")) out.push("serviceAccount.annotations needs the IRSA role for Route 53");
  return out;
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
  const images = a.spec.source.kustomize?.images || [];
  const objs = ctx.render(rel, images);
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
  // The images Argo CD sets are the images that run.
  for (const img of images) {
    const [, name, want] = /^([^=]+)=(.+)$/.exec(img) || [];
    const svc = name?.split("/").pop();
    const dep = objs.find((o) => o.kind === "Deployment" && o.metadata?.name === svc);
    const got = dep?.spec?.template?.spec?.containers?.[0]?.image;
    if (got !== want) err(a, `kustomize.images ${img}: the Deployment ${svc} renders ${got}`);
  }
  ctx.log(`  ${a.metadata.name}: ${rel}${images.length ? " (with its kustomize.images)" : ""} renders ${objs.length} objects (${[...seen].sort().join(", ")}) into "${destNs || "(cluster)"}"`);
}

// argocd/bootstrap: only the AppProjects and the root of the app-of-apps.
export function validateBootstrap(boot, apps, ctx) {
  const errors = [];
  const id = (o) => `${o.kind}/${o.metadata?.name}`;
  const roots = apps.filter((a) => a.kind === "Application" && a.spec?.source?.path === ctx.appsDir);
  const want = [...apps.filter((o) => o.kind === "AppProject"), ...roots];
  const got = new Set(boot.map(id));
  for (const o of want) {
    if (!got.has(id(o))) errors.push(`${ctx.variant} bootstrap lacks ${id(o)}`);
    else if (JSON.stringify(o) !== JSON.stringify(boot.find((b) => id(b) === id(o)))) errors.push(`${ctx.variant} bootstrap's ${id(o)} differs from the app-of-apps'`);
  }
  for (const o of boot) {
    if (!want.some((w) => id(w) === id(o))) {
      errors.push(`${ctx.variant} bootstrap applies ${id(o)}: only the AppProjects and the root belong there (the root creates the children by wave)`);
    }
  }
  return errors;
}
