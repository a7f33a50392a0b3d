"""The network checks (suites/test_network.py records what these functions return): the pods they place, the
probes they run, and what each check concludes from them. See docs/network.md.

Pods (all ``agnhost``, labelled as the run's, Pod Security "restricted" but the outside listener):

* ``fresh``: a throw-away namespace without policies and a probe pod in it: the "other namespace" every target
  namespace is compared with, and the source of the positive controls;
* ``canary``: a throw-away namespace with two pods and a policy denying ingress to one of them
  (``network.enforcement``): if traffic to that one still flows, the cluster does not enforce NetworkPolicy;
* ``outside``: a throw-away namespace labelled Pod Security ``privileged`` with a hostNetwork listener on a free
  port of a node (the node's host network stands for "outside the cluster"); if it cannot be placed, the kubelet
  port (10250) of the probe pod's node is used instead;
* in each target namespace, a probe pod (``kready-probe-<run>``), the same as any new pod there would be.

What standard mode writes, and where, is listed in every finding's evidence (``writes``; ``execs`` for the
read-only commands run inside pods the run did not create).

Then one matrix (expected: the secure answer), read by the checks:

====================  ==========================================  ===============================
from                  to                                          expected
====================  ==========================================  ===============================
fresh                 canary/open (TCP, UDP), outside, DNS        connects / resolves (controls)
fresh                 each target's probe pod (TCP, UDP), its     blocked
                      pods' TCP container ports and Services
each target's probe   fresh's probe pod (TCP, UDP), outside       blocked
each target's probe   DNS                                         resolves
====================  ==========================================  ===============================

A cell is "blocked" only when its target is shown alive in the same rounds (``reachability.sampling``): the probe
pods answer themselves over localhost every round (and a UDP path across namespaces works, for UDP); the outside
listener and DNS answer the fresh namespace; a workload's port is served by a pod that is Ready through a readiness
probe on that very port, or has a listener on it seen from inside the pod (exec ``cat /proc/net/tcp``), or answers
the probe pod of its own namespace; a Service needs a ready endpoint whose pod is shown alive the same way (or the
Service answers the probe pod of its namespace). A target that cannot be shown alive makes its cell unknown and the
finding inconclusive, never a pass.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import random
import threading
import time
from typing import Any

from .. import errors, labels
from ..findings import CheckResult, Verdict
from ..reachability.engine import Engine, Result, Source, pod_state, probe_ready
from ..reachability.model import POD_LABEL, ROLE_LABEL, Target, pod_manifest
from ..reachability.probe import ExecError
from ..reachability.sampling import Alive
from ..reachability.truthtable import TruthTable
from ..waits import WaitTimeout

PROBE_PORT = 8080
KUBELET_PORT = 10250
MAX_REAL_TARGETS = 60  # per target namespace: container ports and Service ports probed from fresh
MAX_LISTENER_EXECS = 20  # per target namespace: pods whose listeners are read from inside
CANARY_SETTLE = 20.0  # seconds a canary policy may take to be enforced (some CNIs attach policies late)
MATRIX_SETTLE = 8.0
MATRIX_DEADLINE = 90.0
READY_TIMEOUT = 180.0
EXEC_TIMEOUT = 20.0
LISTENER_COMMAND = ["cat", "/proc/net/tcp", "/proc/net/tcp6"]
HARDENED_POLICIES = "pytest_kready/profiles/hardened/namespace/networkpolicies.yaml"
FRESH, CANARY, OUTSIDE, DNS = "fresh", "canary", "outside", "dns"
CANARY_DENIED = f"{CANARY}/denied"  # the canary's control-only source (it probes itself over localhost)

DOCS = "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
DEFAULT_POLICIES = DOCS + "#default-policies"
FIX_DEFAULT_DENY = (f"Give the namespace a default-deny NetworkPolicy for Ingress and Egress (podSelector: {{}}, "
                    f"policyTypes: [Ingress, Egress]) and then allow only the traffic its workloads need, as "
                    f"{HARDENED_POLICIES} does.")
NOT_ENFORCED = "the CNI does not enforce NetworkPolicy, so no network check can conclude"


# --- proofs of life (pure; tests/test_reachability_unit.py) ---------------------------------------------------


def _port_number(value: Any, container: dict) -> int | None:
    """A probe's ``port`` (a number or the name of one of the container's ports) as a number."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        for p in container.get("ports") or []:
            if p.get("name") == value and (p.get("protocol") or "TCP").upper() == "TCP":
                return int(p["containerPort"])
    return None


def readiness_ports(container: dict) -> dict[int, str]:
    """TCP ports a container's readiness probe connects to, with the probe's kind (tcpSocket, httpGet, grpc)."""
    probe = container.get("readinessProbe") or {}
    out: dict[int, str] = {}
    for kind in ("tcpSocket", "httpGet", "grpc"):
        handler = probe.get(kind)
        if isinstance(handler, dict):
            if handler.get("host"):
                continue  # a probe of another host says nothing about this pod's port
            port = _port_number(handler.get("port"), container)
            if port is not None:
                out[port] = kind
    return out


def _containers(pod: dict) -> list[dict]:
    spec = pod.get("spec") or {}
    return list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]


