"""Unit tests (no cluster) of the RBAC, admission/resources and control-plane checks, fed with recorded API
answers: each check module's functions return a CheckResult, and no verdict passes without its proof
(issue 10): a partial view of the bindings, a refusal by something other than the ResourceQuota admission, an
exec answer that is neither the authorizer's refusal nor an authorised NotFound, an unproven etcd read and audit
counters that the read itself raises are inconclusive; kube-* ServiceAccounts are system only when known."""

from __future__ import annotations

import re
import subprocess

import pytest

from pytest_kready import attempts, client, errors
from pytest_kready.checks import admission, rbac
from pytest_kready.checks import control_plane_secrets as cpl
from pytest_kready.findings import CheckResult, Verdict
from pytest_kready.providers.base import Capabilities


def status(code: int, message: str = "", reason: str = "") -> client.Response:
    return client.Response(code, {"kind": "Status", "message": message, "reason": reason, "code": code})


def sa(ns, name):
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


def crb(name, role, subjects, ns=None):
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": subjects}


# --- kube-* ServiceAccounts are system only when they are the control plane's --------------------------------


@pytest.mark.parametrize("subject,system", [
    (sa("kube-system", "replicaset-controller"), True),  # kube-controller-manager's controller identity
    (sa("kube-system", "generic-garbage-collector"), True),
    (sa("kube-system", "bootstrap-signer"), True),
    (sa("kube-system", "coredns"), True),
    (sa("kube-system", "kube-proxy"), True),
    (sa("kube-system", "tiller"), False),  # the classic cluster-admin ServiceAccount of Helm 2
    (sa("kube-system", "default"), False),
    (sa("kube-system", "my-operator"), False),
    (sa("kube-public", "replicaset-controller"), False),  # the name is only known in kube-system
    (sa("kube-monitoring", "prometheus"), False),
    ({"kind": "User", "name": "system:serviceaccount:kube-system:tiller"}, False),
    ({"kind": "User", "name": "system:serviceaccount:kube-system:job-controller"}, True),
    ({"kind": "User", "name": "system:kube-controller-manager"}, True),
    ({"kind": "Group", "name": "system:serviceaccounts:kube-system"}, False),
])
def test_kube_namespace_serviceaccounts_are_system_only_when_known(subject, system):
    assert rbac.is_system_subject(subject) is system


def test_unknown_kube_system_serviceaccounts_are_workloads():
    assert rbac.is_workload_subject(sa("kube-system", "tiller"))
    assert rbac.is_workload_subject({"kind": "User", "name": "system:serviceaccount:kube-system:tiller"})
    assert rbac.is_workload_subject({"kind": "Group", "name": "system:serviceaccounts:kube-system"})
    assert not rbac.is_workload_subject(sa("kube-system", "job-controller"))
    assert rbac.control_plane_serviceaccount("kube-system", "job-controller").startswith("kube-controller-manager")


def test_every_known_serviceaccount_names_its_source():
    assert len(rbac.CONTROLLER_SERVICEACCOUNTS) == len(set(rbac.CONTROLLER_SERVICEACCOUNTS)) == 44
    for (ns, name), source in rbac.CONTROL_PLANE_SERVICEACCOUNTS.items():
        assert ns == "kube-system" and name and len(source) > 20, (ns, name, source)


def test_a_kube_system_serviceaccount_bound_to_cluster_admin_is_an_offender():
    bindings = rbac.Bindings(
        rbac.Listing("crbs", [crb("cluster-admin", "cluster-admin", [{"kind": "Group", "name": "system:masters"}]),
                              crb("tiller", "cluster-admin", [sa("kube-system", "tiller")]),
                              crb("ccm", "cluster-admin", [sa("kube-system", "cloud-controller-manager")])], 200),
        rbac.Listing("rbs", [], 200))
    result = rbac.cluster_admin_subjects(bindings)
    assert result.verdict is Verdict.FAIL
    assert "ServiceAccount kube-system/tiller" in result.summary and "cloud-controller-manager" not in result.summary
    assert result.evidence["system_serviceaccounts"] == {
        "kube-system/cloud-controller-manager": rbac.CONTROL_PLANE_SERVICEACCOUNTS[("kube-system", "cloud-controller-manager")]}


# --- rbac.cluster-admin-subjects: a partial view never passes ------------------------------------------------

STOCK = crb("cluster-admin", "cluster-admin", [{"kind": "Group", "name": "system:masters"}])


