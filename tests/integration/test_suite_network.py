"""The shipped network suite (pytest_kready/suites/test_network.py) run by the plugin against the local clusters:
on the baseline profile a plain namespace fails cross-namespace, default-deny and egress (DNS passes, enforcement
passes); on the hardened profile a namespace built from the reference manifests passes all five; readonly mode
creates no pods and reports them not-applicable; a cluster that does not enforce makes the others inconclusive."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

from pytest_kready.client import apply, load_manifests, new_api_client
from pytest_kready.resources import suites_dir
from pytest_kready.profiles import load_profile
from pytest_kready.providers.base import ClusterAccess
from pytest_kready.reachability.model import pod_manifest, service_manifest
from pytest_kready.settings import DEFAULT_IMAGE

pytestmark = pytest.mark.integration

SUITE = str(suites_dir() / "test_network.py")
CHECKS = ("network.enforcement", "network.cross-namespace", "network.default-deny", "network.dns", "network.egress")
TEST_LABELS = {"app.kubernetes.io/managed-by": "kready-tests"}


def run_suite(pytester, monkeypatch, slot: int, *args: str) -> tuple[dict, str]:
    monkeypatch.setenv("KREADY_LOCAL_SLOT", str(slot))
    out = pytester.path / "f.json"
    result = pytester.runpytest_subprocess(
        SUITE, "--kready", "--kready-provider=local", f"--kready-json={out}", "-p", "no:cacheprovider", "-v",
        *args, timeout=900)
    text = result.stdout.str() + result.stderr.str()
    assert out.exists(), text
    return json.loads(out.read_text()), text


def by_check(doc: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        found.setdefault(f["check_id"], []).append(f)
    return found


def verdicts(doc: dict, namespace: str | None = None) -> dict[str, str]:
    """check id → verdict (of the finding for ``namespace`` when a check has one per namespace)."""
    out = {}
    for check, findings in by_check(doc).items():
        mine = [f for f in findings if f["target_namespace"] in (namespace, None)]
        out[check] = ",".join(sorted({f["verdict"] for f in mine}))
    return out


class AppNamespace:
    """A user namespace with a workload (a pod and a Service in front of it) on one of the local clusters."""

    def __init__(self, kubeconfig: Path, prefix: str):
        self.api = new_api_client(ClusterAccess(kubeconfig))
        self.name = f"{prefix}-{uuid.uuid4().hex[:6]}"

    def create(self, manifests: list[dict] = ()) -> str:
        objects = []
        for obj in manifests:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if obj["kind"] == "Namespace":
                meta["name"] = self.name
            else:
                meta["namespace"] = self.name
            meta["labels"] = {**(meta.get("labels") or {}), **TEST_LABELS}
            objects.append(obj)
        if not any(o["kind"] == "Namespace" for o in objects):
            objects.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": self.name, "labels": dict(TEST_LABELS)}})
        for obj in objects:
            apply(self.api, obj, default_namespace=self.name)
        # the workload: runs under Pod Security "restricted", serves TCP 8080 and UDP 8080
        pod = pod_manifest("web", image=DEFAULT_IMAGE, ports=[8080], labels={"app": "web"}, active_deadline=1800)
        self.api.raw("POST", f"/api/v1/namespaces/{self.name}/pods", body=pod)
        svc = service_manifest("web", selector={"app": "web"}, ports=[8080])
        self.api.raw("POST", f"/api/v1/namespaces/{self.name}/services", body=svc)
        return self.name

    def add_dead_targets(self) -> None:
        """A pod that declares a port nobody listens on (no readiness probe on it), and a Service without
        endpoints: targets that never answer, whatever the policies say."""
        idle = pod_manifest("idle", image=DEFAULT_IMAGE, ports=[9090], serve=False, labels={"app": "idle"},
                            active_deadline=1800)
        idle["spec"]["containers"][0]["ports"] = [{"containerPort": 9090, "name": "metrics", "protocol": "TCP"}]
        self.api.raw("POST", f"/api/v1/namespaces/{self.name}/pods", body=idle)
        ghost = service_manifest("ghost", selector={"app": "nothing-has-this-label"}, ports=[80])
        self.api.raw("POST", f"/api/v1/namespaces/{self.name}/services", body=ghost)

    def delete(self):
        try:
            self.api.raw("DELETE", f"/api/v1/namespaces/{self.name}")
        finally:
            self.api.close()


@pytest.fixture
def baseline_app(_cluster_manager):
    app = AppNamespace(_cluster_manager.ensure("baseline").kubeconfig, "net-app")
    app.create()
    yield app
    app.delete()


@pytest.fixture
def hardened_app(_cluster_manager):
    """A namespace made from pytest_kready/profiles/hardened/namespace/*.yaml (renamed), plus the workload."""
    app = AppNamespace(_cluster_manager.ensure("hardened").kubeconfig, "net-hard")
    manifests = [o for path in load_profile("hardened").namespace_manifests for o in load_manifests(path)]
    assert {o["kind"] for o in manifests} >= {"Namespace", "NetworkPolicy"}
    app.create(manifests)
    yield app
    app.delete()


@pytest.fixture
def denying_app_with_dead_targets(_cluster_manager):
    """On the baseline cluster (it enforces policies): the hardened namespace manifests (deny all but DNS), the
    workload, and targets that never answer (see ``add_dead_targets``)."""
    app = AppNamespace(_cluster_manager.ensure("baseline").kubeconfig, "net-dead")
    app.create([o for path in load_profile("hardened").namespace_manifests for o in load_manifests(path)])
    app.add_dead_targets()
    yield app
    app.delete()


def cells_to(finding: dict, label: str) -> list[dict]:
    return [c for c in finding["evidence"]["cells"] if c["to"].startswith(label)]


def test_targets_that_never_answer_make_cross_namespace_inconclusive_not_pass(pytester, monkeypatch,
                                                                              denying_app_with_dead_targets):
    """Every probe into a deny-all namespace fails; a port nobody listens on and a Service without endpoints fail
    as well, for no policy's sake: those cells are unknown, so the check cannot pass."""
    app = denying_app_with_dead_targets
    doc, text = run_suite(pytester, monkeypatch, 0, "--kready-mode=standard", f"--kready-namespaces={app.name}")
    assert verdicts(doc, app.name) == {
        "network.enforcement": "pass", "network.cross-namespace": "inconclusive", "network.default-deny": "pass",
        "network.dns": "pass", "network.egress": "pass"}, text
    cross = by_check(doc)["network.cross-namespace"][0]
    assert cross["summary"].startswith(f"2 of 6 port(s) in {app.name} cannot be judged blocked: "), cross["summary"]
    assert f"{app.name}/pod idle:9090/TCP" in cross["summary"] and f"{app.name}/svc ghost:80/TCP" in cross["summary"]
    [idle] = cells_to(cross, f"{app.name}/pod idle:9090")
    assert idle["observed"] == "unknown" and len(idle["seen"]) >= 3 and "connected" not in idle["seen"]
    assert "pod idle: no readiness probe on port 9090, and no listener on it seen inside the pod" in idle["alive"]
    assert "not shown alive" in idle["why_unknown"]
    [ghost] = cells_to(cross, f"{app.name}/svc ghost:80")
    assert ghost["observed"] == "unknown" and "Service ghost has no ready endpoint for port 80" in ghost["alive"]
    # the live targets of the same namespace are blocked, each with its proof of life
    [web] = cells_to(cross, f"{app.name}/pod web:8080")
    assert web["observed"] == "blocked" and web["alive"].startswith("pod web is Ready through a tcpSocket readiness")
    [svc] = cells_to(cross, f"{app.name}/svc web:8080")
    assert svc["observed"] == "blocked" and svc["alive"].startswith("ready endpoint ")
    [udp] = cells_to(cross, f"{app.name}/probe:8080/UDP")
    assert udp["observed"] == "blocked" and "a UDP path across namespaces works" in udp["alive"]
    # the listener of idle was read from inside it (and said so), nothing else was run in the team's pods
    assert cross["evidence"]["execs"] == [f"exec in {app.name}/idle (container agnhost): cat /proc/net/tcp "
                                          "/proc/net/tcp6 (reads the pod's listening sockets; changes nothing)"]
    assert "INCONCLUSIVE" in text


def test_baseline_namespace_fails_cross_namespace_default_deny_and_egress(pytester, monkeypatch, baseline_app):
    doc, text = run_suite(pytester, monkeypatch, 0, "--kready-mode=standard",
                          f"--kready-namespaces={baseline_app.name}")
    assert verdicts(doc, baseline_app.name) == {
        "network.enforcement": "pass", "network.cross-namespace": "fail", "network.default-deny": "fail",
        "network.dns": "pass", "network.egress": "fail"}, text
    found = by_check(doc)
    cross = found["network.cross-namespace"][0]
    assert cross["target_namespace"] == baseline_app.name and cross["severity"] == "high"
    assert "reachable from a fresh namespace" in cross["summary"]
    ev = cross["evidence"]
    # the workload's real ports (its container port and its Service) and the probe pod placed there, all open
    grid = ev["grid"]
    for label in (f"{baseline_app.name}/pod web:8080/TCP", f"{baseline_app.name}/svc web:8080/TCP",
                  f"{baseline_app.name}/probe:8080/TCP", f"{baseline_app.name}/probe:8080/UDP"):
        line = next(line for line in grid.splitlines() if label in line)
        assert line.startswith("X ") and "blocked" in line and "connects" in line, grid
    assert ev["policies"] == [] and ev["kubectl"] and all(k.startswith("kubectl exec -n kr-net-fresh-")
                                                         for k in ev["kubectl"])
    assert f"{baseline_app.name}/pod web:8080/UDP" in ev["not_probed"]
    assert cross["repro"] == ev["kubectl"][0] and "default-deny" in cross["remediation"]
    deny = found["network.default-deny"][0]
    assert "for ingress" in deny["summary"] and "nor for egress" in deny["summary"]
    assert "comparison" in deny["evidence"]["grid"]
    egress = found["network.egress"][0]
    assert "outside the pod network" in egress["summary"] and "hostNetwork listener" in egress["evidence"]["outside"]
    assert "FAILED" in text and "3 failed, 2 passed" in text
    # everything the suite made is gone or going: its namespaces, and the probe pod in the app's namespace
    pods = baseline_app.api.raw("GET", f"/api/v1/namespaces/{baseline_app.name}/pods")["items"]
    assert [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")] == ["web"]
    run_id = doc["run"]["run_id"]  # findings JSON v1 (docs/reports.md)
    left = baseline_app.api.raw("GET", "/api/v1/namespaces",
                                query={"labelSelector": f"kready.dev/run-id={run_id}"})["items"]
    assert all(ns["status"].get("phase") == "Terminating" for ns in left)


@pytest.mark.local_profile("hardened")
def test_hardened_namespace_passes_every_network_check(pytester, monkeypatch, hardened_app, local_cluster):
    doc, text = run_suite(pytester, monkeypatch, 1, "--kready-mode=standard", "--kready-profile=hardened",
                          f"--kready-namespaces={hardened_app.name}")
    assert verdicts(doc, hardened_app.name) == {check: "pass" for check in CHECKS}, text
    found = by_check(doc)
    policies = found["network.default-deny"][0]["evidence"]["policies"]
    assert {p["name"] for p in policies} == {"default-deny-all", "allow-dns"}
    assert "resolves" in found["network.dns"][0]["summary"]
    assert "5 passed" in text
    # deny-all namespaces still get verdicts: every blocked cell with its target shown alive in >= 3 counted rounds
    for check in CHECKS[1:]:
        for cell in found[check][0]["evidence"]["cells"]:
            if cell["observed"] == "blocked":
                assert len(cell["seen"]) >= 3 and "connected" not in cell["seen"], cell
                assert "in 0 of" not in cell["alive"], cell
    # what standard mode wrote, and where, is in every finding's evidence
    for check in CHECKS:
        writes = "\n".join(found[check][0]["evidence"]["writes"])
        assert "pod-security.kubernetes.io/enforce=privileged, with a hostNetwork Pod listener" in writes
        assert f"in {hardened_app.name} (a target namespace" in writes


def test_readonly_mode_creates_no_pods_and_says_so(pytester, monkeypatch, baseline_app):
    doc, text = run_suite(pytester, monkeypatch, 0, "--kready-mode=readonly",
                          f"--kready-namespaces={baseline_app.name}")
    assert verdicts(doc) == {check: "not-applicable" for check in CHECKS}, text
    for f in doc["findings"]:
        assert "readonly mode creates no pods" in f["summary"]
    assert "5 skipped" in text
    pods = baseline_app.api.raw("GET", f"/api/v1/namespaces/{baseline_app.name}/pods")["items"]
    assert [p["metadata"]["name"] for p in pods] == ["web"]


FAKE_CANARY = """
from pytest_kready.checks import network as audit

def _not_enforced(self):
    return audit.Enforcement(False, "the CNI does not enforce NetworkPolicy: (simulated by the test)")

audit.NetworkAudit._run_canary = _not_enforced
"""


def test_without_enforcement_every_other_check_is_inconclusive(pytester, monkeypatch, baseline_app):
    pytester.makepyfile(kready_fake_canary=FAKE_CANARY)
    doc, text = run_suite(pytester, monkeypatch, 0, "--kready-mode=standard", "-p", "kready_fake_canary",
                          f"--kready-namespaces={baseline_app.name}")
    assert verdicts(doc) == {"network.enforcement": "fail", **{c: "inconclusive" for c in CHECKS[1:]}}, text
    for f in doc["findings"]:
        if f["check_id"] != "network.enforcement":
            assert f["summary"].startswith("the CNI does not enforce NetworkPolicy, so no network check can conclude")
    assert found_severity(doc, "network.enforcement") == "critical"
    assert "INCONCLUSIVE" in text


def found_severity(doc: dict, check: str) -> str:
    return by_check(doc)[check][0]["severity"]
