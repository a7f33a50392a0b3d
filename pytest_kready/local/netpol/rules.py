"""Kubernetes NetworkPolicy (networking.k8s.io/v1) → iptables rules, as a pure function.

Input: pods, namespaces and NetworkPolicies as plain dicts in Kubernetes JSON shape (what the API returns),
and a few facts about the node (:class:`NodeFacts`). Output: a :class:`Ruleset` (owned chains and their rules),
rendered by :func:`render_restore` into ``iptables-restore --noflush`` text that touches nothing but the chains
named ``KREADY-NP*`` and one jump each at position 1 of FORWARD and INPUT. :func:`render_teardown` removes all
of it again. ``docs/netpol-enforcer.md`` describes the layout; in short::

    FORWARD ─1→ KREADY-NP-FORWARD          INPUT ─1→ KREADY-NP-INPUT ─(-s pod CIDR)→ KREADY-NP-NODE
      ESTABLISHED,RELATED → RETURN           ESTABLISHED,RELATED → RETURN
      clear mark; → KREADY-NP-EGRESS         clear mark; → KREADY-NP-EGRESS; clear mark
      clear mark; → KREADY-NP-INGRESS
      clear mark
    KREADY-NP-EGRESS   -s <pod IP> → KREADY-NP-POD-E-<pod>   (only pods isolated for egress)
    KREADY-NP-INGRESS  -d <pod IP> → KREADY-NP-POD-I-<pod>   (only pods isolated for ingress)
    KREADY-NP-POD-*    one jump per rule of each policy selecting the pod; a matching rule sets the ALLOW
                       mark bit; last: mark bit not set → KREADY-NP-REJECT (tcp-reset / icmp-port-unreachable)
    KREADY-NP-PEER-*   the peers of one rule (pod IPs, ipBlocks) → set the mark bit     (content-addressed)
    KREADY-NP-EGR-*    one egress rule: ports × peers, named ports resolved per destination pod
    KREADY-NP-BLK-*    one ipBlock with ``except``: except → RETURN, else set the mark bit

Allowed traffic is never ACCEPTed here: our chains only RETURN (the rest of the filter table decides, e.g.
kube-proxy) or REJECT. Only IPv4 is enforced (the ``iptables`` family); IPv6 CIDRs and pod IPs are ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...selectors import SelectorError, selector_matches  # noqa: F401 - SelectorError is part of this module's API

PREFIX = "KREADY-NP"
CHAIN_FORWARD = f"{PREFIX}-FORWARD"
CHAIN_INPUT = f"{PREFIX}-INPUT"
CHAIN_NODE = f"{PREFIX}-NODE"
CHAIN_EGRESS = f"{PREFIX}-EGRESS"
CHAIN_INGRESS = f"{PREFIX}-INGRESS"
CHAIN_REJECT = f"{PREFIX}-REJECT"
#: built-in chain → our chain jumped to from its position 1
HOOKS: tuple[tuple[str, str], ...] = (("FORWARD", CHAIN_FORWARD), ("INPUT", CHAIN_INPUT))
BUILTIN_CHAINS = ("INPUT", "FORWARD", "OUTPUT")
MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN - 1

#: the skb mark bit meaning "some rule allows this packet" (kube-proxy uses 0x4000 and 0x8000)
DEFAULT_MARK = 0x100000
PROTOCOLS = ("TCP", "UDP", "SCTP")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
TERMINAL_PHASES = ("Succeeded", "Failed")


# --- node facts -------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NodeFacts:
    """What the rules need to know about the node: the pod CIDR(s) (traffic from them to the node itself is
    subject to egress policy) and the mark bit to use."""

    pod_cidrs: tuple[str, ...]
    mark: int = DEFAULT_MARK

    def __init__(self, pod_cidr: str | Sequence[str], mark: int = DEFAULT_MARK):
        cidrs = (pod_cidr,) if isinstance(pod_cidr, str) else tuple(pod_cidr)
        nets = [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]
        v4 = tuple(str(n) for n in nets if n.version == 4)
        if not v4:
            raise ValueError(f"no IPv4 pod CIDR among {list(cidrs)!r}")
        if mark <= 0 or mark & (mark - 1):
            raise ValueError(f"mark must be a single bit, not {mark:#x}")
        object.__setattr__(self, "pod_cidrs", v4)
        object.__setattr__(self, "mark", mark)

    @property
    def mark_text(self) -> str:
        return f"{self.mark:#x}/{self.mark:#x}"


# --- selectors, pods, namespaces ---------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(obj: Mapping[str, Any]) -> str:
    m = _meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def pod_ipv4s(pod: Mapping[str, Any]) -> list[str]:
    """The pod's IPv4 addresses (``status.podIPs``, falling back to ``status.podIP``)."""
    status = pod.get("status") or {}
    raw = [e.get("ip") for e in status.get("podIPs") or [] if isinstance(e, Mapping)] or [status.get("podIP")]
    out = []
    for ip in raw:
        try:
            addr = ipaddress.ip_address(ip or "")
        except ValueError:
            continue
        if addr.version == 4 and str(addr) not in out:
            out.append(str(addr))
    return out