def ready_proof(pod: dict, port: int) -> str | None:
    """Why ``pod`` is shown alive on TCP ``port``: Ready through a readiness probe on that very port; or None."""
    if not probe_ready(pod):
        return None
    for c in _containers(pod):
        kind = readiness_ports(c).get(port)
        if kind:
            name = (pod.get("metadata") or {}).get("name")
            return f"pod {name} is Ready through a {kind} readiness probe on port {port} (container {c.get('name')})"
    return None


def listening_ports(proc_net_tcp: str) -> set[int]:
    """TCP ports in state LISTEN on an address other than loopback, from ``/proc/net/tcp`` and ``/proc/net/tcp6``
    text (a listener on 127.0.0.1 only cannot answer a probe from another pod)."""
    out: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or fields[3] != "0A":
            continue
        addr_hex, _, port_hex = fields[1].partition(":")
        try:
            port = int(port_hex, 16)
            raw = bytes.fromhex(addr_hex)
        except ValueError:
            continue
        # the kernel prints each 32-bit word in host (little-endian) order
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        try:
            addr = ipaddress.ip_address(words)
        except ValueError:
            continue
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if addr.is_loopback:
            continue
        out.add(port)
    return out


def ready_endpoints(slices: list[dict], service: str, port_name: str, protocol: str = "TCP") -> list[dict]:
    """Ready endpoints of ``service`` for the Service port named ``port_name``: ``{"ip", "port", "pod"}`` (pod
    None when the endpoint is not a pod of the namespace)."""
    out = []
    for sl in slices:
        meta = sl.get("metadata") or {}
        if (meta.get("labels") or {}).get("kubernetes.io/service-name") != service:
            continue
        ports = [p for p in sl.get("ports") or [] if (p.get("name") or "") == (port_name or "")
                 and (p.get("protocol") or "TCP").upper() == protocol and p.get("port") is not None]
        if not ports:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            ref = ep.get("targetRef") or {}
            pod = ref.get("name") if ref.get("kind") == "Pod" else None
            for address in ep.get("addresses") or []:
                for p in ports:
                    out.append({"ip": address, "port": int(p["port"]), "pod": pod})
    return out


@dataclasses.dataclass
class Proof:
    """A workload target's proof of life, decided before the matrix: ``alive`` for the engine, plus what is checked
    again after the sample (the pods whose readiness or listener it rests on: (name, uid, restarts, needs Ready))."""

    alive: Alive
    pods: list[tuple[str, str, int, bool]] = dataclasses.field(default_factory=list)
    control: bool = False  # shown alive by the namespace's own probe pod (a control cell)


def restarts(pod: dict) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def pod_stamp(pod: dict, needs_ready: bool) -> tuple[str, str, int, bool]:
    meta = pod.get("metadata") or {}
    return meta.get("name", ""), meta.get("uid", ""), restarts(pod), needs_ready


def still_alive(stamp: tuple[str, str, int, bool], pod: dict | None) -> str | None:
    """None when the pod a proof rests on is unchanged after the sample (same pod, no restart, still Ready if the
    proof was its readiness); else why the proof no longer holds."""
    name, uid, count, needs_ready = stamp
    if not pod or (pod.get("metadata") or {}).get("uid") != uid:
        return f"pod {name} was replaced or deleted during the sample"
    if restarts(pod) != count:
        return f"pod {name} restarted during the sample"
    if needs_ready and not probe_ready(pod):
        return f"pod {name} stopped being Ready during the sample ({pod_state(pod)})"
    return None