def test_cluster_admin_subjects_is_inconclusive_when_rolebindings_cannot_be_read():
    result = rbac.cluster_admin_subjects(rbac.Bindings(rbac.Listing("crbs", [STOCK], 200),
                                                       rbac.Listing("rbs", None, 403)))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "partial view" in result.summary and "HTTP 403" in result.summary
    assert result.evidence["rolebindings"] == "not readable (HTTP 403)"


def test_cluster_admin_subjects_fails_on_what_it_sees_even_with_a_partial_view():
    alice = crb("ops", "cluster-admin", [{"kind": "User", "name": "alice"}])
    result = rbac.cluster_admin_subjects(rbac.Bindings(rbac.Listing("crbs", [STOCK, alice], 200),
                                                       rbac.Listing("rbs", None, 403)))
    assert result.verdict is Verdict.FAIL and "User alice" in result.summary and "there may be more" in result.summary


def test_cluster_admin_subjects_passes_only_with_the_whole_view():
    rb = crb("ns-view", "view", [sa("team", "app")], ns="team")
    result = rbac.cluster_admin_subjects(rbac.Bindings(rbac.Listing("crbs", [STOCK], 200),
                                                       rbac.Listing("rbs", [rb], 200)))
    assert result.verdict is Verdict.PASS and "1 RoleBindings read" in result.summary
    none_seen = rbac.cluster_admin_subjects(rbac.Bindings(rbac.Listing("crbs", [], 200),
                                                          rbac.Listing("rbs", [], 200)))
    assert none_seen.verdict is Verdict.INCONCLUSIVE and "positive control" in none_seen.summary
    refused = rbac.cluster_admin_subjects(rbac.Bindings(rbac.Listing("crbs", None, 403), rbac.Listing("rbs", None, 403)))
    assert refused.verdict is Verdict.NOT_APPLICABLE


