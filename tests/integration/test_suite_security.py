"""The security suites (pod security, RBAC, admission rules, control plane) run by the plugin against the real
local clusters: baseline (slot 0) and hardened (slot 1). Each check fails on baseline (except where the stock
default is already safe, asserted as pass with the reason in docs/checks-rbac-admission.md) and passes on a
namespace configured as the hardened profile's reference namespace; the positive controls pass on both; seeded
misconfigurations make the RBAC checks whose stock default is safe fail; a readonly run leaves zero new objects.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from pytest_kready.checks import pod_security
from pytest_kready.local.cli import default_bin_dir
from pytest_kready.resources import profile_file, suites_dir

pytestmark = pytest.mark.integration

SUITES_DIR = suites_dir()
SUITES = [str(SUITES_DIR / f) for f in ("test_pod_security.py", "test_rbac.py", "test_admission.py",
                                        "test_control_plane_secrets.py")]
REFERENCE_NS = profile_file("hardened", "namespace")
SLOT = {"baseline": "0", "hardened": "1"}
RUN_ID = "kready.dev/run-id"
# resolved at collection, with the real HOME (pytester gives each test, and its subprocess, a HOME of its own)
BIN_DIR = default_bin_dir()


def run_kready(pytester, monkeypatch, *, profile: str, mode: str, namespaces: list[str], suites=SUITES,
               extra: tuple[str, ...] = ()):
    """The plugin in a subprocess against the running local cluster of ``profile``; returns (result, report)."""
    monkeypatch.setenv("KREADY_LOCAL_SLOT", SLOT[profile])
    # pytester gives the subprocess a HOME of its own: name the binaries (etcdctl) of the running cluster
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(BIN_DIR))
    out = pytester.path / f"findings-{uuid.uuid4().hex[:6]}.json"
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        *suites, "--kready", "--kready-provider=local", f"--kready-profile={profile}", f"--kready-mode={mode}",
        f"--kready-namespaces={','.join(namespaces)}", "--kready-allowed-registries=registry.k8s.io",
        f"--kready-json={out}", "-p", "no:cacheprovider", f"--rootdir={pytester.path}", "-q", *extra, timeout=600)
    assert out.is_file(), "\n".join(result.outlines[-40:])
    return result, json.loads(out.read_text()), out.read_text()


def param_of(nodeid: str) -> str:
    m = re.search(r"\[(.*)\]$", nodeid or "")
    return m.group(1) if m else ""


def verdicts(report: dict) -> dict[tuple[str, str, str | None], str]:
    """(check id, pytest parameter, namespace) → verdict."""
    out = {}
    for f in report["findings"]:
        key = (f["check_id"], param_of(f["nodeid"]), f["target_namespace"])
        assert key not in out, f"two findings for {key}"
        out[key] = f["verdict"]
    return out


def expected_checks(ns: str) -> dict[tuple[str, str, str | None], str]:
    """Every finding the four suites produce for one target namespace, keyed like ``verdicts``."""
    keys = {(a.check_id, a.name, ns) for a in pod_security.ATTACKS}
    keys |= {(pod_security.COMPLIANT_CHECK, "", ns), ("rbac.default-sa-secrets", "", ns), ("rbac.default-sa-exec", "", ns),
             ("rbac.token-automount", "", ns), ("rbac.cluster-admin-subjects", "", None), ("rbac.wildcards", "", None),
             ("rbac.anonymous", "", None), ("rbac.anonymous", "", ns), ("resources.limits", "", ns),
             ("resources.quota", "", ns), ("images.mutable-tag", "latest", ns), ("images.mutable-tag", "untagged", ns),
             ("images.registry", "untrusted-registry", ns), ("images.registry", "docker-hub-short-name", ns),
             ("images.registry", "lookalike-registry", ns)}
    return {k: None for k in keys} | {("etcd.encryption-at-rest", "", "*"): None, ("audit.logging", "", None): None}


def by_check(v: dict) -> dict:
    """Replace the throw-away namespace of etcd.encryption-at-rest by '*' (its name is the run's)."""
    return {((c, p, "*") if c == "etcd.encryption-at-rest" else (c, p, n)): verdict for (c, p, n), verdict in v.items()}


def assert_nothing_left(core: client.CoreV1Api, run_id: str) -> None:
    left = core.list_namespace(label_selector=f"{RUN_ID}={run_id}").items
    assert not left, f"namespaces of run {run_id} left: {[n.metadata.name for n in left]}"


def reference_namespace(api, core, ns_factory) -> str:
    """A namespace configured like profiles/hardened/namespace/*.yaml (PSA restricted, default-deny + DNS,
    LimitRange, ResourceQuota, default ServiceAccount without token automount)."""
    ns_doc = yaml.safe_load((REFERENCE_NS / "namespace.yaml").read_text())
    name = ns_factory("sech", ns_doc["metadata"]["labels"])
    net = client.NetworkingV1Api(api)
    for f in ("networkpolicies.yaml", "limits.yaml"):
        for doc in yaml.safe_load_all((REFERENCE_NS / f).read_text()):
            doc["metadata"]["namespace"] = name
            {"NetworkPolicy": lambda d: net.create_namespaced_network_policy(name, d),
             "LimitRange": lambda d: core.create_namespaced_limit_range(name, d),
             "ResourceQuota": lambda d: core.create_namespaced_resource_quota(name, d)}[doc["kind"]](doc)
    sa = yaml.safe_load((REFERENCE_NS / "serviceaccount.yaml").read_text())
    from integration.kube import until

    until(lambda: core.read_namespaced_service_account("default", name), timeout=30, what="default ServiceAccount")
    core.patch_namespaced_service_account("default", name,
                                          {"automountServiceAccountToken": sa["automountServiceAccountToken"]})
    return name


# --- baseline: everything the stock cluster lets through fails -----------------------------------------------


BASELINE_SAFE = {  # stock defaults that are already safe, so these pass on baseline too (see the docs)
    "rbac.default-sa-secrets", "rbac.default-sa-exec", "rbac.cluster-admin-subjects", "rbac.wildcards",
    "rbac.anonymous", pod_security.COMPLIANT_CHECK,
}


def test_baseline_profile_fails_every_check_it_should(local_cluster, pytester, monkeypatch, core, ns_factory):
    ns = ns_factory("secb")  # a namespace as the cluster gives it: no labels beyond the tests' own
    result, report, text = run_kready(pytester, monkeypatch, profile="baseline", mode="standard", namespaces=[ns])
    got = by_check(verdicts(report))
    assert set(got) == set(expected_checks(ns)), sorted(set(got) ^ set(expected_checks(ns)))
    wrong = {k: v for k, v in got.items() if v != ("pass" if k[0] in BASELINE_SAFE else "fail")}
    assert not wrong, wrong
    assert result.ret == 1
    assert "eyJ" not in text  # no token in the report
    assert_nothing_left(core, report["run_id"])
    # evidence names what was tried and how to reproduce it
    f = next(f for f in report["findings"] if f["check_id"] == "pod-security.privileged")
    assert f["response"]["outcome"] == "accepted" and f["repro"].endswith(f"kubectl create --dry-run=server -n {ns} -f -")
    assert f["remediation"] and "pod-security.kubernetes.io/enforce: restricted" in f["remediation"]
    assert any(r.startswith("CIS Kubernetes Benchmark v1.10 5.2.2") for r in f["references"])
    assert f["evidence"]["cross_check"]["agree"] is True  # standard mode: real create agreed with the dry-run
    etcd = next(f for f in report["findings"] if f["check_id"] == "etcd.encryption-at-rest")
    assert etcd["evidence"]["secret"]["plaintext_value_found"] is True and etcd["evidence"]["secret"]["encrypted"] is False


# --- hardened: a namespace configured as the reference passes everything -------------------------------------


@pytest.mark.local_profile("hardened")
def test_hardened_reference_namespace_passes_every_check(local_cluster, pytester, monkeypatch, api, core, ns_factory):
    ns = reference_namespace(api, core, ns_factory)
    result, report, text = run_kready(pytester, monkeypatch, profile="hardened", mode="standard", namespaces=[ns])
    got = by_check(verdicts(report))
    assert set(got) == set(expected_checks(ns)), sorted(set(got) ^ set(expected_checks(ns)))
    wrong = {k: v for k, v in got.items() if v != "pass"}
    assert not wrong, wrong
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    assert "eyJ" not in text
    assert_nothing_left(core, report["run_id"])
    refusers = {f["response"]["refused_by"] for f in report["findings"]
                if f["check_id"].startswith("pod-security.") and f["check_id"] != pod_security.COMPLIANT_CHECK}
    assert refusers == {"Pod Security Admission (restricted:latest)"}
    images = {f["response"]["refused_by"] for f in report["findings"] if f["check_id"].startswith("images.")}
    assert images == {"ValidatingAdmissionPolicy kready-image-rules, binding kready-image-rules"}
    etcd = next(f for f in report["findings"] if f["check_id"] == "etcd.encryption-at-rest")
    assert etcd["evidence"]["secret"]["prefix"].startswith("k8s:enc:aescbc:v1:")
    assert etcd["evidence"]["secret"]["plaintext_value_found"] is False
    # the value is never printed: only facts about the stored bytes
    assert set(etcd["evidence"]["secret"]) == {"stored_bytes", "prefix", "encrypted", "provider", "plaintext_value_found"}


@pytest.mark.local_profile("hardened")
def test_hardened_profile_has_no_cluster_wide_pod_security_default(local_cluster, pytester, monkeypatch, ns_factory):
    """A fresh namespace on the hardened profile is not protected: the profile enforces Pod Security per namespace
    (reference labels), not by default. The image rules (a cluster-wide ValidatingAdmissionPolicy) still hold."""
    ns = ns_factory("sechf")
    _, report, _ = run_kready(pytester, monkeypatch, profile="hardened", mode="readonly", namespaces=[ns],
                              suites=[SUITES[0], SUITES[2]])
    got = verdicts(report)
    assert got[("pod-security.privileged", "privileged", ns)] == "fail"
    assert got[(pod_security.COMPLIANT_CHECK, "", ns)] == "pass"
    assert got[("images.mutable-tag", "latest", ns)] == "pass"
    assert got[("resources.limits", "", ns)] == "fail"


# --- pod security: every control of the pinned version's Pod Security Admission registry --------------------

PSA_REFUSAL = "Pod Security Admission ({level}:latest)"


def pod_security_findings(report: dict, ns: str) -> dict[str, dict]:
    """Attack pod (pytest parameter) → its finding in ``ns``."""
    return {param_of(f["nodeid"]): f for f in report["findings"]
            if f["target_namespace"] == ns and f["check_id"].startswith("pod-security.")
            and f["check_id"] != pod_security.COMPLIANT_CHECK}


def assert_every_registry_control_tried(found: dict[str, dict]) -> None:
    assert set(found) == {a.name for a in pod_security.ATTACKS}
    probe_host = [f for f in found.values() if f["check_id"] == "pod-security.probe-host"]
    assert len(probe_host) == 11, "probe and lifecycle host attack pods: 10 fields of spec.containers[*], a sidecar"
    tried = {i for f in found.values() for i in f["evidence"].get("psa_checks", ())}
    missing = {c.id for c in pod_security.REGISTRY.applicable} - tried
    assert not missing, f"registry checks of {pod_security.REGISTRY.kubernetes_version} no attack pod tried: {missing}"


@pytest.mark.parametrize("profile", ["baseline", pytest.param("hardened", marks=pytest.mark.local_profile("hardened"))])
def test_pod_security_tries_every_registry_control(local_cluster, pytester, monkeypatch, api, core, ns_factory,
                                                   profile):
    """Baseline: a namespace as the cluster gives it admits every attack pod (probe and lifecycle hosts included):
    fail. Hardened: the reference namespace (enforce restricted) refuses every one; a namespace enforcing baseline
    refuses exactly the attacks of baseline-level registry checks (the host fields among them) and admits the
    restricted-only ones."""
    if profile == "baseline":
        targets = [ns_factory("psb")]
    else:
        targets = [reference_namespace(api, core, ns_factory),
                   ns_factory("psbl", {"pod-security.kubernetes.io/enforce": "baseline"})]
    result, report, _ = run_kready(pytester, monkeypatch, profile=profile, mode="standard", namespaces=targets,
                                   suites=[SUITES[0]])
    got = verdicts(report)
    for ns in targets:
        assert got[(pod_security.COMPLIANT_CHECK, "", ns)] == "pass"
        found = pod_security_findings(report, ns)
        assert_every_registry_control_tried(found)
        if profile == "baseline":
            expected = {a.name: "fail" for a in pod_security.ATTACKS}
        elif ns == targets[0]:
            expected = {a.name: "pass" for a in pod_security.ATTACKS}
        else:
            expected = {a.name: "pass" if a.level == "baseline" else "fail" for a in pod_security.ATTACKS}
        wrong = {name: f["verdict"] for name, f in found.items() if f["verdict"] != expected[name]}
        assert not wrong, (ns, wrong)
        for name, f in found.items():
            assert f["evidence"]["cross_check"]["agree"] is True, (ns, name)  # the real create said the same
            if f["verdict"] == "fail":
                assert f["response"]["outcome"] == "accepted", (ns, name)
            else:
                level = "restricted" if ns == targets[0] else "baseline"
                assert f["response"]["refused_by"] == PSA_REFUSAL.format(level=level), (ns, name)
                if f["check_id"] == "pod-security.probe-host":
                    assert "probe or lifecycle host" in f["response"]["message"], (ns, name)
    assert result.ret == 1  # failing findings on both: baseline's namespace, hardened's baseline-only one
    assert_nothing_left(core, report["run_id"])


# --- stock-safe RBAC checks do fail when the cluster is misconfigured ----------------------------------------


def test_rbac_checks_fail_on_seeded_misconfigurations(local_cluster, pytester, monkeypatch, api, core, ns_factory):
    rbac_api = client.RbacAuthorizationV1Api(api)
    ns = ns_factory("secr")
    tag = uuid.uuid4().hex[:6]
    labels = {"app.kubernetes.io/managed-by": "kready-tests"}
    crb, wild = f"kready-test-alice-{tag}", f"kready-test-wild-{tag}"
    rbac_api.create_namespaced_role_binding(ns, {"metadata": {"name": "default-edit", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]})
    rbac_api.create_namespaced_role(ns, {"metadata": {"name": "anon-list", "labels": labels},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})
    rbac_api.create_namespaced_role_binding(ns, {"metadata": {"name": "anon-list", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "anon-list"},
        "subjects": [{"kind": "User", "name": "system:anonymous", "apiGroup": "rbac.authorization.k8s.io"}]})
    try:
        rbac_api.create_cluster_role_binding({"metadata": {"name": crb, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": f"alice-{tag}", "apiGroup": "rbac.authorization.k8s.io"}]})
        rbac_api.create_cluster_role({"metadata": {"name": wild, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]})
        rbac_api.create_namespaced_role_binding(ns, {"metadata": {"name": "app-wild", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": wild},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]})
        _, report, text = run_kready(pytester, monkeypatch, profile="baseline", mode="readonly", namespaces=[ns],
                                     suites=[SUITES[1]])
    finally:
        for delete in (lambda: rbac_api.delete_cluster_role_binding(crb), lambda: rbac_api.delete_cluster_role(wild)):
            try:
                delete()
            except client.ApiException:
                pass
    got = verdicts(report)
    assert got[("rbac.default-sa-secrets", "", ns)] == "fail"
    assert got[("rbac.default-sa-exec", "", ns)] == "fail"
    assert got[("rbac.cluster-admin-subjects", "", None)] == "fail"
    assert got[("rbac.wildcards", "", None)] == "fail"
    assert got[("rbac.anonymous", "", ns)] == "fail"
    assert got[("rbac.anonymous", "", None)] == "pass"  # the seeded grant is namespaced
    findings = {f["check_id"]: f for f in report["findings"] if f["target_namespace"] in (ns, None)}
    assert any("sa-edit" in g or "default-edit" in g for g in findings["rbac.default-sa-secrets"]["evidence"]["granted_by"])
    assert f"User alice-{tag}" in findings["rbac.cluster-admin-subjects"]["summary"]
    assert wild in findings["rbac.wildcards"]["summary"]
    # every attempt was made for real with the ServiceAccount's own token, and no token is in the report
    attempts = findings["rbac.default-sa-secrets"]["evidence"]["attempts"]
    assert [a["action"] for a in attempts] == ["get", "list", "watch"] and all(a["meaning"] == "allowed" for a in attempts)
    assert "eyJ" not in text


# --- readonly: zero new objects -------------------------------------------------------------------------------

MAIN_KINDS = (
    ("v1", "Namespace"), ("v1", "PersistentVolume"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ("storage.k8s.io/v1", "StorageClass"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("v1", "Pod"), ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"), ("v1", "LimitRange"), ("v1", "ResourceQuota"), ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "NetworkPolicy"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)


def snapshot(api) -> dict[tuple[str, str | None, str], dict]:
    """Every object of the main kinds, across namespaces: (kind, namespace, name) → uid, labels, owners."""
    dyn = DynamicClient(api)
    out = {}
    for api_version, kind in MAIN_KINDS:
        for item in dyn.resources.get(api_version=api_version, kind=kind).get().items:
            meta = item.metadata
            out[(kind, meta.namespace, meta.name)] = {
                "uid": meta.uid, "labels": dict(meta.labels or {}), "owned": bool(meta.ownerReferences)}
    return out


def test_readonly_run_leaves_zero_new_objects(local_cluster, pytester, monkeypatch, api, ns_factory):
    ns = ns_factory("secro")
    before = snapshot(api)
    _, report, text = run_kready(pytester, monkeypatch, profile="baseline", mode="readonly", namespaces=[ns, "default"])
    after = snapshot(api)
    run_id = report["run_id"]
    assert report["mode"] == "readonly"
    mine = [k for k, v in after.items() if v["labels"].get(RUN_ID) == run_id]
    assert not mine, f"objects labelled with the readonly run's id: {mine}"
    # other engineers' tests create and delete their own namespaces meanwhile: what lives in namespaces that
    # existed before and are not another test's, plus every cluster-scoped object, must be unchanged
    stable = {n for (k, _, n) in before if k == "Namespace"
              and before[("Namespace", None, n)]["labels"].get("app.kubernetes.io/managed-by") is None} | {ns}

    def relevant(key, meta) -> bool:
        kind, namespace, _ = key
        if meta["labels"].get("app.kubernetes.io/managed-by") not in (None, "pytest-kready"):
            return False  # another test's object
        if meta["labels"].get(RUN_ID) not in (None, run_id):
            return False  # another run of the plugin (another engineer's suite)
        if meta["owned"]:
            return False  # made by a controller (ReplicaSet pods, ...), not by a request of the run
        return namespace is None or namespace in stable

    new = sorted(k for k, v in after.items() if relevant(k, v) and (k not in before or before[k]["uid"] != v["uid"]))
    assert new == [], f"a readonly run created objects: {new}"
    got = verdicts(report)
    # the readonly run still decided every check it can decide without writing
    assert got[("pod-security.privileged", "privileged", ns)] == "fail"
    assert got[("rbac.default-sa-secrets", "", ns)] == "pass"
    assert got[("etcd.encryption-at-rest", "", None)] == "not-applicable"
    assert got[("audit.logging", "", None)] == "fail"
    cross = [f["evidence"].get("cross_check") for f in report["findings"]
             if f["check_id"].startswith("pod-security.") and f["evidence"]]
    assert cross and all(c is None for c in cross)  # no real create in readonly mode
    assert "eyJ" not in text
