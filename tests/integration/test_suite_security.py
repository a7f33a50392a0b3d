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
from pytest_kready.local.bins import bin_dir as default_bin_dir
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
    assert_nothing_left(core, report["run"]["run_id"])
    # evidence names what was tried and how to reproduce it
    f = next(f for f in report["findings"] if f["check_id"] == "pod-security.privileged")
    assert f["response"]["outcome"] == "accepted" and f["repro"].endswith(f"kubectl create --dry-run=server -n {ns} -f -")
    assert f["remediation"] and "pod-security.kubernetes.io/enforce: restricted" in f["remediation"]
    assert any(r.startswith("CIS Kubernetes Benchmark v1.10 5.2.2") for r in f["references"])
    assert f["evidence"]["cross_check"]["agree"] is True  # standard mode: real create agreed with the dry-run
    etcd = next(f for f in report["findings"] if f["check_id"] == "etcd.encryption-at-rest")
    assert etcd["evidence"]["secret"]["plaintext_value_found"] is True and etcd["evidence"]["secret"]["encrypted"] is False
    assert etcd["evidence"]["positive_control"]["configmap_same_value"]["plaintext_value_found"] is True


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
    assert_nothing_left(core, report["run"]["run_id"])
    refusers = {f["response"]["refused_by"] for f in report["findings"]
                if f["check_id"].startswith("pod-security.") and f["check_id"] != pod_security.COMPLIANT_CHECK}
    assert refusers == {"Pod Security Admission (restricted:latest)"}
    images = {f["response"]["refused_by"] for f in report["findings"] if f["check_id"].startswith("images.")}
    assert images == {"ValidatingAdmissionPolicy kready-image-rules, binding kready-image-rules"}
    etcd = next(f for f in report["findings"] if f["check_id"] == "etcd.encryption-at-rest")
    assert etcd["evidence"]["secret"]["prefix"].startswith("k8s:enc:aescbc:v1:")
    assert etcd["evidence"]["secret"]["plaintext_value_found"] is False
    assert "same value is found in plaintext in the ConfigMap" in etcd["summary"]  # the positive control decided
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
    assert_nothing_left(core, report["run"]["run_id"])


# --- stock-safe RBAC checks do fail when the cluster is misconfigured ----------------------------------------