def test_wildcards_with_a_partial_view_do_not_pass(monkeypatch):
    stock = {"metadata": {"name": "cluster-admin"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    answers = {f"{rbac.RB}/clusterroles": client.Response(200, {"items": [stock], "metadata": {}}),
               f"{rbac.RB}/roles": status(403, "forbidden")}
    monkeypatch.setattr(rbac, "send", lambda api, method, path, **kw: answers[path])
    result = rbac.wildcards(object(), rbac.Bindings(rbac.Listing("crbs", [STOCK], 200), rbac.Listing("rbs", [], 200)))
    assert result.verdict is Verdict.INCONCLUSIVE and "/roles (HTTP 403)" in result.summary


# --- rbac.default-sa-exec: only the authorizer's refusal and an authorised NotFound decide -------------------

EXEC_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec$")


def forbidden_exec(user: str, ns: str, verb: str = "create") -> client.Response:
    return status(403, f'pods "x" is forbidden: User "{user}" cannot {verb} resource "pods/exec" in API group "" in '
                       f'the namespace "{ns}"', "Forbidden")


def not_found(pod: str) -> client.Response:
    return status(404, f'pods "{pod}" not found', "NotFound")


class FakeApi:
    def __init__(self, who: str, cluster: FakeCluster):
        self.who, self.cluster = who, cluster

    def raw(self, method, path, **kw):
        if path.endswith("/serviceaccounts/default"):
            return {"metadata": {"name": "default"}}
        raise AssertionError(f"unexpected {method} {path}")


class FakeCluster:
    """Just enough of session.Cluster; ``exec_answers[who](namespace, pod, method)`` is the recorded answer."""

    def __init__(self, mode: str, exec_answers: dict, *, can_create: bool = True):
        self.mode, self.exec_answers, self.can_create = mode, exec_answers, can_create
        self.created: list[tuple[str, str, str]] = []
        self.released: list = []
        self.run_api = FakeApi("run", self)

    def can(self, *a, **kw):
        return True

    def api_client(self, **kw):
        return self.run_api

    def scratch_namespace(self, prefix):
        if self.mode == "readonly":
            raise errors.ReadOnlyViolation("readonly")
        return f"kr-{prefix}-1"

    def create(self, obj, *, namespace=None, dry_run=False):
        if not self.can_create:
            raise errors.APIForbidden("roles is forbidden: attempting to grant RBAC permissions not currently held", status=403)
        self.created.append((obj["kind"], namespace, obj["metadata"]["name"]))
        return obj

    def release(self, refs, *, failed):
        self.released += refs
        return []


def fake_send(cluster: FakeCluster):
    def send(api, method, path, *, query=None, body=None, headers=None, timeout=20, text=False):
        if path.endswith("/selfsubjectreviews"):
            return client.Response(201, {"status": {"userInfo": {"username": api.who}}})
        m = EXEC_PATH.search(path)
        assert m, path
        return cluster.exec_answers[api.who.rsplit(":", 1)[-1] if api.who.startswith("system:") else api.who](
            m.group(1), m.group(2), method)
    return send


def as_serviceaccount_for(cluster):
    def as_sa(ns, name="default"):
        return FakeApi(f"system:serviceaccount:{ns}:{name}", cluster)
    return as_sa


def run_exec(monkeypatch, cluster) -> CheckResult:
    monkeypatch.setattr(rbac, "send", fake_send(cluster))
    bindings = rbac.Bindings(rbac.Listing("crbs", [], 200), rbac.Listing("rbs", [], 200))
    control = rbac.ExecControl(cluster, as_serviceaccount_for(cluster))
    control.SETTLE = 0
    result = rbac.default_sa_exec(cluster, "team", as_serviceaccount_for(cluster), bindings, control)
    control.close(failed=False)
    return result


def sa_refused(ns, pod, method):
    return forbidden_exec(f"system:serviceaccount:{ns}:default", ns, "get" if method == "GET" else "create")


def test_a_400_for_exec_is_not_allowed(monkeypatch):
    """Before: 400 counted as "allowed" and the check failed the cluster on an answer that shows nothing."""
    cluster = FakeCluster("readonly", {"default": lambda ns, pod, m: status(400, "Upgrade request required", "BadRequest"),
                                       "run": lambda ns, pod, m: not_found(pod)})
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.INCONCLUSIVE and "HTTP 400" in result.summary
    assert [a["meaning"] for a in result.evidence["attempts"]] == ["undecided"]


def test_a_403_that_is_not_the_authorizers_refusal_decides_nothing(monkeypatch):
    webhook = status(403, 'admission webhook "deny-exec.example.com" denied the request: no exec', "Forbidden")
    cluster = FakeCluster("standard", {"default": lambda ns, pod, m: webhook, "run": lambda ns, pod, m: not_found(pod)})
    assert run_exec(monkeypatch, cluster).verdict is Verdict.INCONCLUSIVE


def test_exec_refusal_passes_with_the_run_identity_as_positive_control(monkeypatch):
    seen = []

    def run(ns, pod, method):
        seen.append((ns, pod, method))
        return not_found(pod)

    cluster = FakeCluster("standard", {"default": sa_refused, "run": run})
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.PASS, result.summary
    control = result.evidence["positive_control"]["authorised_exec"]
    assert control["shown"] and control["identity"] == "the run's own identity"
    # the same requests: same namespace, same absent pod, websocket GET and SPDY POST
    pods = {re.search(r"/pods/([^/]+)/exec", a["request"]).group(1) for a in result.evidence["attempts"]}
    assert {(ns, pod) for ns, pod, _ in seen} == {("team", pods.pop())} and [m for *_, m in seen] == ["GET", "POST"]
    assert cluster.created == []  # the run's identity sufficed: nothing made


def test_exec_refusal_without_positive_control_in_readonly_mode_is_inconclusive(monkeypatch):
    """Before: a 403 for the default ServiceAccount passed though no identity had shown what "allowed" looks like."""
    cluster = FakeCluster("readonly", {"default": sa_refused,
                                       "run": lambda ns, pod, m: forbidden_exec("ci-bot", ns, "get")})
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "positive control was not shown" in result.summary and "readonly mode creates no ServiceAccount" in result.summary
    assert result.evidence["positive_control"]["authorised_exec"]["shown"] is False
    assert cluster.created == []


def test_exec_positive_control_by_a_serviceaccount_of_the_run_in_standard_mode(monkeypatch):
    def answers(ns, pod, method):
        return not_found(pod) if ns == "kr-exec-control-1" else forbidden_exec("ci-bot", ns)

    cluster = FakeCluster("standard", {"default": sa_refused, "run": lambda ns, pod, m: forbidden_exec("ci-bot", ns),
                                       "kready-exec-control": answers})
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.PASS, result.summary
    assert cluster.created == [("ServiceAccount", "kr-exec-control-1", "kready-exec-control"),
                               ("Role", "kr-exec-control-1", "kready-exec-control"),
                               ("RoleBinding", "kr-exec-control-1", "kready-exec-control")]
    assert [r.name for r in cluster.released] == ["kr-exec-control-1"]
    assert "kready-exec-control" in result.evidence["positive_control"]["authorised_exec"]["identity"]


def test_exec_positive_control_that_cannot_be_made_is_inconclusive(monkeypatch):
    cluster = FakeCluster("standard", {"default": sa_refused, "run": lambda ns, pod, m: forbidden_exec("ci-bot", ns)},
                          can_create=False)
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.INCONCLUSIVE and "could not be made" in result.summary


def test_exec_allowed_fails_whatever_the_control(monkeypatch):
    cluster = FakeCluster("readonly", {"default": lambda ns, pod, m: not_found(pod),
                                       "run": lambda ns, pod, m: forbidden_exec("ci-bot", ns)})
    result = run_exec(monkeypatch, cluster)
    assert result.verdict is Verdict.FAIL and result.evidence["granted_by"] == []


# --- resources.quota: only the ResourceQuota admission's refusal counts --------------------------------------

QUOTA_REFUSAL = ('pods "kready-oversized-1" is forbidden: exceeded quota: compute, requested: limits.cpu=10k,'
                 'limits.memory=100Ti,requests.cpu=10k,requests.memory=100Ti, used: limits.cpu=0,limits.memory=0,'
                 'requests.cpu=0,requests.memory=0, limited: limits.cpu=4,limits.memory=8Gi,requests.cpu=4,'
                 'requests.memory=8Gi')
VAP_REFUSAL = ("pods \"kready-oversized-1\" is forbidden: ValidatingAdmissionPolicy 'max-pod-size' with binding "
               "'max-pod-size' denied request: no container may request more than 2 cpu")
LIMITRANGE_REFUSAL = ('pods "kready-oversized-1" is forbidden: [maximum cpu usage per Container is 2, but limit is 10k, '
                      'maximum memory usage per Container is 1Gi, but limit is 100Ti]')
LIMITRANGE_POD_REFUSAL = 'pods "kready-oversized-split-1" is forbidden: maximum cpu usage per Pod is 4, but limit is 32'


class FakeProbe:
    def __init__(self, answers: list[client.Response], limitranges: list[dict] | None = None):
        self.answers = list(answers)
        self.cluster = self
        self.tried: list[dict] = []
        self.limitranges = limitranges or []
        self.settings = type("S", (), {"image": "registry.k8s.io/pause:3.10"})()

    def api_client(self):
        return self

    def base_pod(self):
        return attempts.compliant_pod("registry.k8s.io/pause:3.10")

    def control(self, ns):
        return attempts.classify(client.Response(201, {"kind": "Pod"}), namespace=ns)

    def attempt(self, cluster, pod, ns, **kw):
        self.tried.append(pod)
        return attempts.classify(self.answers.pop(0), namespace=ns)


def run_quota(monkeypatch, probe) -> CheckResult:
    monkeypatch.setattr(attempts, "attempt_create", probe.attempt)
    monkeypatch.setattr(client, "send", lambda api, method, path, **kw: client.Response(
        200, {"items": probe.limitranges}))
    return admission.quota(probe, "team")


def test_quota_passes_on_a_resourcequota_refusal_over_cpu_and_memory(monkeypatch):
    result = run_quota(monkeypatch, FakeProbe([status(403, QUOTA_REFUSAL, "Forbidden")]))
    assert result.verdict is Verdict.PASS and "ResourceQuota compute" in result.summary
    assert result.evidence["refused_by_resourcequota_over"][:2] == ["limits.cpu", "limits.memory"]


@pytest.mark.parametrize("message,who", [
    (VAP_REFUSAL, "ValidatingAdmissionPolicy max-pod-size"),
    ('admission webhook "validate.kyverno.svc-fail" denied the request: resources too big', "Kyverno"),
    ('pods "x" is forbidden: something we do not know', "admission (unnamed plugin)"),
])
def test_quota_is_inconclusive_when_something_else_refuses(monkeypatch, message, who):
    """Before: any refusal passed resources.quota, though no ResourceQuota was ever reached."""
    result = run_quota(monkeypatch, FakeProbe([status(403, message, "Forbidden")]))
    assert result.verdict is Verdict.INCONCLUSIVE and "not by a ResourceQuota" in result.summary and who in result.summary


def test_quota_refusal_for_something_other_than_size_is_inconclusive(monkeypatch):
    pods_full = ('pods "x" is forbidden: exceeded quota: count, requested: pods=1, used: pods=10, limited: pods=10')
    result = run_quota(monkeypatch, FakeProbe([status(403, pods_full, "Forbidden")]))
    assert result.verdict is Verdict.INCONCLUSIVE and "not over cpu or memory (pods)" in result.summary


def test_quota_past_a_limitrange_is_split_and_a_pod_max_is_inconclusive(monkeypatch):
    lrs = [{"metadata": {"name": "limits"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}}, {"type": "Pod", "max": {"cpu": "4"}}]}}]
    probe = FakeProbe([status(403, LIMITRANGE_REFUSAL, "Forbidden"), status(403, LIMITRANGE_POD_REFUSAL, "Forbidden")],
                      lrs)
    result = run_quota(monkeypatch, probe)
    assert result.verdict is Verdict.INCONCLUSIVE and "LimitRange" in result.summary
    split = probe.tried[1]["spec"]["containers"]
    assert len(split) == admission.SPLIT_CONTAINERS and split[0]["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    quota_after_split = FakeProbe([status(403, LIMITRANGE_REFUSAL, "Forbidden"), status(403, QUOTA_REFUSAL, "Forbidden")],
                                  lrs)
    assert run_quota(monkeypatch, quota_after_split).verdict is Verdict.PASS


