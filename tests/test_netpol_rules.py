"""Unit tests of the NetworkPolicy → iptables rules function (pytest_kready.local.netpol.rules).

Three layers:

* ``Oracle``: a reference evaluator written straight from the networking.k8s.io/v1 API documentation, sharing no
  code with the generator. It answers "is this (src, dst, protocol, port) connection allowed?".
* ``Walker``: a tiny iptables interpreter for the subset of matches and targets the generator emits (it fails on
  anything else), walking the generated ``iptables-restore`` text for one packet.
* Explicit scenarios (after the upstream netpol e2e suite, on its x/y/z × a/b/c model) asserting hand-written
  expectations through the walker AND the oracle, plus a randomised differential test oracle == walker over many
  generated clusters. Real enforcement on the kernel is proven in test_netpol_kernel.py.
"""

from __future__ import annotations

import ipaddress
import random
import shlex

import pytest

from pytest_kready.local.netpol import rules as R

POD_CIDR = "10.251.0.0/16"
NODE_IP = "172.30.0.2"
EXTERNAL = "192.0.2.10"
NODE = R.NodeFacts(POD_CIDR)


# --- reference semantics (independent of the generator) ---------------------------------------------------------


def _sel(selector, labels) -> bool:
    if selector is None:
        return False
    ok = all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In":
            ok = ok and k in labels and labels[k] in vals
        elif op == "NotIn":
            ok = ok and not (k in labels and labels[k] in vals)
        elif op == "Exists":
            ok = ok and k in labels
        elif op == "DoesNotExist":
            ok = ok and k not in labels
        else:
            raise AssertionError(op)
    return ok


class Oracle:
    """NetworkPolicy semantics, spelled out (see the field docs of NetworkPolicySpec / Peer / Port)."""

    def __init__(self, pods, namespaces, policies):
        self.by_ip = {}
        for pod in pods:
            st = pod.get("status") or {}
            if (pod.get("spec") or {}).get("hostNetwork") or st.get("phase") in ("Succeeded", "Failed"):
                continue
            if st.get("podIP"):
                self.by_ip[st["podIP"]] = pod
        self.ns_labels = {n["metadata"]["name"]: {**n["metadata"].get("labels", {}),
                                                  "kubernetes.io/metadata.name": n["metadata"]["name"]} for n in namespaces}
        self.policies = policies

    def allowed(self, src_ip, dst_ip, proto, port) -> bool:
        src, dst = self.by_ip.get(src_ip), self.by_ip.get(dst_ip)
        if src is not None and not self._direction(src, "Egress", dst_ip, dst, dst, proto, port):
            return False
        if dst is not None and not self._direction(dst, "Ingress", src_ip, src, dst, proto, port):
            return False
        return True

    def _direction(self, pod, direction, peer_ip, peer_pod, dest_pod, proto, port) -> bool:
        isolated = False
        for pol in self.policies:
            spec = pol.get("spec") or {}
            if pol["metadata"]["namespace"] != pod["metadata"]["namespace"]:
                continue
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
            if direction not in types or not _sel(spec.get("podSelector") or {}, pod["metadata"].get("labels") or {}):
                continue
            isolated = True
            for rule in spec.get(direction.lower()) or []:
                if not self._ports(rule.get("ports"), dest_pod, proto, port):
                    continue
                peers = rule.get("from" if direction == "Ingress" else "to")
                if not peers or any(self._peer(pol, p, peer_ip, peer_pod) for p in peers):
                    return True
        return not isolated

    @staticmethod
    def _ports(ports, dest_pod, proto, port) -> bool:
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != proto:
                continue
            if p.get("port") is None:
                return True
            if isinstance(p["port"], int):
                if port is not None and p["port"] <= port <= p.get("endPort", p["port"]):
                    return True
            elif dest_pod is not None:
                spec = dest_pod.get("spec") or {}
                cs = list(spec.get("containers") or []) + [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
                if any(cp.get("name") == p["port"] and cp.get("protocol", "TCP") == proto and cp["containerPort"] == port
                       for c in cs for cp in c.get("ports") or []):
                    return True
        return False

    def _peer(self, pol, peer, ip, peer_pod) -> bool:
        if "ipBlock" in peer:
            net = ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False)
            if net.version != 4:
                return False
            a = ipaddress.ip_address(ip)
            return a in net and not any(a in ipaddress.ip_network(e, strict=False) for e in peer["ipBlock"].get("except") or []
                                        if ipaddress.ip_network(e, strict=False).version == 4)
        if peer_pod is None:
            return False
        ns = peer_pod["metadata"]["namespace"]
        ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
        ns_ok = ns == pol["metadata"]["namespace"] if ns_sel is None else _sel(ns_sel, self.ns_labels.get(ns, {"kubernetes.io/metadata.name": ns}))
        return ns_ok and (pod_sel is None or _sel(pod_sel, peer_pod["metadata"].get("labels") or {}))


# --- a tiny iptables interpreter ---------------------------------------------------------------------------------