# --- what the checks place and measure ------------------------------------------------------------------------------


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
        self.proofs: dict[Target, Proof] = {}
        self.target_ns: dict[Target, str] = {}
        self.skipped: dict[str, list[str]] = {}
        self.outside: Target | None = None
        self.outside_note = ""
        self.control: dict[str, Target] = {}
        self.ips: dict[str, str] = {}
        self.writes: list[tuple[str | None, str]] = []  # (target namespace or None for the run's own, what)
        self.execs: dict[str, list[str]] = {}  # target namespace → commands run in pods the run did not create
        self._lock = threading.RLock()
        self._setup_error: str | None = None
        self._ready = False
        self._enforcement: Enforcement | None = None
        self._matrix: Result | None = None
        self.placed_at: float | None = None
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
        self.writes.append((None, f"Namespace {fresh} (the run's, deleted at the end) with Pod probe "
                                  f"(agnhost porter, TCP/UDP {PROBE_PORT}, Pod Security restricted)"))
        canary = self._namespace(CANARY)
        self.writes.append((None, f"Namespace {canary} (the run's, deleted at the end) with Pods denied and open "
                                  f"(agnhost porter, TCP/UDP {PROBE_PORT}) and NetworkPolicy kready-canary-deny"))
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
            "open_udp": Target.address(f"{CANARY}/open", self.ips["open"], PROBE_PORT, "UDP"),
            "denied": Target.address(CANARY_DENIED, self.ips["denied"], PROBE_PORT),
            "fresh_tcp": Target.address(f"{FRESH}/probe", self.ips["fresh"], PROBE_PORT, "TCP"),
            "fresh_udp": Target.address(f"{FRESH}/probe", self.ips["fresh"], PROBE_PORT, "UDP"),
            "dns": Target.dns(),
            "local_tcp": Target.local(PROBE_PORT, "TCP"),
            "local_udp": Target.local(PROBE_PORT, "UDP"),
        }
        self.outside = self._outside_target(listener, pods[(fresh, "probe")])
        for ns in self.targets:
            self.real_targets[ns], self.skipped[ns] = self._discover(ns)
        self.placed_at = time.monotonic()  # every pod of the matrix Ready: the matrix's settle window runs from here

    def _place(self, ns: str) -> Placement:
        """Put a probe pod in target namespace ``ns`` (standard mode); say why not if admission refuses it."""
        manifest = pod_manifest(self.probe_name, image=self.engine.image, ports=[PROBE_PORT],
                                labels={POD_LABEL: "kready-probe", ROLE_LABEL: "probe"})
        try:
            self.engine.create(ns, manifest)
        except errors.APIError as e:
            return Placement(ns, error=f"the probe pod was refused in {ns}: {_one_line(e)}")
        self.created.append(("Pod", ns, self.probe_name))
        self.writes.append((ns, f"Pod {self.probe_name} in {ns} (a target namespace; agnhost porter, TCP/UDP "
                                f"{PROBE_PORT}, Pod Security restricted, labelled with the run, deleted at the end, "
                                "activeDeadlineSeconds 3600)"))
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
            self.writes.append((None, f"Namespace {ns} (the run's, deleted at the end) labelled "
                                      "pod-security.kubernetes.io/enforce=privileged (its listener was refused)"))
            return None
        self.writes.append((None, f"Namespace {ns} (the run's, deleted at the end) labelled "
                                  "pod-security.kubernetes.io/enforce=privileged, with a hostNetwork Pod listener "
                                  f"(agnhost porter on TCP/UDP port {port} of a node's own network; not root, all "
                                  "capabilities dropped)"))
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
            broken = [(ns, n) for ns, n in want if not probe_ready(pods.get((ns, n)))]
            if any(ns in ours for ns, _ in broken):
                raise
            for ns, n in broken:
                self.placements[ns].error = (f"the probe pod in {ns} did not become ready: "
                                             f"{pod_state(pods.get((ns, n)))}")
                self.placements[ns].pod = None
            return {k: v for k, v in pods.items() if probe_ready(v)}

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
        Services (by ClusterIP), each with its proof of life (``self.proofs``). UDP and SCTP ports are listed as
        skipped (nothing proves a silent UDP port open)."""
        skipped: list[str] = []
        pods = self._list(f"/api/v1/namespaces/{ns}/pods", f"pods in {ns}", skipped) or []
        by_name: dict[str, dict] = {}
        pod_targets: list[tuple[Target, dict]] = []
        for pod in pods:
            meta, spec, st = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
            if meta.get("name") == self.probe_name or spec.get("hostNetwork") or st.get("phase") != "Running" \
                    or not st.get("podIP"):
                continue
            by_name[meta["name"]] = pod
            for c in _containers(pod):
                for p in c.get("ports") or []:
                    proto = (p.get("protocol") or "TCP").upper()
                    label = f"{ns}/pod {meta['name']}"
                    if proto != "TCP":
                        skipped.append(f"{label}:{p.get('containerPort')}/{proto}")
                        continue
                    pod_targets.append((Target.address(label, st["podIP"], int(p["containerPort"])), pod))
        services = self._list(f"/api/v1/namespaces/{ns}/services", f"services in {ns}", skipped) or []
        svc_targets: list[tuple[Target, dict, dict]] = []
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
                svc_targets.append((Target.address(label, ip, int(p["port"])), svc, p))
        pod_targets = list({t: (t, pod) for t, pod in pod_targets}.values())
        svc_targets = list({t: (t, svc, p) for t, svc, p in svc_targets}.values())
        if len(pod_targets) + len(svc_targets) > MAX_REAL_TARGETS:
            skipped.append(f"{len(pod_targets) + len(svc_targets) - MAX_REAL_TARGETS} more port(s) beyond the "
                           f"first {MAX_REAL_TARGETS}")
            pod_targets = pod_targets[:MAX_REAL_TARGETS]
            svc_targets = svc_targets[:MAX_REAL_TARGETS - len(pod_targets)]
        slices = None
        if svc_targets:
            slices = self._list(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                                f"endpointslices in {ns}", [])
        self._prove(ns, pod_targets, svc_targets, slices, by_name)
        found = [t for t, _ in pod_targets] + [t for t, _, _ in svc_targets]
        for t in found:
            self.target_ns[t] = ns
        return found, skipped

    def _list(self, path: str, what: str, notes: list[str]) -> list[dict] | None:
        try:
            return self.api.raw("GET", path).get("items") or []
        except errors.APIForbidden:
            notes.append(f"{what} are not readable (no list permission)")
        except errors.APIError as e:
            notes.append(f"{what} are not readable: {_one_line(e)}")
        return None

    def _prove(self, ns: str, pod_targets: list[tuple[Target, dict]], svc_targets: list[tuple[Target, dict, dict]],
               slices: list[dict] | None, by_name: dict[str, dict]) -> None:
        """Decide how each workload target is shown alive (see the module doc); fills ``self.proofs``."""
        need: dict[str, set[int]] = {}
        open_pods: list[tuple[Target, dict]] = []
        open_svcs: list[tuple[Target, list[dict]]] = []
        for t, pod in pod_targets:
            why = ready_proof(pod, t.port)
            if why:
                self.proofs[t] = Proof(Alive.known(why), [pod_stamp(pod, True)])
            else:
                need.setdefault(pod["metadata"]["name"], set()).add(t.port)
                open_pods.append((t, pod))
        for t, svc, port in svc_targets:
            name = svc["metadata"]["name"]
            if slices is None:
                self.proofs[t] = self._fallback(ns, t, f"Service {name}: its endpoints are not readable")
                continue
            backends = ready_endpoints(slices, name, port.get("name") or "", "TCP")
            if not backends:
                self.proofs[t] = Proof(Alive.never(f"Service {name} has no ready endpoint for port {t.port}"))
                continue
            proven = next(((b, why) for b in backends if b["pod"] in by_name
                           for why in [ready_proof(by_name[b["pod"]], b["port"])] if why), None)
            if proven:
                b, why = proven
                self.proofs[t] = Proof(Alive.known(f"ready endpoint {b['ip']}:{b['port']} of Service {name}: {why}"),
                                       [pod_stamp(by_name[b["pod"]], True)])
                continue
            for b in backends:
                if b["pod"] in by_name:
                    need.setdefault(b["pod"], set()).add(b["port"])
            open_svcs.append((t, backends))
        seen = self._listeners(ns, {name: by_name[name] for name in need}, need) if need else {}
        for t, pod in open_pods:
            name = pod["metadata"]["name"]
            ports, note = seen.get(name, (None, "not read"))
            if ports is not None and t.port in ports:
                self.proofs[t] = Proof(Alive.known(f"a listener on port {t.port} seen inside pod {name} "
                                                   f"({' '.join(LISTENER_COMMAND)})"), [pod_stamp(pod, False)])
            else:
                why = (f"pod {name}: no readiness probe on port {t.port}, and "
                       + ("no listener on it seen inside the pod" if ports is not None else note))
                self.proofs[t] = self._fallback(ns, t, why)
        for t, backends in open_svcs:
            proof = None
            for b in backends:
                ports, _ = seen.get(b["pod"] or "", (None, ""))
                if ports is not None and b["port"] in ports:
                    proof = Proof(Alive.known(f"ready endpoint {b['ip']}:{b['port']}: a listener on port {b['port']} "
                                              f"seen inside pod {b['pod']} ({' '.join(LISTENER_COMMAND)})"),
                                  [pod_stamp(by_name[b["pod"]], False)])
                    break
            self.proofs[t] = proof or self._fallback(
                ns, t, f"no ready endpoint of the Service is shown alive on its port "
                       f"({', '.join(sorted({str(b['pod'] or b['ip']) for b in backends}))})")

    def _fallback(self, ns: str, t: Target, why: str) -> Proof:
        """No proof before the sample: the target may still answer the probe pod of its own namespace."""
        if self.placements.get(ns) and self.placements[ns].pod and self.placements[ns].ip:
            return Proof(Alive.by((ns, t), text=f"{why}; control: the probe pod of {ns} reaching it"), control=True)
        return Proof(Alive.never(f"{why}; no probe pod in {ns} to try it from"))

    def _listeners(self, ns: str, pods: dict[str, dict], ports: dict[str, set[int]]
                   ) -> dict[str, tuple[set[int] | None, str]]:
        """Listening TCP ports seen from inside each pod (exec ``cat /proc/net/tcp /proc/net/tcp6``: reads, changes
        nothing); (None, why) where they cannot be read."""
        names = sorted(pods)[:MAX_LISTENER_EXECS]
        out: dict[str, tuple[set[int] | None, str]] = {
            n: (None, f"its listeners were not read (more than {MAX_LISTENER_EXECS} pods)") for n in pods}

        def container_for(pod: dict, wanted: set[int]) -> str | None:
            cs = _containers(pod)
            for c in cs:
                if any(int(p.get("containerPort", 0)) in wanted for p in c.get("ports") or []):
                    return c.get("name")
            return cs[0].get("name") if cs else None

        def one(name: str) -> tuple[set[int] | None, str]:
            container = container_for(pods[name], ports[name])
            self.execs.setdefault(ns, []).append(
                f"exec in {ns}/{name} (container {container}): {' '.join(LISTENER_COMMAND)} (reads the pod's "
                "listening sockets; changes nothing)")
            try:
                got = self.engine.executor.run(ns, name, list(LISTENER_COMMAND), container=container,
                                               timeout=EXEC_TIMEOUT)
            except ExecError as e:
                return None, f"its listeners could not be read ({_one_line(e)})"
            if "local_address" not in got.stdout:
                text = (got.stderr or got.stdout or f"exit status {got.status}").strip()
                return None, f"its listeners could not be read ({_one_line(Exception(text))})"
            return listening_ports(got.stdout), ""

        with concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="kready-listen") as pool:
            for name, seen in zip(names, pool.map(one, names)):
                out[name] = seen
        return out

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
        c = self.control
        src = Source(FRESH, self.namespaces[FRESH], "probe")
        itself = Source(CANARY_DENIED, self.namespaces[CANARY], "denied")
        targets = [c["denied"], c["open"]]
        expected = TruthTable([FRESH], targets, default=True).deny(to=CANARY_DENIED)
        alive = {c["denied"]: Alive.by((CANARY_DENIED, c["local_tcp"]),
                                       text=f"{CANARY_DENIED} answers on localhost:{PROBE_PORT}/TCP")}
        result = self.engine.observe([src], targets, expected=expected, settle=CANARY_SETTLE,
                                     deadline=CANARY_SETTLE + 30, namespaces=self.namespaces,
                                     controls=[(CANARY_DENIED, c["local_tcp"])], control_sources=[itself],
                                     alive=alive)
        denied = result.observed.get(FRESH, c["denied"])
        opened = result.observed.get(FRESH, c["open"])
        if opened is not True:
            return Enforcement(None, "the positive control failed: a pod without any policy "
                               f"({self.namespaces[CANARY]}/open) is not reachable from another namespace "
                               f"({result.detail(FRESH, c['open'])}); the pod network itself does "
                               "not work, so nothing can be concluded", result)
        if denied is None:
            return Enforcement(None, "the canary probe could not be decided "
                               f"({result.detail(FRESH, c['denied'])})", result)
        if denied:
            return Enforcement(False, "the CNI does not enforce NetworkPolicy: a canary policy denying all ingress "
                               f"to {self.namespaces[CANARY]}/denied did not block traffic to it "
                               f"within {CANARY_SETTLE:g}s", result)
        return Enforcement(True, "a canary deny policy blocked traffic to a pod shown alive in the same rounds, and "
                           "the pod it does not select stayed reachable", result)

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
        targets: list[Target] = [c["open"], c["open_udp"], c["fresh_tcp"], c["fresh_udp"], c["dns"]]
        allow: list[tuple[str, Target]] = [(FRESH, c["open"]), (FRESH, c["open_udp"]), (FRESH, c["dns"])]
        deny: list[tuple[str, Target]] = []
        udp_path = [(FRESH, c["open_udp"])]
        udp_text = "a UDP path across namespaces works in the same round (fresh → canary/open)"
        controls: list[tuple[str, Target]] = [(FRESH, c["local_tcp"]), (FRESH, c["local_udp"])]
        alive: dict[Target, Alive] = {
            c["fresh_tcp"]: Alive.by((FRESH, c["local_tcp"]),
                                     text=f"the fresh probe pod answers on localhost:{PROBE_PORT}/TCP"),
            c["fresh_udp"]: Alive.by((FRESH, c["local_udp"]),
                                     text=f"the fresh probe pod answers on localhost:{PROBE_PORT}/UDP"
                                     ).also_any(udp_path, udp_text),
            c["dns"]: Alive.by((FRESH, c["dns"]), text="the name resolves from the fresh namespace"),
        }
        if self.outside is not None:
            targets.append(self.outside)
            allow.append((FRESH, self.outside))
            alive[self.outside] = Alive.by((FRESH, self.outside),
                                           text="the outside listener answers the fresh namespace")
        for ns in self.targets:
            placed = bool(self.placements[ns].pod)
            for t in self.probe_targets(ns):
                local = c["local_tcp"] if t.protocol == "TCP" else c["local_udp"]
                controls.append((ns, local))
                spec = Alive.by((ns, local), text=f"the probe pod in {ns} answers on localhost:{PROBE_PORT}/"
                                                  f"{t.protocol}")
                alive[t] = spec.also_any(udp_path, udp_text) if t.protocol == "UDP" else spec
            for t in self.real_targets.get(ns, []):
                proof = self.proofs.get(t) or Proof(Alive.never("no proof of life was looked for"))
                alive[t] = proof.alive
                if proof.control and placed:
                    controls.append((ns, t))
            inside = self.probe_targets(ns) + self.real_targets.get(ns, [])
            targets += inside
            deny += [(FRESH, t) for t in inside]
            if placed:
                deny += [(ns, c["fresh_tcp"]), (ns, c["fresh_udp"])]
                allow.append((ns, c["dns"]))
                if self.outside is not None:
                    deny.append((ns, self.outside))
        targets = list(dict.fromkeys(targets))
        expected = TruthTable([s.key for s in sources], targets, cells=allow + deny)
        for cell in allow:
            expected.values[cell] = True
        for cell in deny:
            expected.values[cell] = False
        result = self.engine.observe(sources, targets, expected=expected, settle=MATRIX_SETTLE,
                                     deadline=MATRIX_DEADLINE, namespaces=self.namespaces, controls=controls,
                                     alive=alive, settle_since=self.placed_at)
        self._verify(result)
        return result

    def _verify(self, result: Result) -> None:
        """The proofs of life that rest on a pod's state (Ready, a listener) must hold after the sample too: the same
        pod, not restarted, still Ready. Otherwise the cells they made "blocked" become unknown."""
        by_ns: dict[str, list[Target]] = {}
        for t, proof in self.proofs.items():
            if proof.pods and t in self.target_ns:
                by_ns.setdefault(self.target_ns[t], []).append(t)
        for ns, ts in by_ns.items():
            notes: list[str] = []
            listing = self._list(f"/api/v1/namespaces/{ns}/pods", f"pods in {ns}", notes)
            pods = {p["metadata"]["name"]: p for p in listing or []}
            for t in ts:
                for stamp in self.proofs[t].pods:
                    why = notes[0] if listing is None else still_alive(stamp, pods.get(stamp[0]))
                    if why:
                        result.revoke(t, f"its proof of life did not hold after the sample: {why}")
                        break

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

    def writes_for(self, ns: str | None = None) -> list[str]:
        """What the network checks wrote: in the run's own namespaces, and in ``ns`` (every namespace: None)."""
        return [what for where, what in self.writes if where is None or ns is None or where == ns]

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


