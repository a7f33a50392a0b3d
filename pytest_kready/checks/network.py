"""What the network suite (suites/test_network.py) measures, once per session: the pods it places, the probes it
runs, and what each check reads from them.

Pods (all ``agnhost``, Pod Security "restricted" but the outside listener, labelled as the run's):

* ``fresh``: a throw-away namespace without policies and a probe pod in it: the "other namespace" every target
  namespace is compared with, and the source of the positive controls;
* ``canary``: a throw-away namespace with two pods and a policy denying ingress to one of them
  (``network.enforcement``): if traffic to that one still flows, the cluster does not enforce NetworkPolicy;
* ``outside``: a hostNetwork listener on a free port of a node (the node's host network stands for "outside the
  cluster"); if it cannot be placed, the kubelet port (10250) of the probe pod's node is used instead;
* in each target namespace, a probe pod (``kready-probe-<run>``), the same as any new pod there would be.

Then one matrix, sampled until stable (expected: the secure answer), read by the checks:

====================  ==========================================  ===============================
from                  to                                          expected
====================  ==========================================  ===============================
fresh                 canary/open, outside, DNS                   connects / resolves (controls)
fresh                 each target's probe pod (TCP, UDP), its     blocked
                      pods' TCP container ports and Services
each target's probe   fresh's probe pod (TCP, UDP), outside       blocked
each target's probe   DNS                                         resolves
====================  ==========================================  ===============================
"""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import Any

from .. import errors, labels
from ..waits import WaitTimeout
from ..reachability.engine import Engine, Result, Source, pod_ready, pod_state
from ..reachability.model import POD_LABEL, ROLE_LABEL, Target, pod_manifest
from ..reachability.truthtable import TruthTable

PROBE_PORT = 8080
KUBELET_PORT = 10250
MAX_REAL_TARGETS = 60  # per target namespace: container ports and Service ports probed from fresh
CANARY_SETTLE = 20.0  # seconds a canary policy may take to be enforced (some CNIs attach policies late)
MATRIX_SETTLE = 8.0
READY_TIMEOUT = 180.0
HARDENED_POLICIES = "pytest_kready/profiles/hardened/namespace/networkpolicies.yaml"
FRESH, CANARY, OUTSIDE, DNS = "fresh", "canary", "outside", "dns"


@dataclasses.dataclass
class Placement:
    """A probe pod in a target namespace, or why there is none."""

    namespace: str
    pod: str | None = None
    ip: str | None = None
    error: str | None = None


@dataclasses.dataclass
class Enforcement:
    """The canary's verdict: ``enforced`` True / False / None (cannot tell, ``reason`` says why)."""

    enforced: bool | None
    reason: str
    result: Result | None = None