def is_endpoint(pod: Mapping[str, Any]) -> bool:
    """Pods NetworkPolicy is about: not hostNetwork, not Succeeded/Failed, with an (IPv4) address."""
    if (pod.get("spec") or {}).get("hostNetwork"):
        return False
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return False
    return bool(pod_ipv4s(pod))


def namespace_labels(namespaces: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """namespace name → labels, with ``kubernetes.io/metadata.name`` set as the API server sets it."""
    out: dict[str, dict[str, str]] = {}
    for ns in namespaces:
        name = _meta(ns).get("name")
        if name:
            out[name] = {**(_meta(ns).get("labels") or {}), NAMESPACE_NAME_LABEL: name}
    return out


@dataclasses.dataclass(frozen=True)
class Endpoint:
    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    pod: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        """The number of the container port called ``name`` with ``protocol`` (containers and restartable init
        containers, i.e. sidecars), or ``None``."""
        spec = self.pod.get("spec") or {}
        containers = list(spec.get("containers") or [])
        containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        for container in containers:
            for port in container.get("ports") or []:
                if port.get("name") == name and (port.get("protocol") or "TCP") == protocol:
                    try:
                        return int(port["containerPort"])
                    except (KeyError, TypeError, ValueError):
                        return None
        return None


def endpoints(pods: Iterable[Mapping[str, Any]], warnings: list[str] | None = None) -> list[Endpoint]:
    """The endpoint pods, one per IP, sorted by namespace/name. Should two live pods claim one IP (a stale
    object), the one created last wins, and a pod being deleted loses to one that is not."""
    by_ip: dict[str, tuple[tuple, Mapping[str, Any]]] = {}
    for pod in pods:
        if not is_endpoint(pod):
            continue
        meta = _meta(pod)
        rank = (meta.get("deletionTimestamp") is None, meta.get("creationTimestamp") or "", _key(pod))
        for ip in pod_ipv4s(pod):
            if ip in by_ip and warnings is not None:
                warnings.append(f"IP {ip} claimed by both {_key(by_ip[ip][1])} and {_key(pod)}")
            if ip not in by_ip or rank > by_ip[ip][0]:
                by_ip[ip] = (rank, pod)
    out = [
        Endpoint(_meta(pod).get("namespace", ""), _meta(pod).get("name", ""), ip, dict(_meta(pod).get("labels") or {}), pod)
        for ip, (_, pod) in by_ip.items()
    ]
    out.sort(key=lambda e: (e.namespace, e.name, _ip_sort_key(e.ip)))
    return out


# --- policies ---------------------------------------------------------------------------------------------------


def policy_types(policy: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.policyTypes``, or the API server's default when it is empty: Ingress, plus Egress when the policy
    has egress rules."""
    spec = policy.get("spec") or {}
    types = tuple(spec.get("policyTypes") or ())
    if not types:
        types = ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)
    return types


@dataclasses.dataclass(frozen=True)
class PortSpec:
    """One ``NetworkPolicyPort``: all ports of ``protocol`` (``low is None and name is None``), a numeric range
    ``low..high``, or a named port resolved against the destination pod."""

    protocol: str
    low: int | None = None
    high: int | None = None
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class IPBlock:
    cidr: ipaddress.IPv4Network
    excepts: tuple[ipaddress.IPv4Network, ...]

    def contains(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return addr in self.cidr and not any(addr in e for e in self.excepts)


@dataclasses.dataclass(frozen=True)
class Peer:
    """One ``NetworkPolicyPeer``: selectors (``None`` = field absent) or an ipBlock."""

    pod_selector: Mapping[str, Any] | None
    namespace_selector: Mapping[str, Any] | None
    ip_block: IPBlock | None
    valid: bool = True  # False: an IPv6 ipBlock or nothing set — matches no IPv4 traffic


@dataclasses.dataclass(frozen=True)
class Rule:
    peers: tuple[Peer, ...] | None  # None: from/to empty or absent = every source/destination
    ports: tuple[PortSpec, ...] | None  # None: ports empty or absent = every port and protocol


@dataclasses.dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pod_selector: Mapping[str, Any]
    ingress: tuple[Rule, ...] | None  # None: not an Ingress policy
    egress: tuple[Rule, ...] | None  # None: not an Egress policy

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _parse_port(raw: Mapping[str, Any], warnings: list[str], where: str) -> PortSpec | None:
    protocol = raw.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        warnings.append(f"{where}: protocol {protocol!r} ignored")
        return None
    port, end = raw.get("port"), raw.get("endPort")
    if port is None:
        return PortSpec(protocol)
    if isinstance(port, str) and not port.isdigit():
        return PortSpec(protocol, name=port)  # endPort is not allowed with a named port
    low = int(port)
    high = int(end) if end is not None else low
    if not (1 <= low <= 65535 and low <= high <= 65535):
        warnings.append(f"{where}: port {port!r} endPort {end!r} invalid, entry ignored")
        return None
    return PortSpec(protocol, low, high)


def _parse_peer(raw: Mapping[str, Any], warnings: list[str], where: str) -> Peer:
    block = raw.get("ipBlock")
    if block is not None:
        try:
            cidr = ipaddress.ip_network(block.get("cidr", ""), strict=False)
            excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
        except ValueError as exc:
            warnings.append(f"{where}: ipBlock {block!r} invalid ({exc}); matches nothing")
            return Peer(None, None, None, valid=False)
        if cidr.version != 4:
            return Peer(None, None, None, valid=False)  # IPv6: nothing to match in the IPv4 filter table
        v4_excepts = tuple(sorted({e for e in excepts if e.version == 4 and e.overlaps(cidr)}))
        return Peer(None, None, IPBlock(cidr, v4_excepts))
    pod_sel, ns_sel = raw.get("podSelector"), raw.get("namespaceSelector")
    if pod_sel is None and ns_sel is None:
        warnings.append(f"{where}: peer without podSelector, namespaceSelector or ipBlock; matches nothing")
        return Peer(None, None, None, valid=False)
    return Peer(pod_sel, ns_sel, None)


def _parse_rules(raw_rules: Sequence[Mapping[str, Any]], peer_field: str, warnings: list[str], where: str) -> tuple[Rule, ...]:
    rules = []
    for i, raw in enumerate(raw_rules or []):
        raw = raw or {}
        w = f"{where}[{i}]"
        raw_peers = raw.get(peer_field) or []
        peers = tuple(_parse_peer(p or {}, warnings, w) for p in raw_peers) if raw_peers else None
        raw_ports = raw.get("ports") or []
        ports = None
        if raw_ports:
            # An entry we cannot enforce (bad protocol) matches nothing; the rest of the list still counts.
            ports = tuple(p for p in (_parse_port(rp or {}, warnings, w) for rp in raw_ports) if p is not None)
        rules.append(Rule(peers, ports))
    return tuple(rules)


def parse_policy(obj: Mapping[str, Any], warnings: list[str] | None = None) -> Policy:
    warnings = warnings if warnings is not None else []
    meta, spec = _meta(obj), obj.get("spec") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    types = policy_types(obj)
    where = f"networkpolicy {ns}/{name}"
    return Policy(
        namespace=ns,
        name=name,
        pod_selector=spec.get("podSelector") or {},  # required, non-pointer in Go: absent = {} = every pod
        ingress=_parse_rules(spec.get("ingress"), "from", warnings, f"{where} ingress") if "Ingress" in types else None,
        egress=_parse_rules(spec.get("egress"), "to", warnings, f"{where} egress") if "Egress" in types else None,
    )


class Cluster:
    """The parsed inputs, with the selector look-ups the rules need."""

    def __init__(self, pods: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]],
                 policies: Iterable[Mapping[str, Any]], warnings: list[str] | None = None):
        self.warnings = warnings if warnings is not None else []
        self.pods = list(pods)
        self.endpoints = endpoints(self.pods, self.warnings)
        self.by_ip = {e.ip: e for e in self.endpoints}
        self.ns_labels = namespace_labels(namespaces)
        self.policies = sorted((parse_policy(p, self.warnings) for p in policies), key=lambda p: (p.namespace, p.name))
        self._peer_cache: dict[tuple[str, int], list[Endpoint]] = {}
        self._peer_ip_cache: dict[tuple[str, int], frozenset[str]] = {}

    def labels_of_namespace(self, name: str) -> dict[str, str]:
        # A namespace not (yet) seen still has the label the API server always sets.
        return self.ns_labels.get(name) or {NAMESPACE_NAME_LABEL: name}

    def _matches(self, selector: Mapping[str, Any] | None, labels: Mapping[str, str], what: str) -> bool:
        try:
            return selector_matches(selector, labels)
        except SelectorError as exc:
            self.warnings.append(f"{what}: {exc}; selects nothing")
            return False

    def selected_by(self, policy: Policy, ep: Endpoint) -> bool:
        return ep.namespace == policy.namespace and self._matches(policy.pod_selector, ep.labels, f"networkpolicy {policy.key} podSelector")

    def peer_endpoints(self, policy: Policy, peer: Peer) -> list[Endpoint]:
        """The endpoint pods a selector peer of ``policy`` selects."""
        if not peer.valid or peer.ip_block is not None:
            return []
        cache_key = (policy.key, id(peer))
        if cache_key not in self._peer_cache:
            self._peer_cache[cache_key] = self._select_peer(policy, peer)
        return self._peer_cache[cache_key]

    def peer_ips(self, policy: Policy, peer: Peer) -> frozenset[str]:
        key = (policy.key, id(peer))
        if key not in self._peer_ip_cache:
            self._peer_ip_cache[key] = frozenset(e.ip for e in self.peer_endpoints(policy, peer))
        return self._peer_ip_cache[key]

    def _select_peer(self, policy: Policy, peer: Peer) -> list[Endpoint]:
        what = f"networkpolicy {policy.key} peer"
        out = []
        for ep in self.endpoints:
            if peer.namespace_selector is None:
                if ep.namespace != policy.namespace:
                    continue
            elif not self._matches(peer.namespace_selector, self.labels_of_namespace(ep.namespace), what):
                continue
            if peer.pod_selector is not None and not self._matches(peer.pod_selector, ep.labels, what):
                continue
            out.append(ep)
        return out


# --- rule text ----------------------------------------------------------------------------------------------------

_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:/=,()\[\]+*-]")


def comment(text: str) -> str:
    """``-m comment`` argument, restricted to characters that need no escaping (255 bytes at most)."""
    return f'-m comment --comment "{_COMMENT_UNSAFE.sub("_", text)[:255]}"'


def _ports_match(port: PortSpec | None, number: int | None = None) -> str:
    """``-p``/``--dport`` for a port spec (``None`` = any protocol); ``number`` replaces a named port."""
    if port is None:
        return ""
    proto = port.protocol.lower()
    low, high = (number, number) if number is not None else (port.low, port.high)
    if low is None:
        return f"-p {proto}"
    return f"-p {proto} -m {proto} --dport {low}" if low == high else f"-p {proto} -m {proto} --dport {low}:{high}"


def _port_text(port: PortSpec) -> str:
    if port.name is not None:
        return f"{port.protocol}/{port.name}"
    if port.low is None:
        return f"{port.protocol}/*"
    return f"{port.protocol}/{port.low}" + (f"-{port.high}" if port.high != port.low else "")


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


@dataclasses.dataclass
class Ruleset:
    """The owned chains (name → rule specs, i.e. the text after ``-A NAME``), in the order they are written."""

    chains: dict[str, list[str]]
    node: NodeFacts
    pods: int = 0
    endpoints: int = 0
    namespaces: int = 0
    policies: int = 0
    isolated_ingress: int = 0
    isolated_egress: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values())

    def body(self) -> str:
        """The rules as text, independent of what is installed now (to tell whether anything changed)."""
        return "\n".join(f"-A {name} {rule}" for name, rules in self.chains.items() for rule in rules)

    def summary(self) -> str:
        return (f"{self.pods} pods ({self.endpoints} endpoints, {self.isolated_ingress} isolated for ingress, "
                f"{self.isolated_egress} for egress), {self.namespaces} namespaces, {self.policies} policies → "
                f"{self.rule_count} rules in {len(self.chains)} chains")


class _Builder:
    def __init__(self, node: NodeFacts):
        self.node = node
        self.chains: dict[str, list[str]] = {}
        self.mark = f"-j MARK --set-xmark {node.mark_text}"
        self.clear = f"-j MARK --set-xmark 0x0/{node.mark:#x}"
        self._peer_rules: dict[tuple[str, str, int], list[str]] = {}

    def add(self, name: str, rules: list[str]) -> str:
        assert len(name) <= MAX_CHAIN_NAME, name
        if name in self.chains:
            if self.chains[name] != rules:
                raise RuntimeError(f"chain name collision: {name}")  # 48-bit hashes: not in practice
            return name
        self.chains[name] = rules
        return name

    def content_chain(self, kind: str, rules: list[str]) -> str:
        digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[: MAX_CHAIN_NAME - len(PREFIX) - len(kind) - 2]
        return self.add(f"{PREFIX}-{kind}-{digest}", rules)

    def ip_block_rules(self, block: IPBlock, flag: str) -> list[str]:
        """Rules (for a peer chain) that set the mark bit when the ``flag`` (-s/-d) address is in ``block``."""
        if not block.excepts:
            return [_join(f"{flag} {block.cidr}", comment(f"ipBlock {block.cidr}"), self.mark)]
        inner = [_join(f"{flag} {e}", comment(f"except {e}"), "-j RETURN") for e in block.excepts]
        inner.append(_join(comment(f"ipBlock {block.cidr}"), self.mark))
        chain = self.content_chain("BLK", inner)
        return [_join(f"{flag} {block.cidr}", comment(f"ipBlock {block.cidr} with except"), f"-j {chain}")]

    def peer_rules(self, cluster: Cluster, policy: Policy, rule: Rule, flag: str) -> list[str]:
        """Rules that set the mark bit when the peer address (``-s`` for ingress, ``-d`` for egress) is one the
        rule's ``from``/``to`` list allows. Called only when the list is not empty."""
        assert rule.peers is not None
        key = (policy.key, flag, id(rule))
        if key in self._peer_rules:
            return self._peer_rules[key]
        ips: dict[str, Endpoint] = {}
        blocks: list[IPBlock] = []
        for peer in rule.peers:
            if peer.ip_block is not None:
                if peer.ip_block not in blocks:
                    blocks.append(peer.ip_block)
            else:
                for ep in cluster.peer_endpoints(policy, peer):
                    ips[ep.ip] = ep
        out = [_join(f"{flag} {ip}/32", comment(f"pod {ep.key}"), self.mark)
               for ip, ep in sorted(ips.items(), key=lambda kv: _ip_sort_key(kv[0]))]
        for block in blocks:
            out += self.ip_block_rules(block, flag)
        self._peer_rules[key] = out
        return out


def _ip_sort_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ip.split("."))


def _pod_chain_name(direction: str, ep: Endpoint) -> str:
    kind = f"POD-{direction}"
    digest = hashlib.sha256(f"{ep.key}\n{ep.ip}".encode()).hexdigest()[: MAX_CHAIN_NAME - len(PREFIX) - len(kind) - 2]
    return f"{PREFIX}-{kind}-{digest}"


def build_ruleset(pods: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]],
                  policies: Iterable[Mapping[str, Any]], node: NodeFacts) -> Ruleset:
    """The complete set of owned chains for this cluster state. Deterministic: equal input, equal output."""
    warnings: list[str] = []
    namespaces = list(namespaces)
    cluster = Cluster(pods, namespaces, policies, warnings)
    b = _Builder(node)

    # Fixed chains first (filled below), so the file reads top-down.
    forward = b.add(CHAIN_FORWARD, [])
    inp = b.add(CHAIN_INPUT, [])
    node_chain = b.add(CHAIN_NODE, [])
    egress = b.add(CHAIN_EGRESS, [])
    ingress = b.add(CHAIN_INGRESS, [])
    reject = b.add(CHAIN_REJECT, [
        _join("-p tcp", comment("denied by NetworkPolicy"), "-j REJECT --reject-with tcp-reset"),
        _join(comment("denied by NetworkPolicy"), "-j REJECT --reject-with icmp-port-unreachable"),
    ])
    established = _join("-m conntrack --ctstate RELATED,ESTABLISHED", comment("replies of allowed connections"), "-j RETURN")
    clear = _join(comment("clear the allow bit"), b.clear)
    to_egress = _join(comment("egress policy of the source pod"), f"-j {egress}")
    b.chains[forward] += [
        established, clear, to_egress,
        clear, _join(comment("ingress policy of the destination pod"), f"-j {ingress}"),
        clear,
    ]
    b.chains[inp] += [_join(f"-s {cidr}", comment("pods to this node"), f"-j {node_chain}") for cidr in node.pod_cidrs]
    b.chains[node_chain] += [established, clear, to_egress, clear]
    in_pod_cidr = [ipaddress.ip_network(c) for c in node.pod_cidrs]
    for ep in cluster.endpoints:
        if not any(ipaddress.ip_address(ep.ip) in n for n in in_pod_cidr):
            warnings.append(f"pod {ep.key} IP {ep.ip} is outside the pod CIDR(s); its egress to the node is not enforced")

    selecting = {ep.ip: [p for p in cluster.policies if cluster.selected_by(p, ep)] for ep in cluster.endpoints}
    isolated_in = isolated_out = 0

    # Egress rules do not depend on the source pod: one chain per distinct rule, shared by every pod it covers.
    egress_rule_cache: dict[tuple[str, int], str | None] = {}

    def egress_rule_chain(policy: Policy, index: int, rule: Rule) -> str | None:
        """Chain setting the mark bit when (destination, protocol, port) is allowed by this rule; ``None`` when
        the rule allows nothing (e.g. its named ports resolve nowhere); ``""`` when it allows everything."""
        key = (policy.key, index)
        if key in egress_rule_cache:
            return egress_rule_cache[key]
        if rule.peers is None and rule.ports is None:
            egress_rule_cache[key] = ""
            return ""
        peer_chain = None
        if rule.peers is not None:
            peer_rules = b.peer_rules(cluster, policy, rule, "-d")
            peer_chain = b.content_chain("PEER", peer_rules) if peer_rules else None
        rules: list[str] = []
        for port in rule.ports if rule.ports is not None else (None,):
            if port is not None and port.name is not None:
                # A named port means the port of that name on the destination pod: resolve it per pod among the
                # pods the peers allow (every endpoint when `to` is empty; pods inside an ipBlock count too).
                for ep in cluster.endpoints:
                    if rule.peers is not None and not _peer_allows_endpoint(cluster, policy, rule, ep):
                        continue
                    number = ep.named_port(port.name, port.protocol)
                    if number is not None:
                        rules.append(_join(f"-d {ep.ip}/32", _ports_match(port, number),
                                           comment(f"{_port_text(port)} of pod {ep.key}"), b.mark))
                continue
            if rule.peers is None:
                rules.append(_join(_ports_match(port), comment(f"to anywhere {_port_text(port)}" if port else "to anywhere"), b.mark))
            elif peer_chain is not None:
                rules.append(_join(_ports_match(port), comment(_port_text(port) if port else "all ports"), f"-j {peer_chain}"))
        chain = b.content_chain("EGR", rules) if rules else None
        egress_rule_cache[key] = chain
        return chain

    for ep in cluster.endpoints:
        pols = selecting[ep.ip]

        # ---- ingress: traffic to ep
        in_pols = [p for p in pols if p.ingress is not None]
        if in_pols:
            isolated_in += 1
            rules: list[str] = []
            for policy in in_pols:
                assert policy.ingress is not None
                for index, rule in enumerate(policy.ingress):
                    why = f"{policy.key} ingress[{index}]"
                    if rule.peers is None:
                        target = b.mark
                    else:
                        peer_rules = b.peer_rules(cluster, policy, rule, "-s")
                        if not peer_rules:
                            continue  # the peers select nothing right now
                        target = f"-j {b.content_chain('PEER', peer_rules)}"
                    for port in rule.ports if rule.ports is not None else (None,):
                        if port is not None and port.name is not None:
                            number = ep.named_port(port.name, port.protocol)
                            if number is None:
                                continue  # this pod has no such port: the entry matches nothing here
                            rules.append(_join(_ports_match(port, number), comment(f"{why} {_port_text(port)}"), target))
                        else:
                            rules.append(_join(_ports_match(port), comment(f"{why} {_port_text(port) if port else 'all ports'}"), target))
            names = ",".join(p.key for p in in_pols)
            rules.append(_join(f"-m mark ! --mark {node.mark_text}", comment(f"ingress to {ep.key} not allowed by {names}"), f"-j {reject}"))
            chain = b.add(_pod_chain_name("I", ep), rules)
            b.chains[ingress].append(_join(f"-d {ep.ip}/32", comment(f"pod {ep.key}"), f"-j {chain}"))

        # ---- egress: traffic from ep
        out_pols = [p for p in pols if p.egress is not None]
        if out_pols:
            isolated_out += 1
            rules = []
            for policy in out_pols:
                assert policy.egress is not None
                for index, rule in enumerate(policy.egress):
                    why = f"{policy.key} egress[{index}]"
                    target = egress_rule_chain(policy, index, rule)
                    if target is None:
                        continue
                    rules.append(_join(comment(why), f"-j {target}" if target else b.mark))
            names = ",".join(p.key for p in out_pols)
            rules.append(_join(f"-m mark ! --mark {node.mark_text}", comment(f"egress from {ep.key} not allowed by {names}"), f"-j {reject}"))
            chain = b.add(_pod_chain_name("E", ep), rules)
            b.chains[egress].append(_join(f"-s {ep.ip}/32", comment(f"pod {ep.key}"), f"-j {chain}"))

    return Ruleset(
        chains=b.chains, node=node, pods=len(cluster.pods), endpoints=len(cluster.endpoints),
        namespaces=len(namespaces), policies=len(cluster.policies), isolated_ingress=isolated_in,
        isolated_egress=isolated_out, warnings=list(dict.fromkeys(warnings)),
    )


