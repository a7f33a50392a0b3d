"""The model of a reachability matrix: namespaces × pods × ports (× protocols × paths), in the shape of the
upstream netpol e2e ``Model``, and the manifests that make it real.

Names in a model are *logical* (``x``, ``a``); the engine maps them to real namespaces (``kr-x-<run>-1``) and
labels everything it creates with them, so policies can select the model's objects:

* namespaces carry ``kready.dev/ns: <logical name>`` (and, as every namespace, ``kubernetes.io/metadata.name``);
* pods carry ``kready.dev/pod: <logical name>`` plus the model's own labels for them.

Every model pod is a server: one ``agnhost porter`` process answering TCP and UDP on each of the model's ports.
Sources are either every model pod (``sources="pods"``, upstream's shape: pod × pod) or one client pod per
namespace (``sources="namespace"``, a pod named ``probe`` that serves nothing). Cells are
(source, target pod, port, protocol, path) where path is ``pod`` (the pod IP) or ``service`` (the ClusterIP of a
Service in front of that one pod); an optional ``dns`` target per source checks that names resolve.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

NS_LABEL = "kready.dev/ns"
POD_LABEL = "kready.dev/pod"
ROLE_LABEL = "kready.dev/role"
PROTOCOLS = ("TCP", "UDP")
PATHS = ("pod", "service")
SOURCES = ("pods", "namespace")
PROBE_POD = "probe"  # the client pod of a namespace in sources="namespace" mode
DNS_TARGET = "dns"
LOCALHOST = "localhost"
DNS_NAME = "kubernetes.default"  # resolved through the pod's search path, whatever the cluster domain
DEFAULT_PORTS = (8080, 8081)  # non-privileged: the pods run as non-root (Pod Security "restricted")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} {name!r}: use a DNS label (lower case letters, digits, '-')")
    return name


@dataclasses.dataclass(frozen=True)
class PodModel:
    """One server pod: its logical name and extra labels (policies select on them)."""

    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_name("pod", self.name)
        if self.name == PROBE_POD:
            raise ValueError(f"pod name {PROBE_POD!r} is reserved for the namespace's probe pod")
        object.__setattr__(self, "labels", dict(self.labels))


@dataclasses.dataclass(frozen=True)
class NamespaceModel:
    name: str
    pods: tuple[PodModel, ...] = ()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        _check_name("namespace", self.name)
        pods = tuple(p if isinstance(p, PodModel) else PodModel(p) for p in self.pods)
        names = [p.name for p in pods]
        if len(set(names)) != len(names):
            raise ValueError(f"namespace {self.name}: pod names repeat ({', '.join(names)})")
        object.__setattr__(self, "pods", pods)
        object.__setattr__(self, "labels", dict(self.labels))


@dataclasses.dataclass(frozen=True)
class Target:
    """A column of the truth table: where a probe goes.

    ``to`` is the logical name shown in grids (``x/a`` for a model pod, ``dns``, or any label for an address);
    ``path`` is ``pod``, ``service``, ``address`` (a fixed ``host``) or ``dns`` (resolve ``host``; the value is
    "resolves", not "connects"). ``host`` is filled in when the engine resolves the model (pod/Service IPs)."""

    to: str
    port: int
    protocol: str = "TCP"
    path: str = "pod"
    host: str | None = dataclasses.field(default=None, compare=False)

    @property
    def group(self) -> str:
        """Grids are drawn one per group: ``TCP/8080 via pod IP``."""
        if self.path == "dns":
            return "DNS"
        via = {"pod": "pod IP", "service": "Service", "address": "address"}.get(self.path, self.path)
        return f"{self.protocol}/{self.port} via {via}"

    @property
    def short(self) -> str:
        """The column label when columns of several groups share one grid."""
        return self.to if self.path == "dns" else f"{self.to}:{self.port}/{self.protocol}"

    @property
    def pod_key(self) -> str | None:
        return self.to if self.path in ("pod", "service") else None

    def __str__(self) -> str:
        if self.path == "dns":
            return f"dns {self.host or DNS_NAME}"
        where = {"service": " (Service)", "address": f" ({self.host})"}.get(self.path, "")
        return f"{self.to}:{self.port}/{self.protocol}{where}"

    @classmethod
    def address(cls, label: str, host: str, port: int, protocol: str = "TCP") -> Target:
        """A fixed address, e.g. a listener outside the pod network."""
        return cls(to=label, port=int(port), protocol=protocol.upper(), path="address", host=host)

    @classmethod
    def local(cls, port: int, protocol: str = "TCP") -> Target:
        """``localhost`` inside the probing pod: probed from a pod, it shows that pod's own listener (traffic over
        localhost never leaves the pod, so no policy applies to it)."""
        return cls(to=LOCALHOST, port=int(port), protocol=protocol.upper(), path="address", host="127.0.0.1")

    @classmethod
    def dns(cls, name: str = DNS_NAME, label: str = DNS_TARGET) -> Target:
        return cls(to=label, port=443, protocol="TCP", path="dns", host=name)


@dataclasses.dataclass(frozen=True)
class Model:
    """Namespaces × pods × ports, probed for ``protocols`` over ``paths``; ``dns`` adds a DNS column."""

    namespaces: tuple[NamespaceModel, ...]
    ports: tuple[int, ...] = DEFAULT_PORTS
    protocols: tuple[str, ...] = ("TCP",)
    paths: tuple[str, ...] = ("pod",)
    sources: str = "pods"
    dns: bool = False

    def __post_init__(self):
        nss = tuple(n if isinstance(n, NamespaceModel) else NamespaceModel(n) for n in self.namespaces)
        if not nss:
            raise ValueError("a model needs at least one namespace")
        names = [n.name for n in nss]
        if len(set(names)) != len(names):
            raise ValueError(f"namespace names repeat ({', '.join(names)})")
        ports = tuple(int(p) for p in self.ports)
        if not ports or any(not 0 < p < 65536 for p in ports) or len(set(ports)) != len(ports):
            raise ValueError(f"ports {self.ports!r}: give distinct ports 1-65535")
        protocols = tuple(p.upper() for p in self.protocols)
        if not protocols or any(p not in PROTOCOLS for p in protocols):
            raise ValueError(f"protocols {self.protocols!r}: choose among {', '.join(PROTOCOLS)}")
        paths = tuple(self.paths)
        if not paths or any(p not in PATHS for p in paths):
            raise ValueError(f"paths {self.paths!r}: choose among {', '.join(PATHS)}")
        if self.sources not in SOURCES:
            raise ValueError(f"sources {self.sources!r}: choose one of {', '.join(SOURCES)}")
        if self.sources == "pods" and not any(n.pods for n in nss):
            raise ValueError("sources='pods' needs at least one pod")
        object.__setattr__(self, "namespaces", nss)
        object.__setattr__(self, "ports", ports)
        object.__setattr__(self, "protocols", protocols)
        object.__setattr__(self, "paths", paths)

    @classmethod
    def grid(cls, namespaces: Iterable[str] = ("x", "y", "z"), pods: Iterable[str] = ("a", "b", "c"), *,
             ports: Iterable[int] = DEFAULT_PORTS, protocols: Iterable[str] = ("TCP",),
             paths: Iterable[str] = ("pod",), sources: str = "pods", dns: bool = False,
             pod_labels: Mapping[str, Mapping[str, str]] | None = None,
             namespace_labels: Mapping[str, Mapping[str, str]] | None = None) -> Model:
        """The upstream shape: every namespace holds the same pods. ``pod_labels`` maps ``"x/a"`` or ``"a"`` to
        extra labels; ``namespace_labels`` maps a namespace to extra labels."""
        pod_labels = pod_labels or {}
        namespace_labels = namespace_labels or {}
        pods = tuple(pods)
        nss = tuple(
            NamespaceModel(ns, tuple(PodModel(p, {**pod_labels.get(p, {}), **pod_labels.get(f"{ns}/{p}", {})})
                                     for p in pods), namespace_labels.get(ns, {}))
            for ns in namespaces)
        return cls(nss, tuple(ports), tuple(protocols), tuple(paths), sources, dns)

    # --- the matrix -------------------------------------------------------------------------------
    def namespace(self, name: str) -> NamespaceModel:
        for n in self.namespaces:
            if n.name == name:
                return n
        raise KeyError(f"namespace {name!r} is not in the model ({', '.join(self.namespace_names)})")

    @property
    def namespace_names(self) -> list[str]:
        return [n.name for n in self.namespaces]

    def pod_keys(self) -> list[str]:
        """``ns/pod`` of every server pod."""
        return [f"{n.name}/{p.name}" for n in self.namespaces for p in n.pods]

    def source_keys(self) -> list[str]:
        """Rows of the truth table: every pod (``x/a``), or each namespace's probe (``x``)."""
        if self.sources == "pods":
            return self.pod_keys()
        return [n.name for n in self.namespaces]

    def targets(self) -> list[Target]:
        """Columns of the truth table, in a stable order (grouped as the grids are drawn)."""
        out = [Target(to=key, port=port, protocol=proto, path=path)
               for path in self.paths for proto in self.protocols for port in self.ports for key in self.pod_keys()]
        if self.dns:
            out.append(Target.dns())
        return out