def test_quota_admitted_fails(monkeypatch):
    result = run_quota(monkeypatch, FakeProbe([client.Response(201, {"kind": "Pod"})]))
    assert result.verdict is Verdict.FAIL and "ResourceQuota" in result.remediation


def test_quota_resources_are_read_from_the_refusal():
    assert admission.quota_resources(QUOTA_REFUSAL) == ["limits.cpu", "limits.memory", "requests.cpu",
                                                        "requests.memory"]
    assert admission.quota_resources("failed quota: compute: must specify limits.cpu for: c") == []


# --- etcd.encryption-at-rest: the positive control decides whether the read proves anything ------------------


class FakeControlPlane:
    def __init__(self, values: dict[str, bytes | None]):
        self.values = values
        self.etcd = type("E", (), {"endpoints": "https://127.0.0.1:2379", "cacert": "ca", "cert": "c", "key": "k"})()
        self.value = None

    def run(self, argv, *, input=None, timeout=60):
        key = argv[argv.index("get") + 1]
        kind = key.split("/")[2]
        raw = self.values[kind]
        if raw is None:
            return subprocess.CompletedProcess(argv, 0, b"", b"")
        return subprocess.CompletedProcess(argv, 0, raw.replace(b"VALUE", self.value.encode()) + b"\n", b"")