def _peer_allows_endpoint(cluster: Cluster, policy: Policy, rule: Rule, ep: Endpoint) -> bool:
    assert rule.peers is not None
    for peer in rule.peers:
        if peer.ip_block is not None:
            if peer.ip_block.contains(ep.ip):
                return True
        elif ep.ip in cluster.peer_ips(policy, peer):
            return True
    return False


# --- what is installed now ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class FilterState:
    """The filter table as ``iptables-save -t filter`` printed it: chain → rule specs (text after ``-A CHAIN``)."""

    chains: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def owned_chains(self) -> list[str]:
        return [c for c in self.chains if c.startswith(PREFIX)]

    def jumps_into_owned(self) -> list[tuple[str, int, str]]:
        """(chain, 1-based position, spec) of every rule outside our chains that jumps or goes to one of ours."""
        out = []
        for chain, rules in self.chains.items():
            if chain.startswith(PREFIX):
                continue
            for pos, spec in enumerate(rules, 1):
                target = rule_target(spec)
                if target and target.startswith(PREFIX):
                    out.append((chain, pos, spec))
        return out


def rule_target(spec: str) -> str | None:
    try:
        words = shlex.split(spec)
    except ValueError:
        words = spec.split()
    for flag in ("-j", "--jump", "-g", "--goto"):
        if flag in words:
            i = words.index(flag)
            if i + 1 < len(words):
                return words[i + 1]
    return None