def _compile(words: list[str]):
    """(predicate, target, target args) for one rule spec; raises on anything the generator should not emit."""
    preds, target, targs, i, neg = [], None, {}, 0, False
    while i < len(words):
        w = words[i]
        if w == "!":
            neg = True
            i += 1
            continue
        if w in ("-s", "-d"):
            net = ipaddress.ip_network(words[i + 1])
            key = "src" if w == "-s" else "dst"
            preds.append(lambda p, net=net, key=key: ipaddress.ip_address(p[key]) in net)
            i += 2
        elif w == "-p":
            proto = words[i + 1]
            preds.append(lambda p, proto=proto: p["proto"].lower() == proto)
            i += 2
        elif w == "-m":
            assert words[i + 1] in ("tcp", "udp", "sctp", "comment", "conntrack", "mark"), words[i + 1]
            i += 2
        elif w == "--comment":
            i += 2
        elif w == "--dport":
            lo, _, hi = words[i + 1].partition(":")
            lo, hi = int(lo), int(hi or lo)
            preds.append(lambda p, lo=lo, hi=hi: p["port"] is not None and lo <= p["port"] <= hi)
            i += 2
        elif w == "--ctstate":
            states = set(words[i + 1].split(","))
            preds.append(lambda p, states=states: p["ctstate"] in states)
            i += 2
        elif w == "--mark":
            v, m = (int(x, 16) for x in words[i + 1].split("/"))
            preds.append(lambda p, v=v, m=m, neg=neg: ((p["mark"] & m) == v) != neg)
            neg = False
            i += 2
        elif w == "-j":
            target = words[i + 1]
            i += 2
            while i < len(words):
                assert words[i] in ("--set-xmark", "--reject-with"), words[i:]
                targs[words[i]] = words[i + 1]
                i += 2
        else:
            raise AssertionError(f"walker does not know {w!r} in {words}")
        assert not neg or w == "!", words
    return preds, target, targs


class Walker:
    def __init__(self, text: str):
        self.chains: dict[str, list] = {"INPUT": [], "FORWARD": [], "OUTPUT": []}
        self.raw: dict[str, list[str]] = {}
        lines = text.splitlines()
        assert lines[0] == "*filter" and lines[-1] == "COMMIT", text[:200]
        for line in lines[1:-1]:
            if line.startswith(":"):
                self.chains.setdefault(line[1:].split()[0], [])
                continue
            words = shlex.split(line)
            op, chain = words[0], words[1]
            if op == "-A":
                self.chains[chain].append(_compile(words[2:]))
            elif op == "-I":
                self.chains[chain].insert(int(words[2]) - 1, _compile(words[3:]))
            elif op in ("-D", "-X"):
                pass
            else:
                raise AssertionError(line)

    def verdict(self, src, dst, proto, port, *, ctstate="NEW") -> str:
        hook = "INPUT" if dst == NODE_IP else "FORWARD"
        pkt = {"src": src, "dst": dst, "proto": proto, "port": port, "ctstate": ctstate, "mark": 0}
        return self._run(hook, pkt, 0) or "PASS"

    def _run(self, chain, pkt, depth):
        assert depth < 10
        for preds, target, targs in self.chains[chain]:
            if not all(pr(pkt) for pr in preds):
                continue
            if target is None:
                continue
            if target == "RETURN":
                return None
            if target == "MARK":
                v, m = (int(x, 16) for x in targs["--set-xmark"].split("/"))
                pkt["mark"] = (pkt["mark"] & ~m) ^ v
                continue
            if target == "REJECT":
                want = "tcp-reset" if pkt["proto"] == "TCP" else "icmp-port-unreachable"
                assert targs["--reject-with"] == want, (targs, pkt)
                return "REJECT"
            assert target in self.chains, f"jump to unknown chain {target}"
            if self._run(target, pkt, depth + 1) == "REJECT":
                return "REJECT"
        return None


# --- the x/y/z × a/b/c model of the upstream netpol e2e tests -----------------------------------------------------


def pod(ns, name, ip, labels=None, ports=None, *, phase="Running", host_network=False, init_ports=None):
    p = {
        "metadata": {"namespace": ns, "name": name, "labels": labels if labels is not None else {"pod": name}},
        "spec": {"containers": [{"name": "c", "ports": ports or []}]},
        "status": {"phase": phase},
    }
    if init_ports is not None:
        # A plain init container first, declaring the same names: only the sidecar's ports count.
        plain = [{**p, "containerPort": p["containerPort"] - 1000} for p in init_ports]
        p["spec"]["initContainers"] = [{"name": "init", "ports": plain},
                                       {"name": "side", "restartPolicy": "Always", "ports": init_ports}]
    if host_network:
        p["spec"]["hostNetwork"] = True
    if ip:
        p["status"]["podIP"] = ip
        p["status"]["podIPs"] = [{"ip": ip}]
    return p


def ns(name, labels=None):
    return {"metadata": {"name": name, "labels": {"ns": name, **(labels or {})}}}


def netpol(ns_, name, spec):
    return {"metadata": {"namespace": ns_, "name": name}, "spec": spec}


SERVE_PORTS = [{"name": f"serve-{n}-{p.lower()}", "containerPort": n, "protocol": p} for n in (80, 81) for p in ("TCP", "UDP", "SCTP")]