def start_audit(cluster: Any) -> NetworkAudit:
    """The network checks' early start (``kready_early``): the audit with its pods placed and Ready, the canary
    observed and, when it showed enforcement, the matrix sampled — what the checks read, done while other checks
    run (nothing they do touches these pods or the target namespaces' policies). Whatever failed here is done
    and said again by the checks themselves (``setup`` raises the same ``AuditError``; a canary or matrix that
    raised is not kept)."""
    audit = NetworkAudit(cluster)
    try:
        audit.setup()
        if audit.enforcement().enforced:
            audit.matrix()
    except Exception:  # noqa: BLE001 - see above: the checks do it again and report it
        pass
    return audit


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


# --- the checks: each returns CheckResults (suites/test_network.py records them) ------------------------------------


def sampling_text(result: Result) -> str:
    return (f"{result.rounds} round(s) in {result.seconds:.1f}s, {len(result.counted)} counted after the settle "
            f"window ({'complete' if result.stable else 'NOT complete'}); a cell connects if any counted round "
            f"connected, and is blocked only if its probe failed in at least {result.min_rounds} counted rounds "
            "with its target shown alive in the same round")


def evidence(audit: NetworkAudit, result: Result, ns: str, cells: list[tuple[str, Target]]) -> dict:
    """The grid of ``cells`` (expected vs observed), each cell's rounds (connected, refused, timeout, ...) and how
    its target was shown alive, the policies in ``ns``, a kubectl line per wrong pair, what the checks wrote."""
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    sub = result.sub(rows, cols)
    sub.observed.only = frozenset(cells)
    if sub.expected is not None:
        sub.expected.only = frozenset(cells)
    out = {
        "grid": sub.grid(grouped=False),
        "cells": [result.cell_evidence(*cell) for cell in cells],
        "policies": audit.policies(ns),
        "kubectl": sub.kubectl_lines(),
        "sampling": sampling_text(result),
        "namespaces": {FRESH: audit.namespaces.get(FRESH), CANARY: audit.namespaces.get(CANARY)},
        "writes": audit.writes_for(ns),
    }
    if audit.execs.get(ns):
        out["execs"] = list(audit.execs[ns])
    placement = audit.placements.get(ns)
    if placement is not None:
        out["probe_pod"] = f"{ns}/{placement.pod}" if placement.pod else placement.error
    return out