def parse_iptables_save(text: str) -> FilterState:
    """Parse the ``*filter`` table of ``iptables-save`` output."""
    state = FilterState()
    in_filter = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            in_filter = line == "*filter"
            continue
        if not in_filter:
            continue
        if line == "COMMIT":
            in_filter = False
        elif line.startswith(":"):
            state.chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, chain, *rest = line.split(" ", 2)
            state.chains.setdefault(chain, []).append(rest[0] if rest else "")
    return state


# --- restore text ------------------------------------------------------------------------------------------------

JUMP_COMMENT = "kready NetworkPolicy enforcer"


def jump_spec(target: str) -> str:
    return _join(comment(JUMP_COMMENT), f"-j {target}")


def hooks_in_place(state: FilterState) -> bool:
    """Exactly one jump into our chains in each of FORWARD and INPUT, at position 1, to the right chain; none
    anywhere else."""
    jumps = state.jumps_into_owned()
    want = {(builtin, 1, target) for builtin, target in HOOKS}
    have = {(chain, pos, rule_target(spec)) for chain, pos, spec in jumps}
    return len(jumps) == len(HOOKS) and have == want


def in_place(ruleset: Ruleset, state: FilterState) -> bool:
    """Whether ``state`` holds ``ruleset`` as far as a cheap check can tell: the hooks, the same owned chains, and
    the same number of rules in each (a changed ruleset is re-applied anyway; this catches outside meddling)."""
    if not hooks_in_place(state):
        return False
    if set(state.owned_chains) != set(ruleset.chains):
        return False
    return all(len(state.chains[name]) == len(rules) for name, rules in ruleset.chains.items())