class Model:
    def __init__(self, extra_pods=(), extra_ns=()):
        self.namespaces = [ns("x"), ns("y"), ns("z"), ns("kube-system"), *extra_ns]
        self.pods = []
        self.ips = {}
        for i, n in enumerate("xyz"):
            for j, p in enumerate("abc"):
                ip = f"10.251.{i + 1}.{j + 2}"
                self.pods.append(pod(n, p, ip, {"pod": p}, SERVE_PORTS))
                self.ips[f"{n}/{p}"] = ip
        self.pods.append(pod("kube-system", "coredns", "10.251.9.9", {"k8s-app": "kube-dns"},
                             [{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "dns-tcp", "containerPort": 53}]))
        self.ips["kube-system/coredns"] = "10.251.9.9"
        self.pods += list(extra_pods)
        self.ips["node"] = NODE_IP
        self.ips["ext"] = EXTERNAL

    def check(self, policies, expect: dict, *, default: bool | None = None):
        """Assert walker and oracle verdicts: ``expect`` maps (src, dst, proto, port) → allowed; with ``default``
        every pod pair of the model on TCP/80 not listed must have that verdict."""
        text = R.generate_restore(self.pods, self.namespaces, policies, NODE)
        walker, oracle = Walker(text), Oracle(self.pods, self.namespaces, policies)
        cases = dict(expect)
        if default is not None:
            names = [k for k in self.ips]
            for s in names:
                for d in names:
                    if s != d and not (s in ("node", "ext") and d in ("node", "ext")):
                        cases.setdefault((s, d, "TCP", 80), default)
        bad = []
        for (s, d, proto, port), want in cases.items():
            si, di = self.ips.get(s, s), self.ips.get(d, d)
            got = walker.verdict(si, di, proto, port) != "REJECT"
            ref = oracle.allowed(si, di, proto, port)
            if got != want or ref != want:
                bad.append(f"{s} -> {d} {proto}/{port}: expected {want}, rules say {got}, oracle says {ref}")
        assert not bad, "\n".join(bad) + "\n\n" + text
        return text


def T(s, d, port=80, proto="TCP"):
    return (s, d, proto, port)


# --- explicit scenarios ------------------------------------------------------------------------------------------


def test_no_policies_allows_everything():
    text = Model().check([], {}, default=True)
    assert "KREADY-NP-POD-" not in text


def test_deny_all_ingress():
    pols = [netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})]
    m = Model()
    expect = {T(s, f"x/{p}"): False for s in ("y/a", "z/b", "x/b", "ext", "kube-system/coredns") for p in "abc" if s != f"x/{p}"}
    expect |= {T("x/a", "y/a"): True, T("x/a", "node"): True, T("x/a", "ext"): True, T("y/a", "z/a"): True}
    expect |= {T("y/a", "x/a", 81, "UDP"): False, T("y/a", "x/a", None, "ICMP"): False}
    m.check(pols, expect)


def test_deny_all_ingress_default_policy_types():
    # No policyTypes, no rules: Ingress only. `ingress: []` is the same.
    for spec in ({"podSelector": {}}, {"podSelector": {}, "ingress": []}, {"podSelector": {}, "egress": []}):
        Model().check([netpol("x", "deny", spec)], {T("y/a", "x/a"): False, T("x/a", "y/a"): True, T("x/a", "node"): True})


def test_established_replies_pass_even_when_denied():
    m = Model()
    pols = [netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})]
    w = Walker(R.generate_restore(m.pods, m.namespaces, pols, NODE))
    assert w.verdict(m.ips["x/a"], m.ips["y/a"], "TCP", 80) == "REJECT"
    assert w.verdict(m.ips["x/a"], m.ips["y/a"], "TCP", 80, ctstate="ESTABLISHED") == "PASS"
    assert w.verdict(m.ips["y/a"], m.ips["x/a"], "UDP", 80, ctstate="RELATED") == "PASS"
    assert w.verdict(m.ips["x/a"], NODE_IP, "TCP", 80, ctstate="ESTABLISHED") == "PASS"


def test_allow_all_ingress_rule_overrides_deny():
    pols = [netpol("x", "deny", {"podSelector": {}}), netpol("x", "allow", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}]})]
    Model().check(pols, {T("y/a", "x/a"): True, T("ext", "x/a", 9999, "UDP"): True, T("y/a", "x/a", None, "ICMP"): True, T("y/a", "x/b"): False})


def test_allow_from_same_namespace():
    pols = [netpol("x", "same", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})]
    Model().check(pols, {T("x/b", "x/a"): True, T("x/c", "x/b", 81, "SCTP"): True, T("y/a", "x/a"): False,
                         T("ext", "x/a"): False, T("x/a", "y/a"): True})


def test_allow_from_namespace_selector_excludes_own_namespace():
    pols = [netpol("x", "from-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})]
    Model().check(pols, {T("y/a", "x/a"): True, T("y/c", "x/a"): True, T("z/a", "x/a"): False, T("x/b", "x/a"): False,
                         T("z/a", "x/b"): True})


def test_namespace_selector_by_metadata_name_label_of_unlabelled_namespace():
    extra = [{"metadata": {"name": "bare"}}]
    pods = [pod("bare", "p", "10.251.7.2")]
    pols = [netpol("x", "from-bare", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bare"}}}]}]})]
    m = Model(extra_pods=pods, extra_ns=extra)
    m.check(pols, {T("10.251.7.2", "x/a"): True, T("y/a", "x/a"): False})


def test_pod_and_namespace_selector_in_one_peer_is_and():
    pols = [netpol("x", "and", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]})]
    Model().check(pols, {T("y/b", "x/a"): True, T("y/a", "x/a"): False, T("x/b", "x/a"): False, T("z/b", "x/a"): False})


def test_pod_and_namespace_selector_in_two_peers_is_or():
    pols = [netpol("x", "or", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]})]
    Model().check(pols, {T("y/b", "x/a"): True, T("y/a", "x/a"): True, T("x/b", "x/a"): True, T("x/c", "x/a"): False,
                         T("z/b", "x/a"): False})


def test_empty_namespace_selector_means_all_namespaces_but_no_outside():
    pols = [netpol("x", "all-ns", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})]
    Model().check(pols, {T("y/a", "x/a"): True, T("z/c", "x/b"): True, T("x/a", "x/b"): True, T("ext", "x/a"): False})


def test_match_expressions():
    sel = {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["a"]}, {"key": "pod", "operator": "Exists"}]}
    pols = [netpol("x", "expr", {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]},
                                 "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y", "z"]}]},
                                                        "podSelector": sel}]}]})]
    Model().check(pols, {T("y/b", "x/a"): True, T("z/c", "x/b"): True, T("y/a", "x/a"): False, T("x/b", "x/a"): False,
                         T("y/a", "x/c"): True})


