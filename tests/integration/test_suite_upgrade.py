"""The upgrade suite (``--kready-upgrade-to``, issue 13) run by the plugin against the real local clusters of slots 0
and 1 (shared: everything made here is deleted at the end, the fail-closed webhook at once after the run):

* the reference cluster (nothing added) passes every upgrade check; the backup drill is not-applicable there (an
  attached cluster, not disruptive mode), and every positive control is seen working (this run's own request to a
  deprecated CRD version counted by the API server and judged a problem, the throw-away CRD stored in a deprecated
  version flagged);
* a fail-closed webhook with a live backend passes (the API server counted its call), one that answers slower than
  its timeoutSeconds fails "timed out";
* on the hardened cluster of slot 1 (it writes an audit log), the client of a deprecated version is named by its
  user agent;
* on an existing cluster named by its kubeconfig (readonly, the upgrade gate's real use), each blocker fails its
  check by name: a client request to a deprecated CRD version (upgrade.removed-apis), a CRD whose storedVersions
  holds a version no longer served (upgrade.crd-stored-versions), a PodDisruptionBudget with maxUnavailable: 0
  over a Deployment (upgrade.drain), a failurePolicy Fail webhook whose Service has no endpoints
  (upgrade.webhooks); upgrade.backup is not-applicable on a kubeconfig cluster.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from kubernetes import client

from pytest_kready.local.bins import bin_dir as default_bin_dir
from pytest_kready.local.pki import (
    CA,  # imported before pytester snapshots sys.modules (cryptography's classes)
)
from pytest_kready.resources import suites_dir

from .kube import AGNHOST, until

pytestmark = pytest.mark.integration

SUITE = str(suites_dir() / "test_upgrade.py")
CHECKS = ("upgrade.removed-apis", "upgrade.crd-stored-versions", "upgrade.drain", "upgrade.webhooks",
          "upgrade.version-skew", "upgrade.backup")
REFERENCE_NAMESPACES = "default,kube-system,local-path-storage"  # what the reference cluster itself holds


def run_upgrade(pytester, monkeypatch, *args: str, slot: str = "0") -> tuple[object, dict]:
    """The plugin in a subprocess with the upgrade suite only; (result, JSON report)."""
    monkeypatch.setenv("KREADY_LOCAL_SLOT", slot)
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(default_bin_dir()))
    out = pytester.path / f"findings-{uuid.uuid4().hex[:6]}.json"
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(SUITE, "--kready", f"--kready-json={out}", "-p", "no:cacheprovider",
                                           f"--rootdir={pytester.path}", "-q", *args, timeout=600)
    assert out.is_file(), "\n".join(result.outlines[-40:])
    return result, json.loads(out.read_text())


def by_check(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        out.setdefault(f["check_id"], []).append(f)
    return out


def show(f: dict) -> str:
    return f"{f['check_id']} {f['verdict']}: {f['summary']}\n{json.dumps(f['evidence'], indent=1)[:2500]}"


def control_crds(ext) -> list[str]:
    return [c.metadata.name for c in ext.list_custom_resource_definition().items
            if c.spec.group.endswith(".upgrade.kready.dev")]


# --- the reference cluster ------------------------------------------------------------------------------------


def test_reference_cluster_passes_every_upgrade_check(pytester, monkeypatch, local_cluster, api):
    """Standard mode on slot 0 (attached), scoped to the reference cluster's own namespaces (the cluster is shared:
    other engineers' objects come and go elsewhere)."""
    result, report = run_upgrade(pytester, monkeypatch, "--kready-provider=local", "--kready-profile=baseline",
                                 "--kready-mode=standard", "--kready-upgrade-to=1.37",
                                 f"--kready-namespaces={REFERENCE_NAMESPACES}")
    found = by_check(report)
    for f in report["findings"]:
        print(show(f))
    assert set(found) == set(CHECKS)
    for check in CHECKS[:-1]:
        assert [f["verdict"] for f in found[check]] == ["pass"] * len(found[check]), check

    removed = found["upgrade.removed-apis"][0]["evidence"]
    assert removed["control"]["counted"] is True and removed["control"]["judged_as_problem"] is True
    assert removed["control"]["series"].endswith(".upgrade.kready.dev/v1beta1 upgradeprobes")
    assert removed["requested_removed"] == []
    stored = found["upgrade.crd-stored-versions"][0]["evidence"]["control"]
    assert stored["stored"] == ["v1beta1"] and stored["flagged"] == ["v1beta1 is stored and deprecated"]

    drain = found["upgrade.drain"][0]["evidence"]
    assert drain["evicted_dry_run"] >= 2 and drain["stalls"] == []
    assert {d["workload"] for d in drain["downtime_while_draining"]} >= {"Deployment kube-system/coredns"}
    assert all(d["severity"] == "low" for d in drain["downtime_while_draining"])

    skew = found["upgrade.version-skew"][0]
    assert skew["evidence"]["current"] == "1.36" and skew["evidence"]["problems"] == []
    seen = skew["evidence"]["seen"]
    assert seen["kube-proxy"] and seen["kube-controller-manager"] and seen["kube-scheduler"]  # control plane read
    assert "2027-10-28" in skew["summary"]

    backup = found["upgrade.backup"][0]
    assert backup["verdict"] == "not-applicable" and "disruptive" in backup["summary"]
    result.assert_outcomes(passed=5, skipped=1)
    assert control_crds(client.ApiextensionsV1Api(api)) == [], "the run's throw-away CRDs are gone"