class EncryptionCluster:
    def __init__(self, values):
        self.control_plane = FakeControlPlane(values)
        self.objects = []

    def create(self, obj, *, namespace=None, dry_run=False):
        self.objects.append(obj)
        return obj


def run_encryption(values) -> CheckResult:
    cluster = EncryptionCluster(values)
    registered = []

    def register(value):
        registered.append(value)
        cluster.control_plane.value = value

    result = cpl.encryption_at_rest(cluster, "kr-enc-1", register)
    assert registered and registered[0] not in repr(result)
    return result


ENCRYPTED = b"k8s:enc:aescbc:v1:key1:\x8f\x00\x13binary"
PLAIN = b"k8s\x00\n\x0f\n\x02v1\x12\x06Secret...VALUE..."


def test_encryption_passes_with_the_control_showing_plaintext():
    result = run_encryption({"secrets": ENCRYPTED, "configmaps": PLAIN})
    assert result.verdict is Verdict.PASS and "positive control" in result.summary
    assert result.evidence["positive_control"]["configmap_same_value"]["plaintext_value_found"] is True


def test_encryption_is_inconclusive_when_the_control_does_not_show_the_value():
    """Before: the control was computed and ignored, so this passed."""
    result = run_encryption({"secrets": ENCRYPTED, "configmaps": b"k8s\x00\n\x0f\n\x02v1 compressed-or-other"})
    assert result.verdict is Verdict.INCONCLUSIVE and result.summary.startswith("positive control failed")


def test_encryption_with_configmaps_encrypted_too_passes_on_the_envelope():
    result = run_encryption({"secrets": ENCRYPTED, "configmaps": b"k8s:enc:aescbc:v1:key1:\x00other"})
    assert result.verdict is Verdict.PASS and "ConfigMaps are encrypted too" in result.summary


def test_encryption_fails_on_plaintext_and_is_inconclusive_without_the_control():
    assert run_encryption({"secrets": PLAIN, "configmaps": PLAIN}).verdict is Verdict.FAIL
    missing = run_encryption({"secrets": ENCRYPTED, "configmaps": None})
    assert missing.verdict is Verdict.INCONCLUSIVE and "not at /registry/configmaps/kr-enc-1/" in missing.summary
    no_secret = run_encryption({"secrets": None, "configmaps": PLAIN})
    assert no_secret.verdict is Verdict.INCONCLUSIVE and "/registry/secrets/kr-enc-1/" in no_secret.summary