def test_allow_one_port():
    pols = [netpol("x", "port81", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 81}]}]})]
    Model().check(pols, {T("y/a", "x/a", 81): True, T("y/a", "x/a", 80): False, T("y/a", "x/a", 81, "UDP"): False,
                         T("ext", "x/a", 81): True, T("y/a", "x/a", None, "ICMP"): False})


def test_protocol_without_port_means_all_ports_of_that_protocol():
    pols = [netpol("x", "udp", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]})]
    Model().check(pols, {T("y/a", "x/a", 80, "UDP"): True, T("y/a", "x/a", 5353, "UDP"): True, T("y/a", "x/a", 80): False})


def test_sctp_port():
    pols = [netpol("x", "sctp", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 80}]}]})]
    Model().check(pols, {T("y/a", "x/a", 80, "SCTP"): True, T("y/a", "x/a", 81, "SCTP"): False, T("y/a", "x/a", 80): False})


def test_end_port_range():
    pols = [netpol("x", "range", {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 81, "protocol": "UDP"}]}]})]
    Model().check(pols, {T("y/a", "x/a", 80, "UDP"): True, T("y/a", "x/a", 81, "UDP"): True, T("y/a", "x/a", 82, "UDP"): False,
                         T("y/a", "x/a", 79, "UDP"): False, T("y/a", "x/a", 80, "TCP"): False})


def test_named_port_ingress_resolves_on_destination_pod():
    pols = [netpol("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}, {"port": "serve-80-tcp"}]}]})]
    Model().check(pols, {T("y/a", "x/a", 81, "UDP"): True, T("y/a", "x/a", 80, "TCP"): True, T("y/a", "x/a", 80, "UDP"): False,
                         T("y/a", "x/a", 81, "TCP"): False})


def test_named_port_with_wrong_protocol_matches_nothing():
    pols = [netpol("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-80-udp"}]}]})]  # protocol TCP
    Model().check(pols, {T("y/a", "x/a", 80, "UDP"): False, T("y/a", "x/a", 80, "TCP"): False})


def test_named_port_differs_per_pod():
    pods = [pod("w", "one", "10.251.8.2", {"app": "w"}, [{"name": "web", "containerPort": 8080}]),
            pod("w", "two", "10.251.8.3", {"app": "w"}, [{"name": "web", "containerPort": 9090}]),
            pod("w", "none", "10.251.8.4", {"app": "w"}),
            pod("w", "side", "10.251.8.5", {"app": "w"}, init_ports=[{"name": "web", "containerPort": 7070}])]
    pols = [netpol("w", "web", {"podSelector": {"matchLabels": {"app": "w"}}, "ingress": [{"ports": [{"port": "web"}]}]})]
    m = Model(extra_pods=pods, extra_ns=[ns("w")])
    m.check(pols, {T("x/a", "10.251.8.2", 8080): True, T("x/a", "10.251.8.2", 9090): False,
                   T("x/a", "10.251.8.3", 9090): True, T("x/a", "10.251.8.3", 8080): False,
                   T("x/a", "10.251.8.4", 8080): False, T("x/a", "10.251.8.4", 9090): False,
                   T("x/a", "10.251.8.5", 7070): True, T("x/a", "10.251.8.5", 6070): False})


def test_named_port_egress_resolves_on_destination_pod():
    pols = [netpol("x", "named-out", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                      "egress": [{"ports": [{"port": "serve-81-tcp"}]},
                                                 {"to": [{"ipBlock": {"cidr": "10.251.2.0/24"}}], "ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]})]
    Model().check(pols, {T("x/a", "y/a", 81): True, T("x/a", "z/c", 81): True, T("x/a", "y/a", 80): False,
                         T("x/a", "ext", 81): False, T("x/a", "node", 81): False,
                         T("x/a", "y/b", 80, "UDP"): True, T("x/a", "z/b", 80, "UDP"): False})


def test_named_port_egress_to_ip_block_honours_except():
    pols = [netpol("x", "named-out", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                      "egress": [{"to": [{"ipBlock": {"cidr": "10.251.0.0/16", "except": ["10.251.2.2/32"]}}],
                                                  "ports": [{"port": "serve-80-tcp"}]}]})]
    Model().check(pols, {T("x/a", "y/b", 80): True, T("x/a", "y/a", 80): False, T("x/a", "y/b", 81): False})


def test_deny_all_egress_blocks_pods_node_and_outside():
    pols = [netpol("x", "deny-out", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]})]
    Model().check(pols, {T("x/a", "y/a"): False, T("x/a", "x/b"): False, T("x/a", "node", 10250): False,
                         T("x/a", "ext", 443): False, T("x/a", "kube-system/coredns", 53, "UDP"): False,
                         T("y/a", "x/a"): True, T("node", "x/a"): True, T("ext", "x/a"): True, T("x/b", "node", 6443): True})


def test_allow_dns_egress_only():
    pols = [netpol("x", "dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})]
    Model().check(pols, {T("x/a", "kube-system/coredns", 53, "UDP"): True, T("x/b", "kube-system/coredns", 53, "TCP"): True,
                         T("x/a", "kube-system/coredns", 80): False, T("x/a", "y/a", 53, "UDP"): False,
                         T("x/a", "y/a"): False, T("x/a", "node", 53, "UDP"): False, T("y/a", "x/a"): True})


def test_ip_block_with_except_egress_and_ingress():
    pols = [netpol("x", "out", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"ipBlock": {"cidr": "10.251.0.0/16", "except": ["10.251.2.2/32", "10.251.3.0/24"]}}]}]}),
            netpol("x", "in", {"podSelector": {"matchLabels": {"pod": "b"}},
                               "ingress": [{"from": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}]}]})]
    Model().check(pols, {T("x/a", "y/b"): True, T("x/a", "y/a"): False, T("x/a", "z/a"): False, T("x/a", "ext"): False,
                         T("x/a", "x/c"): True, T("x/a", "node"): False,
                         T("192.0.2.10", "x/b"): True, T("192.0.2.200", "x/b"): False, T("y/a", "x/b"): False})


