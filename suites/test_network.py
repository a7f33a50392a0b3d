"""Network checks: traffic, not policy objects, decides. See docs/network.md.

* ``network.enforcement`` — a canary deny policy in a throw-away namespace blocks traffic (else every other
  network check is inconclusive: the CNI does not enforce NetworkPolicy);
* ``network.cross-namespace`` — from a fresh namespace, each target namespace's pods are unreachable on their
  real ports (container ports, Services, and a probe pod placed there);
* ``network.default-deny`` — each target namespace denies by default, both ways: a new pod there cannot reach
  another namespace, nor be reached from one;
* ``network.dns`` — DNS still resolves from inside each target namespace (the positive control);
* ``network.egress`` — a new pod in each target namespace cannot reach an address outside the pod network (a
  listener on a node's host network).

All of them create pods, so they are not-applicable in readonly mode. The pods and probes are shared: they are
placed once and measured once per session (pytest_kready/checks/network.py).
"""

from __future__ import annotations

import pytest

from pytest_kready.checks.network import (CANARY, FRESH, HARDENED_POLICIES, AuditError, NetworkAudit)
from pytest_kready.settings import READONLY

READONLY_REASON = ("creates probe pods (in throw-away namespaces and in the target namespaces); readonly mode "
                   "creates no pods (use --kready-mode=standard)")
DOCS = "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
DEFAULT_POLICIES = DOCS + "#default-policies"
FIX_DEFAULT_DENY = (f"Give the namespace a default-deny NetworkPolicy for Ingress and Egress (podSelector: {{}}, "
                    f"policyTypes: [Ingress, Egress]) and then allow only the traffic its workloads need, as "
                    f"{HARDENED_POLICIES} does.")


@pytest.fixture(scope="module")
def _network_audit(request, kready_cluster):
    if kready_cluster.mode == READONLY:
        yield None
        return
    audit = NetworkAudit(kready_cluster)
    yield audit
    audit.close(failed=request.session.testsfailed > 0)


@pytest.fixture
def network(_network_audit, kready_cluster, kready_finding) -> NetworkAudit:
    if _network_audit is None:
        kready_finding.not_applicable(READONLY_REASON)
    return _network_audit


def _require_enforcement(network: NetworkAudit, finding) -> None:
    """Inconclusive (and stop) unless the canary showed that NetworkPolicy is enforced."""
    e = network.enforcement()
    if e.enforced is True:
        return
    evidence = {"canary": e.result.grid(grouped=False)} if e.result is not None else {}
    if e.enforced is False:
        finding.inconclusive(f"the CNI does not enforce NetworkPolicy, so no network check can conclude ({e.reason})",
                             evidence=evidence)
    finding.inconclusive(f"NetworkPolicy enforcement could not be established: {e.reason}", evidence=evidence)


def _matrix(network: NetworkAudit, finding):
    try:
        return network.matrix()
    except AuditError as e:
        finding.inconclusive(str(e))


def _evidence(network: NetworkAudit, result, ns: str, cells) -> dict:
    """The grid of ``cells`` (expected vs observed), the policies in ``ns``, a kubectl line per wrong pair."""
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    sub = result.sub(rows, cols)
    sub.observed.only = sub.expected.only = frozenset(cells)
    evidence = {
        "grid": sub.grid(grouped=False),
        "policies": network.policies(ns),
        "kubectl": sub.kubectl_lines(),
        "sampling": f"{result.rounds} round(s) in {result.seconds:.1f}s, "
                    f"{'stable' if result.stable else 'not stable'}",
        "namespaces": {FRESH: network.namespaces.get(FRESH), CANARY: network.namespaces.get(CANARY)},
    }
    placement = network.placements.get(ns)
    if placement is not None:
        evidence["probe_pod"] = f"{ns}/{placement.pod}" if placement.pod else placement.error
    return evidence


def _control_ok(result, finding, cell, what: str) -> bool:
    value = result.observed.get(*cell)
    if value is True:
        return True
    finding.inconclusive(f"the positive control failed: {what} ({result.detail(*cell) or 'no answer'}), so a "
                         "blocked probe would prove nothing",
                         evidence={"grid": result.sub([cell[0]], [cell[1]]).grid(grouped=False)})
    return False


def _list(cells, n: int = 4) -> str:
    shown = ", ".join(str(c) for _, c in cells[:n])
    return shown + (f" and {len(cells) - n} more" if len(cells) > n else "")


# --- checks -----------------------------------------------------------------------------------------------