class NetworkAudit:
    """Places the pods and runs the probes for the network checks (lazily, once, thread-safe)."""

    def __init__(self, cluster: Any):
        self.cluster = cluster
        self.api = cluster.api_client()
        self.name_for = cluster.namespace_name
        self.run_id = cluster.run_id
        self.engine = Engine(self.api, exec_client_factory=lambda: cluster.api_client(new=True),
                             image=cluster.settings.image, labels=cluster.labels())
        self.probe_name = f"kready-probe-{self.run_id}{labels.worker_suffix()}"[:63].rstrip("-")
        self.namespaces: dict[str, str] = {}  # fresh/canary/outside → real name
        self.targets: list[str] = []
        self.placements: dict[str, Placement] = {}
        self.real_targets: dict[str, list[Target]] = {}
        self.skipped: dict[str, list[str]] = {}
        self.outside: Target | None = None
        self.outside_note = ""
        self.control: dict[str, Target] = {}
        self.ips: dict[str, str] = {}
        self._lock = threading.RLock()
        self._setup_error: str | None = None
        self._ready = False
        self._enforcement: Enforcement | None = None
        self._matrix: Result | None = None
        self.created: list[tuple[str, str, str]] = []  # (kind, namespace, name) outside our own namespaces

    # --- setup -------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Create the namespaces and pods and wait for them; raises ``AuditError`` with one line if it cannot."""
        with self._lock:
            if self._ready:
                return
            if self._setup_error:
                raise AuditError(self._setup_error)
            try:
                self._setup()
                self._ready = True
            except (errors.APIError, errors.KreadyError, WaitTimeout) as e:
                self._setup_error = f"could not set up the network probes: {_one_line(e)}"
                raise AuditError(self._setup_error) from e

    def _namespace(self, role: str, extra: dict[str, str] | None = None) -> str:
        name = self.name_for(f"net-{role}")
        self.engine.create_namespace(name, {"kready.dev/role": f"network-{role}", **(extra or {})})
        self.namespaces[role] = name
        return name

    def _setup(self) -> None:
        eng = self.engine
        self.targets = list(self.cluster.target_namespaces())
        fresh = self._namespace(FRESH)
        canary = self._namespace(CANARY)
        want = [(fresh, "probe"), (canary, "denied"), (canary, "open")]
        eng.create(fresh, pod_manifest("probe", image=eng.image, ports=[PROBE_PORT],
                                       labels={POD_LABEL: "probe", ROLE_LABEL: "probe"}))
        for name in ("denied", "open"):
            eng.create(canary, pod_manifest(name, image=eng.image, ports=[PROBE_PORT],
                                            labels={POD_LABEL: name, ROLE_LABEL: "canary"}))
        eng.create(canary, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": "kready-canary-deny"},
                            "spec": {"podSelector": {"matchLabels": {POD_LABEL: "denied"}},
                                     "policyTypes": ["Ingress"]}})
        for ns in self.targets:
            self.placements[ns] = self._place(ns)
            want += [(ns, p.pod) for p in [self.placements[ns]] if p.pod]
        listener = self._start_listener()
        pods = self._wait(want)
        for (ns, name), pod in pods.items():
            if ns in self.placements and name == self.probe_name:
                self.placements[ns].ip = (pod.get("status") or {}).get("podIP")
        self.ips = {key: pods[(ns, name)]["status"]["podIP"]
                    for key, (ns, name) in {"fresh": (fresh, "probe"), "denied": (canary, "denied"),
                                            "open": (canary, "open")}.items()}
        self.control = {
            "open": Target.address(f"{CANARY}/open", self.ips["open"], PROBE_PORT),
            "denied": Target.address(f"{CANARY}/denied", self.ips["denied"], PROBE_PORT),
            "fresh_tcp": Target.address(f"{FRESH}/probe", self.ips["fresh"], PROBE_PORT, "TCP"),
            "fresh_udp": Target.address(f"{FRESH}/probe", self.ips["fresh"], PROBE_PORT, "UDP"),
            "dns": Target.dns(),
        }
        self.outside = self._outside_target(listener, pods[(fresh, "probe")])
        for ns in self.targets:
            self.real_targets[ns], self.skipped[ns] = self._discover(ns)

    def _place(self, ns: str) -> Placement:
        """Put a probe pod in target namespace ``ns`` (standard mode); say why not if admission refuses it."""
        manifest = pod_manifest(self.probe_name, image=self.engine.image, ports=[PROBE_PORT],
                                labels={POD_LABEL: "kready-probe", ROLE_LABEL: "probe"})
        try:
            self.engine.create(ns, manifest)
        except errors.APIError as e:
            return Placement(ns, error=f"the probe pod was refused in {ns}: {_one_line(e)}")
        self.created.append(("Pod", ns, self.probe_name))
        return Placement(ns, pod=self.probe_name)

    def _start_listener(self) -> tuple[str, int] | None:
        """A hostNetwork ``agnhost porter`` on a random free-looking port, in its own namespace."""
        try:
            ns = self._namespace(OUTSIDE, {"pod-security.kubernetes.io/enforce": "privileged"})
        except errors.APIError as e:
            self.outside_note = f"no namespace for the outside listener ({_one_line(e)})"
            return None
        port = random.randint(20000, 29999)
        manifest = pod_manifest("listener", image=self.engine.image, ports=[port], host_network=True,
                                labels={POD_LABEL: "listener", ROLE_LABEL: "outside"})
        try:
            self.engine.create(ns, manifest)
        except errors.APIError as e:
            self.outside_note = f"the hostNetwork listener was refused ({_one_line(e)})"
            return None
        return ns, port

    def _wait(self, want: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """Wait for the pods; a probe pod in a target namespace that does not start is recorded, not fatal."""
        try:
            return self.engine.wait_ready(want, timeout=READY_TIMEOUT)
        except WaitTimeout:
            pods = {}
            for ns, name in want:
                try:
                    pods[(ns, name)] = self.api.raw("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
                except errors.APINotFound:
                    pass
            ours = {self.namespaces[FRESH], self.namespaces[CANARY]}
            broken = [(ns, n) for ns, n in want if not pod_ready(pods.get((ns, n)))]
            if any(ns in ours for ns, _ in broken):
                raise
            for ns, n in broken:
                self.placements[ns].error = (f"the probe pod in {ns} did not become ready: "
                                             f"{pod_state(pods.get((ns, n)))}")
                self.placements[ns].pod = None
            return {k: v for k, v in pods.items() if pod_ready(v)}

    def _outside_target(self, listener: tuple[str, int] | None, fresh_pod: dict) -> Target | None:
        if listener is not None:
            ns, port = listener
            try:
                pod = self.engine.wait_ready([(ns, "listener")], timeout=45)[(ns, "listener")]
                return Target.address(OUTSIDE, pod["status"]["podIP"], port)
            except WaitTimeout as e:
                self.outside_note = f"the hostNetwork listener did not start ({_one_line(e)})"
        host_ip = (fresh_pod.get("status") or {}).get("hostIP")
        if not host_ip:
            return None
        self.outside_note += ("; " if self.outside_note else "") + \
            f"using the kubelet port {KUBELET_PORT} of node {host_ip} as the outside target"
        return Target.address(OUTSIDE, host_ip, KUBELET_PORT)

    def _discover(self, ns: str) -> tuple[list[Target], list[str]]:
        """The namespace's real ports: TCP container ports of its running pods (by pod IP) and TCP ports of its
        Services (by ClusterIP). UDP and SCTP ports are listed as skipped (nothing proves a silent UDP port open)."""
        found: list[Target] = []
        skipped: list[str] = []
        pods: list[dict] = []
        try:
            pods = self.api.raw("GET", f"/api/v1/namespaces/{ns}/pods").get("items") or []
        except errors.APIForbidden:
            skipped.append(f"pods in {ns} are not readable (no list permission)")
        for pod in pods:
            meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
            if meta.get("name") == self.probe_name or spec.get("hostNetwork") or st.get("phase") != "Running" \
                    or not st.get("podIP"):
                continue
            containers = list(spec.get("containers") or []) + [
                c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
            for c in containers:
                for p in c.get("ports") or []:
                    proto = (p.get("protocol") or "TCP").upper()
                    label = f"{ns}/pod {meta['name']}"
                    if proto != "TCP":
                        skipped.append(f"{label}:{p.get('containerPort')}/{proto}")
                        continue
                    found.append(Target.address(label, st["podIP"], int(p["containerPort"])))
        services: list[dict] = []
        try:
            services = self.api.raw("GET", f"/api/v1/namespaces/{ns}/services").get("items") or []
        except errors.APIForbidden:
            skipped.append(f"services in {ns} are not readable (no list permission)")
        for svc in services:
            spec = svc.get("spec") or {}
            ip = spec.get("clusterIP")
            if not ip or ip == "None":
                continue
            for p in spec.get("ports") or []:
                proto = (p.get("protocol") or "TCP").upper()
                label = f"{ns}/svc {svc['metadata']['name']}"
                if proto != "TCP":
                    skipped.append(f"{label}:{p.get('port')}/{proto}")
                    continue
                found.append(Target.address(label, ip, int(p["port"])))
        found = list(dict.fromkeys(found))
        if len(found) > MAX_REAL_TARGETS:
            skipped.append(f"{len(found) - MAX_REAL_TARGETS} more port(s) beyond the first {MAX_REAL_TARGETS}")
            found = found[:MAX_REAL_TARGETS]
        return found, skipped

    # --- the canary --------------------------------------------------------------------------------------------
    def enforcement(self) -> Enforcement:
        with self._lock:
            if self._enforcement is None:
                self._enforcement = self._run_canary()
            return self._enforcement

    def _run_canary(self) -> Enforcement:
        try:
            self.setup()
        except AuditError as e:
            return Enforcement(None, str(e))
        src = Source(FRESH, self.namespaces[FRESH], "probe")
        targets = [self.control["denied"], self.control["open"]]
        expected = TruthTable([FRESH], targets, default=True).deny(to=f"{CANARY}/denied")
        result = self.engine.observe([src], targets, expected=expected, settle=CANARY_SETTLE,
                                     deadline=CANARY_SETTLE + 30, namespaces=self.namespaces)
        denied = result.observed.get(FRESH, self.control["denied"])
        opened = result.observed.get(FRESH, self.control["open"])
        if opened is not True:
            return Enforcement(None, "the positive control failed: a pod without any policy "
                               f"({self.namespaces[CANARY]}/open) is not reachable from another namespace "
                               f"({result.detail(FRESH, self.control['open'])}); the pod network itself does "
                               "not work, so nothing can be concluded", result)
        if denied is None:
            return Enforcement(None, "the canary probe gave no stable answer "
                               f"({result.detail(FRESH, self.control['denied'])})", result)
        if denied:
            return Enforcement(False, "the CNI does not enforce NetworkPolicy: a canary policy denying all ingress "
                               f"to {self.namespaces[CANARY]}/denied did not block traffic to it "
                               f"within {CANARY_SETTLE:g}s", result)
        return Enforcement(True, "a canary deny policy blocked traffic, and the pod it does not select stayed "
                           "reachable", result)

    # --- the matrix ------------------------------------------------------------------------------------------------
    def sources(self) -> list[Source]:
        out = [Source(FRESH, self.namespaces[FRESH], "probe")]
        out += [Source(ns, ns, p.pod) for ns, p in self.placements.items() if p.pod]
        return out

    def probe_targets(self, ns: str) -> list[Target]:
        ip = self.placements[ns].ip
        return [Target.address(f"{ns}/probe", ip, PROBE_PORT, proto) for proto in ("TCP", "UDP")] if ip else []

    def matrix(self) -> Result:
        with self._lock:
            if self._matrix is None:
                self.setup()
                self._matrix = self._run_matrix()
            return self._matrix

    def _run_matrix(self) -> Result:
        sources = self.sources()
        c = self.control
        targets: list[Target] = [c["open"], c["fresh_tcp"], c["fresh_udp"], c["dns"]]
        if self.outside is not None:
            targets.append(self.outside)
        allow: list[tuple[str, Target]] = [(FRESH, c["open"]), (FRESH, c["dns"])]
        deny: list[tuple[str, Target]] = []
        if self.outside is not None:
            allow.append((FRESH, self.outside))
        for ns in self.targets:
            inside = self.probe_targets(ns) + self.real_targets.get(ns, [])
            targets += inside
            deny += [(FRESH, t) for t in inside]
            if self.placements[ns].pod:
                deny += [(ns, c["fresh_tcp"]), (ns, c["fresh_udp"])]
                allow.append((ns, c["dns"]))
                if self.outside is not None:
                    deny.append((ns, self.outside))
        targets = list(dict.fromkeys(targets))
        cells = allow + deny
        expected = TruthTable([s.key for s in sources], targets, cells=cells)
        for cell in allow:
            expected.values[cell] = True
        for cell in deny:
            expected.values[cell] = False
        return self.engine.observe(sources, targets, expected=expected, settle=MATRIX_SETTLE, deadline=90,
                                   namespaces=self.namespaces)

    # --- evidence ------------------------------------------------------------------------------------------------
    def policies(self, ns: str) -> list[dict] | str:
        """The NetworkPolicies in effect in ``ns`` (name and spec), or why they cannot be shown."""
        try:
            items = self.api.raw("GET", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies").get("items")
        except errors.APIForbidden:
            return f"not readable: no permission to list networkpolicies in {ns}"
        except errors.APIError as e:
            return f"not readable: {_one_line(e)}"
        return [{"name": p["metadata"]["name"], "spec": p.get("spec") or {}} for p in items or []]

    # --- cleanup ---------------------------------------------------------------------------------------------------
    def close(self, *, failed: bool) -> None:
        """Delete (or keep, per ``--kready-keep``) what the audit made."""
        from ..cleanup import Ref

        refs = [Ref("v1", kind, name, ns) for kind, ns, name in self.created]
        refs += [Ref("v1", "Namespace", name) for name in self.namespaces.values()]
        try:
            self.cluster.release(refs, failed=failed)
        finally:
            self.engine.close()


class AuditError(Exception):
    """The network probes could not be set up (one line)."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