def test_ip_block_v6_matches_nothing():
    pols = [netpol("x", "v6", {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "::/0"}}]}]})]
    Model().check(pols, {T("y/a", "x/a"): False, T("ext", "x/a"): False})


def test_policy_types_egress_only_ignores_ingress_rules():
    pols = [netpol("x", "egress-only", {"podSelector": {}, "policyTypes": ["Egress"],
                                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "nobody"}}}]}],
                                        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})]
    Model().check(pols, {T("z/a", "x/a"): True, T("x/a", "y/a"): True, T("x/a", "z/a"): False, T("x/a", "x/b"): False})


def test_default_policy_types_with_egress_rules_isolate_both_ways():
    pols = [netpol("x", "both", {"podSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"to": [{"podSelector": {}}]}]})]
    Model().check(pols, {T("y/a", "x/a"): False, T("x/a", "x/b"): True, T("x/a", "y/a"): False})


def test_multiple_policies_union():
    pols = [netpol("x", "p1", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}], "ports": [{"port": 80}]}]}),
            netpol("x", "p2", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}], "ports": [{"port": 81}]}]})]
    Model().check(pols, {T("x/b", "x/a", 80): True, T("x/b", "x/a", 81): False, T("x/c", "x/a", 81): True, T("x/c", "x/a", 80): False,
                         T("x/c", "x/b", 81): True, T("x/a", "x/b", 80): False})


def test_connection_needs_egress_of_source_and_ingress_of_destination():
    pols = [netpol("x", "out", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
            netpol("y", "in", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]})]
    Model().check(pols, {T("x/a", "y/a"): True, T("x/a", "y/b"): False, T("z/a", "y/b"): True, T("x/b", "y/b"): False})


def test_empty_from_and_absent_from_are_the_same():
    for rule in ({"from": []}, {}):
        pols = [netpol("x", "p", {"podSelector": {}, "ingress": [{**rule, "ports": [{"port": 80}]}]})]
        Model().check(pols, {T("ext", "x/a", 80): True, T("y/a", "x/a", 80): True, T("y/a", "x/a", 81): False})


def test_selectors_matching_no_pods_deny():
    pols = [netpol("x", "p", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "nobody"}}}]}]})]
    Model().check(pols, {T("x/a", "x/b"): False, T("y/a", "x/b"): False})