@pytest.mark.kready_check("network.enforcement")
def test_enforcement(network: NetworkAudit, kready_finding):
    """A deny policy in a throw-away namespace blocks traffic, while the pod it does not select stays reachable."""
    e = network.enforcement()
    evidence = {"canary": e.result.grid(grouped=False)} if e.result is not None else {}
    if e.result is not None:
        evidence["kubectl"] = e.result.kubectl_lines(list(e.result.observed.cells()))
        evidence["policy"] = {"name": "kready-canary-deny", "namespace": network.namespaces.get(CANARY),
                              "spec": {"podSelector": {"matchLabels": {"kready.dev/pod": "denied"}},
                                       "policyTypes": ["Ingress"]}}
    if e.enforced is True:
        kready_finding.passed(e.reason, evidence=evidence)
    elif e.enforced is False:
        kready_finding.failed(
            e.reason, severity="critical", evidence=evidence, repro=(evidence.get("kubectl") or [None])[0],
            remediation="Run a CNI that enforces NetworkPolicy (e.g. Calico, Cilium, kube-network-policies; "
                        "kind from v0.24; the AWS VPC CNI with its network policy agent enabled) and re-run: "
                        "until then every NetworkPolicy in the cluster is decoration.",
            references=(DOCS,))
    else:
        kready_finding.inconclusive(e.reason, evidence=evidence)


def _open_control(network: NetworkAudit, kready_finding):
    """The matrix, once enforcement is shown and a pod without policies is reachable from the fresh namespace (the
    positive control); None when that control failed (its finding is recorded)."""
    _require_enforcement(network, kready_finding)
    result = _matrix(network, kready_finding)
    if not _control_ok(result, kready_finding, (FRESH, network.control["open"]),
                       "a pod without policies is not reachable from the fresh namespace"):
        return None
    return result


def _placed(network: NetworkAudit, ns: str, kready_finding) -> bool:
    """Whether a probe pod stands in ``ns``; if not, the namespace's finding is inconclusive, saying why."""
    placement = network.placements[ns]
    if not placement.pod:
        kready_finding("inconclusive", placement.error or f"no probe pod in {ns}", target_namespace=ns)
        return False
    return True


@pytest.mark.kready_check("network.cross-namespace")
def test_cross_namespace(network: NetworkAudit, kready_finding):
    """From a fresh namespace, no port of a target namespace is reachable."""
    result = _open_control(network, kready_finding)
    if result is None:
        return
    for ns in network.targets:
        cols = network.probe_targets(ns) + network.real_targets.get(ns, [])
        why_few = [network.placements[ns].error] if network.placements[ns].error else []
        why_few += network.skipped.get(ns, [])
        if not cols:
            kready_finding("inconclusive", f"nothing to probe in {ns}: " + "; ".join(why_few or ["no ports"]),
                           target_namespace=ns)
            continue
        cells = [(FRESH, c) for c in cols]
        evidence = _evidence(network, result, ns, cells)
        if why_few:
            evidence["not_probed"] = why_few
        reachable = [cell for cell in cells if result.observed.get(*cell) is True]
        unknown = [cell for cell in cells if result.observed.get(*cell) is None]
        if reachable:
            kready_finding.failed(
                f"{len(reachable)} of {len(cells)} port(s) in {ns} are reachable from a fresh namespace: "
                f"{_list(reachable)}", target_namespace=ns, severity="high", evidence=evidence,
                repro=evidence["kubectl"][0] if evidence["kubectl"] else None, remediation=FIX_DEFAULT_DENY,
                references=(DEFAULT_POLICIES,))
        elif unknown:
            kready_finding("inconclusive", f"{len(unknown)} probe(s) into {ns} gave no stable answer: "
                           f"{_list(unknown)}", target_namespace=ns, evidence=evidence)
        else:
            kready_finding.passed(f"none of {len(cells)} port(s) in {ns} is reachable from a fresh namespace",
                                  target_namespace=ns, evidence=evidence)


