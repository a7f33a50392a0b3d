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
placed once and measured once per session; what they conclude is decided in pytest_kready/checks/network.py.
"""

from __future__ import annotations

import pytest

from pytest_kready.checks import network as checks
from pytest_kready.settings import READONLY

READONLY_REASON = ("creates probe pods (in throw-away namespaces and in the target namespaces); readonly mode "
                   "creates no pods (use --kready-mode=standard)")


# the probe pods are placed in the background from the cluster's start on (pytest_kready/early.py)
pytestmark = pytest.mark.kready_early(key="network", start=checks.start_audit)


@pytest.fixture(scope="module")
def _network_audit(request, kready_cluster):
    if kready_cluster.mode == READONLY:
        yield None
        return
    # not started early (e.g. under xdist): placed by the first check
    audit, _ = kready_cluster.early.take_or("network", lambda: checks.NetworkAudit(kready_cluster))
    yield audit
    audit.close(failed=request.session.testsfailed > 0)


@pytest.fixture
def network(_network_audit, kready_finding) -> checks.NetworkAudit:
    if _network_audit is None:
        kready_finding.not_applicable(READONLY_REASON)
    return _network_audit



@pytest.mark.kready_check("network.enforcement")
def test_enforcement(network, kready_finding):
    """A deny policy in a throw-away namespace blocks traffic, while the pod it does not select stays reachable."""
    checks.enforcement(network).record(kready_finding)


@pytest.mark.kready_check("network.cross-namespace")
def test_cross_namespace(network, kready_finding):
    """From a fresh namespace, no port of a target namespace is reachable."""
    kready_finding.record(checks.cross_namespace(network))


@pytest.mark.kready_check("network.default-deny")
def test_default_deny(network, kready_finding):
    """A new pod in each target namespace can neither be reached from another namespace nor reach one."""
    kready_finding.record(checks.default_deny(network))


@pytest.mark.kready_check("network.dns")
def test_dns(network, kready_finding):
    """Names still resolve from inside each target namespace under its policies (the positive control)."""
    kready_finding.record(checks.dns(network))


@pytest.mark.kready_check("network.egress")
def test_egress(network, kready_finding):
    """A new pod in each target namespace cannot reach an address outside the pod network."""
    kready_finding.record(checks.egress(network))
