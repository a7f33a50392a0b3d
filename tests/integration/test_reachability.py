"""The reachability engine on the real local cluster (baseline profile, the project's iptables enforcer): under each
policy the observed grid equals the expected one, cell for cell; a wrong expectation fails with the grids and a
kubectl line per wrong cell; and the ``kready_reachability`` fixture works in a user's test."""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid

import pytest

from pytest_kready.client import new_api_client
from pytest_kready.local.netns import in_netns
from pytest_kready.providers.base import ClusterAccess
from pytest_kready.reachability import Engine, Lab, Model

pytestmark = pytest.mark.integration

TEST_LABELS = {"app.kubernetes.io/managed-by": "kready-tests"}


def netpol(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


DENY_INGRESS = netpol("default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
DENY_ALL = netpol("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
DENY_EGRESS = netpol("default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
ALLOW_DNS = netpol("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})


class Namespaces:
    """Namespaces of one module, deleted at its end."""

    def __init__(self, api):
        self.api = api
        self.made: list[str] = []

    def __call__(self, logical: str, labels: dict[str, str]) -> str:
        name = f"reach-{logical}-{uuid.uuid4().hex[:6]}"
        self.api.raw("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {**labels, **TEST_LABELS}}})
        self.made.append(name)
        return name

    def delete(self):
        for name in self.made:
            try:
                self.api.raw("DELETE", f"/api/v1/namespaces/{name}")
            except Exception:  # noqa: BLE001 - best effort
                pass


@pytest.fixture(scope="module")
def engine(_cluster_manager):
    cluster = _cluster_manager.ensure("baseline")
    access = ClusterAccess(cluster.kubeconfig)
    api = new_api_client(access)
    eng = Engine(api, exec_client_factory=lambda: new_api_client(access), labels=TEST_LABELS)
    namespaces = Namespaces(api)
    eng.make_namespace = namespaces
    yield eng
    eng.close()
    namespaces.delete()
    api.close()


@pytest.fixture(scope="module")
def lab(engine) -> Lab:
    """x, y × a, b; TCP and UDP on 8080 and 8081; by pod IP and through Services; and a DNS column."""
    model = Model.grid(["x", "y"], ["a", "b"], ports=[8080, 8081], protocols=["TCP", "UDP"],
                       paths=["pod", "service"], dns=True)
    return Lab.deploy(engine, model, engine.make_namespace)


def forget_udp_flows(cluster) -> None:
    """Delete the conntrack entries of UDP flows from the cluster's pods (in its network namespace). A UDP flow
    the scenario before allowed stays in conntrack for up to 120 s; a probe of the next scenario that happens to
    get the same source port is then ESTABLISHED and passes a deny, as it would on any cluster (policies govern new
    flows). Seen once in CI: default-deny, x/a → x/b:8080/UDP via Service "refused ×2, connected ×1". The scenarios
    here are about new flows, so each starts without the UDP flows of the one before."""
    proc = subprocess.run(in_netns(cluster.layout, ["conntrack", "-D", "-p", "udp", "-s", cluster.layout.pod_cidr]),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode in (0, 1) and "flow entries have been deleted" in proc.stderr, proc.stderr  # 1: none


@pytest.fixture
def policies(lab, _cluster_manager):
    """Each scenario starts without policies (and without the UDP flows of the one before) and removes its own."""
    lab.remove_policies()
    forget_udp_flows(_cluster_manager.ensure("baseline"))
    yield lab
    lab.remove_policies()


def test_no_policy_everything_connects(policies):
    lab = policies
    result = lab.check(lab.expect(True))
    assert result.observed.counts() == {"cells": 4 * (3 * 2 * 2 * 2 + 1), "connects": 100, "blocked": 0,
                                        "unknown": 0}
    assert result.stable


def test_default_deny(policies):
    lab = policies
    lab.apply(DENY_ALL, namespace="x")
    lab.check(lab.expect(True).deny(to="x").deny(frm="x"))


def test_allow_within_the_namespace(policies):
    lab = policies
    lab.apply(DENY_INGRESS, namespace="x")
    lab.apply(netpol("allow-same-namespace", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
              namespace="x")
    lab.check(lab.expect(True).deny(to="x").allow(frm="x", to="x"))


def test_allow_from_a_namespace_selector(policies):
    lab = policies
    lab.apply(DENY_INGRESS, namespace="x")
    lab.apply(netpol("allow-from-y", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": lab.namespace_selector("y")}]}]}), namespace="x")
    lab.check(lab.expect(True).deny(to="x").allow(frm="y", to="x"))


def test_allow_one_port(policies):
    lab = policies
    lab.apply(DENY_INGRESS, namespace="x")
    lab.apply(netpol("allow-8080-tcp", {"podSelector": lab.pod_selector("a"), "ingress": [{
        "ports": [{"protocol": "TCP", "port": 8080}]}]}), namespace="x")
    lab.check(lab.expect(True).deny(to="x").allow(to="x/a", port=8080, protocol="TCP"))


def test_deny_egress(policies):
    lab = policies
    lab.apply(DENY_EGRESS, namespace="x")
    lab.check(lab.expect(True).deny(frm="x"))


def test_allow_dns(policies):
    lab = policies
    lab.apply(DENY_EGRESS, namespace="x")
    lab.apply(ALLOW_DNS, namespace="x")
    lab.check(lab.expect(True).deny(frm="x").allow(frm="x", to="dns"))


def test_a_wrong_expectation_shows_the_grids_and_commands(policies):
    lab = policies
    lab.apply(DENY_INGRESS, namespace="y")
    with pytest.raises(AssertionError) as err:
        lab.check(lab.expect(True), settle=2)
    text = str(err.value)
    assert "differ from the expectation" in text
    assert "TCP/8080 via pod IP: 6 wrong of 12" in text and "UDP/8081 via Service: 6 wrong of 12" in text
    assert "expected" in text and "observed" in text and "comparison" in text
    assert f"kubectl exec -n {lab.ns('x')} a -- /agnhost connect" in text
    assert "x/a → y/a:8080/TCP" in text and "expected connects, observed blocked (refused" in text


def test_one_probe_pod_per_namespace(engine):
    model = Model.grid(["x", "y", "z"], ["a"], ports=[8080], sources="namespace")
    lab = Lab.deploy(engine, model, engine.make_namespace)
    assert [s.pod for s in lab.sources] == ["probe", "probe", "probe"]
    result = lab.check(lab.expect(True))
    assert result.observed.counts()["cells"] == 3 * 3  # a namespace's probe pod is not a target: x → x/a counts
    lab.apply(DENY_INGRESS, namespace="y")
    lab.apply(netpol("allow-from-z", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": lab.namespace_selector("z")}]}]}), namespace="y")
    lab.check(lab.expect(True).deny(to="y").allow(frm="z", to="y"))


USER_TEST = """
    from pytest_kready.reachability import Model

    def test_x_only_talks_to_itself(kready_reachability):
        lab = kready_reachability(Model.grid(["x", "y"], ["a"], ports=[8080]))
        lab.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "same-ns"},
                   "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}}, namespace="x")
        lab.check(lab.expect(True).deny(frm="y", to="x"))

    def test_wrong_expectation(kready_reachability):
        lab = kready_reachability(namespaces=["x", "y"], pods=["a"], ports=[8080])
        lab.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}, namespace="y")
        lab.check(lab.expect(True), settle=2)
"""


def test_the_fixture_in_a_users_test(pytester, local_cluster):
    pytester.makepyfile(test_user=textwrap.dedent(USER_TEST))
    out = pytester.path / "f.json"
    result = pytester.runpytest_subprocess(
        str(pytester.path / "test_user.py"), "--kready", "--kready-provider=local", "--kready-mode=standard",
        f"--kready-json={out}", "-p", "no:cacheprovider", timeout=600)
    text = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert "reachability differs from the expectation" in text and "comparison" in text
    assert "x/a → y/a:8080/TCP: expected connects, observed blocked" in text
    # the namespaces of both tests are gone (or going): they carried the run's labels
    run_id = json.loads(out.read_text())["run"]["run_id"]  # findings JSON v1 (docs/reports.md)
    listing = new_api_client(ClusterAccess(local_cluster.kubeconfig)).raw(
        "GET", "/api/v1/namespaces", query={"labelSelector": f"kready.dev/run-id={run_id}"})
    assert all(ns["status"].get("phase") == "Terminating" for ns in listing["items"])


@pytest.fixture(autouse=True)
def _slot0(monkeypatch):
    monkeypatch.setenv("KREADY_LOCAL_SLOT", "0")