@pytest.mark.kready_check("network.default-deny")
def test_default_deny(network: NetworkAudit, kready_finding):
    """A new pod in each target namespace can neither be reached from another namespace nor reach one."""
    result = _open_control(network, kready_finding)
    if result is None:
        return
    for ns in network.targets:
        if not _placed(network, ns, kready_finding):
            continue
        ingress = [(FRESH, c) for c in network.probe_targets(ns)]
        egress = [(ns, network.control["fresh_tcp"]), (ns, network.control["fresh_udp"])]
        evidence = _evidence(network, result, ns, ingress + egress)
        open_in = [c for c in ingress if result.observed.get(*c) is True]
        open_out = [c for c in egress if result.observed.get(*c) is True]
        unknown = [c for c in ingress + egress if result.observed.get(*c) is None]
        if open_in or open_out:
            ways = []
            if open_in:
                ways.append(f"ingress (a pod in another namespace reaches a new pod here: {_list(open_in)})")
            if open_out:
                ways.append(f"egress (a new pod here reaches a pod in another namespace: {_list(open_out)})")
            kready_finding.failed(f"{ns} has no effective default deny for " + " nor for ".join(ways),
                                  target_namespace=ns, severity="high", evidence=evidence,
                                  repro=evidence["kubectl"][0] if evidence["kubectl"] else None,
                                  remediation=FIX_DEFAULT_DENY, references=(DEFAULT_POLICIES,))
        elif unknown:
            kready_finding("inconclusive", f"{len(unknown)} probe(s) of {ns} gave no stable answer",
                           target_namespace=ns, evidence=evidence)
        else:
            kready_finding.passed(f"{ns} denies by default: a new pod there is unreachable from another namespace "
                                  "and cannot reach one", target_namespace=ns, evidence=evidence)


@pytest.mark.kready_check("network.dns")
def test_dns(network: NetworkAudit, kready_finding):
    """Names still resolve from inside each target namespace under its policies (the positive control)."""
    _require_enforcement(network, kready_finding)
    result = _matrix(network, kready_finding)
    dns = network.control["dns"]
    if not _control_ok(result, kready_finding, (FRESH, dns),
                       f"{dns.host} does not resolve even from a namespace without policies"):
        return
    for ns in network.targets:
        if not _placed(network, ns, kready_finding):
            continue
        cell = (ns, dns)
        evidence = _evidence(network, result, ns, [cell])
        value = result.observed.get(*cell)
        if value is True:
            kready_finding.passed(f"{dns.host} resolves from a new pod in {ns}", target_namespace=ns,
                                  evidence=evidence)
        elif value is False:
            kready_finding.failed(
                f"DNS does not resolve from a new pod in {ns} ({result.detail(*cell)}): its workloads cannot find "
                "any Service", target_namespace=ns, severity="medium", evidence=evidence,
                repro=result.kubectl(*cell),
                remediation="Allow egress to the cluster DNS (pods k8s-app=kube-dns in kube-system) on UDP and TCP "
                            f"53 next to the default deny, as allow-dns in {HARDENED_POLICIES}.",
                references=(DEFAULT_POLICIES,))
        else:
            kready_finding("inconclusive", f"the DNS probe in {ns} gave no stable answer ({result.detail(*cell)})",
                           target_namespace=ns, evidence=evidence)


@pytest.mark.kready_check("network.egress")
def test_egress(network: NetworkAudit, kready_finding):
    """A new pod in each target namespace cannot reach an address outside the pod network."""
    _require_enforcement(network, kready_finding)
    result = _matrix(network, kready_finding)
    outside = network.outside
    if outside is None:
        kready_finding.inconclusive(f"no outside target could be set up ({network.outside_note})")
    if not _control_ok(result, kready_finding, (FRESH, outside),
                       f"the outside target {outside.host}:{outside.port} is not reachable even from a namespace "
                       "without policies"):
        return
    for ns in network.targets:
        if not _placed(network, ns, kready_finding):
            continue
        cell = (ns, outside)
        evidence = _evidence(network, result, ns, [cell])
        evidence["outside"] = f"{outside.host}:{outside.port}" + (f" ({network.outside_note})"
                                                                 if network.outside_note else " (hostNetwork listener)")
        value = result.observed.get(*cell)
        if value is False:
            kready_finding.passed(f"a new pod in {ns} cannot reach {outside.host}:{outside.port} outside the pod "
                                  "network", target_namespace=ns, evidence=evidence)
        elif value is True:
            kready_finding.failed(
                f"a new pod in {ns} reaches {outside.host}:{outside.port} outside the pod network: egress is not "
                "restricted", target_namespace=ns, severity="high", evidence=evidence, repro=result.kubectl(*cell),
                remediation="Deny egress by default (a policy with policyTypes: [Egress] selecting every pod) and "
                            "allow only what the workloads need: DNS, named in-cluster peers, and ipBlock ranges for "
                            "external services.", references=(DEFAULT_POLICIES,))
        else:
            kready_finding("inconclusive", f"the egress probe from {ns} gave no stable answer "
                           f"({result.detail(*cell)})", target_namespace=ns, evidence=evidence)
