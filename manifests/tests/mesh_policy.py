"""Service-mesh policy over rendered manifests (components/mesh-linkerd,
components/mesh-istio): the rules that make a mesh work under this platform's
default-deny, `restricted` Pod Security, retry and shutdown contracts.

    python mesh_policy.py check --mesh linkerd|istio|none [--namespaces NS.yaml] RENDERED.yaml
    python mesh_policy.py self-test --fixtures mutations.yaml --namespaces NS.yaml RENDERED_DIR

`check` prints every violation as `RULE object: message` and exits 1 if there
is one. `self-test` applies each mutation of the fixtures file to a rendered
combination (RENDERED_DIR/<render>.yaml) and expects the named rule to reject
it, or, for entries with `expect: pass`, the mutated render to stay clean; an
entry's `also:` list changes further objects in the same way. Every rule
needs at least one mutation it must reject.
"""
import argparse
import copy
import ipaddress
import re
import sys
from urllib.parse import urlsplit

import yaml

from policy import Checker, apply_mutation, load, pod_labels, pod_spec, selects

SERVICES = ("main-api", "auxiliary-service")
EDGE, WORKER = SERVICES
# Intercepted ports whose clients are outside the mesh: plain HTTP callers of
# the edge (in-cluster, and prod's load balancer on port 80) and Prometheus
# (both admin ports). Only these may accept clients without mesh identity.
NON_MESH_PORT_NAMES = {EDGE: {"http", "admin"}, WORKER: {"admin"}}
# The edge's public TLS port: the load balancer connects to it with the
# client's address (NLB IP targets, client IP preservation), which the edge's
# per-client miss limit and access log rely on. With a mesh it must bypass the
# proxy (a proxied connection comes from the proxy's address) and carry no
# mesh configuration that would suggest otherwise.
EDGE_PUBLIC_TLS = "https"
# Addresses the load balancer's connections come from: an internet client
# (client IP preservation) and the load balancer's own address in the VPC
# (health checks). Documentation and private ranges, no real hosts.
LOAD_BALANCER_PEERS = ("203.0.113.10", "10.0.0.10")
# Defaults of the services when the variable is not set (README).
SHUTDOWN_DEFAULTS = {"SHUTDOWN_DRAIN_SECONDS": 5, "SHUTDOWN_TIMEOUT_SECONDS": 15}
UPSTREAM_TIMEOUT_DEFAULT = 5
PROMETHEUS = ({"kubernetes.io/metadata.name": "monitoring"}, {"app.kubernetes.io/name": "prometheus"})

MESHES = {
    "linkerd": {
        "control_plane": [  # (namespace, pod labels, port)
            ("linkerd", {"linkerd.io/control-plane-component": "destination"}, 8086),
            ("linkerd", {"linkerd.io/control-plane-component": "destination"}, 8090),
            ("linkerd", {"linkerd.io/control-plane-component": "identity"}, 8080),
        ],
        "inbound": [4143],  # worker, from the edge
        "edge_to_worker": [4143],
        "metrics": [4191],  # both, from Prometheus
        "ports": {4143, 4191, 8080, 8086, 8090},
        "native": ("config.linkerd.io/proxy-enable-native-sidecar",
                   "config.beta.linkerd.io/proxy-enable-native-sidecar",
                   "config.alpha.linkerd.io/proxy-enable-native-sidecar"),
        # Annotations that make the injected pod need privileges `restricted`
        # forbids: a debug sidecar without a security context, and a
        # conntrack setting that makes proxy-init privileged.
        "privileged_annotations": {"config.linkerd.io/enable-debug-sidecar": "true",
                                   "config.linkerd.io/close-wait-timeout": None},
    },
    "istio": {
        "control_plane": [("istio-system", {"app": "istiod"}, 15012)],
        "inbound": [15006, 15008],
        "edge_to_worker": [15008],
        "metrics": [15020, 15090],
        "ports": {15006, 15008, 15012, 15020, 15090},
        "native": ("sidecar.istio.io/nativeSidecar",),
        # TPROXY interception runs the sidecar with NET_ADMIN.
        "privileged_annotations": {"sidecar.istio.io/interceptionMode": "TPROXY"},
    },
}
LINKERD_WAIT = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
LINKERD_SKIP_INBOUND = "config.linkerd.io/skip-inbound-ports"
ISTIO_INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
ISTIO_EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
LINKERD_RETRY = re.compile(r"^retry\.linkerd\.io/")
LINKERD_TIMEOUT = re.compile(r"^timeout\.linkerd\.io/(request|response)$")