def _list(cells: list[tuple[str, Target]], n: int = 4) -> str:
    shown = ", ".join(str(c) for _, c in cells[:n])
    return shown + (f" and {len(cells) - n} more" if len(cells) > n else "")


def _why(result: Result, cells: list[tuple[str, Target]], n: int = 3) -> str:
    """Why each of ``cells`` is unknown (the first ``n``)."""
    parts = []
    for cell in cells[:n]:
        decision = result.decisions.get(cell)
        parts.append(f"{cell[1]}: {decision.why if decision and decision.why else result.detail(*cell) or 'no answer'}")
    return "; ".join(parts) + (f"; and {len(cells) - n} more" if len(cells) > n else "")


def _gate(audit: NetworkAudit, *, writes_ns: str | None = None) -> tuple[Result | None, list[CheckResult]]:
    """The matrix, once the canary showed enforcement; else (None, [the inconclusive result saying why])."""
    e = audit.enforcement()
    ev: dict = {"writes": audit.writes_for(writes_ns)}
    if e.result is not None:
        ev["canary"] = e.result.grid(grouped=False)
    if e.enforced is False:
        return None, [CheckResult(Verdict.INCONCLUSIVE, f"{NOT_ENFORCED} ({e.reason})", evidence=ev)]
    if e.enforced is None:
        return None, [CheckResult(Verdict.INCONCLUSIVE, f"NetworkPolicy enforcement could not be established: "
                                  f"{e.reason}", evidence=ev)]
    try:
        return audit.matrix(), []
    except AuditError as err:
        return None, [CheckResult(Verdict.INCONCLUSIVE, str(err), evidence=ev)]


