"""Project policy over rendered manifests: the hardening rules checkov does not
express, or expresses too loosely for this platform.

    python policy.py check --env dev --kustomization DIR/kustomization.yaml [--identity pod-identity] RENDERED.yaml
    python policy.py namespaces RENDERED.yaml
    python policy.py issuers RENDERED.yaml PROD_RENDERED.yaml
    python policy.py self-test --fixtures mutations.yaml --kustomization-dir OVERLAYS RENDERED_DIR

`check` prints every violation as `RULE object: message` and exits 1 if there
is one. `self-test` proves each rule can fail: it applies every mutation of the
fixtures file to a rendered overlay, expects the named rule to fire (and the
unmutated render to pass), and exits 1 if a mutation goes unnoticed. A
mutation's `env` is an overlay (dev, prod, local), `pod-identity` (prod with
the pod-identity component, RENDERED_DIR/pod-identity.yaml), `namespaces`
(the namespaces folder) or `cluster-issuers` (the issuers folder, checked
against prod's certificate).
"""
import argparse
import copy
import re
import sys

import yaml

SERVICES = ("main-api", "auxiliary-service")
ALLOWED_PORT_NAMES = {"http", "https", "admin"}
REGISTRY_IMAGE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/kantox-challenge/(main-api|auxiliary-service):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"
)
STATIC_KEY_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
ACCESS_KEY_VALUE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
# The EKS Pod Identity agent on every node (IPv4 and IPv6), HTTP.
POD_IDENTITY_AGENT = {"169.254.170.23/32", "fd00:ec2::23/128"}
# Names a public ACME CA refuses: single labels, cluster-internal suffixes.
PRIVATE_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal", ".localhost")
PUBLIC_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
DEREGISTRATION = re.compile(r"(?:^|,)\s*deregistration_delay\.timeout_seconds=(\d+)\s*(?:,|$)")
LB_TG_ATTRIBUTES = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
EXTERNAL_DNS_HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
# HSTS: at least a year, the value the edge sends by default.
HSTS = re.compile(r"^max-age=(\d+)(;\s*includeSubDomains)?(;\s*preload)?$")
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def ident(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_spec(obj):
    if obj.get("kind") == "Pod":
        return obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"].get("spec", {})
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(obj):
    return obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def selects(selector, labels):
    """matchLabels / matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class Checker:
    def __init__(self, objects, env, kustomization, identity="irsa"):
        self.objects = objects
        self.env = env
        self.kustomization = kustomization or {}
        self.identity = identity
        self.errors = []

    def fail(self, rule, obj, message):
        self.errors.append((rule, f"{ident(obj) if obj else '-'}: {message}"))

    def of_kind(self, kind):
        return [o for o in self.objects if o.get("kind") == kind]

    def find(self, kind, name):
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    def workloads(self):
        return [o for o in self.objects if o.get("kind") in POD_KINDS | {"Pod", "CronJob"}]

    def config_of(self, dep):
        """The environment a Deployment's first container sees: its envFrom
        ConfigMaps, then its env entries. None for a missing ConfigMap."""
        values = {}
        for ctr in pod_spec(dep).get("containers") or []:
            for src in ctr.get("envFrom") or []:
                cm = self.find("ConfigMap", (src.get("configMapRef") or {}).get("name"))
                if cm is None:
                    return None
                values.update(cm.get("data") or {})
            values.update({e["name"]: e.get("value") for e in ctr.get("env") or []})
            break
        return values

    def seconds(self, dep, values, key):
        value = (values or {}).get(key)
        if value is None or not re.fullmatch(r"\d+", str(value)):
            self.fail("shutdown" if key.startswith("SHUTDOWN") else "timeouts", dep,
                      f"{key} must be set explicitly to whole seconds, got {value!r}")
            return None
        return int(value)

    def prestop_seconds(self, dep):
        ctr = (pod_spec(dep).get("containers") or [{}])[0]
        seconds = (((ctr.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
        return seconds if isinstance(seconds, int) else None

    def backends(self, svc):
        selector = {"matchLabels": svc["spec"].get("selector") or {}}
        return [d for d in self.of_kind("Deployment") if selects(selector, pod_labels(d))]

    def hpa_for(self, deployment):
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            ref = hpa["spec"]["scaleTargetRef"]
            if ref.get("kind") == "Deployment" and ref.get("name") == deployment["metadata"]["name"]:
                return hpa
        return None

    # -- rules --------------------------------------------------------------

    def rule_namespace(self):
        for obj in self.objects:
            if obj.get("kind") == "Namespace":
                if self.env != "local" or obj["metadata"]["name"] != "local":
                    self.fail("namespace", obj, f"the {self.env} overlay must not create namespaces")
                continue
            if obj.get("metadata", {}).get("namespace") != self.env:
                self.fail("namespace", obj, f"namespace is {obj.get('metadata', {}).get('namespace')!r}, want {self.env!r}")

    def rule_pod_security(self):
        for obj in self.workloads():
            spec = pod_spec(obj)
            psc = spec.get("securityContext") or {}
            for flag in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(flag):
                    self.fail("pod-security", obj, f"{flag} is set")
            for vol in spec.get("volumes") or []:
                if "hostPath" in vol:
                    self.fail("pod-security", obj, f"volume {vol['name']} is a hostPath")
            if spec.get("automountServiceAccountToken") is not False:
                self.fail("sa-token", obj, "automountServiceAccountToken must be false")
            for ctr in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                csc = ctr.get("securityContext") or {}
                where = f"container {ctr['name']}"

                def eff(key, ctr_sc=csc):
                    return ctr_sc.get(key, psc.get(key))

                if eff("runAsNonRoot") is not True:
                    self.fail("pod-security", obj, f"{where}: runAsNonRoot must be true")
                for key in ("runAsUser", "runAsGroup"):
                    value = eff(key)
                    if not isinstance(value, int) or value <= 10000 or value == 1337:
                        self.fail("uid-range", obj, f"{where}: {key} is {value!r}, want an explicit id above 10000 and not 1337")
                if csc.get("allowPrivilegeEscalation") is not False:
                    self.fail("pod-security", obj, f"{where}: allowPrivilegeEscalation must be false")
                if csc.get("privileged"):
                    self.fail("pod-security", obj, f"{where}: privileged")
                if csc.get("readOnlyRootFilesystem") is not True:
                    self.fail("pod-security", obj, f"{where}: readOnlyRootFilesystem must be true")
                caps = csc.get("capabilities") or {}
                if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
                    self.fail("pod-security", obj, f"{where}: capabilities must drop ALL and add none")
                seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp != "RuntimeDefault":
                    self.fail("pod-security", obj, f"{where}: seccompProfile must be RuntimeDefault")
                res = ctr.get("resources") or {}
                for part in ("requests", "limits"):
                    for name in ("cpu", "memory"):
                        if name not in (res.get(part) or {}):
                            self.fail("resources", obj, f"{where}: no {part}.{name}")
                if ctr.get("image", "").endswith(":latest") or ":" not in ctr.get("image", "").rsplit("/", 1)[-1]:
                    self.fail("images", obj, f"{where}: image {ctr.get('image')!r} has no fixed tag")

    def rule_deployments(self):
        for dep in self.of_kind("Deployment"):
            spec = pod_spec(dep)
            grace = spec.get("terminationGracePeriodSeconds")
            if not isinstance(grace, int) or grace < 1:
                self.fail("grace", dep, f"terminationGracePeriodSeconds is {grace!r}, want an explicit value "
                          "(the services' must exceed preStop + drain + timeout: rule shutdown)")
            for ctr in spec.get("containers") or []:
                where = f"container {ctr['name']}"
                live, ready = ctr.get("livenessProbe"), ctr.get("readinessProbe")
                if not live or not ready:
                    self.fail("probes", dep, f"{where}: needs both liveness and readiness probes")
                elif live == ready:
                    self.fail("probes", dep, f"{where}: liveness and readiness probes are identical")
                if dep["metadata"]["name"] in SERVICES and live and ready:
                    for probe, path in ((live, "/healthz"), (ready, "/readyz")):
                        get = probe.get("httpGet") or {}
                        if get.get("port") != "admin" or get.get("path") != path:
                            self.fail("probes", dep, f"{where}: want {path} on the admin port, got {get}")
                pre = (ctr.get("lifecycle") or {}).get("preStop") or {}
                if "exec" in pre:
                    self.fail("prestop", dep, f"{where}: exec preStop needs a shell the images do not have")
                seconds = (pre.get("sleep") or {}).get("seconds")
                if not isinstance(seconds, int) or seconds < 1:
                    self.fail("prestop", dep, f"{where}: needs a preStop sleep action")
                elif isinstance(grace, int) and seconds >= grace:
                    self.fail("grace", dep, f"{where}: preStop sleep {seconds}s does not fit in the grace period")
            hpa = self.hpa_for(dep)
            name = dep["metadata"]["name"]
            if hpa:
                if "replicas" in dep["spec"]:
                    self.fail("hpa", dep, "sets replicas although an HPA scales it")
                lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
                if lo > hi:
                    self.fail("hpa", hpa, f"minReplicas {lo} above maxReplicas {hi}")
                if self.env == "prod" and lo < 2:
                    self.fail("hpa", hpa, "prod needs at least 2 replicas")
            else:
                if name in SERVICES:
                    self.fail("hpa", dep, "service Deployments are scaled by an HPA")
                if "replicas" not in dep["spec"]:
                    self.fail("hpa", dep, "without an HPA the replica count must be explicit")
                hi = dep["spec"].get("replicas", 1)
            self.check_pdb(dep, hpa)
            if hi > 1:
                self.check_spread(dep)

    def check_pdb(self, dep, hpa):
        labels = pod_labels(dep)
        pdbs = [p for p in self.of_kind("PodDisruptionBudget") if selects(p["spec"].get("selector"), labels)]
        if len(pdbs) != 1:
            self.fail("pdb", dep, f"want exactly one PodDisruptionBudget, found {len(pdbs)}")
            return
        spec = pdbs[0]["spec"]
        if spec.get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
            self.fail("pdb", pdbs[0], "unhealthyPodEvictionPolicy must be AlwaysAllow")
        floor = hpa["spec"].get("minReplicas", 1) if hpa else dep["spec"].get("replicas", 1)
        if "maxUnavailable" in spec:
            if spec["maxUnavailable"] in (0, "0%"):
                self.fail("pdb", pdbs[0], "maxUnavailable 0 blocks every drain")
        elif not isinstance(spec.get("minAvailable"), int) or spec["minAvailable"] >= floor:
            self.fail("pdb", pdbs[0], "minAvailable must stay below the minimum replica count")

    def check_spread(self, dep):
        labels = pod_labels(dep)
        keys = {}
        for con in pod_spec(dep).get("topologySpreadConstraints") or []:
            if selects(con.get("labelSelector"), labels):
                keys[con["topologyKey"]] = con
            if con.get("nodeTaintsPolicy") != "Honor":
                self.fail("topology-spread", dep, f"spread over {con.get('topologyKey')} must honour taints "
                          "(nodeTaintsPolicy: Honor), or tainted nodes the pods cannot use leave them Pending")
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            if key not in keys:
                self.fail("topology-spread", dep, f"no spread constraint over {key} that selects its pods")
        if self.env == "prod" and keys.get("topology.kubernetes.io/zone", {}).get("whenUnsatisfiable") != "DoNotSchedule":
            self.fail("topology-spread", dep, "prod requires the zone spread (DoNotSchedule)")

    def rule_shutdown(self):
        """preStop + SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS < grace:
        the kubelet must never kill a service that is still finishing
        requests."""
        for name in SERVICES:
            dep = self.find("Deployment", name)
            if not dep:
                continue
            values = self.config_of(dep)
            grace = pod_spec(dep).get("terminationGracePeriodSeconds")
            pre = self.prestop_seconds(dep)
            drain = self.seconds(dep, values, "SHUTDOWN_DRAIN_SECONDS")
            timeout = self.seconds(dep, values, "SHUTDOWN_TIMEOUT_SECONDS")
            if None in (pre, drain, timeout) or not isinstance(grace, int):
                continue
            if pre + drain + timeout >= grace:
                self.fail("shutdown", dep, f"preStop {pre}s + drain {drain}s + timeout {timeout}s = "
                          f"{pre + drain + timeout}s does not fit in terminationGracePeriodSeconds {grace}")

    def rule_timeouts(self):
        """The worker's whole AWS budget is below the edge's wait for it, so a
        slow AWS call ends as the worker's 504 aws_timeout, not as the edge
        abandoning a request the worker still works on."""
        edge, worker = self.find("Deployment", "main-api"), self.find("Deployment", "auxiliary-service")
        if not edge or not worker:
            return
        upstream = self.seconds(edge, self.config_of(edge), "UPSTREAM_TIMEOUT_SECONDS")
        aws = self.seconds(worker, self.config_of(worker), "AWS_CALL_TIMEOUT_SECONDS")
        if upstream is not None and aws is not None and aws >= upstream:
            self.fail("timeouts", worker, f"AWS_CALL_TIMEOUT_SECONDS {aws} must be below the edge's "
                      f"UPSTREAM_TIMEOUT_SECONDS {upstream}")

    def rule_load_balancer(self):
        """The public Service: HTTPS only, an explicit deregistration delay the
        pods outlast (preStop + drain), and the ExternalDNS host name that the
        certificate covers."""
        certs = [c for c in self.of_kind("Certificate") if (c["spec"].get("issuerRef") or {}).get("kind") == "ClusterIssuer"]
        for svc in self.of_kind("Service"):
            if svc["spec"].get("type") != "LoadBalancer":
                continue
            ports = svc["spec"].get("ports") or []
            for port in ports:
                if port.get("port") != 443 or port.get("targetPort") != "https":
                    self.fail("load-balancer", svc, f"port {port.get('port')} -> {port.get('targetPort')}: "
                              "the internet-facing Service exposes 443 -> https only (no cleartext API)")
            annotations = svc["metadata"].get("annotations") or {}
            match = DEREGISTRATION.search(annotations.get(LB_TG_ATTRIBUTES, ""))
            if not match:
                self.fail("load-balancer", svc, f"{LB_TG_ATTRIBUTES} must set deregistration_delay.timeout_seconds "
                          "(the default, 300 s, outlasts every grace period)")
            else:
                delay = int(match.group(1))
                for dep in self.backends(svc):
                    pre = self.prestop_seconds(dep)
                    drain = (self.config_of(dep) or {}).get("SHUTDOWN_DRAIN_SECONDS")
                    if pre is None or not str(drain).isdigit():
                        self.fail("load-balancer", dep, "needs a preStop sleep and SHUTDOWN_DRAIN_SECONDS behind a load balancer")
                    elif delay > pre + int(drain):
                        self.fail("load-balancer", svc, f"deregistration delay {delay}s exceeds what {ident(dep)} "
                                  f"keeps accepting after it starts: preStop {pre}s + drain {drain}s")
            host = annotations.get(EXTERNAL_DNS_HOSTNAME)
            names = sorted({n for c in certs for n in c["spec"].get("dnsNames") or []})
            if not host:
                self.fail("load-balancer", svc, f"no {EXTERNAL_DNS_HOSTNAME} annotation: nothing publishes its name")
            elif sorted(h.strip() for h in host.split(",")) != names:
                self.fail("load-balancer", svc, f"{EXTERNAL_DNS_HOSTNAME} {host!r} differs from the public "
                          f"certificate's names {names}")

    def rule_public_certificate(self):
        """A Certificate from a ClusterIssuer (the public ACME issuer) names
        public DNS names only: the CA refuses the rest and never issues it."""
        for cert in self.of_kind("Certificate"):
            if (cert["spec"].get("issuerRef") or {}).get("kind") != "ClusterIssuer":
                continue
            names = list(cert["spec"].get("dnsNames") or [])
            common = cert["spec"].get("commonName")
            if common and common not in names:
                self.fail("public-certificate", cert, f"commonName {common!r} is not among dnsNames")
            if cert["spec"].get("ipAddresses") or cert["spec"].get("uris"):
                self.fail("public-certificate", cert, "IP addresses and URIs cannot be issued by a public ACME CA")
            if not names:
                self.fail("public-certificate", cert, "no dnsNames")
            for name in names:
                if not PUBLIC_NAME.match(name) or name.endswith(PRIVATE_SUFFIXES) or name == "localhost":
                    self.fail("public-certificate", cert, f"{name!r} is not a public DNS name: the ACME issuer "
                              "refuses it and the Secret is never written")

    def rule_ports(self):
        pods = [(w, pod_labels(w), pod_spec(w)) for w in self.workloads()]
        for w, _, spec in pods:
            for ctr in spec.get("containers") or []:
                for port in ctr.get("ports") or []:
                    if port.get("name") not in ALLOWED_PORT_NAMES:
                        self.fail("ports", w, f"container {ctr['name']} port {port.get('containerPort')} named {port.get('name')!r}, want one of {sorted(ALLOWED_PORT_NAMES)}")
        for svc in self.of_kind("Service"):
            backends = [spec for _, labels, spec in pods if selects({"matchLabels": svc["spec"].get("selector") or {}}, labels)]
            if not backends:
                self.fail("ports", svc, "selects no pods")
            names = {p.get("name") for s in backends for c in s.get("containers", []) for p in c.get("ports") or []}
            for port in svc["spec"].get("ports") or []:
                if port.get("name") not in ALLOWED_PORT_NAMES or not port.get("appProtocol"):
                    self.fail("ports", svc, f"port {port.get('port')} needs a name from {sorted(ALLOWED_PORT_NAMES)} and an appProtocol")
                if port.get("targetPort") not in names:
                    self.fail("ports", svc, f"port {port.get('port')} targets {port.get('targetPort')!r}, not a named container port")

    def rule_network(self):
        policies = self.of_kind("NetworkPolicy")
        deny = [p for p in policies if p["spec"].get("podSelector") in ({}, None)
                and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        if not deny:
            self.fail("default-deny", None, f"no default-deny NetworkPolicy (all pods, Ingress and Egress, no rules) in {self.env}")
        dns_ok = False
        for pol in policies:
            if pol["spec"].get("podSelector") not in ({}, None):
                continue
            for rule in pol["spec"].get("egress") or []:
                ports = {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or []}
                if {("UDP", 53), ("TCP", 53)} <= ports:
                    dns_ok = True
        if not dns_ok:
            self.fail("default-deny", None, "no namespace-wide DNS egress (UDP and TCP 53)")
        for w in self.workloads():
            labels = pod_labels(w)
            own = [p for p in policies if p not in deny and p["spec"].get("podSelector")
                   and selects(p["spec"]["podSelector"], labels)]
            if not own:
                self.fail("default-deny", w, "no NetworkPolicy of its own states what it may reach")

    def rule_aws(self):
        if self.env == "local":
            return
        for obj in self.objects:
            text = yaml.safe_dump(obj)
            if ACCESS_KEY_VALUE.search(text):
                self.fail("static-aws-keys", obj, "contains an AWS access key id")
            if obj.get("kind") in ("ConfigMap", "Secret"):
                for key in set(obj.get("data") or {}) | set(obj.get("stringData") or {}):
                    if key in STATIC_KEY_NAMES or key == "AWS_ENDPOINT_URL":
                        self.fail("static-aws-keys", obj, f"holds {key}")
        for w in self.workloads():
            for ctr in pod_spec(w).get("containers") or []:
                for env in ctr.get("env") or []:
                    if env["name"] in STATIC_KEY_NAMES or env["name"] == "AWS_ENDPOINT_URL":
                        self.fail("static-aws-keys", w, f"container {ctr['name']} sets {env['name']}")
        sa = self.find("ServiceAccount", "auxiliary-service")
        annotations = (sa or {}).get("metadata", {}).get("annotations") or {}
        arn = annotations.get("eks.amazonaws.com/role-arn", "")
        policy = self.find("NetworkPolicy", "auxiliary-service") or {"spec": {}}
        agent = set()
        for rule in policy["spec"].get("egress") or []:
            ports = {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or []}
            if ("TCP", 80) in ports:
                agent |= {(t.get("ipBlock") or {}).get("cidr") for t in rule.get("to") or []}
        if self.identity == "pod-identity":
            # The association binds the role; an annotation would send the SDK
            # to web identity with a role that does not trust it.
            if arn:
                self.fail("irsa", sa, f"Pod Identity: the role annotation {arn!r} must be gone")
            if not POD_IDENTITY_AGENT <= agent:
                self.fail("irsa", policy, f"Pod Identity: egress to the agent {sorted(POD_IDENTITY_AGENT)} "
                          "on TCP 80 is not allowed")
            return
        env = self.env
        want = re.compile(rf"^arn:aws:iam::\d{{12}}:role/kantox-challenge-{env}-auxiliary-service$")
        if not want.match(arn):
            self.fail("irsa", sa, f"role annotation {arn!r} is not the {env} worker role")
        if agent & POD_IDENTITY_AGENT:
            self.fail("irsa", policy, "IRSA: egress to the Pod Identity agent is not needed")

    def rule_images(self):
        names = sorted(e.get("name", "") for e in self.kustomization.get("images") or [])
        base_names = sorted(f"kantox-challenge/{s}" for s in SERVICES)
        if self.env != "local" and names != base_names:
            self.fail("images", None, f"`images:` names are {names}, want exactly {base_names} (what CI edits)")
        entries = {}
        for entry in self.kustomization.get("images") or []:
            entries[f"{entry.get('newName', entry['name'])}:{entry.get('newTag')}"] = entry
        for w in self.workloads():
            for ctr in pod_spec(w).get("containers") or []:
                image = ctr.get("image", "")
                if image not in entries:
                    self.fail("images", w, f"image {image!r} is not set by an `images:` entry of the overlay")
                if self.env != "local" and w["metadata"]["name"] in SERVICES and not REGISTRY_IMAGE.match(image):
                    self.fail("images", w, f"image {image!r} is not a tagged ECR kantox-challenge image")

    def rule_services(self):
        aux = self.find("Service", "auxiliary-service")
        if not aux or aux["spec"].get("clusterIP") != "None":
            self.fail("services", aux, "auxiliary-service must be a headless Service")
        if not self.find("Service", "main-api"):
            self.fail("services", None, "no Service main-api")
        balancers = [s for s in self.of_kind("Service") if s["spec"].get("type") == "LoadBalancer"]
        if self.env == "prod":
            if not any(s["spec"].get("selector", {}).get("app.kubernetes.io/name") == "main-api" for s in balancers):
                self.fail("services", None, "prod exposes main-api through a LoadBalancer Service")
        elif balancers:
            self.fail("services", balancers[0], f"{self.env} has no load balancer")
        for svc in balancers:
            if any(p.get("name") == "admin" for p in svc["spec"].get("ports") or []):
                self.fail("services", svc, "the admin port must not be exposed by a load balancer")

    def rule_config(self):
        dep = self.find("Deployment", "main-api")
        cert = (self.of_kind("Certificate") or [None])[0]
        if dep and cert:
            spec = pod_spec(dep)
            secrets = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes") or [] if "secret" in v}
            mounts = {m["mountPath"]: m["name"] for c in spec["containers"] for m in c.get("volumeMounts") or []}
            if secrets.get(mounts.get("/etc/edge/tls")) != cert["spec"]["secretName"]:
                self.fail("tls", dep, "must mount the Certificate's secret at /etc/edge/tls")
            for vol in spec.get("volumes") or []:
                if (vol.get("secret") or {}).get("secretName") == cert["spec"]["secretName"] and vol["secret"].get("optional") is not True:
                    self.fail("tls", dep, f"volume {vol['name']}: the TLS Secret must be optional, or a certificate "
                              "not issued yet keeps the pod in ContainerCreating (the edge waits for it unready)")
        elif dep:
            self.fail("tls", dep, "no cert-manager Certificate for the edge")
        expected = {
            "main-api": {"LISTEN_ADDR", "TLS_LISTEN_ADDR", "ADMIN_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE",
                         "AUXILIARY_SERVICE_URL", "SERVICE_VERSION", "CACHE_TTL_SECONDS",
                         "CACHE_STALE_IF_ERROR_SECONDS", "CACHE_MAX_ENTRIES", "LOG_FORMAT", "RUST_LOG",
                         "UPSTREAM_TIMEOUT_SECONDS", "SHUTDOWN_DRAIN_SECONDS", "SHUTDOWN_TIMEOUT_SECONDS",
                         "STRICT_TRANSPORT_SECURITY"},
            "auxiliary-service": {"LISTEN_ADDR", "ADMIN_ADDR", "SERVICE_VERSION", "PARAMETER_PREFIX",
                                  "EXPOSE_SECURE_PARAMETERS", "AWS_REGION", "LOG_FORMAT", "RUST_LOG",
                                  "AWS_CALL_TIMEOUT_SECONDS", "AWS_MAX_ATTEMPTS", "SHUTDOWN_DRAIN_SECONDS",
                                  "SHUTDOWN_TIMEOUT_SECONDS"},
        }
        for name, keys in expected.items():
            dep = self.find("Deployment", name)
            if not dep:
                self.fail("config", None, f"no Deployment {name}")
                continue
            values = {}
            for ctr in pod_spec(dep)["containers"]:
                for src in ctr.get("envFrom") or []:
                    cm = self.find("ConfigMap", (src.get("configMapRef") or {}).get("name"))
                    if cm is None:
                        self.fail("config", dep, f"envFrom names a missing ConfigMap {src}")
                    else:
                        values.update(cm.get("data") or {})
                values.update({e["name"]: e.get("value") for e in ctr.get("env") or []})
            for key in sorted(keys - set(values)):
                self.fail("config", dep, f"does not set {key}")
            tag = pod_spec(dep)["containers"][0].get("image", "").rsplit(":", 1)[-1]
            if values.get("SERVICE_VERSION") != tag:
                self.fail("config", dep, f"SERVICE_VERSION {values.get('SERVICE_VERSION')!r} is not the image tag {tag!r}")
            if name == "main-api":
                hsts = values.get("STRICT_TRANSPORT_SECURITY")
                match = HSTS.match(hsts or "")
                if not match or int(match.group(1)) < 31536000:
                    self.fail("config", dep, f"STRICT_TRANSPORT_SECURITY {hsts!r}: HTTPS answers must carry HSTS "
                              "with a max-age of at least a year")
            if name == "auxiliary-service":
                env = self.env
                bucket_prefix = values.get("S3_BUCKET_PREFIX")
                if env in ("dev", "prod") and bucket_prefix != f"kantox-challenge-{env}-":
                    self.fail("config", dep, f"S3_BUCKET_PREFIX is {bucket_prefix!r}, want 'kantox-challenge-{env}-': "
                              "the API must list only the buckets Terraform created for this environment")
                prefix = "/kantox-challenge/dev" if env == "local" else f"/kantox-challenge/{env}"
                if values.get("PARAMETER_PREFIX") != prefix:
                    self.fail("config", dep, f"PARAMETER_PREFIX is {values.get('PARAMETER_PREFIX')!r}, want {prefix!r}")
                if values.get("EXPOSE_SECURE_PARAMETERS") != "false":
                    self.fail("config", dep, "EXPOSE_SECURE_PARAMETERS must be false")

    def run(self):
        for name in sorted(n for n in dir(self) if n.startswith("rule_")):
            getattr(self, name)()
        return self.errors


def check_namespaces(objects):
    """The namespaces folder: exactly the platform's namespaces, PSS enforced."""
    errors = []
    want = {"dev": "restricted", "prod": "restricted", "monitoring": "restricted", "argocd": "baseline",
            "cert-manager": "restricted", "external-dns": "restricted"}
    found = {}
    for obj in objects:
        if obj.get("kind") != "Namespace":
            errors.append(("namespaces", f"{ident(obj)}: only Namespace objects belong here"))
            continue
        found[obj["metadata"]["name"]] = obj["metadata"].get("labels") or {}
    if set(found) != set(want):
        errors.append(("namespaces", f"namespaces are {sorted(found)}, want {sorted(want)}"))
    for name, level in want.items():
        labels = found.get(name, {})
        if labels.get("pod-security.kubernetes.io/enforce") != level:
            errors.append(("namespaces", f"Namespace/{name}: must enforce Pod Security {level}"))
        for mode in ("enforce", "audit", "warn"):
            if not labels.get(f"pod-security.kubernetes.io/{mode}-version"):
                errors.append(("namespaces", f"Namespace/{name}: {mode}-version not pinned"))
        if labels.get("pod-security.kubernetes.io/warn") != "restricted":
            errors.append(("namespaces", f"Namespace/{name}: must warn at restricted"))
    # prod sits behind the NLB: the AWS Load Balancer Controller must gate
    # its pods' readiness on their target's health.
    if found.get("prod", {}).get("elbv2.k8s.aws/pod-readiness-gate-inject") != "enabled":
        errors.append(("readiness-gate", "Namespace/prod: needs elbv2.k8s.aws/pod-readiness-gate-inject: enabled"))
    return errors


def check_issuers(objects, prod_objects):
    """The cluster issuers folder: the public ACME issuer that prod's
    certificate names can prove DNS-01 for every name it asks for."""
    errors = []
    issuers = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ClusterIssuer"}
    for obj in objects:
        if obj.get("kind") != "ClusterIssuer":
            errors.append(("issuers", f"{ident(obj)}: only ClusterIssuer objects belong here"))
    for name, issuer in issuers.items():
        acme = issuer["spec"].get("acme") or {}
        solvers = acme.get("solvers") or []
        if not acme.get("server", "").startswith("https://") or not acme.get("privateKeySecretRef"):
            errors.append(("issuers", f"ClusterIssuer/{name}: an ACME issuer with an https server and an account key Secret"))
        for solver in solvers:
            if "http01" in solver or "dns01" not in solver:
                errors.append(("issuers", f"ClusterIssuer/{name}: DNS-01 solvers only (the edge, not an ingress, "
                               "terminates TLS, so HTTP-01 challenges are never answered)"))
    for cert in (o for o in prod_objects if o.get("kind") == "Certificate"):
        ref = cert["spec"].get("issuerRef") or {}
        if ref.get("kind") != "ClusterIssuer":
            continue
        issuer = issuers.get(ref.get("name"))
        if not issuer:
            errors.append(("issuers", f"{ident(cert)}: ClusterIssuer {ref.get('name')!r} is not defined here"))
            continue
        zones = [z for s in issuer["spec"]["acme"].get("solvers") or []
                 for z in ((s.get("selector") or {}).get("dnsZones") or [])]
        for dns in cert["spec"].get("dnsNames") or []:
            if zones and not any(dns == z or dns.endswith("." + z) for z in zones):
                errors.append(("issuers", f"{ident(cert)}: {dns} is in none of the issuer's DNS-01 zones {zones}"))
    return errors


def load(path):
    with open(path, encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def check(objects, env, kustomization, identity="irsa"):
    return Checker(objects, env, kustomization, identity).run()


# Render targets of the self-test: file in RENDERED_DIR, environment,
# workload identity, overlay whose kustomization sets the images.
TARGETS = {
    "dev": ("dev", "dev", "irsa", "dev"),
    "prod": ("prod", "prod", "irsa", "prod"),
    "local": ("local", "local", "irsa", "local"),
    "pod-identity": ("pod-identity", "prod", "pod-identity", "prod"),
}


def pointer_parts(pointer):
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]


def apply_mutation(objects, mutation):
    objects = copy.deepcopy(objects)
    target = mutation.get("target")
    if target:
        matches = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
        if len(matches) != 1:
            raise ValueError(f"{mutation['name']}: target {target} matched {len(matches)} objects")
        obj = matches[0]
        for pointer, value in (mutation.get("set") or {}).items():
            *parents, last = pointer_parts(pointer)
            node = obj
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
            if isinstance(node, list) and last == "-":
                node.append(value)
            elif isinstance(node, list):
                node[int(last)] = value
            else:
                node[last] = value
        for pointer in mutation.get("delete") or []:
            *parents, last = pointer_parts(pointer)
            node = obj
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, list):
                del node[int(last)]
            else:
                del node[last]
        if mutation.get("remove_object"):
            objects.remove(obj)
    if mutation.get("add_object"):
        objects.append(mutation["add_object"])
    return objects