def test_host_network_pods_and_pods_without_ip_are_not_endpoints():
    extra = [pod("x", "host", NODE_IP, {"pod": "a"}, host_network=True), pod("x", "pending", None, {"pod": "a"})]
    pols = [netpol("x", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress", "Egress"]}),
            netpol("y", "from-a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]})]
    m = Model(extra_pods=extra)
    text = m.check(pols, {T("y/a", "node"): True, T("node", "y/a"): False, T("x/a", "y/a"): False, T("z/a", "y/a"): True})
    assert NODE_IP not in text


def test_succeeded_and_failed_pods_are_ignored():
    # A finished pod kept its IP, which a new pod now has: the new pod's labels decide.
    extra = [pod("y", "old", "10.251.2.2", {"pod": "old"}, phase="Failed"), pod("y", "done", "10.251.6.6", {"pod": "a"}, phase="Succeeded")]
    pols = [netpol("x", "from-a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]}),
            netpol("y", "deny-old", {"podSelector": {"matchLabels": {"pod": "old"}}})]
    m = Model(extra_pods=extra)
    text = m.check(pols, {T("y/a", "x/a"): True, T("z/a", "y/a"): True, T("10.251.6.6", "x/a"): False})
    assert "y/old" not in text and "y/done" not in text


def test_duplicate_ip_prefers_live_newest_pod():
    a = pod("x", "old", "10.251.5.5", {"pod": "old"})
    a["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    a["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    b = pod("x", "new", "10.251.5.5", {"pod": "new"})
    b["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    eps = R.endpoints([a, b])
    assert [e.key for e in eps] == ["x/new"]


def test_traffic_to_the_node_is_egress_to_outside():
    pols = [netpol("x", "node-only", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                      "egress": [{"to": [{"ipBlock": {"cidr": f"{NODE_IP}/32"}}], "ports": [{"port": 10250}]}]})]
    Model().check(pols, {T("x/a", "node", 10250): True, T("x/a", "node", 6443): False, T("x/a", "y/a"): False,
                         T("x/b", "node", 6443): True, T("ext", "node", 22): True})


def test_self_traffic_is_not_special():
    pols = [netpol("x", "deny", {"podSelector": {"matchLabels": {"pod": "a"}}})]
    Model().check(pols, {T("x/a", "x/a"): False})


# --- structure --------------------------------------------------------------------------------------------------


def _model_ruleset(pols=None):
    m = Model()
    pols = pols if pols is not None else [
        netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        netpol("y", "web", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.251.1.0/24"]}}], "ports": [{"port": "serve-80-tcp"}]}]}),
    ]
    return m, R.build_ruleset(m.pods, m.namespaces, pols, NODE)


def test_hooks_are_inserted_once_at_position_one():
    _, rs = _model_ruleset()
    text = R.render_restore(rs)
    assert text.count("-I FORWARD 1 ") == 1 and text.count("-I INPUT 1 ") == 1
    assert "-A FORWARD" not in text and "-A INPUT" not in text and "OUTPUT" not in text
    # Installed already at position 1: nothing is inserted again.
    state = R.parse_iptables_save(_as_saved(text))
    assert R.hooks_in_place(state)
    again = R.render_restore(rs, state)
    assert "-I " not in again and "-D " not in again and "-X " not in again
    assert R.in_place(rs, state)


def _as_saved(restore_text: str, before: dict | None = None) -> str:
    """What iptables-save would print after applying restore_text on an empty table (plus ``before`` rules)."""
    chains: dict[str, list[str]] = {"INPUT": [], "FORWARD": [], "OUTPUT": []}
    for c, rules in (before or {}).items():
        chains.setdefault(c, []).extend(rules)
    for line in restore_text.splitlines():
        if line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            _, c, spec = line.split(" ", 2)
            chains[c].append(spec)
        elif line.startswith("-I "):
            _, c, pos, spec = line.split(" ", 3)
            chains[c].insert(int(pos) - 1, spec)
    out = ["*filter"] + [f":{c} {'ACCEPT' if c in ('INPUT', 'FORWARD', 'OUTPUT') else '-'} [0:0]" for c in chains]
    out += [f"-A {c} {s}" for c, rules in chains.items() for s in rules]
    return "\n".join(out + ["COMMIT"]) + "\n"


def test_hooks_moved_back_to_position_one_and_duplicates_removed():
    _, rs = _model_ruleset()
    jump = R.jump_spec(R.CHAIN_FORWARD)
    saved = _as_saved(R.render_restore(rs)).replace(
        f"-A FORWARD {jump}", f"-A FORWARD -j KUBE-FORWARD\n-A FORWARD {jump}\n-A FORWARD {jump}")
    state = R.parse_iptables_save(saved)
    assert not R.hooks_in_place(state) and not R.in_place(rs, state)
    text = R.render_restore(rs, state)
    assert text.count(f"-D FORWARD {jump}") == 2
    assert text.count(f"-D INPUT {R.jump_spec(R.CHAIN_INPUT)}") == 1
    assert text.count("-I FORWARD 1 ") == 1 and text.count("-I INPUT 1 ") == 1
    assert text.index("-D FORWARD") < text.index("-I FORWARD 1")


def test_stale_chains_are_flushed_and_deleted():
    m, rs = _model_ruleset()
    state = R.parse_iptables_save(_as_saved(R.render_restore(rs)))
    rs2 = R.build_ruleset(m.pods, m.namespaces, [], NODE)
    text = R.render_restore(rs2, state)
    stale = [c for c in rs.chains if c not in rs2.chains]
    assert stale and all(f":{c} - [0:0]" in text and f"-X {c}" in text for c in stale)
    assert all(f"-X {c}" not in text for c in rs2.chains)
    assert text.index(f"-X {stale[0]}") > text.rindex("-A ")


def test_teardown_removes_everything_of_ours_only():
    _, rs = _model_ruleset()
    other = {"FORWARD": ["-j KUBE-FORWARD"], "KUBE-FORWARD": ["-j ACCEPT"], "OUTPUT": [f"-j {R.CHAIN_REJECT}"]}
    state = R.parse_iptables_save(_as_saved(R.render_restore(rs), other))
    text = R.render_teardown(state)
    for c in rs.chains:
        assert f"-X {c}" in text
    assert f"-D OUTPUT -j {R.CHAIN_REJECT}" in text
    assert f"-D FORWARD {R.jump_spec(R.CHAIN_FORWARD)}" in text
    assert "KUBE-FORWARD" not in text
    assert R.render_teardown(R.parse_iptables_save(_as_saved("*filter\nCOMMIT\n", other).replace(f"-A OUTPUT -j {R.CHAIN_REJECT}\n", ""))) == ""


def test_chain_names_comments_and_no_accept():
    _, rs = _model_ruleset()
    text = R.render_restore(rs)
    for name in rs.chains:
        assert name.startswith("KREADY-NP-") and len(name) <= 28
    assert "ACCEPT" not in text and "DROP" not in text
    assert '"pod x/a"' in text and "x/deny" in text and "y/web ingress[0] TCP/serve-80-tcp" in text
    assert "ipBlock 10.0.0.0/8" in text
    for line in text.splitlines():
        if line.startswith("-A ") and "--comment" in line:
            shlex.split(line)  # quoting is sound


def test_output_is_deterministic_and_order_independent():
    m, rs = _model_ruleset()
    pols = [netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            netpol("y", "web", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})]
    a = R.generate_restore(m.pods, m.namespaces, pols, NODE)
    rng = random.Random(7)
    pods, nss = m.pods[:], m.namespaces[:]
    rng.shuffle(pods)
    rng.shuffle(nss)
    b = R.generate_restore(pods, nss, list(reversed(pols)), NODE)
    assert a == b


def test_input_hook_only_polices_pod_cidr():
    _, rs = _model_ruleset()
    assert rs.chains[R.CHAIN_INPUT] == [f'-s {POD_CIDR} -m comment --comment "pods to this node" -j {R.CHAIN_NODE}']
    w = Walker(R.render_restore(rs))
    assert w.verdict("10.99.0.1", NODE_IP, "TCP", 22) == "PASS"
    assert w.verdict(Model().ips["x/a"], NODE_IP, "TCP", 22) == "REJECT"


def test_summary_counts_and_warnings():
    extra = [pod("x", "host", NODE_IP, host_network=True), pod("x", "none", None)]
    m = Model(extra_pods=extra)
    pols = [netpol("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            netpol("y", "bad", {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}})]
    rs = R.build_ruleset(m.pods, m.namespaces, pols, NODE)
    assert (rs.pods, rs.endpoints, rs.policies, rs.isolated_ingress, rs.isolated_egress) == (12, 10, 2, 3, 3)
    assert any("Bogus" in w for w in rs.warnings)
    assert "12 pods (10 endpoints" in rs.summary()


def test_node_facts_validation():
    assert R.NodeFacts(["10.244.0.0/16", "fd00::/64"]).pod_cidrs == ("10.244.0.0/16",)
    with pytest.raises(ValueError):
        R.NodeFacts("fd00::/64")
    with pytest.raises(ValueError):
        R.NodeFacts(POD_CIDR, mark=0x3)


# --- selector logic and small helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("selector,labels,want", [
    (None, {"a": "1"}, False),
    ({}, {}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchLabels": {"a": "1"}}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "3"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"b": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1", "b": "x"}, True),
])
def test_selector_matches(selector, labels, want):
    assert R.selector_matches(selector, labels) is want


@pytest.mark.parametrize("expr", [
    {"key": "a", "operator": "In", "values": []},
    {"key": "a", "operator": "NotIn"},
    {"key": "a", "operator": "Exists", "values": ["x"]},
    {"key": "a", "operator": "Gt", "values": ["1"]},
])
def test_invalid_selectors_raise(expr):
    with pytest.raises(R.SelectorError):
        R.selector_matches({"matchExpressions": [expr]}, {"a": "1"})


@pytest.mark.parametrize("spec,want", [
    ({}, ("Ingress",)),
    ({"ingress": [{}]}, ("Ingress",)),
    ({"egress": []}, ("Ingress",)),
    ({"egress": [{}]}, ("Ingress", "Egress")),
    ({"policyTypes": ["Egress"], "ingress": [{}]}, ("Egress",)),
    ({"policyTypes": ["Ingress", "Egress"]}, ("Ingress", "Egress")),
])
def test_policy_types_default(spec, want):
    assert R.policy_types({"spec": spec}) == want


def test_endpoint_filtering():
    assert R.is_endpoint(pod("x", "a", "10.1.1.1"))
    assert not R.is_endpoint(pod("x", "a", None))
    assert not R.is_endpoint(pod("x", "a", "10.1.1.1", host_network=True))
    assert not R.is_endpoint(pod("x", "a", "10.1.1.1", phase="Succeeded"))
    assert not R.is_endpoint(pod("x", "a", "10.1.1.1", phase="Failed"))
    assert R.is_endpoint(pod("x", "a", "10.1.1.1", phase="Pending"))
    dual = pod("x", "a", "10.1.1.1")
    dual["status"]["podIPs"] = [{"ip": "fd00::1"}, {"ip": "10.1.1.1"}]
    assert R.pod_ipv4s(dual) == ["10.1.1.1"]
    v6 = pod("x", "a", "fd00::1")
    assert not R.is_endpoint(v6)


def test_parse_iptables_save_round_trip():
    saved = """# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j KREADY-NP-NOTOURS
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KREADY-NP-FORWARD - [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -m comment --comment "kready NetworkPolicy enforcer" -j KREADY-NP-FORWARD
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KREADY-NP-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
COMMIT
"""
    st = R.parse_iptables_save(saved)
    assert st.owned_chains == ["KREADY-NP-FORWARD"]
    assert st.jumps_into_owned() == [("FORWARD", 1, '-m comment --comment "kready NetworkPolicy enforcer" -j KREADY-NP-FORWARD')]
    assert R.rule_target('-m comment --comment "a -j b" -g KREADY-NP-X') == "KREADY-NP-X"


# --- randomised differential test: generated rules == reference semantics -----------------------------------------

LABEL_POOL = {"app": ["web", "db", "cli"], "tier": ["fe", "be"], "env": ["prod", "dev"]}
NS_LABELS = {"team": ["red", "blue"], "env": ["prod", "dev"]}
NAMED = [("http", 8080, "TCP"), ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9000, "TCP"), ("sctp-p", 9000, "SCTP"),
         ("alt", 80, "UDP")]
PROBE_PORTS = (53, 80, 81, 8080, 9000)
BLOCKS = [("10.251.0.0/16", ["10.251.1.0/28", "10.251.2.2/32"]), ("10.251.1.0/24", []), ("192.0.2.0/24", ["192.0.2.128/25"]),
          ("0.0.0.0/0", ["10.251.1.2/32"]), (f"{NODE_IP}/32", []), ("2001:db8::/32", []), ("10.251.2.0/23", ["10.251.3.0/24"])]


def _rand_labels(rng, pool):
    return {k: rng.choice(v) for k, v in pool.items() if rng.random() < 0.6}


def _rand_selector(rng, pool):
    r = rng.random()
    if r < 0.25:
        return {}
    sel = {}
    if r < 0.7:
        k = rng.choice(list(pool))
        sel["matchLabels"] = {k: rng.choice(pool[k])}
    if r >= 0.5:
        k = rng.choice(list(pool))
        op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
        e = {"key": k, "operator": op}
        if op in ("In", "NotIn"):
            e["values"] = rng.sample(pool[k], rng.randint(1, len(pool[k])))
        sel["matchExpressions"] = [e]
    return sel


def _rand_peer(rng):
    r = rng.random()
    if r < 0.3:
        return {"podSelector": _rand_selector(rng, LABEL_POOL)}
    if r < 0.55:
        return {"namespaceSelector": _rand_selector(rng, NS_LABELS)}
    if r < 0.8:
        return {"namespaceSelector": _rand_selector(rng, NS_LABELS), "podSelector": _rand_selector(rng, LABEL_POOL)}
    cidr, excepts = rng.choice(BLOCKS)
    block = {"cidr": cidr}
    if excepts and rng.random() < 0.7:
        block["except"] = excepts
    return {"ipBlock": block}


def _rand_port(rng):
    r = rng.random()
    proto = rng.choice(["TCP", "TCP", "UDP", "SCTP"])
    p = {} if rng.random() < 0.3 and proto == "TCP" else {"protocol": proto}
    if r < 0.15:
        return p
    if r < 0.55:
        p["port"] = rng.choice(PROBE_PORTS)
        if rng.random() < 0.3:
            p["endPort"] = p["port"] + rng.choice([0, 1, 30])
        return p
    name, _, nproto = rng.choice(NAMED)
    p["port"] = name
    if rng.random() < 0.7:
        p["protocol"] = nproto
    return p


def _rand_rules(rng, field):
    out = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        rule = {}
        if rng.random() < 0.7:
            rule[field] = [_rand_peer(rng) for _ in range(rng.choice([0, 1, 1, 2]))]
        if rng.random() < 0.6:
            rule["ports"] = [_rand_port(rng) for _ in range(rng.choice([0, 1, 2]))]
        out.append(rule)
    return out


def _rand_cluster(rng):
    nss = [{"metadata": {"name": n, "labels": _rand_labels(rng, NS_LABELS)}} for n in ("a", "b", "c")]
    pods = []
    for i in range(rng.randint(4, 9)):
        namespace = rng.choice("abc")
        ports = [{"name": n, "containerPort": num, "protocol": pr} for n, num, pr in NAMED if rng.random() < 0.4]
        ip = f"10.251.{rng.choice([1, 2, 3])}.{i + 2}"
        kind = rng.random()
        p = pod(namespace, f"p{i}", ip, _rand_labels(rng, LABEL_POOL), ports,
                phase="Failed" if kind < 0.05 else "Running", host_network=0.05 <= kind < 0.1)
        if p["spec"].get("hostNetwork"):
            p["status"]["podIP"] = NODE_IP
            p["status"]["podIPs"] = [{"ip": NODE_IP}]
        pods.append(p)
    pols = []
    for i in range(rng.randint(0, 5)):
        spec = {"podSelector": _rand_selector(rng, LABEL_POOL)}
        t = rng.random()
        if t < 0.25:
            pass
        elif t < 0.5:
            spec["policyTypes"] = ["Ingress"]
        elif t < 0.75:
            spec["policyTypes"] = ["Egress"]
        else:
            spec["policyTypes"] = ["Ingress", "Egress"]
        if rng.random() < 0.8:
            spec["ingress"] = _rand_rules(rng, "from")
        if rng.random() < 0.6:
            spec["egress"] = _rand_rules(rng, "to")
        pols.append(netpol(rng.choice("abc"), f"np{i}", spec))
    return pods, nss, pols


@pytest.mark.parametrize("chunk", range(10))
def test_random_clusters_rules_match_reference_semantics(chunk):
    checked = 0
    for seed in range(chunk * 30, chunk * 30 + 30):
        rng = random.Random(seed)
        pods, nss, pols = _rand_cluster(rng)
        text = R.generate_restore(pods, nss, pols, NODE)
        walker, oracle = Walker(text), Oracle(pods, nss, pols)
        addrs = sorted({p["status"]["podIP"] for p in pods if p["status"].get("podIP")} | {NODE_IP, EXTERNAL, "10.251.3.200"})
        for s in addrs:
            for d in addrs:
                if s == NODE_IP or (s == d and s in (NODE_IP, EXTERNAL)):
                    continue  # the node's own traffic is not policed; it does not traverse FORWARD
                for proto, port in [("TCP", p) for p in PROBE_PORTS] + [("UDP", 53), ("UDP", 80), ("SCTP", 9000), ("ICMP", None)]:
                    got = walker.verdict(s, d, proto, port) != "REJECT"
                    want = oracle.allowed(s, d, proto, port)
                    assert got == want, f"seed {seed}: {s} -> {d} {proto}/{port}: rules {got}, reference {want}\n{pols}\n{text}"
                    checked += 1
    assert checked > 10000


def test_the_informer_lists_again_quickly_until_the_api_server_first_answers(monkeypatch):
    """The enforcer starts with the API server: refused lists are retried every STARTING_RETRY (not backed off to
    seconds), so the first sync follows the API server's start at once."""
    import json as _json
    import threading as _threading
    import time as _time

    from pytest_kready.local.netpol import controller

    monkeypatch.setattr(controller, "STARTING_RETRY", 0.02)
    calls = []

    class _Resp:
        data = _json.dumps({"metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "n1"}}]})

    def list_fn(**_):
        calls.append(_time.monotonic())
        if len(calls) <= 6:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        return _Resp()

    stop = _threading.Event()
    informer = controller.Informer("namespaces", list_fn, controller.slim_namespace, stop.set, stop)
    t0 = _time.monotonic()
    informer.start()
    informer.join(timeout=10)
    assert not informer.is_alive()
    assert informer.synced.is_set() and len(calls) == 7
    assert [o["metadata"]["name"] for o in informer.snapshot()] == ["n1"]
    # six refusals cost six short waits; the backoff of after the first list (0.5 s doubling) would take 31.5 s
    assert _time.monotonic() - t0 < 2.0