def test_rbac_checks_fail_on_seeded_misconfigurations(local_cluster, pytester, monkeypatch, api, core, ns_factory):
    rbac_api = client.RbacAuthorizationV1Api(api)
    ns = ns_factory("secr")
    tag = uuid.uuid4().hex[:6]
    labels = {"app.kubernetes.io/managed-by": "kready-tests"}
    crb, wild, tiller = f"kready-test-alice-{tag}", f"kready-test-wild-{tag}", f"kready-test-tiller-{tag}"
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
        # a ServiceAccount in kube-system is not "system" by its namespace: only the control plane's own are
        rbac_api.create_cluster_role_binding({"metadata": {"name": tiller, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": tiller, "namespace": "kube-system"}]})
        rbac_api.create_cluster_role({"metadata": {"name": wild, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]})
        rbac_api.create_namespaced_role_binding(ns, {"metadata": {"name": "app-wild", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": wild},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]})
        _, report, text = run_kready(pytester, monkeypatch, profile="baseline", mode="readonly", namespaces=[ns],
                                     suites=[SUITES[1]])
    finally:
        for delete in (lambda: rbac_api.delete_cluster_role_binding(crb), lambda: rbac_api.delete_cluster_role(wild),
                       lambda: rbac_api.delete_cluster_role_binding(tiller)):
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
    assert f"ServiceAccount kube-system/{tiller} by ClusterRoleBinding {tiller}" in findings["rbac.cluster-admin-subjects"]["summary"]
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
    run_id = report["run"]["run_id"]
    assert report["run"]["mode"] == "readonly"
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


# --- RBAC, resources, control plane: no pass without proof (issue 10) -----------------------------------------

RBAC_V1 = "rbac.authorization.k8s.io"
READ = ["get", "list", "watch"]
# what a readonly run of the RBAC suite needs, except `list rolebindings` (a partial view) and pods/exec
RESTRICTED_RULES = [
    {"apiGroups": [""], "resources": ["namespaces", "pods", "serviceaccounts", "configmaps", "services", "limitranges",
                                      "resourcequotas"], "verbs": READ},
    {"apiGroups": [RBAC_V1], "resources": ["clusterroles", "clusterrolebindings", "roles"], "verbs": READ},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token", "pods"], "verbs": ["create"]},
]
# standard mode on top: throw-away namespaces, and a ServiceAccount of the run bound to pods/exec in one of them
# (escalate/bind: the identity may grant pods/exec without holding it)
STANDARD_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "delete"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
    {"apiGroups": [RBAC_V1], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
    {"apiGroups": [RBAC_V1], "resources": ["roles"], "verbs": ["escalate", "bind"]},
]


def kubeconfig_for_token(local_cluster, token: str, path) -> str:
    """A kubeconfig for the local cluster's API server that holds only ``token``."""
    admin = yaml.safe_load(local_cluster.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "restricted",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "restricted", "user": {"token": token}}],
        "contexts": [{"name": "restricted", "context": {"cluster": "local", "user": "restricted"}}]}))
    return str(path)


@pytest.fixture
def restricted_identity(local_cluster, api, core, ns_factory, pytester):
    """``make(rules) → kubeconfig path``: a ServiceAccount token bound cluster-wide to exactly ``rules``."""
    rbac_api = client.RbacAuthorizationV1Api(api)
    made = []
    labels = {"app.kubernetes.io/managed-by": "kready-tests"}

    def make(rules) -> str:
        ns = ns_factory("secid")
        name = f"kready-test-restricted-{uuid.uuid4().hex[:6]}"
        core.create_namespaced_service_account(ns, {"metadata": {"name": "ci", "labels": labels}})
        rbac_api.create_cluster_role({"metadata": {"name": name, "labels": labels}, "rules": rules})
        made.append(name)
        rbac_api.create_cluster_role_binding({"metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": RBAC_V1, "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": ns}]})
        token = core.create_namespaced_service_account_token("ci", ns, {"spec": {"expirationSeconds": 3600}}).status.token
        return kubeconfig_for_token(local_cluster, token, pytester.path / f"{name}.kubeconfig")

    yield make
    for name in made:
        for delete in (rbac_api.delete_cluster_role_binding, rbac_api.delete_cluster_role):
            try:
                delete(name)
            except client.ApiException:
                pass


def run_kready_kubeconfig(pytester, kubeconfig: str, *, mode: str, namespaces: list[str], suites: list[str]):
    """The plugin on an existing cluster named by ``kubeconfig`` (the kubeconfig provider)."""
    out = pytester.path / f"findings-{uuid.uuid4().hex[:6]}.json"
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        *suites, "--kready", f"--kready-kubeconfig={kubeconfig}", f"--kready-mode={mode}",
        f"--kready-namespaces={','.join(namespaces)}", f"--kready-json={out}", "-p", "no:cacheprovider",
        f"--rootdir={pytester.path}", "-q", timeout=600)
    assert out.is_file(), "\n".join(result.outlines[-40:])
    return result, json.loads(out.read_text()), out.read_text()


def test_rbac_checks_with_a_partial_view_are_inconclusive(local_cluster, pytester, core, ns_factory,
                                                          restricted_identity):
    """An identity that may not list RoleBindings, nor exec: cluster-admin-subjects cannot see every binding and
    default-sa-exec has no identity showing what an authorised exec looks like — both inconclusive (they passed
    before), while what the identity can decide is decided as before."""
    ns = ns_factory("secpv")
    kubeconfig = restricted_identity(RESTRICTED_RULES)
    result, report, text = run_kready_kubeconfig(pytester, kubeconfig, mode="readonly", namespaces=[ns],
                                                 suites=[SUITES[1]])
    got = verdicts(report)
    assert report["run"]["mode"] == "readonly" and report["run"]["provider"] == "kubeconfig"
    assert (got[("rbac.cluster-admin-subjects", "", None)], got[("rbac.default-sa-exec", "", ns)]) == (
        "inconclusive", "inconclusive")
    assert got[("rbac.default-sa-secrets", "", ns)] == "pass"
    assert got[("rbac.wildcards", "", None)] == "not-applicable"  # declares list rolebindings
    assert got[("rbac.anonymous", "", ns)] == "pass"
    findings = {f["check_id"]: f for f in report["findings"] if f["target_namespace"] in (ns, None)}
    admin = findings["rbac.cluster-admin-subjects"]
    assert "partial view" in admin["summary"] and admin["evidence"]["rolebindings"] == "not readable (HTTP 403)"
    control = findings["rbac.default-sa-exec"]["evidence"]["positive_control"]["authorised_exec"]
    assert control["shown"] is False and "readonly mode creates no ServiceAccount" in control["why_not"]
    assert [a["meaning"] for a in findings["rbac.default-sa-exec"]["evidence"]["attempts"]] == ["refused"]
    assert [a["status"] for a in control["run_identity"]["attempts"]] == [403]
    assert result.ret == 1 and "eyJ" not in text