def _control(audit: NetworkAudit, result: Result, cell: tuple[str, Target], what: str) -> list[CheckResult]:
    """[] when the control cell connected; else the inconclusive result (a blocked probe would prove nothing)."""
    if result.observed.get(*cell) is True:
        return []
    return [CheckResult(Verdict.INCONCLUSIVE, f"the positive control failed: {what} "
                        f"({result.detail(*cell) or 'no answer'}), so a blocked probe would prove nothing",
                        evidence={"grid": result.sub([cell[0]], [cell[1]]).grid(grouped=False),
                                  "cells": [result.cell_evidence(*cell)], "sampling": sampling_text(result),
                                  "writes": audit.writes_for()})]


def _open_control(audit: NetworkAudit) -> tuple[Result | None, list[CheckResult]]:
    result, early = _gate(audit)
    if result is None:
        return None, early
    bad = _control(audit, result, (FRESH, audit.control["open"]),
                   "a pod without policies is not reachable from the fresh namespace")
    return (None, bad) if bad else (result, [])


def _not_placed(audit: NetworkAudit, ns: str) -> CheckResult | None:
    placement = audit.placements[ns]
    if placement.pod:
        return None
    return CheckResult(Verdict.INCONCLUSIVE, placement.error or f"no probe pod in {ns}", target_namespace=ns,
                       evidence={"writes": audit.writes_for(ns)})