# --- blockers on an existing cluster (kubeconfig, readonly) -------------------------------------------------------


def _crd(group: str, plural: str, versions: list[dict]) -> dict:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/managed-by": "kready-tests"}},
            "spec": {"group": group, "scope": "Cluster",
                     "names": {"plural": plural, "singular": plural[:-1], "kind": plural[:-1].capitalize()},
                     "versions": [{**v, "schema": schema} for v in versions]}}


def _established(ext, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


@pytest.fixture
def blockers(local_cluster, api, ns_factory):
    """Everything that should stop an upgrade, in one throw-away namespace (and cluster-scoped objects tied to
    it); yields their names, deletes them all afterwards."""
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    ext, adm, custom = client.ApiextensionsV1Api(api), client.AdmissionregistrationV1Api(api), client.CustomObjectsApi(api)
    tag = uuid.uuid4().hex[:6]
    ns = ns_factory("upgrade")
    names = {"ns": ns, "requested_group": f"r{tag}.upgrade-test.example.com",
             "stored_group": f"s{tag}.upgrade-test.example.com", "webhook": f"kready-itest-{tag}",
             "webhook_name": f"closed.{tag}.upgrade-test.example.com"}
    made_crds: list[str] = []
    webhook_made = False
    try:
        # a Deployment under a budget that never allows a disruption
        app = {"app": "guarded"}
        apps.create_namespaced_deployment(ns, {"metadata": {"name": "guarded"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": app}, "template": {"metadata": {"labels": app}, "spec": {
                "terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "c", "image": AGNHOST, "imagePullPolicy": "Never", "args": ["pause"]}]}}}})
        policy.create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": "guarded"}, "spec": {
            "maxUnavailable": 0, "selector": {"matchLabels": app}}})

        # a CRD with a deprecated version, and a client requesting it
        requested = _crd(names["requested_group"], "widgets", [
            {"name": "v1", "served": True, "storage": True},
            {"name": "v1beta1", "served": True, "storage": False, "deprecated": True}])
        ext.create_custom_resource_definition(requested)
        made_crds.append(requested["metadata"]["name"])
        # a CRD whose objects are stored in a version it no longer serves
        stored = _crd(names["stored_group"], "gadgets", [{"name": "v1alpha1", "served": True, "storage": True}])
        ext.create_custom_resource_definition(stored)
        made_crds.append(stored["metadata"]["name"])
        until(lambda: all(_established(ext, n) for n in made_crds), timeout=60, what="test CRDs established")
        until(lambda: custom.create_cluster_custom_object(names["stored_group"], "v1alpha1", "gadgets", {
            "apiVersion": f"{names['stored_group']}/v1alpha1", "kind": "Gadget", "metadata": {"name": "old"}}),
            timeout=30, what="an object stored in v1alpha1")
        ext.patch_custom_resource_definition(stored["metadata"]["name"], {"spec": {"versions": [
            {"name": "v1alpha1", "served": False, "storage": False, "schema": stored["spec"]["versions"][0]["schema"]},
            {"name": "v1", "served": True, "storage": True, "schema": stored["spec"]["versions"][0]["schema"]}]}})
        until(lambda: ext.read_custom_resource_definition(stored["metadata"]["name"]).status.stored_versions
              == ["v1alpha1", "v1"], timeout=30, what="storedVersions [v1alpha1, v1]")
        until(lambda: custom.list_cluster_custom_object(names["requested_group"], "v1beta1", "widgets") is not None,
              timeout=30, what="a client request to the deprecated widgets v1beta1")

        until(lambda: (apps.read_namespaced_deployment("guarded", ns).status.ready_replicas or 0) == 2
              and (pdb := policy.read_namespaced_pod_disruption_budget("guarded", ns)).status
              and pdb.status.current_healthy == 2 and pdb.status.disruptions_allowed == 0,
              timeout=120, what="Deployment guarded ready under its budget")
        until(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns), timeout=30,
              what="the namespace's root CA ConfigMap (made before the webhook can refuse it)")

        # a fail-closed webhook whose Service has no endpoints, seeing only ConfigMap creates in this namespace
        core.create_namespaced_service(ns, {"metadata": {"name": "no-backend"}, "spec": {
            "selector": {"app": "nothing-runs-here"}, "ports": [{"port": 443, "targetPort": 8443}]}})
        adm.create_validating_webhook_configuration({
            "metadata": {"name": names["webhook"], "labels": {"app.kubernetes.io/managed-by": "kready-tests"}},
            "webhooks": [{"name": names["webhook_name"], "failurePolicy": "Fail", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
                          "clientConfig": {"service": {"namespace": ns, "name": "no-backend", "path": "/validate"}},
                          "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"], "scope": "Namespaced"}]}]})
        webhook_made = True
        yield names
    finally:
        deletes = [lambda n=n: ext.delete_custom_resource_definition(n) for n in made_crds]
        if webhook_made:
            deletes.insert(0, lambda: adm.delete_validating_webhook_configuration(names["webhook"]))
        for delete in deletes:
            _ignore_missing(delete)