def seconds(value):
    """A Go/Istio duration ("25s", "1m30s", "500ms") or a number, in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total, text = 0.0, str(value).strip()
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if not re.fullmatch(r"(\d+(?:\.\d+)?(ms|s|m|h))+", text):
        raise ValueError(f"not a duration: {value!r}")
    return total


def port_list(value):
    """A comma-separated port list with optional ranges ("8443", "8000,9000",
    "4000-4100"), as the Linkerd and Istio annotations take it."""
    ports = set()
    for item in (part.strip() for part in str(value).split(",")):
        if not item:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise ValueError(f"not a port or port range: {item!r}")
        low, high = int(match[1]), int(match[2] or match[1])
        if not 0 < low <= high <= 65535:
            raise ValueError(f"not a port or port range: {item!r}")
        ports |= set(range(low, high + 1))
    return ports


class MeshChecker(Checker):
    """Reuses the project policy's object lookups (fail, of_kind, find); runs
    only the mesh rules below."""

    def __init__(self, objects, mesh, namespaces=None):
        super().__init__(objects, env=None, kustomization=None)
        self.mesh = mesh
        self.namespaces = namespaces or []

    def deployments(self):
        return [d for d in (self.find("Deployment", n) for n in SERVICES) if d]

    def env_of(self, dep):
        """The container's environment: envFrom ConfigMaps, then env."""
        values = {}
        for ctr in pod_spec(dep).get("containers") or []:
            for src in ctr.get("envFrom") or []:
                cm = self.find("ConfigMap", (src.get("configMapRef") or {}).get("name"))
                values.update((cm or {}).get("data") or {})
            values.update({e["name"]: e.get("value") for e in ctr.get("env") or []})
        return values

    def annotations(self, dep):
        return (dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}

    def not_intercepted(self, dep):
        """The container ports of `dep` whose inbound traffic bypasses the
        mesh proxy, read from the pod annotations the way the mesh reads them
        (Istio: includeInboundPorts, default "*", and only with "*"
        excludeInboundPorts; Linkerd: skip-inbound-ports). Raises ValueError
        on an annotation the mesh could not parse."""
        ports, notes = set(self.container_ports(dep)), self.annotations(dep)
        if self.mesh == "istio":
            include = str(notes.get(ISTIO_INCLUDE_INBOUND, "*")).strip()
            if include == "*":
                return ports & port_list(notes.get(ISTIO_EXCLUDE_INBOUND, ""))
            return ports - port_list(include)
        if self.mesh == "linkerd":
            return ports & port_list(notes.get(LINKERD_SKIP_INBOUND, ""))
        return set()

    def excluded_or_none(self, dep, report=True):
        """not_intercepted(), or None for an unparsable annotation (reported
        once, by rule_client_address)."""
        try:
            return self.not_intercepted(dep)
        except ValueError as err:
            if report:
                self.fail("mesh-client-address", dep, str(err))
            return None

    def worker_url(self):
        edge = self.find("Deployment", EDGE)
        return urlsplit(self.env_of(edge).get("AUXILIARY_SERVICE_URL", "")) if edge else None

    def worker_host(self):
        url = self.worker_url()
        return (url.hostname or "").split(".")[0] if url else ""

    # -- rules --------------------------------------------------------------

    def rule_balancing(self):
        """With a mesh the edge must call a ClusterIP Service (the proxy then
        balances each request); without one, the headless Service."""
        edge = self.find("Deployment", EDGE)
        if not edge:
            self.fail("mesh-balancing", None, f"no Deployment {EDGE}")
            return
        url = self.worker_url()
        svc = self.find("Service", self.worker_host())
        if not svc:
            self.fail("mesh-balancing", edge, f"AUXILIARY_SERVICE_URL {url.geturl()!r} names no Service of the render")
            return
        headless = svc["spec"].get("clusterIP") == "None"
        worker = self.find("Deployment", WORKER)
        if worker and not selects({"matchLabels": svc["spec"].get("selector") or {}}, pod_labels(worker)):
            self.fail("mesh-balancing", svc, "does not select the worker pods")
        port = url.port or 80
        if not any(p.get("port") == port and p.get("targetPort") == "http" for p in svc["spec"].get("ports") or []):
            self.fail("mesh-balancing", svc, f"has no port {port} targeting the worker's `http` port")
        if self.mesh == "none":
            if not headless:
                self.fail("mesh-balancing", svc, "without a mesh the edge must use the headless worker Service")
            return
        if headless or svc["spec"].get("type", "ClusterIP") != "ClusterIP":
            self.fail("mesh-balancing", svc, "with a mesh the edge must call a ClusterIP Service, not pod IPs")
        base = self.find("Service", WORKER)
        if not base or base["spec"].get("clusterIP") != "None":
            self.fail("mesh-balancing", base, f"Service {WORKER} must stay headless (clusterIP is immutable; "
                      "the mesh uses a Service of its own)")

    def rule_metrics(self):
        """Each service is scraped once: exactly one Service per app carries
        the `admin` port the ServiceMonitors select."""
        for name in SERVICES:
            scraped = [s for s in self.of_kind("Service")
                       if (s["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == name
                       and any(p.get("name") == "admin" for p in s["spec"].get("ports") or [])]
            if len(scraped) != 1:
                self.fail("mesh-metrics", None, f"{len(scraped)} Services expose {name}'s admin port to the "
                          "ServiceMonitor (want 1: more scrape it twice, none not at all)")

    def rule_injection(self):
        for dep in self.deployments():
            meta = dep["spec"]["template"].get("metadata") or {}
            labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
            linkerd = notes.get("linkerd.io/inject") == "enabled"
            istio = labels.get("sidecar.istio.io/inject") == "true" or notes.get("sidecar.istio.io/inject") == "true"
            found = {"linkerd"} if linkerd else set()
            found |= {"istio"} if istio else set()
            want = set() if self.mesh == "none" else {self.mesh}
            if found != want:
                self.fail("mesh-injection", dep, f"pod template injects {sorted(found) or 'no mesh'}, want {sorted(want) or 'none'}")

    def rule_sidecar_lifecycle(self):
        """Native sidecar, or a proxy that outlives preStop + drain + in-flight timeout."""
        if self.mesh == "none":
            return
        for dep in self.deployments():
            notes = (dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}
            native = [notes[k] for k in MESHES[self.mesh]["native"] if k in notes]
            if native and str(native[0]).lower() == "true":
                continue
            spec, env = pod_spec(dep), self.env_of(dep)
            pre = max(((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
                      for c in spec["containers"])
            need = pre + sum(int(env.get(k, d)) for k, d in SHUTDOWN_DEFAULTS.items())
            grace = spec.get("terminationGracePeriodSeconds", 30)
            try:
                if self.mesh == "linkerd":
                    wait, what = int(notes.get(LINKERD_WAIT, 0)), LINKERD_WAIT
                    held = True  # config.linkerd.io/proxy-await is on by default
                else:
                    config = yaml.safe_load(notes.get("proxy.istio.io/config", "") or "") or {}
                    wait = seconds(config.get("terminationDrainDuration", "5s"))
                    what = "proxy.istio.io/config terminationDrainDuration"
                    held = config.get("holdApplicationUntilProxyStarts") is True
            except ValueError as err:
                self.fail("mesh-sidecar-lifecycle", dep, str(err))
                continue
            if wait < need:
                self.fail("mesh-sidecar-lifecycle", dep, f"no native sidecar and {what} is {wait:g}s, below preStop "
                          f"{pre} + drain + in-flight timeout = {need}s: the proxy would stop before the app")
            if wait >= grace:
                self.fail("mesh-sidecar-lifecycle", dep, f"{what} {wait:g}s does not fit in the grace period {grace}s")
            if not held:
                self.fail("mesh-sidecar-lifecycle", dep, "without a native sidecar the app must wait for the proxy "
                          "(holdApplicationUntilProxyStarts: true)")

    def rule_pod_security(self):
        """`restricted` stays enforced; nothing asks for capabilities, so the
        mesh's CNI plugin (not an init container with NET_ADMIN) must redirect
        traffic."""
        if self.mesh == "none":
            return
        nss = [o for o in self.objects + self.namespaces if o.get("kind") == "Namespace"]
        targets = {o["metadata"].get("namespace") for o in self.deployments()}
        for name in targets:
            ns = next((n for n in nss if n["metadata"]["name"] == name), None)
            level = ((ns or {}).get("metadata", {}).get("labels") or {}).get("pod-security.kubernetes.io/enforce")
            if level != "restricted":
                self.fail("mesh-pod-security", ns, f"namespace {name} enforces {level!r}, want 'restricted' (it is "
                          "what rejects an injected init container with NET_ADMIN/NET_RAW)")
        for dep in self.deployments():
            spec = pod_spec(dep)
            for ctr in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                sc = ctr.get("securityContext") or {}
                added = set((sc.get("capabilities") or {}).get("add") or [])
                if added or sc.get("privileged"):
                    self.fail("mesh-pod-security", dep, f"container {ctr['name']} adds {sorted(added)} or is privileged")
            notes = (dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}
            for key, value in MESHES[self.mesh]["privileged_annotations"].items():
                if key in notes and (value is None or str(notes[key]) == value):
                    self.fail("mesh-pod-security", dep, f"{key}: {notes[key]} makes the injected pod need privileges "
                              "that `restricted` rejects")

    # NetworkPolicy evaluation: does any policy selecting `pod` allow this peer and port?
    @staticmethod
    def peer_matches(peer, ns_labels, pod_lbls, same_namespace):
        if "ipBlock" in peer:
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], ns_labels) and peer["namespaceSelector"] != {}:
                return False
        elif not same_namespace:
            return False
        return "podSelector" not in peer or peer["podSelector"] == {} or selects(peer["podSelector"], pod_lbls)

    def allows(self, pod, direction, ns_name, peer_labels, port):
        ns_labels = {"kubernetes.io/metadata.name": ns_name}
        own_ns = pod["metadata"].get("namespace")
        key = "ingress" if direction == "Ingress" else "egress"
        side = "from" if key == "ingress" else "to"
        for pol in self.of_kind("NetworkPolicy"):
            if direction not in (pol["spec"].get("policyTypes") or []):
                continue
            if not selects(pol["spec"].get("podSelector") or {}, pod_labels(pod)) and pol["spec"].get("podSelector") not in ({}, None):
                continue
            for rule in pol["spec"].get(key) or []:
                ports = rule.get("ports")
                if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                    continue
                peers = rule.get(side)
                if not peers or any(self.peer_matches(p, ns_labels, peer_labels, ns_name == own_ns) for p in peers):
                    return True
        return False

    def rule_network(self):
        if self.mesh == "none":
            return
        m = MESHES[self.mesh]
        edge, worker = self.find("Deployment", EDGE), self.find("Deployment", WORKER)
        if not edge or not worker:
            return
        ns = edge["metadata"].get("namespace")
        for dep in (edge, worker):
            for cp_ns, cp_labels, port in m["control_plane"]:
                if not self.allows(dep, "Egress", cp_ns, cp_labels, port):
                    self.fail("mesh-network", dep, f"no egress to the {self.mesh} control plane {cp_ns}/{cp_labels} on {port}")
            for port in m["metrics"]:
                if not self.allows(dep, "Ingress", PROMETHEUS[0]["kubernetes.io/metadata.name"], PROMETHEUS[1], port):
                    self.fail("mesh-network", dep, f"Prometheus cannot reach the proxy's metrics port {port}")
        for port in m["inbound"]:
            if not self.allows(worker, "Ingress", ns, pod_labels(edge), port):
                self.fail("mesh-network", worker, f"the edge's proxy cannot reach the worker's proxy port {port}")
        for port in m["edge_to_worker"]:
            if not self.allows(edge, "Egress", ns, pod_labels(worker), port):
                self.fail("mesh-network", edge, f"no egress to the worker's proxy port {port}")
        # Nothing wider: the mesh's own policies name their peers and ports,
        # and only the mesh's ports.
        for pol in self.of_kind("NetworkPolicy"):
            if not pol["metadata"]["name"].startswith("mesh-"):
                continue
            for key, side in (("ingress", "from"), ("egress", "to")):
                for rule in pol["spec"].get(key) or []:
                    ports = {p.get("port") for p in rule.get("ports") or []}
                    if not ports or not ports <= m["ports"]:
                        self.fail("mesh-network", pol, f"{key} rule opens {sorted(ports, key=str) or 'every port'}, "
                                  f"want only {self.mesh} ports {sorted(m['ports'])}")
                    for peer in rule.get(side) or [None]:
                        if peer is None or "ipBlock" in peer or not peer.get("podSelector") \
                                or ("namespaceSelector" in peer and set((peer["namespaceSelector"].get("matchLabels") or {})) != {"kubernetes.io/metadata.name"}):
                            self.fail("mesh-network", pol, f"{key} peer {peer} is wider than one namespace's named pods")

    def rule_mtls(self):
        if self.mesh == "istio":
            self.istio_mtls()
        elif self.mesh == "linkerd":
            self.linkerd_mtls()

    def container_ports(self, dep):
        return {p["containerPort"]: p.get("name") for c in pod_spec(dep)["containers"] for p in c.get("ports") or []}

    def istio_mtls(self):
        pas = self.of_kind("PeerAuthentication")
        for pa in pas:
            if not pa["spec"].get("selector") and (pa["spec"].get("mtls") or {}).get("mode") in ("PERMISSIVE", "DISABLE"):
                self.fail("mesh-mtls", pa, "a namespace-wide PeerAuthentication must not relax mTLS")
        for dep in self.deployments():
            name = dep["metadata"]["name"]
            mine = [p for p in pas if p["spec"].get("selector") and selects(p["spec"]["selector"], pod_labels(dep))]
            if len(mine) != 1:
                self.fail("mesh-mtls", dep, f"want exactly one PeerAuthentication selecting it, found {len(mine)} "
                          "(Istio's default is PERMISSIVE everywhere)")
                continue
            pa, ports = mine[0], self.container_ports(dep)
            if (pa["spec"].get("mtls") or {}).get("mode") != "STRICT":
                self.fail("mesh-mtls", pa, "workload mode must be STRICT")
            skipped = self.excluded_or_none(dep, report=False) or set()
            for key, setting in (pa["spec"].get("portLevelMtls") or {}).items():
                mode, port_name = (setting or {}).get("mode"), ports.get(int(key))
                if mode == "STRICT" or int(key) in skipped:
                    continue  # an excluded port is reported by rule_client_address
                if port_name not in NON_MESH_PORT_NAMES[name]:
                    self.fail("mesh-mtls", pa, f"port {key} ({port_name or 'not a container port'}) is {mode}; only "
                              f"{sorted(NON_MESH_PORT_NAMES[name])} of {name} may accept clients outside the mesh")
                elif mode != "PERMISSIVE":
                    self.fail("mesh-mtls", pa, f"port {key} is {mode}; PERMISSIVE keeps mesh clients working too")

    def linkerd_mtls(self):
        authz = self.of_kind("AuthorizationPolicy")
        for dep in self.deployments():
            name = dep["metadata"]["name"]
            notes = (dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}
            if notes.get("config.linkerd.io/default-inbound-policy") not in ("deny", "all-authenticated", "cluster-authenticated"):
                self.fail("mesh-mtls", dep, "config.linkerd.io/default-inbound-policy must not let unauthenticated "
                          "clients in on ports without a Server")
            ports = {**self.container_ports(dep), 4191: "linkerd-admin"}
            skipped = self.excluded_or_none(dep, report=False) or set()
            for number, port_name in ports.items():
                if number in skipped:
                    continue  # bypasses the proxy: see rule_client_address
                covering = self.servers_for(dep, number, port_name)
                if len(covering) != 1:
                    self.fail("mesh-mtls", dep, f"port {number} ({port_name}) has {len(covering)} Servers, want 1 "
                              "(with inbound policy deny a port without one is closed)")
                    continue
                server = covering[0]
                if server["spec"].get("accessPolicy", "deny") not in ("deny", "all-authenticated", "cluster-authenticated"):
                    self.fail("mesh-mtls", server, f"accessPolicy {server['spec'].get('accessPolicy')} admits clients without identity")
                refs = [r for a in authz if (a["spec"].get("targetRef") or {}).get("kind") == "Server"
                        and a["spec"]["targetRef"].get("name") == server["metadata"]["name"]
                        for r in a["spec"].get("requiredAuthenticationRefs") or []]
                if not refs:
                    self.fail("mesh-mtls", server, "no AuthorizationPolicy: every client is refused")
                open_to_all = any(r.get("kind") == "NetworkAuthentication" for r in refs)
                if open_to_all and port_name not in NON_MESH_PORT_NAMES[name] | {"linkerd-admin"}:
                    self.fail("mesh-mtls", server, f"admits clients without mesh identity on {name} port {port_name}; "
                              f"only {sorted(NON_MESH_PORT_NAMES[name])} and the proxy admin port may")
                if name == WORKER and port_name == "http":
                    self.check_edge_identity(server, refs)

    def servers_for(self, dep, number, port_name):
        return [s for s in self.of_kind("Server") if s["spec"].get("podSelector") is not None
                and selects(s["spec"]["podSelector"], pod_labels(dep))
                and s["spec"].get("port") in (number, port_name)]

    def check_edge_identity(self, server, refs):
        mtls = [self.find("MeshTLSAuthentication", r.get("name")) for r in refs if r.get("kind") == "MeshTLSAuthentication"]
        if not mtls or None in mtls:
            self.fail("mesh-mtls", server, "the worker API must require mesh identity (a MeshTLSAuthentication)")
            return
        for obj in mtls:
            spec = obj["spec"]
            named = [(r.get("kind"), r.get("name"), r.get("namespace")) for r in spec.get("identityRefs") or []]
            ids = spec.get("identities") or []
            edge_only = named == [("ServiceAccount", EDGE, None)] and not ids or \
                (not named and len(ids) == 1 and re.fullmatch(rf"{EDGE}\.[a-z0-9-]+\.serviceaccount\.identity\..+", ids[0]))
            if not edge_only:
                self.fail("mesh-mtls", obj, f"must name the edge's ServiceAccount {EDGE} only, got {named or ids}")

    def allows_external(self, pod, address, port):
        """Does a NetworkPolicy let a client outside the cluster (`address`)
        reach `port` of `pod`? Only rules without `from` or with an ipBlock
        holding the address admit it (namespace and pod selectors never match
        traffic from outside the cluster)."""
        ip = ipaddress.ip_address(address)
        for pol in self.of_kind("NetworkPolicy"):
            if "Ingress" not in (pol["spec"].get("policyTypes") or []):
                continue
            if not selects(pol["spec"].get("podSelector") or {}, pod_labels(pod)) and pol["spec"].get("podSelector") not in ({}, None):
                continue
            for rule in pol["spec"].get("ingress") or []:
                ports = rule.get("ports")
                if ports and not any(p.get("port") in (port, self.container_ports(pod).get(port))
                                     and p.get("protocol", "TCP") == "TCP" for p in ports):
                    continue
                peers = rule.get("from")
                if not peers:
                    return True
                for peer in peers:
                    block = peer.get("ipBlock")
                    if not block:
                        continue
                    try:
                        nets = [ipaddress.ip_network(c, strict=False) for c in [block["cidr"], *(block.get("except") or [])]]
                    except (KeyError, ValueError):
                        continue  # not a CIDR: admits nobody
                    cidr, *excepted = nets
                    if ip.version == cidr.version and ip in cidr and not any(
                            ip.version == e.version and ip in e for e in excepted):
                        return True
        return False

    def rule_client_address(self):
        """With a mesh, the edge's public TLS port bypasses the proxy, so the
        edge sees each client's address (per-client miss limit, access log),
        and stays reachable for the load balancer; no worker port bypasses it
        (edge -> worker stays mTLS)."""
        if self.mesh == "none":
            return
        edge, worker = self.find("Deployment", EDGE), self.find("Deployment", WORKER)
        if worker:
            skipped = self.excluded_or_none(worker)
            notes = self.annotations(worker)
            listed = {k: notes[k] for k in (ISTIO_EXCLUDE_INBOUND, LINKERD_SKIP_INBOUND) if str(notes.get(k, "")).strip()}
            if skipped:
                self.fail("mesh-client-address", worker, f"ports {sorted(skipped)} bypass the {self.mesh} proxy; "
                          "every worker port must stay in the mesh (edge -> worker is mTLS only)")
            elif listed:
                self.fail("mesh-client-address", worker, f"{listed}: the worker excludes no port from its proxy (an "
                          "exclusion meant for the edge's public port must target the edge only)")
        if not edge:
            return
        public = {n for n, name in self.container_ports(edge).items() if name == EDGE_PUBLIC_TLS}
        if len(public) != 1:
            self.fail("mesh-client-address", edge, f"want one container port named {EDGE_PUBLIC_TLS!r}, found {sorted(public)}")
            return
        port = public.pop()
        skipped = self.excluded_or_none(edge)
        if skipped is None:
            return
        annotation = ISTIO_EXCLUDE_INBOUND if self.mesh == "istio" else LINKERD_SKIP_INBOUND
        if port not in skipped:
            self.fail("mesh-client-address", edge, f"port {port} ({EDGE_PUBLIC_TLS}) goes through the {self.mesh} proxy: "
                      f"every internet client would reach the edge from the proxy's address and share one "
                      f"CLIENT_MISS_RATE_PER_SECOND budget; set {annotation}: \"{port}\"")
        for address in LOAD_BALANCER_PEERS:
            if not self.allows_external(edge, address, port):
                self.fail("mesh-client-address", edge, f"no NetworkPolicy lets the load balancer ({address}) reach port {port}")
        # Every port the edge excludes (8443, and any a fork adds, such as
        # 8000): no mesh object may claim to apply to it, and with Istio
        # meshed clients must not send mesh mTLS to it.
        names = self.container_ports(edge)
        for number in sorted(skipped):
            if self.mesh == "istio":
                self.istio_skipped_port(edge, number, names[number])
            else:
                for server in self.servers_for(edge, number, names[number]):
                    self.fail("mesh-client-address", server, f"port {number} skips the proxy, so this Server never "
                              "applies; remove it rather than suggest a policy that is not enforced")
        for d in self.of_kind("DestinationRule"):
            if d["spec"].get("host", "").split(".")[0] == EDGE \
                    and ((d["spec"].get("trafficPolicy") or {}).get("tls") or {}).get("mode") == "DISABLE":
                self.fail("mesh-client-address", d, "tls DISABLE for the whole host also turns mesh mTLS off on the "
                          "edge's intercepted ports; set it on the excluded ports only")

    def istio_skipped_port(self, edge, port, port_name):
        for pa in self.of_kind("PeerAuthentication"):
            if pa["spec"].get("selector") and selects(pa["spec"]["selector"], pod_labels(edge)) \
                    and str(port) in {str(k) for k in pa["spec"].get("portLevelMtls") or {}}:
                self.fail("mesh-client-address", pa, f"portLevelMtls {port}: the port is excluded from the sidecar, "
                          "so no PeerAuthentication applies to it; remove the entry")
        # Meshed clients: auto mTLS ignores the exclusion, so the Service port
        # in front of it needs mTLS turned off in a DestinationRule.
        svc = self.find("Service", EDGE)
        service_ports = [p["port"] for p in (svc or {}).get("spec", {}).get("ports") or []
                         if p.get("targetPort") in (port, port_name)]
        rules = [d for d in self.of_kind("DestinationRule") if d["spec"].get("host", "").split(".")[0] == EDGE]
        for service_port in service_ports:
            modes = [((s.get("tls") or {}).get("mode"), d) for d in rules
                     for s in (d["spec"].get("trafficPolicy") or {}).get("portLevelSettings") or []
                     if (s.get("port") or {}).get("number") == service_port]
            if [m for m, _ in modes] != ["DISABLE"]:
                self.fail("mesh-client-address", modes[0][1] if modes else None,
                          f"want one DestinationRule for host {EDGE} with tls DISABLE on port {service_port}, found "
                          f"{[m for m, _ in modes] or 'none'}: meshed clients would send mesh mTLS to a port the "
                          "sidecar does not terminate")

    def rule_retries(self):
        edge = self.find("Deployment", EDGE)
        limit = float((self.env_of(edge) if edge else {}).get("UPSTREAM_TIMEOUT_SECONDS", UPSTREAM_TIMEOUT_DEFAULT))
        host = self.worker_host()
        names = {host, WORKER}
        if self.mesh == "istio":
            routes = [v for v in self.of_kind("VirtualService")
                      if any(h.split(".")[0] in names for h in v["spec"].get("hosts") or [])]
            if not any(host in [h.split(".")[0] for h in v["spec"]["hosts"]] for v in routes):
                self.fail("mesh-retries", None, f"no VirtualService for {host}: Istio's default route retries 503 "
                          "and connect failures twice, on top of the edge's retries")
            for vs in routes:
                for i, route in enumerate(vs["spec"].get("http") or []):
                    retries = route.get("retries") or {}
                    if retries.get("attempts") != 0 or retries.get("retryOn"):
                        self.fail("mesh-retries", vs, f"http[{i}] retries {retries or 'unset (Istio default: 2)'}, want attempts: 0")
                    for key in ("timeout",):
                        if key in route and seconds(route[key]) < limit:
                            self.fail("mesh-retries", vs, f"http[{i}].{key} {route[key]} is tighter than the edge's "
                                      f"UPSTREAM_TIMEOUT_SECONDS {limit:g}")
        if self.mesh == "linkerd":
            for obj in self.objects:
                for key, value in ((obj.get("metadata") or {}).get("annotations") or {}).items():
                    if LINKERD_RETRY.match(key):
                        self.fail("mesh-retries", obj, f"{key} turns on Linkerd retries; the edge is the only retry layer")
                    if LINKERD_TIMEOUT.match(key) and seconds(value) < limit:
                        self.fail("mesh-retries", obj, f"{key} {value} is tighter than UPSTREAM_TIMEOUT_SECONDS {limit:g}")
            for sp in self.of_kind("ServiceProfile"):
                if any(r.get("isRetryable") for r in sp.get("spec", {}).get("routes") or []):
                    self.fail("mesh-retries", sp, "a retryable route adds a second retry layer")

    @staticmethod
    def rules():
        return sorted(n for n in vars(MeshChecker) if n.startswith("rule_"))

    def run(self):
        for name in self.rules():
            getattr(self, name)()
        return self.errors


def check(objects, mesh, namespaces):
    return MeshChecker(objects, mesh, namespaces).run()


def mesh_of(render):
    return render.rsplit("-", 1)[1] if "-" in render else "none"


def self_test(args):
    with open(args.fixtures, encoding="utf-8") as handle:
        mutations = yaml.safe_load(handle)
    namespaces = load(args.namespaces)
    failures, baselines = 0, {}
    for mutation in mutations:
        render = mutation["render"]
        if render not in baselines:
            baselines[render] = load(f"{args.rendered_dir}/{render}.yaml")
            errors = check(baselines[render], mesh_of(render), namespaces)
            if errors:
                failures += 1
                print(f"FAIL baseline {render} is not clean: {errors}")
        mutated = apply_mutation(copy.deepcopy(baselines[render]), mutation)
        for step in mutation.get("also") or []:  # further objects changed by the same mutation
            mutated = apply_mutation(mutated, {"name": mutation["name"], **step})
        fired = check(mutated, mesh_of(render), namespaces)
        rules = sorted({rule for rule, _ in fired})
        if mutation.get("expect") == "pass":
            ok = not fired
            verdict = "still passes" if ok else f"expected to pass, got {fired}"
        else:
            ok = mutation["rule"] in rules
            verdict = f"rejected by {mutation['rule']}" if ok else f"expected rule {mutation['rule']}, got {rules or 'nothing'}"
        print(f"{'ok  ' if ok else 'FAIL'} {render}: {mutation['name']}: {verdict}")
        failures += 0 if ok else 1
    # Every rule has at least one mutation it must reject.
    covered = {m["rule"] for m in mutations if m.get("expect") != "pass"}
    for rule in (f"mesh-{n[len('rule_'):].replace('_', '-')}" for n in MeshChecker.rules()):
        if rule not in covered:
            failures += 1
            print(f"FAIL rule {rule} has no mutation that must fail")
    print(f"mesh policy self-test: {len(mutations)} mutations, {failures} failed")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("check")
    one.add_argument("--mesh", required=True, choices=["linkerd", "istio", "none"])
    one.add_argument("--namespaces", help="render of manifests/namespaces (for the dev and prod Pod Security levels)")
    one.add_argument("rendered")
    many = sub.add_parser("self-test")
    many.add_argument("--fixtures", required=True)
    many.add_argument("--namespaces", required=True)
    many.add_argument("rendered_dir")
    args = parser.parse_args()
    if args.command == "self-test":
        return self_test(args)
    objects = load(args.rendered)
    errors = check(objects, args.mesh, load(args.namespaces) if args.namespaces else [])
    for rule, message in errors:
        print(f"FAIL {rule} {message}")
    rules = [n[len("rule_"):] for n in MeshChecker.rules()]
    print(f"mesh policy ({args.mesh}) {args.rendered}: {len(objects)} objects, rules {', '.join(rules)}: {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