def render_restore(ruleset: Ruleset, state: FilterState | None = None) -> str:
    """``iptables-restore --noflush`` input installing ``ruleset`` in one transaction. ``state`` is what is
    installed now (``parse_iptables_save``; ``None`` = nothing of ours): chains of ours no longer wanted are
    deleted, and the hooks are (re)placed at position 1 unless they are there exactly once already."""
    state = state or FilterState()
    stale = [c for c in state.owned_chains if c not in ruleset.chains]
    lines = ["*filter"]
    # Declaring a chain in --noflush mode creates it or flushes it.
    lines += [f":{name} - [0:0]" for name in list(ruleset.chains) + stale]
    if not hooks_in_place(state):
        lines += [f"-D {chain} {spec}" for chain, _, spec in state.jumps_into_owned()]
        lines += [f"-I {builtin} 1 {jump_spec(target)}" for builtin, target in HOOKS]
    lines += [f"-A {name} {rule}" for name, rules in ruleset.chains.items() for rule in rules]
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_teardown(state: FilterState) -> str:
    """``iptables-restore --noflush`` input removing every jump into our chains and the chains themselves
    (empty string when there is nothing of ours)."""
    owned = state.owned_chains
    jumps = state.jumps_into_owned()
    if not owned and not jumps:
        return ""
    lines = ["*filter"]
    lines += [f":{name} - [0:0]" for name in owned]
    lines += [f"-D {chain} {spec}" for chain, _, spec in jumps]
    lines += [f"-X {name}" for name in owned]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def generate_restore(pods: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]],
                     policies: Iterable[Mapping[str, Any]], node: NodeFacts, state: FilterState | None = None) -> str:
    """The whole pure function: cluster state (+ what is installed now) → ``iptables-restore --noflush`` text."""
    return render_restore(build_ruleset(pods, namespaces, policies, node), state)