def _ignore_missing(delete) -> None:
    try:
        delete()
    except client.ApiException as e:
        if e.status != 404:
            raise


def test_each_upgrade_blocker_fails_its_check(pytester, monkeypatch, local_cluster, api, blockers):
    ns = blockers["ns"]
    try:
        result, report = run_upgrade(pytester, monkeypatch, f"--kready-kubeconfig={local_cluster.kubeconfig}",
                                     "--kready-upgrade-to=1.37", f"--kready-namespaces={ns}")
    finally:  # the fail-closed webhook goes at once (the fixture's second delete finds it gone)
        _ignore_missing(lambda: client.AdmissionregistrationV1Api(api).delete_validating_webhook_configuration(
            blockers["webhook"]))
    found = by_check(report)
    for f in report["findings"]:
        print(show(f))
    assert report["run"]["mode"] == "readonly"

    removed = found["upgrade.removed-apis"]
    assert [f["verdict"] for f in removed] == ["fail"]
    assert f"{blockers['requested_group']}/v1beta1 widgets" in removed[0]["summary"]
    problem = next(p for p in removed[0]["evidence"]["requested_removed"] if p["group"] == blockers["requested_group"])
    assert problem["crd"] == f"widgets.{blockers['requested_group']}" and problem["replacement"] == "v1"
    assert removed[0]["severity"] == "medium"
    assert removed[0]["evidence"]["control"]["why"]  # readonly: no throw-away CRD, said so

    stored = [f for f in found["upgrade.crd-stored-versions"] if f["verdict"] != "pass"]
    assert [(f["verdict"], f["evidence"]["crd"]) for f in stored] == [("fail", f"gadgets.{blockers['stored_group']}")]
    assert "v1alpha1 is stored but no longer served" in stored[0]["summary"]
    assert "storedVersions" in stored[0]["remediation"]

    drain = found["upgrade.drain"]
    assert [f["verdict"] for f in drain] == ["fail"]
    assert f"PodDisruptionBudget {ns}/guarded allows 0 disruption(s)" in drain[0]["summary"]
    stall = drain[0]["evidence"]["stalls"][0]
    assert stall["status"] == 429 and stall["pod"].startswith(f"{ns}/guarded-")
    assert stall["budgets"][0]["maxUnavailable"] == 0

    webhooks = found["upgrade.webhooks"]
    assert [f["verdict"] for f in webhooks] == ["fail"]
    assert blockers["webhook_name"] in webhooks[0]["summary"]
    assert "0 ready endpoint(s)" in webhooks[0]["summary"]
    probe = webhooks[0]["evidence"]["probe"]  # the dry-run create it intercepts was refused calling it
    assert probe["request"] == f"create ConfigMap in {ns}" and probe["status"] == 500 and probe["problem"]
    assert "timed out" not in probe["problem"] and probe["webhook_calls_counted"] >= 1
    assert webhooks[0]["evidence"]["intercepts_kube_system"] is False

    assert [f["verdict"] for f in found["upgrade.version-skew"]] == ["pass"]
    backup = found["upgrade.backup"]
    assert [f["verdict"] for f in backup] == ["not-applicable"]
    result.assert_outcomes(passed=1, failed=4, skipped=1)
    # dry runs changed nothing: both pods still there, nothing was created in the namespace
    core = client.CoreV1Api(api)
    assert len(core.list_namespaced_pod(ns, label_selector="app=guarded").items) == 2
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["kube-root-ca.crt"]