# --- selectors over cells (used by expectations) -----------------------------------------------------


def split_key(key: str) -> tuple[str, str]:
    """``x/a`` → (x, a); ``x`` (a namespace probe) → (x, "")."""
    ns, _, pod = key.partition("/")
    return ns, pod


def key_matches(key: str, pattern: str | Iterable[str] | None) -> bool:
    """``pattern``: ``None`` or ``*`` (all), ``x`` (every pod of namespace x), ``x/a``, shell globs (``x/*``,
    ``*/a``), or a list of those (any)."""
    if pattern is None:
        return True
    if not isinstance(pattern, str):
        return any(key_matches(key, p) for p in pattern)
    if pattern == "*":
        return True
    kns, kpod = split_key(key)
    pns, slash, ppod = pattern.partition("/")
    if not slash:
        return fnmatchcase(kns, pns)
    return fnmatchcase(kns, pns) and (fnmatchcase(kpod, ppod) or (kpod == "" and ppod == "*"))


# --- manifests -------------------------------------------------------------------------------------------


def needs_root(ports: Iterable[int]) -> bool:
    return any(p < 1024 for p in ports)


def security_context(ports: Iterable[int]) -> tuple[dict, dict]:
    """(pod, container) security contexts: Pod Security ``restricted`` when every port is ≥ 1024; otherwise root
    with only NET_BIND_SERVICE (``baseline``), as a non-root process cannot bind a port below 1024."""
    container = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                 "capabilities": {"drop": ["ALL"]}}
    pod: dict = {"seccompProfile": {"type": "RuntimeDefault"}}
    if needs_root(ports):
        pod["runAsUser"] = 0
        container["capabilities"] = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    else:
        pod.update({"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534})
    return pod, container


RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


def pod_manifest(name: str, *, image: str, ports: Iterable[int] = (), labels: Mapping[str, str] | None = None,
                 serve: bool = True, host_network: bool = False, active_deadline: int | None = 3600) -> dict:
    """A probe/server pod: ``agnhost porter`` answering TCP and UDP on ``ports`` (``serve=False``: a client that
    only pauses). It can run in a Pod Security "restricted" namespace and carries explicit resources, so quotas
    and LimitRanges admit it; ``active_deadline`` bounds its life should a run be killed before cleanup."""
    ports = tuple(int(p) for p in ports)
    pod_sc, container_sc = security_context(ports)
    container: dict = {
        "name": "agnhost", "image": image, "imagePullPolicy": "IfNotPresent",
        "securityContext": container_sc, "resources": RESOURCES,
    }
    if serve and ports:
        container["args"] = ["porter"]
        container["env"] = [{"name": f"SERVE_{kind}PORT_{p}", "value": name} for p in ports for kind in ("", "UDP_")]
        container["ports"] = [{"containerPort": p, "protocol": proto, "name": f"{proto.lower()}-{p}"[:15]}
                              for p in ports for proto in ("TCP", "UDP")]
        container["readinessProbe"] = {"tcpSocket": {"port": ports[0]}, "periodSeconds": 1,
                                       "failureThreshold": 2}
    else:
        container["args"] = ["pause"]
    spec: dict = {
        "terminationGracePeriodSeconds": 0 if not serve else 1,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_sc,
        "containers": [container],
    }
    if active_deadline:
        spec["activeDeadlineSeconds"] = int(active_deadline)
    if host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": spec}


def service_manifest(name: str, *, selector: Mapping[str, str], ports: Iterable[int],
                     labels: Mapping[str, str] | None = None) -> dict:
    """A ClusterIP Service in front of one pod, TCP and UDP on each port."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {"type": "ClusterIP", "selector": dict(selector),
                     "ports": [{"name": f"{proto.lower()}-{p}", "port": p, "targetPort": p, "protocol": proto}
                               for p in ports for proto in ("TCP", "UDP")]}}
