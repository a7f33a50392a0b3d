"""The CI path on the real local clusters, for both profiles: ``pytest --kready --kready-provider=local
--kready-apply=team/ --kready-namespaces=shop``. The team's directory (a Namespace, a Deployment and a Service in
separate files in nested folders, a NetworkPolicy) is applied first, waited for, and only then are the named
namespaces checked: the findings are about ``shop``. A Deployment that never becomes available stops the run with
one line naming it. Slots 0 and 1 are shared: the run attaches to them and leaves them running."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes.client.exceptions import ApiException

from conftest import BIN_DIR, SLOTS
from pytest_kready.resources import suites_dir

from .kube import AGNHOST, until

pytestmark = pytest.mark.integration

SUITES = suites_dir()
SUBSET = (str(SUITES / "test_disruption.py"), str(SUITES / "test_rbac.py"), "-k",
          "probes_separate or token_not_mounted")
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True}


def deployment(name: str, namespace: str, *, image: str = AGNHOST, extra_spec: dict | None = None) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, **(extra_spec or {}),
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "automountServiceAccountToken": False, "securityContext": RESTRICTED_POD,
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{
                         "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                         "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080, "name": "http"}],
                         "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 2},
                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                       "limits": {"cpu": "200m", "memory": "64Mi"}},
                         "securityContext": RESTRICTED_CONTAINER}]}}}}, indent=1)


def write_team(root, namespace: str = "shop", *, image: str = AGNHOST, extra_spec: dict | None = None):
    """team/: the Namespace last in path order (the loader must still apply it first), the Deployment and the
    Service in separate files in nested folders, a NetworkPolicy."""
    team = root / "team"
    files = {
        "apps/web/deployment.yaml": deployment("web", namespace, image=image, extra_spec=extra_spec),
        "apps/web/service.yaml": f"apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {namespace}}}\n"
                                 "spec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n",
        "policies/network/default-deny.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                              f"metadata: {{name: default-deny-ingress, namespace: {namespace}}}\n"
                                              "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
        "zz-namespaces/shop.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n",
    }
    for rel, text in files.items():
        (team / rel).parent.mkdir(parents=True, exist_ok=True)
        (team / rel).write_text(text)
    return team


def absent(core, name: str) -> None:
    """``name`` must not exist before the run (a left-over from an aborted earlier run is removed first)."""
    try:
        ns = core.read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return
        raise
    if (ns.metadata.labels or {}).get("app.kubernetes.io/managed-by") != "pytest-kready":
        pytest.fail(f"namespace {name} exists and is not a left-over of this plugin; remove it by hand")
    if not ns.metadata.deletion_timestamp:
        core.delete_namespace(name)
    until(lambda: not any(n.metadata.name == name for n in core.list_namespace().items), timeout=180,
          what=f"namespace {name} gone")


def run(pytester, monkeypatch, profile: str, *args: str, timeout: float = 900):
    monkeypatch.setenv("KREADY_LOCAL_SLOT", str(SLOTS[profile]))
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(BIN_DIR))  # pytester's subprocess has its own HOME
    pytester.makeini("[pytest]\n")
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", f"--rootdir={pytester.path}",
                                         timeout=timeout)


@pytest.mark.parametrize("profile", [
    pytest.param("baseline", marks=pytest.mark.local_profile("baseline")),
    pytest.param("hardened", marks=pytest.mark.local_profile("hardened")),
])
def test_apply_a_team_directory_then_check_its_namespace(pytester, monkeypatch, local_cluster, core, profile):
    absent(core, "shop")
    write_team(pytester.path)
    out = pytester.path / "findings.json"
    result = run(pytester, monkeypatch, profile,
                 "--kready", "--kready-provider=local", f"--kready-profile={profile}", "--kready-apply=team/",
                 "--kready-namespaces=shop", *SUBSET, f"--kready-json={out}")
    text = result.stdout.str() + result.stderr.str()
    assert "does not exist in the cluster" not in text and "no such file" not in text, text
    assert result.ret in (0, 1), text  # the checks ran (a fail is a verdict about shop, not a stop)
    assert "kready: applied 4 object(s) from" in text, text
    doc = json.loads(out.read_text())
    findings = doc["findings"]
    assert {f["check_id"] for f in findings} == {"probes.separate", "rbac.token-automount"}, findings
    assert all(f["target_namespace"] == "shop" for f in findings), findings
    probes = [f for f in findings if f["check_id"] == "probes.separate"]
    # the Deployment was there, applied and judged: readiness present and distinct from liveness
    assert [(f["verdict"], f["evidence"]["workload"]) for f in probes] == [("pass", "Deployment/web")], probes
    # what the run applied (it created shop) goes with it; the shared cluster stays up
    until(lambda: not any(n.metadata.name == "shop" for n in core.list_namespace().items), timeout=180,
          what="namespace shop deleted by the run's cleanup")
    assert local_cluster.running_profile() == profile


@pytest.mark.local_profile("baseline")
def test_a_deployment_that_never_becomes_available_stops_the_run_with_one_line(pytester, monkeypatch,
                                                                                local_cluster, core):
    ns = f"shop-stuck-{uuid.uuid4().hex[:4]}"
    write_team(pytester.path, ns, image="registry.invalid/kready/none:0",
               extra_spec={"progressDeadlineSeconds": 15})
    result = run(pytester, monkeypatch, "baseline",
                 "--kready", "--kready-provider=local", "--kready-profile=baseline", "--kready-apply=team/",
                 f"--kready-namespaces={ns}", *SUBSET, timeout=600)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 2, text  # stopped before its checks (exit status 2), not a verdict
    lines = [l for l in text.splitlines() if "kready: --kready-apply" in l]
    assert len(lines) == 1, text
    assert f"Deployment {ns}/web" in lines[0] and "will not become available" in lines[0], lines
    assert "ProgressDeadlineExceeded" in lines[0], lines
    assert "Traceback" not in text, text
    # what the stopped run created is removed (the shared cluster outlives it)
    until(lambda: not any(n.metadata.name == ns for n in core.list_namespace().items), timeout=180,
          what=f"namespace {ns} removed after the stopped run")