# --- who requested it: the audit log (hardened profile: the API server writes one) --------------------------------


@pytest.mark.local_profile("hardened")
def test_the_audit_log_names_the_client_of_a_deprecated_version(pytester, monkeypatch, local_cluster, api):
    """On the hardened cluster (slot 1: an audit log at Metadata level, read through the control plane), a client
    with its own user agent requests a deprecated CRD version: upgrade.removed-apis fails naming that user agent."""
    ext, custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)
    group = f"a{uuid.uuid4().hex[:6]}.upgrade-test.example.com"
    crd = _crd(group, "widgets", [{"name": "v1", "served": True, "storage": True},
                                  {"name": "v1beta1", "served": True, "storage": False, "deprecated": True}])
    agent = f"upgrade-itest-client/{group.split('.')[0]}"
    ext.create_custom_resource_definition(crd)
    try:
        until(lambda: _established(ext, crd["metadata"]["name"]), timeout=60, what="test CRD established")
        api.user_agent = agent
        until(lambda: custom.list_cluster_custom_object(group, "v1beta1", "widgets") is not None, timeout=30,
              what="a request to the deprecated widgets v1beta1")
        result, report = run_upgrade(pytester, monkeypatch, "--kready-provider=local", "--kready-profile=hardened",
                                     "--kready-mode=readonly", "--kready-upgrade-to=1.37", "-k", "removed_apis",
                                     slot="1")
    finally:
        _ignore_missing(lambda: ext.delete_custom_resource_definition(crd["metadata"]["name"]))
    [f] = by_check(report)["upgrade.removed-apis"]
    print(show(f))
    assert f["verdict"] == "fail" and f"{group}/v1beta1 widgets" in f["summary"] and agent in f["summary"]
    problem = next(p for p in f["evidence"]["requested_removed"] if p["group"] == group)
    assert problem["seen_in"] == ["metric", "audit log"]
    [requests] = [c["requests"] for c in problem["clients"] if c["user_agent"] == agent]
    assert requests >= 1  # (a first try may come before the new version is served: 404, audited too)
    assert f["evidence"]["audit_log"].endswith("deprecated request(s) recorded")
    result.assert_outcomes(failed=1, deselected=6)  # the five other checks and the rehearsal step