def self_test(args):
    with open(args.fixtures, encoding="utf-8") as handle:
        mutations = yaml.safe_load(handle)
    failures = 0
    baselines = {}
    for mutation in mutations:
        target = mutation["env"]
        if target not in baselines:
            if target == "namespaces":
                objects, kust = load(f"{args.rendered_dir}/namespaces.yaml"), None
                errors = check_namespaces(objects)
            elif target == "cluster-issuers":
                objects, kust = load(f"{args.rendered_dir}/cluster-issuers.yaml"), None
                errors = check_issuers(objects, load(f"{args.rendered_dir}/prod.yaml"))
            else:
                render, env, identity, overlay = TARGETS[target]
                objects = load(f"{args.rendered_dir}/{render}.yaml")
                with open(f"{args.kustomization_dir}/{overlay}/kustomization.yaml", encoding="utf-8") as handle:
                    kust = yaml.safe_load(handle)
                errors = check(objects, env, kust, identity)
            if errors:
                print(f"FAIL baseline {target} is not clean: {errors}")
                failures += 1
            baselines[target] = (objects, kust)
        objects, kust = baselines[target]
        if target == "namespaces":
            fired = check_namespaces(apply_mutation(objects, mutation))
        elif target == "cluster-issuers":
            fired = check_issuers(apply_mutation(objects, mutation), load(f"{args.rendered_dir}/prod.yaml"))
        else:
            _, env, identity, _ = TARGETS[target]
            kust = copy.deepcopy(kust)
            if "kustomization_images" in mutation:
                kust["images"] = mutation["kustomization_images"]
            fired = check(apply_mutation(objects, mutation), env, kust, identity)
        rules = {rule for rule, _ in fired}
        if mutation["rule"] in rules:
            print(f"ok   {mutation['name']}: rejected by {mutation['rule']}")
        else:
            failures += 1
            print(f"FAIL {mutation['name']}: expected rule {mutation['rule']} to fire, got {sorted(rules) or 'nothing'}")
    print(f"policy self-test: {len(mutations)} mutations, {failures} failed")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("check")
    one.add_argument("--env", required=True, choices=["dev", "prod", "local"])
    one.add_argument("--kustomization", required=True)
    one.add_argument("--identity", choices=["irsa", "pod-identity"], default="irsa",
                     help="how the worker gets its AWS role: IRSA annotation, or EKS Pod Identity")
    one.add_argument("rendered")
    nss = sub.add_parser("namespaces")
    nss.add_argument("rendered")
    iss = sub.add_parser("issuers")
    iss.add_argument("rendered")
    iss.add_argument("prod_rendered")
    many = sub.add_parser("self-test")
    many.add_argument("--fixtures", required=True)
    many.add_argument("--kustomization-dir", required=True)
    many.add_argument("rendered_dir")
    args = parser.parse_args()
    if args.command == "self-test":
        return self_test(args)
    if args.command == "issuers":
        errors = check_issuers(load(args.rendered), load(args.prod_rendered))
        for rule, message in errors:
            print(f"FAIL {rule} {message}")
        print(f"issuers {args.rendered}: {len(errors)} violations")
        return 1 if errors else 0
    if args.command == "namespaces":
        errors = check_namespaces(load(args.rendered))
        for rule, message in errors:
            print(f"FAIL {rule} {message}")
        print(f"namespaces {args.rendered}: {len(errors)} violations")
        return 1 if errors else 0
    with open(args.kustomization, encoding="utf-8") as handle:
        kust = yaml.safe_load(handle)
    objects = load(args.rendered)
    errors = check(objects, args.env, kust, args.identity)
    for rule, message in errors:
        print(f"FAIL {rule} {message}")
    rules = sorted(n[len("rule_"):] for n in dir(Checker) if n.startswith("rule_"))
    print(f"policy {args.env} ({args.identity}): {len(objects)} objects, rule groups {', '.join(rules)}: {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