# --- audit.logging: no verdict from a counter the read itself raises ----------------------------------------

NO_POLICY = "apiserver_audit_event_total 0\napiserver_audit_requests_rejected_total 0\n"  # baseline, recorded
AUDITING = ("apiserver_audit_event_total 910\n"
            'apiserver_audit_level_total{level="Metadata"} 850\napiserver_audit_level_total{level="None"} 70\n')


class AuditCluster:
    run_id = "r1"
    control_plane = None

    def __init__(self, metrics: client.Response):
        self.capabilities = Capabilities(reasons={"audit-log": "no audit log here"})
        self.metrics = metrics
        self.requests = []

    def api_client(self):
        return self


def run_audit(monkeypatch, metrics: client.Response) -> CheckResult:
    cluster = AuditCluster(metrics)

    def send(api, method, path, **kw):
        cluster.requests.append((method, path))
        return metrics if path == "/metrics" else status(404, "not found", "NotFound")

    monkeypatch.setattr(client, "send", send)
    result = cpl.audit_logging(cluster)
    assert cluster.requests[-1] == ("GET", "/metrics") and len(cluster.requests) == 3  # marker requests first
    return result


def test_audit_without_a_log_fails_only_without_any_audit_policy(monkeypatch):
    result = run_audit(monkeypatch, client.Response(200, NO_POLICY))
    assert result.verdict is Verdict.FAIL and "no audit policy" in result.summary
    assert result.evidence["metrics"] == {"apiserver_audit_event_total": 0, "apiserver_audit_level_total": None}


def test_audit_counters_that_do_not_move_are_not_a_fail(monkeypatch):
    """Before: an API server with 910 audit events whose counter did not move across the marker requests (they
    went to another instance, or the policy leaves them out) was failed as "generates no audit events"."""
    result = run_audit(monkeypatch, client.Response(200, AUDITING))
    assert result.verdict is Verdict.INCONCLUSIVE and "raises them itself" in result.summary


def test_audit_metrics_judgement():
    assert cpl.judge_audit_metrics(403, None)[0] is Verdict.NOT_APPLICABLE
    assert cpl.judge_audit_metrics(500, None)[0] is Verdict.INCONCLUSIVE
    assert cpl.judge_audit_metrics(200, "apiserver_request_total 5\n")[0] is Verdict.INCONCLUSIVE
    # a loaded policy that has so far produced no events is not "no policy"
    assert cpl.judge_audit_metrics(200, 'apiserver_audit_event_total 0\napiserver_audit_level_total{level="None"} 3\n'
                                   )[0] is Verdict.INCONCLUSIVE


def test_long_serviceaccount_tokens_are_redacted_without_crashing():
    """The exec control's ServiceAccount token (and its base64 form) runs past 1000 characters: the redaction's
    prefix tree once recursed per character and crashed the reporter (INTERNALERROR) on it."""
    import base64
    import secrets

    from pytest_kready import findings

    token = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(1200) + ".sig"
    short = token[:40] + "different-tail"
    pattern = findings._literal_trie({token, short, base64.b64encode(token.encode()).decode()})
    assert pattern.search(f"Bearer {token} trailing").group(0) == token
    assert pattern.search(f"x{short}y").group(0) == short


@pytest.mark.parametrize("namespace", ["team-a", "123", "true", "on", "y", "1e3", "0x10", "null", "007", "x" * 63])
def test_a_remediations_reference_yaml_names_the_namespace_as_yaml_reads_it(namespace):
    """The reference YAML is parsed and written once, the namespace put in where a placeholder stands: the text
    is the one a per-namespace dump gives, also for names YAML would read as numbers or booleans."""
    import yaml

    from pytest_kready.checks import admission as adm

    path = adm._profile() / "namespace" / "limits.yaml"
    for kind in ("LimitRange", "ResourceQuota"):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]
        for d in docs:
            d["metadata"]["namespace"] = namespace
        text = adm.reference_doc(path, kind, namespace)
        assert text == "\n---\n".join(yaml.safe_dump(d, sort_keys=False).strip() for d in docs)
        assert [d["metadata"]["namespace"] for d in yaml.safe_load_all(text)] == [namespace] * len(docs)