def test_exec_positive_control_by_a_serviceaccount_of_the_run(local_cluster, pytester, core, ns_factory,
                                                              restricted_identity):
    """Standard mode, an identity that may not exec itself: the run makes a ServiceAccount in a throw-away
    namespace of its own, binds it to pods/exec there, and that identity gets past authorisation (404) on the
    same request — the positive control of the default ServiceAccount's refusal. Nothing is left behind."""
    ns = ns_factory("secex")
    kubeconfig = restricted_identity(RESTRICTED_RULES + STANDARD_RULES)
    result, report, _ = run_kready_kubeconfig(
        pytester, kubeconfig, mode="standard", namespaces=[ns],
        suites=[SUITES[1] + "::test_default_serviceaccount_cannot_exec"])
    f = next(f for f in report["findings"] if f["check_id"] == "rbac.default-sa-exec")
    assert f["verdict"] == "pass", f["summary"]
    control = f["evidence"]["positive_control"]["authorised_exec"]
    assert control["shown"] is True and [a["status"] for a in control["run_identity"]["attempts"]] == [403, 403]
    scratch = control["scratch_serviceaccount"]
    assert [a["status"] for a in scratch["attempts"]] == [404, 404]
    assert scratch["identity"] == f"system:serviceaccount:{scratch['namespace']}:kready-exec-control"
    assert [a["meaning"] for a in f["evidence"]["attempts"]] == ["refused", "refused"]
    assert result.ret == 0
    assert_nothing_left(core, report["run"]["run_id"])


