"""The resilience suites (rollout under load, disruption budgets, probes, PVC reclaim, etcd snapshot/restore) run
by the plugin against the real local clusters, each beside a negative control that flips its verdict:

* rollout.zero-downtime passes with the reference workload; the same workload without readiness and preStop loses
  requests on the same cluster (fail);
* disruption.pdb and probes.separate fail on workloads without a budget / with liveness == readiness or no
  readiness, and pass once those are fixed; disruption.pdb-eviction passes with its built-in control;
* storage.pvc-reclaim fails on baseline's default class (Delete) and passes on hardened's (Retain) and on a Retain
  class named by --kready-storage-classes on the baseline cluster;
* on a cluster of their own (slot 3, started and stopped here): rollout.zero-downtime-target passes on a safe
  Deployment and fails on an unsafe one; etcd.snapshot-restore passes, and fails when the "restore" restores nothing.

Slots 0 (baseline) and 1 (hardened) are shared: nothing here stops them or touches their etcd.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.utils import create_from_dict

# imported here, before pytester snapshots sys.modules: a module first imported inside a pytester test is dropped
# afterwards and imported again later, and cryptography's classes then stop matching ("curve must be an
# EllipticCurve instance" when the slot-3 cluster writes its certificates)
from pytest_kready import client as kclient
from pytest_kready.checks import etcd as etcd
from pytest_kready.checks import rollout as rollout
from pytest_kready.findings import Verdict
from pytest_kready.local.bins import bin_dir as default_bin_dir
from pytest_kready.local.cluster import LocalCluster
from pytest_kready.local.layout import Layout
from pytest_kready.providers.base import ClusterAccess
from pytest_kready.providers.local import LocalControlPlane
from pytest_kready.resources import suites_dir

from .kube import AGNHOST, until

pytestmark = pytest.mark.integration

SUITES_DIR = suites_dir()
SLOT = {"baseline": "0", "hardened": "1"}
OWN_SLOT = 3  # the disruptive tests' own cluster


def run_kready(pytester, monkeypatch, suite: str, *, slot: str, profile: str = "baseline", mode: str = "standard",
               extra: tuple[str, ...] = ()) -> tuple[object, dict]:
    """The plugin in a subprocess against the running local cluster on ``slot``; (result, JSON report)."""
    monkeypatch.setenv("KREADY_LOCAL_SLOT", slot)
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(default_bin_dir()))  # pytester's subprocess has its own HOME
    out = pytester.path / f"findings-{uuid.uuid4().hex[:6]}.json"
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        str(SUITES_DIR / suite), "--kready", "--kready-provider=local", f"--kready-profile={profile}",
        f"--kready-mode={mode}", f"--kready-json={out}", "-p", "no:cacheprovider", f"--rootdir={pytester.path}",
        "-q", *extra, timeout=600)
    assert out.is_file(), "\n".join(result.outlines[-40:])
    return result, json.loads(out.read_text())


def findings(report: dict, check_id: str) -> list[dict]:
    return [f for f in report["findings"] if f["check_id"] == check_id]


def only(report: dict, check_id: str) -> dict:
    found = findings(report, check_id)
    assert len(found) == 1, found
    return found[0]


def by_workload(report: dict, check_id: str) -> dict[str, dict]:
    return {f["evidence"]["workload"]: f for f in findings(report, check_id)}


def kready_api(kubeconfig: Path, **kw):
    return kclient.new_api_client(ClusterAccess(Path(kubeconfig)), **kw)


def show(f: dict) -> str:
    ev = {k: v for k, v in f["evidence"].items() if k not in ("timeline", "workload_spec")}
    return f"{f['verdict']}: {f['summary']}\n{json.dumps(ev, indent=1)[:2500]}"


# --- rollout.zero-downtime --------------------------------------------------------------------------------


def test_rollout_reference_workload_loses_no_request(pytester, monkeypatch, local_cluster):
    result, report = run_kready(pytester, monkeypatch, "test_rollout.py", slot=SLOT["baseline"],
                                extra=("-k", "test_rollout_zero_downtime and not target"))
    f = only(report, "rollout.zero-downtime")
    print(show(f))
    ev = f["evidence"]
    assert f["verdict"] == "pass", show(f)
    assert ev["failed"] == 0 and ev["requests"] >= 100
    assert ev["served_by_revision"]["old"] > 0 and ev["served_by_revision"]["new"] > 0
    assert ev["latency_ms"]["p50"] is not None and ev["latency_ms"]["p99"] >= ev["latency_ms"]["p50"]
    assert ev["workload_spec"]["readinessProbe"] != ev["workload_spec"]["livenessProbe"]
    assert ev["workload_spec"]["preStop"] and ev["workload_spec"]["terminationGracePeriodSeconds"] == 20
    assert "kubectl" in f["repro"] and f["references"]
    result.assert_outcomes(passed=1, deselected=1)


def test_rollout_unsafe_control_loses_requests(local_cluster, ns_factory):
    """The same workload without readiness, preStop and drain, on the same cluster, loses requests: fail."""
    access = ClusterAccess(Path(local_cluster.kubeconfig))
    api = kclient.new_api_client(access)
    ns = ns_factory("rollout-unsafe")
    result = rollout.run_reference(api, lambda: kclient.new_api_client(access, retry_attempts=1), ns, "itest",
                                   AGNHOST, safe=False)
    print(result.verdict, result.summary, json.dumps(result.evidence.get("failure_kinds")))
    assert result.verdict is Verdict.FAIL, result.summary
    assert result.evidence["failed"] > 0 and result.evidence["first_failures"]
    assert result.evidence["workload_spec"]["readinessProbe"] is None
    assert result.evidence["workload_spec"]["preStop"] is None
    assert result.remediation and "readinessProbe" in result.remediation
    api.close()


# --- disruption.pdb, disruption.pdb-eviction, probes.separate ---------------------------------------------


def _app(name: str, kind: str, replicas: int, container: dict) -> dict:
    labels = {"app": name}
    spec = {"replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
        spec["podManagementPolicy"] = "Parallel"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _netexec(**probes) -> dict:
    return {"name": "c", "image": AGNHOST, "imagePullPolicy": "Never", "args": ["netexec"],
            "ports": [{"name": "http", "containerPort": 8080}], **probes}


def test_disruption_and_probes_flip_when_fixed(pytester, monkeypatch, local_cluster, api, ns_factory):
    ns = ns_factory("pdb")
    same = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2}
    for obj in (_app("web", "Deployment", 2, _netexec(readinessProbe=same, livenessProbe=same)),
                _app("db", "StatefulSet", 2, _netexec()),
                _app("single", "Deployment", 1, {"name": "c", "image": AGNHOST, "imagePullPolicy": "Never",
                                                 "args": ["pause"]})):
        create_from_dict(api, obj, namespace=ns)
    apps = client.AppsV1Api(api)
    until(lambda: all((apps.read_namespaced_deployment(n, ns).status.ready_replicas or 0) == r
                      for n, r in (("web", 2), ("single", 1)))
          and (apps.read_namespaced_stateful_set("db", ns).status.ready_replicas or 0) == 2,
          timeout=90, what="workloads ready")

    # before: no budgets, liveness == readiness on web, no readiness on db
    result, report = run_kready(pytester, monkeypatch, "test_disruption.py", slot=SLOT["baseline"],
                                extra=(f"--kready-namespaces={ns}",))
    pdb = by_workload(report, "disruption.pdb")
    probes = by_workload(report, "probes.separate")
    for f in list(pdb.values()) + list(probes.values()):
        print(show(f))
    assert set(pdb) == {"Deployment/web", "StatefulSet/db"}, "single-replica workloads are not judged"
    assert all(f["verdict"] == "fail" and "no PodDisruptionBudget" in f["summary"] for f in pdb.values())
    assert "PodDisruptionBudget" in pdb["Deployment/web"]["remediation"]
    assert set(probes) == {"Deployment/web", "StatefulSet/db"}, "a container without ports and Service is skipped"
    assert probes["Deployment/web"]["verdict"] == "fail" and "same check" in probes["Deployment/web"]["summary"]
    assert probes["StatefulSet/db"]["verdict"] == "fail" and "no readinessProbe" in probes["StatefulSet/db"]["summary"]
    reference = only(report, "disruption.pdb-eviction")
    print(show(reference))
    assert reference["verdict"] == "pass"
    assert reference["evidence"]["control"]["accepted"] is True
    assert reference["evidence"]["breach"] == {**reference["evidence"]["breach"], "accepted": False, "status": 429}
    result.assert_outcomes(passed=1, failed=2)

    # fix them: budgets (db's allows no disruption now), readiness on its own endpoint, then the same run passes
    policy = client.PolicyV1Api(api)
    policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "web"}, "spec": {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "db"}, "spec": {
        "minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}})
    ready = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1}
    apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "readinessProbe": ready}]}}}})
    apps.patch_namespaced_stateful_set("db", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}})

    def settled():
        d, s = apps.read_namespaced_deployment("web", ns), apps.read_namespaced_stateful_set("db", ns)
        budgets = [policy.read_namespaced_pod_disruption_budget(n, ns) for n in ("web", "db")]
        pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app in (web,db)").items
        return ((d.status.observed_generation or 0) >= d.metadata.generation
                and (s.status.observed_generation or 0) >= s.metadata.generation
                and d.status.updated_replicas == 2 and d.status.ready_replicas == 2 and d.status.replicas == 2
                and s.status.updated_replicas == 2 and s.status.ready_replicas == 2
                and s.status.current_revision == s.status.update_revision
                and len(pods) == 4 and not any(p.metadata.deletion_timestamp for p in pods)
                and all(b.status and (b.status.observed_generation or 0) >= b.metadata.generation
                        and b.status.current_healthy == 2 for b in budgets))
    until(settled, timeout=120, what="workloads rolled out with their budgets")
    time.sleep(2)  # and still so a moment later (the budgets' status follows pod events)
    until(settled, timeout=60, what="workloads and budgets settled")

    result, report = run_kready(pytester, monkeypatch, "test_disruption.py", slot=SLOT["baseline"],
                                extra=(f"--kready-namespaces={ns}", "-k", "pdb_coverage or probes"))
    pdb = by_workload(report, "disruption.pdb")
    probes = by_workload(report, "probes.separate")
    for f in list(pdb.values()) + list(probes.values()):
        print(show(f))
    assert {k: f["verdict"] for k, f in pdb.items()} == {"Deployment/web": "pass", "StatefulSet/db": "pass"}
    assert pdb["Deployment/web"]["evidence"]["dry_run_eviction"]["accepted"] is True
    db = pdb["StatefulSet/db"]["evidence"]
    assert db["dry_run_eviction"]["accepted"] is False and db["dry_run_eviction"]["status"] == 429
    assert db["blocks_drain"] is True
    assert {k: f["verdict"] for k, f in probes.items()} == {"Deployment/web": "pass", "StatefulSet/db": "pass"}
    result.assert_outcomes(passed=2, deselected=1)
    # dry runs evicted nothing
    assert len(client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app in (web,db)").items) == 4


# --- storage.pvc-reclaim ----------------------------------------------------------------------------------


@pytest.fixture
def premade_pv(api):
    """An admin's pre-made volume the check must never touch: unlabelled, Available, of the default class
    "standard", reclaim Retain, exactly the size and access mode of the check's claim (so a claim of "standard"
    would bind it rather than provision one). Yields a function asserting it is unchanged; deleted at the end."""
    core = client.CoreV1Api(api)
    name = f"kready-itest-premade-{uuid.uuid4().hex[:6]}"
    path = Path("/tmp") / name
    core.create_persistent_volume({"metadata": {"name": name}, "spec": {
        "storageClassName": "standard", "capacity": {"storage": "16Mi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}})
    try:
        before = until(lambda: (pv := core.read_persistent_volume(name)).status.phase == "Available" and pv,
                       timeout=30, what=f"pre-made volume {name} Available")

        def unchanged() -> None:
            pv = core.read_persistent_volume(name)
            seen = {"resourceVersion": pv.metadata.resource_version, "phase": pv.status.phase,
                    "claimRef": pv.spec.claim_ref, "labels": pv.metadata.labels, "annotations": pv.metadata.annotations,
                    "reclaimPolicy": pv.spec.persistent_volume_reclaim_policy}
            assert seen == {"resourceVersion": before.metadata.resource_version, "phase": "Available",
                            "claimRef": None, "labels": None, "annotations": None, "reclaimPolicy": "Retain"}, seen

        yield unchanged
    finally:
        try:
            core.delete_persistent_volume(name)
        except client.ApiException as e:
            if e.status != 404:
                raise
        if path.is_dir():  # only if some pod mounted it (the code before the fix)
            shutil.rmtree(path, ignore_errors=True)


def test_pvc_reclaim_baseline_delete_fails_named_retain_class_passes(pytester, monkeypatch, local_cluster, api,
                                                                      premade_pv):
    storage = client.StorageV1Api(api)
    name = f"kready-itest-retain-{uuid.uuid4().hex[:6]}"
    storage.create_storage_class({"metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kready-tests"}},
                                  "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain",
                                  "volumeBindingMode": "WaitForFirstConsumer"})
    try:
        result, report = run_kready(pytester, monkeypatch, "test_storage.py", slot=SLOT["baseline"],
                                    extra=(f"--kready-storage-classes={name}",))
    finally:
        storage.delete_storage_class(name)
    premade_pv()
    found = {f["evidence"]["storage_class"]: f for f in findings(report, "storage.pvc-reclaim")}
    for f in found.values():
        print(show(f))
    assert set(found) == {"standard", name}
    default = found["standard"]
    assert default["verdict"] == "fail" and "StorageClass standard" in default["summary"]
    assert "Delete" in default["summary"] and default["evidence"]["volume_after_claim_deletion"] == "deleted"
    assert "Retain" in default["remediation"] and "kubectl get storageclass standard" in default["repro"]
    named = found[name]
    assert named["verdict"] == "pass"
    assert named["evidence"]["volume_after_claim_deletion"]["phase"] == "Released"
    assert named["evidence"]["marker_read"] == named["evidence"]["marker_written"]
    result.assert_outcomes(failed=1)
    _no_volumes_left(api, report)
    premade_pv()  # still unchanged after the cleanup
    _claimed_through_copies(api, report)


@pytest.mark.local_profile("hardened")
def test_pvc_reclaim_hardened_retain_passes(pytester, monkeypatch, local_cluster, api, premade_pv):
    result, report = run_kready(pytester, monkeypatch, "test_storage.py", slot=SLOT["hardened"],
                                profile="hardened")
    premade_pv()
    f = only(report, "storage.pvc-reclaim")
    print(show(f))
    assert f["verdict"] == "pass" and f["evidence"]["storage_class"] == "standard"
    assert f["evidence"]["class_reclaim_policy"] == "Retain"
    assert f["evidence"]["volume_after_claim_deletion"]["phase"] == "Released"
    assert f["evidence"]["marker_read"] == f["evidence"]["marker_written"]
    result.assert_outcomes(passed=1)
    _no_volumes_left(api, report)
    premade_pv()  # still unchanged after the cleanup
    _claimed_through_copies(api, report)


def _claimed_through_copies(api, report: dict) -> None:
    """Each class was claimed through its own labelled throw-away copy, gone after the run; the volumes were the
    copies' own (provisioned-by the class's provisioner)."""
    storage = client.StorageV1Api(api)
    for f in findings(report, "storage.pvc-reclaim"):
        copy = f["evidence"]["claimed_through"]
        assert copy.startswith("kr-sc-") and copy != f["evidence"]["storage_class"]
        made = f["evidence"]["copy"]
        assert made["name"] == copy and made["labels"] == {"app.kubernetes.io/managed-by": "pytest-kready",
                                                           "kready.dev/run-id": report["run"]["run_id"]}
        assert (made["provisioner"], made["reclaimPolicy"], made["volumeBindingMode"]) == (
            f["evidence"]["provisioner"], f["evidence"]["class_reclaim_policy"], "WaitForFirstConsumer")
        assert f["evidence"]["volume"]["storageClassName"] == copy
        assert f["evidence"]["volume"]["provisionedBy"] == f["evidence"]["provisioner"]
        assert f["evidence"]["cleanup_volume"].endswith("deleted"), f["evidence"]["cleanup_volume"]
        until(lambda: not [c for c in storage.list_storage_class().items if c.metadata.name == copy],
              timeout=60, what=f"throw-away StorageClass {copy} deleted")


def _no_volumes_left(api, report: dict) -> None:
    """The check deleted its claims and, with them, the volumes and their data."""
    namespaces = {f["target_namespace"] for f in findings(report, "storage.pvc-reclaim")}
    paths = [f["evidence"]["volume"]["source"]["hostPath"]["path"] for f in findings(report, "storage.pvc-reclaim")]

    def clean():
        pvs = client.CoreV1Api(api).list_persistent_volume().items
        return not [pv for pv in pvs if pv.spec.claim_ref and pv.spec.claim_ref.namespace in namespaces]
    until(clean, timeout=60, what="no volume of the check's claims left")
    until(lambda: not any(Path(p).exists() for p in paths), timeout=60, what="volume directories removed")


# --- a cluster of our own (slot 3): rollout of a user's Deployment, etcd snapshot/restore -------------------


@pytest.fixture(scope="module")
def own_cluster():
    """A baseline local cluster on slot 3 for the disruptive checks; stopped at the end of the module."""
    cluster = LocalCluster(default_bin_dir(), profile="baseline", layout=Layout(slot=OWN_SLOT))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def _user_app(api, ns: str, *, safe: bool) -> None:
    deployment, service = rollout.reference_workload("user", AGNHOST, name="shop", safe=safe)
    for obj in (deployment, service):
        obj["metadata"] = {"name": "shop", "labels": {"app.kubernetes.io/name": "shop"}}  # not the plugin's
        create_from_dict(api, obj, namespace=ns)


@pytest.mark.parametrize("safe", [False, True], ids=["unsafe-fails", "safe-passes"])
def test_rollout_target_user_deployment(pytester, monkeypatch, own_cluster, safe):
    api = config.new_client_from_config(config_file=str(own_cluster.kubeconfig))
    ns = f"shop-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    _user_app(api, ns, safe=safe)
    apps = client.AppsV1Api(api)
    until(lambda: (apps.read_namespaced_deployment("shop", ns).status.available_replicas or 0) == 3, timeout=90,
          what="user Deployment available")
    result, report = run_kready(pytester, monkeypatch, "test_rollout.py", slot=str(OWN_SLOT), mode="disruptive",
                                extra=(f"--kready-rollout-target={ns}/shop", "--kready-rollout-path=/hostname",
                                       "-k", "target"))
    f = only(report, "rollout.zero-downtime-target")
    print(show(f))
    assert f["target_namespace"] == ns and f["evidence"]["service"] == f"{ns}/shop:8080"
    assert f["evidence"]["path"] == "/hostname"
    assert "kubectl -n" in f["repro"] and "rollout restart" in f["repro"]
    if safe:
        assert f["verdict"] == "pass" and f["evidence"]["failed"] == 0
        result.assert_outcomes(passed=1, deselected=1)
    else:
        assert f["verdict"] == "fail" and f["evidence"]["failed"] > 0
        result.assert_outcomes(failed=1, deselected=1)
    annotations = apps.read_namespaced_deployment("shop", ns).spec.template.metadata.annotations or {}
    assert "kubectl.kubernetes.io/restartedAt" in annotations, "restarted as kubectl rollout restart does"
    client.CoreV1Api(api).delete_namespace(ns)


def test_etcd_snapshot_restore_on_own_cluster(pytester, monkeypatch, own_cluster):
    result, report = run_kready(pytester, monkeypatch, "test_etcd.py", slot=str(OWN_SLOT), mode="disruptive",
                                extra=("--kready-allow-etcd-restore",))  # the harness's cluster, not the run's
    f = only(report, "etcd.snapshot-restore")
    print(show(f))
    ev = f["evidence"]
    assert f["verdict"] == "pass", show(f)
    assert ev["after_restore"] == {"marker_a": "present", "marker_b": "absent"}
    assert ev["restore_seconds"] > 0 and ev["data_dir_after"] != ev["data_dir_before"]
    assert not Path(ev["snapshot"]).exists(), "the snapshot file is removed afterwards"
    result.assert_outcomes(passed=1)


class _RestoresNothing:
    """The negative control: a control plane whose "restore" leaves etcd as it is."""

    def __init__(self, cp):
        self.cp, self.etcd, self.audit_log = cp, cp.etcd, cp.audit_log

    def run(self, argv, **kw):
        return self.cp.run(argv, **kw)

    def read_file(self, path):
        return self.cp.read_file(path)

    def restore_etcd(self, snapshot, *, timeout=180):
        return None


def test_etcd_restore_that_restores_nothing_fails(own_cluster):
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(own_cluster.kubeconfig)))
    ns = f"etcd-neg-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    api = kready_api(own_cluster.kubeconfig)
    cp = LocalControlPlane(own_cluster)
    result = etcd.run_drill(api, lambda: kready_api(own_cluster.kubeconfig, retry_attempts=1), _RestoresNothing(cp),
                            ns, "itest")
    print(result.verdict, result.summary, result.evidence)
    assert result.verdict is Verdict.FAIL
    assert "marker B" in result.summary and "did not roll back" in result.summary
    assert result.evidence["after_restore"] == {"marker_a": "present", "marker_b": "present"}
    api.close()
    core.delete_namespace(ns)