def enforcement(audit: NetworkAudit) -> CheckResult:
    """``network.enforcement``: a deny policy in a throw-away namespace blocks traffic to a pod shown alive in the
    same rounds, while the pod it does not select stays reachable."""
    e = audit.enforcement()
    ev: dict = {"writes": audit.writes_for()}
    if e.result is not None:
        r = e.result
        ev.update({"canary": r.grid(grouped=False), "cells": [r.cell_evidence(*cell) for cell in r.observed.cells()],
                   "kubectl": r.kubectl_lines(list(r.observed.cells())), "sampling": sampling_text(r),
                   "policy": {"name": "kready-canary-deny", "namespace": audit.namespaces.get(CANARY),
                              "spec": {"podSelector": {"matchLabels": {POD_LABEL: "denied"}},
                                       "policyTypes": ["Ingress"]}}})
    if e.enforced is True:
        return CheckResult(Verdict.PASS, e.reason, evidence=ev)
    if e.enforced is False:
        return CheckResult(
            Verdict.FAIL, e.reason, severity="critical", evidence=ev, repro=(ev.get("kubectl") or [None])[0],
            remediation="Run a CNI that enforces NetworkPolicy (e.g. Calico, Cilium, kube-network-policies; "
                        "kind from v0.24; the AWS VPC CNI with its network policy agent enabled) and re-run: "
                        "until then every NetworkPolicy in the cluster is decoration.",
            references=(DOCS,))
    return CheckResult(Verdict.INCONCLUSIVE, e.reason, evidence=ev)


def cross_namespace(audit: NetworkAudit) -> list[CheckResult]:
    """``network.cross-namespace``: from a fresh namespace, no port of a target namespace is reachable."""
    result, early = _open_control(audit)
    if result is None:
        return early
    out = []
    for ns in audit.targets:
        cols = audit.probe_targets(ns) + audit.real_targets.get(ns, [])
        why_few = [audit.placements[ns].error] if audit.placements[ns].error else []
        why_few += audit.skipped.get(ns, [])
        if not cols:
            out.append(CheckResult(Verdict.INCONCLUSIVE, f"nothing to probe in {ns}: "
                                   + "; ".join(why_few or ["no ports"]), target_namespace=ns,
                                   evidence={"writes": audit.writes_for(ns)}))
            continue
        cells = [(FRESH, c) for c in cols]
        ev = evidence(audit, result, ns, cells)
        if why_few:
            ev["not_probed"] = why_few
        reachable = [cell for cell in cells if result.observed.get(*cell) is True]
        unknown = [cell for cell in cells if result.observed.get(*cell) is None]
        if reachable:
            out.append(CheckResult(
                Verdict.FAIL, f"{len(reachable)} of {len(cells)} port(s) in {ns} are reachable from a fresh "
                f"namespace: {_list(reachable)}", target_namespace=ns, severity="high", evidence=ev,
                repro=ev["kubectl"][0] if ev["kubectl"] else None, remediation=FIX_DEFAULT_DENY,
                references=(DEFAULT_POLICIES,)))
        elif unknown:
            out.append(CheckResult(Verdict.INCONCLUSIVE, f"{len(unknown)} of {len(cells)} port(s) in {ns} cannot be "
                                   f"judged blocked: {_why(result, unknown)}", target_namespace=ns, evidence=ev))
        else:
            out.append(CheckResult(Verdict.PASS, f"none of {len(cells)} port(s) in {ns} is reachable from a fresh "
                                   "namespace, each shown alive while it was probed", target_namespace=ns,
                                   evidence=ev))
    return out