def test_quota_is_decided_by_a_resourcequota_only(local_cluster, pytester, monkeypatch, api, core, ns_factory):
    """A namespace whose oversized pod is refused by a ValidatingAdmissionPolicy capping container size (it
    passed before: any refusal counted), and one with a LimitRange capping containers and the whole pod:
    neither shows a ResourceQuota, so resources.quota is inconclusive in both; with a ResourceQuota behind the
    LimitRange it passes."""
    from integration.kube import until

    tag = uuid.uuid4().hex[:6]
    name = f"kready-test-maxsize-{tag}"
    vap_ns = ns_factory("secqv", {"kready-test-maxsize": tag})
    lr_ns, quota_ns = ns_factory("secql"), ns_factory("secqq")
    for n in (lr_ns, quota_ns):
        core.create_namespaced_limit_range(n, {"metadata": {"name": "caps"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}},
            *([{"type": "Pod", "max": {"cpu": "4", "memory": "2Gi"}}] if n == lr_ns else [])]}})
    core.create_namespaced_resource_quota(quota_ns, {"metadata": {"name": "compute"}, "spec": {"hard": {
        "requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "4", "limits.memory": "8Gi"}}})
    adm = client.AdmissionregistrationV1Api(api)
    labels = {"app.kubernetes.io/managed-by": "kready-tests"}
    adm.create_validating_admission_policy({"metadata": {"name": name, "labels": labels}, "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                                "resources": ["pods"]}]},
        "validations": [{"expression": "object.spec.containers.all(c, !has(c.resources.limits) || "
                                       "!('cpu' in c.resources.limits) || "
                                       "quantity(c.resources.limits.cpu).compareTo(quantity('2')) <= 0)",
                         "message": "no container may use more than 2 cpu"}]}})
    try:
        adm.create_validating_admission_policy_binding({"metadata": {"name": name, "labels": labels}, "spec": {
            "policyName": name, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kready-test-maxsize": tag}}}}})
        big = {"metadata": {"name": "probe"}, "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
               "resources": {"limits": {"cpu": "3"}}}]}}

        def refused_by_policy():
            try:
                core.create_namespaced_pod(vap_ns, big, dry_run="All")
            except client.ApiException as e:
                return name in (e.body or "")
            return False

        until(refused_by_policy, timeout=30, what=f"ValidatingAdmissionPolicy {name} in force")
        _, report, _ = run_kready(pytester, monkeypatch, profile="baseline", mode="readonly",
                                  namespaces=[vap_ns, lr_ns, quota_ns],
                                  suites=[SUITES[2] + "::test_oversized_pod_is_refused_by_a_quota"])
    finally:
        for delete in (adm.delete_validating_admission_policy_binding, adm.delete_validating_admission_policy):
            try:
                delete(name)
            except client.ApiException:
                pass
    findings = {f["target_namespace"]: f for f in report["findings"] if f["check_id"] == "resources.quota"}
    assert {n: f["verdict"] for n, f in findings.items()} == {vap_ns: "inconclusive", lr_ns: "inconclusive",
                                                              quota_ns: "pass"}
    assert f"ValidatingAdmissionPolicy {name}" in findings[vap_ns]["summary"]
    assert "not by a ResourceQuota" in findings[vap_ns]["summary"]
    assert findings[lr_ns]["response"]["refused_by"] == "LimitRange" and len(findings[lr_ns]["evidence"]["attempts"]) == 2
    assert findings[quota_ns]["response"]["refused_by"] == "ResourceQuota compute"
    assert findings[quota_ns]["evidence"]["refused_by_resourcequota_over"]


def test_known_control_plane_serviceaccounts_cover_the_stock_cluster(local_cluster, api, core):
    """Every ServiceAccount the pinned Kubernetes version (and the local provider's add-ons) puts in kube-system,
    and every ServiceAccount subject of a stock binding, is in the explicit list — a new controller identity in
    a new version fails here instead of silently counting as a workload."""
    from pytest_kready.checks import rbac

    rbac_api = client.RbacAuthorizationV1Api(api)
    stock = [b for b in rbac_api.list_cluster_role_binding().items + rbac_api.list_role_binding_for_all_namespaces().items
             if (b.metadata.labels or {}).get("kubernetes.io/bootstrapping") == "rbac-defaults"
             or b.metadata.name == "system:coredns"]
    subjects = {(s.namespace, s.name) for b in stock for s in b.subjects or [] if s.kind == "ServiceAccount"}
    assert len(subjects) > 30
    unknown = sorted(s for s in subjects if rbac.control_plane_serviceaccount(*s) is None)
    assert not unknown, f"ServiceAccounts of stock bindings missing from rbac.CONTROL_PLANE_SERVICEACCOUNTS: {unknown}"
    made = {sa.metadata.name for sa in core.list_namespaced_service_account("kube-system").items
            if not (sa.metadata.labels or {}).get("app.kubernetes.io/managed-by")} - {"default"}
    assert made and not {n for n in made if rbac.control_plane_serviceaccount("kube-system", n) is None}, made


@pytest.mark.parametrize("profile", ["baseline", pytest.param("hardened", marks=pytest.mark.local_profile("hardened"))])
def test_audit_without_a_log_decides_only_from_the_policy_metrics(local_cluster, pytester, profile):
    """Through the kubeconfig provider no audit log is readable. Baseline has no audit policy at all (fail, shown
    by the policy-decision counter, which the read itself would raise if a policy existed); hardened audits, but
    whether this run's requests were recorded cannot be shown without the log: inconclusive (before: the counter
    rising because of the read itself made it not-applicable)."""
    kubeconfig = str(local_cluster.kubeconfig)
    _, report, _ = run_kready_kubeconfig(pytester, kubeconfig, mode="readonly", namespaces=["default"],
                                         suites=[SUITES[3] + "::test_this_runs_requests_are_in_the_audit_log"])
    f = next(f for f in report["findings"] if f["check_id"] == "audit.logging")
    assert f["verdict"] == ("fail" if profile == "baseline" else "inconclusive"), f["summary"]
    metrics = f["evidence"]["metrics"]
    if profile == "baseline":
        assert metrics == {"apiserver_audit_event_total": 0, "apiserver_audit_level_total": None}
    else:
        assert metrics["apiserver_audit_level_total"] > 0 and metrics["apiserver_audit_event_total"] > 0