# --- webhooks with a live backend --------------------------------------------------------------------------------


@pytest.fixture
def webhook_server(local_cluster, tmp_path):
    """agnhost's admission webhook server (TLS on 127.0.0.1 inside the cluster's network namespace, where the API
    server runs; this local cluster's API server reaches no Service ClusterIP): yields (base URL, CA bundle)."""
    import random
    import subprocess

    from pytest_kready.local.netns import in_netns

    ca = CA(tmp_path, "ca", "kready-itest-webhook-ca")
    pair = ca.issue("webhook", "127.0.0.1", server=True, ips=("127.0.0.1",))
    port = random.randint(20000, 29999)
    log = (tmp_path / "agnhost.log").open("wb")
    proc = subprocess.Popen(in_netns(local_cluster.layout, [
        str(local_cluster.bin / "agnhost"), "webhook", f"--tls-cert-file={pair.cert}",
        f"--tls-private-key-file={pair.key}", f"--port={port}"]), stdout=log, stderr=subprocess.STDOUT)
    try:
        def listening():
            assert proc.poll() is None, (tmp_path / "agnhost.log").read_text()
            probe = subprocess.run(in_netns(local_cluster.layout, ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"]),
                                   capture_output=True, timeout=10, check=False)
            return probe.returncode == 0
        until(listening, timeout=30, what=f"agnhost webhook listening on 127.0.0.1:{port} in the cluster's netns")
        yield f"https://127.0.0.1:{port}", base64.b64encode(ca.pair.cert.read_bytes()).decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_a_live_webhook_passes_and_a_slow_one_fails(pytester, monkeypatch, local_cluster, api, ns_factory,
                                                    webhook_server):
    """Two fail-closed webhooks seeing only ConfigMap creates in a throw-away namespace, served by agnhost:
    /configmaps answers at once (pass: the API server counted the call), /always-allow-delay-5s answers after the
    2 s timeoutSeconds given to it (fail: timed out)."""
    core, adm = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    ns, tag = ns_factory("upgrade-hook"), uuid.uuid4().hex[:6]
    url, ca_bundle = webhook_server
    until(lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns), timeout=30, what="root CA ConfigMap")

    def hook(name: str, path: str, timeout: int) -> dict:
        return {"name": name, "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "timeoutSeconds": timeout, "clientConfig": {"url": f"{url}{path}", "caBundle": ca_bundle},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["configmaps"], "scope": "Namespaced"}]}

    live, slow = f"live.{tag}.upgrade-test.example.com", f"slow.{tag}.upgrade-test.example.com"
    config = f"kready-itest-live-{tag}"
    adm.create_validating_webhook_configuration({
        "metadata": {"name": config, "labels": {"app.kubernetes.io/managed-by": "kready-tests"}},
        "webhooks": [hook(live, "/configmaps", 5), hook(slow, "/always-allow-delay-5s", 2)]})
    try:
        result, report = run_upgrade(pytester, monkeypatch, f"--kready-kubeconfig={local_cluster.kubeconfig}",
                                     "--kready-upgrade-to=1.37", f"--kready-namespaces={ns}", "-k", "webhooks")
    finally:
        _ignore_missing(lambda: adm.delete_validating_webhook_configuration(config))
    found = {f["evidence"]["webhook"]: f for f in by_check(report)["upgrade.webhooks"]}
    for f in found.values():
        print(show(f))
    assert set(found) == {live, slow}
    assert found[live]["verdict"] == "pass", found[live]["summary"]
    probe = found[live]["evidence"]["probe"]
    assert probe["called"] is True and probe["webhook_calls_counted"] >= 1
    assert probe["request"] == f"create ConfigMap in {ns}"
    assert found[live]["evidence"]["backend"] == {"url": f"{url}/configmaps"}
    assert found[slow]["verdict"] == "fail" and "timed out (timeoutSeconds 2)" in found[slow]["summary"]
    result.assert_outcomes(failed=1, deselected=6)  # the five other checks and the rehearsal step
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["kube-root-ca.crt"]