def default_deny(audit: NetworkAudit) -> list[CheckResult]:
    """``network.default-deny``: a new pod in each target namespace can neither be reached from another namespace
    nor reach one."""
    result, early = _open_control(audit)
    if result is None:
        return early
    out = []
    for ns in audit.targets:
        missing = _not_placed(audit, ns)
        if missing:
            out.append(missing)
            continue
        ingress = [(FRESH, c) for c in audit.probe_targets(ns)]
        egress = [(ns, audit.control["fresh_tcp"]), (ns, audit.control["fresh_udp"])]
        ev = evidence(audit, result, ns, ingress + egress)
        open_in = [c for c in ingress if result.observed.get(*c) is True]
        open_out = [c for c in egress if result.observed.get(*c) is True]
        unknown = [c for c in ingress + egress if result.observed.get(*c) is None]
        if open_in or open_out:
            ways = []
            if open_in:
                ways.append(f"ingress (a pod in another namespace reaches a new pod here: {_list(open_in)})")
            if open_out:
                ways.append(f"egress (a new pod here reaches a pod in another namespace: {_list(open_out)})")
            out.append(CheckResult(Verdict.FAIL, f"{ns} has no effective default deny for " + " nor for ".join(ways),
                                   target_namespace=ns, severity="high", evidence=ev,
                                   repro=ev["kubectl"][0] if ev["kubectl"] else None, remediation=FIX_DEFAULT_DENY,
                                   references=(DEFAULT_POLICIES,)))
        elif unknown:
            out.append(CheckResult(Verdict.INCONCLUSIVE, f"{len(unknown)} probe(s) of {ns} cannot be judged: "
                                   f"{_why(result, unknown)}", target_namespace=ns, evidence=ev))
        else:
            out.append(CheckResult(Verdict.PASS, f"{ns} denies by default: a new pod there is unreachable from "
                                   "another namespace and cannot reach one", target_namespace=ns, evidence=ev))
    return out


def dns(audit: NetworkAudit) -> list[CheckResult]:
    """``network.dns``: names still resolve from inside each target namespace under its policies."""
    result, early = _gate(audit)
    if result is None:
        return early
    name = audit.control["dns"]
    bad = _control(audit, result, (FRESH, name), f"{name.host} does not resolve even from a namespace without "
                                                 "policies")
    if bad:
        return bad
    out = []
    for ns in audit.targets:
        missing = _not_placed(audit, ns)
        if missing:
            out.append(missing)
            continue
        cell = (ns, name)
        ev = evidence(audit, result, ns, [cell])
        value = result.observed.get(*cell)
        if value is True:
            out.append(CheckResult(Verdict.PASS, f"{name.host} resolves from a new pod in {ns}", target_namespace=ns,
                                   evidence=ev))
        elif value is False:
            out.append(CheckResult(
                Verdict.FAIL, f"DNS does not resolve from a new pod in {ns} ({result.detail(*cell)}): its workloads "
                "cannot find any Service", target_namespace=ns, severity="medium", evidence=ev,
                repro=result.kubectl(*cell),
                remediation="Allow egress to the cluster DNS (pods k8s-app=kube-dns in kube-system) on UDP and TCP "
                            f"53 next to the default deny, as allow-dns in {HARDENED_POLICIES}.",
                references=(DEFAULT_POLICIES,)))
        else:
            out.append(CheckResult(Verdict.INCONCLUSIVE, f"the DNS probe in {ns} could not be judged "
                                   f"({_why(result, [cell])})", target_namespace=ns, evidence=ev))
    return out


def egress(audit: NetworkAudit) -> list[CheckResult]:
    """``network.egress``: a new pod in each target namespace cannot reach an address outside the pod network."""
    result, early = _gate(audit)
    if result is None:
        return early
    outside = audit.outside
    if outside is None:
        return [CheckResult(Verdict.INCONCLUSIVE, f"no outside target could be set up ({audit.outside_note})",
                            evidence={"writes": audit.writes_for()})]
    bad = _control(audit, result, (FRESH, outside), f"the outside target {outside.host}:{outside.port} is not "
                                                    "reachable even from a namespace without policies")
    if bad:
        return bad
    out = []
    for ns in audit.targets:
        missing = _not_placed(audit, ns)
        if missing:
            out.append(missing)
            continue
        cell = (ns, outside)
        ev = evidence(audit, result, ns, [cell])
        ev["outside"] = f"{outside.host}:{outside.port}" + (f" ({audit.outside_note})" if audit.outside_note
                                                           else " (hostNetwork listener)")
        value = result.observed.get(*cell)
        if value is False:
            out.append(CheckResult(Verdict.PASS, f"a new pod in {ns} cannot reach {outside.host}:{outside.port} "
                                   "outside the pod network", target_namespace=ns, evidence=ev))
        elif value is True:
            out.append(CheckResult(
                Verdict.FAIL, f"a new pod in {ns} reaches {outside.host}:{outside.port} outside the pod network: "
                "egress is not restricted", target_namespace=ns, severity="high", evidence=ev,
                repro=result.kubectl(*cell),
                remediation="Deny egress by default (a policy with policyTypes: [Egress] selecting every pod) and "
                            "allow only what the workloads need: DNS, named in-cluster peers, and ipBlock ranges for "
                            "external services.", references=(DEFAULT_POLICIES,)))
        else:
            out.append(CheckResult(Verdict.INCONCLUSIVE, f"the egress probe from {ns} could not be judged "
                                   f"({_why(result, [cell])})", target_namespace=ns, evidence=ev))
    return out
