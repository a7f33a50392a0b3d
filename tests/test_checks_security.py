"""Unit tests of the security checks' logic (no cluster): the admission-refusal parser, the attack pods and
their verdict rules, the control-to-check table in the docs, image references and the allow-list, RBAC subject
and binding analysis, the control-plane helpers, and the --kready-allowed-registries option."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest

from pytest_kready import attempts, client
from pytest_kready.checks import control_plane_secrets as cpl
from pytest_kready.checks import admission
from pytest_kready.checks import pod_security
from pytest_kready.checks import rbac
from pytest_kready.findings import SEVERITIES, Verdict

DOCS = Path(__file__).resolve().parent.parent / "docs"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"


def status(code: int, message: str, reason: str = "") -> client.Response:
    return client.Response(code, {"kind": "Status", "message": message, "reason": reason, "code": code})


# --- who refused ---------------------------------------------------------------------------------------------

REFUSALS = [
    (403, 'pods "x" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set '
          'securityContext.privileged=true)', "Pod Security Admission (restricted:latest)"),
    (403, "pods \"x\" is forbidden: ValidatingAdmissionPolicy 'kready-image-rules' with binding 'kready-image-rules' "
          "denied request: images must name an immutable tag", "ValidatingAdmissionPolicy kready-image-rules, binding "
                                                                "kready-image-rules"),
    (422, "pods \"x\" is invalid: ValidatingAdmissionPolicy 'no-root' with binding 'b' denied request: root",
     "ValidatingAdmissionPolicy no-root, binding b"),
    (400, 'admission webhook "validate.kyverno.svc-fail" denied the request: \n\nresource Pod/ns/x was blocked due to '
          'the following policies', "Kyverno (admission webhook validate.kyverno.svc-fail)"),
    (403, 'admission webhook "validation.gatekeeper.sh" denied the request: [psp-privileged-container] Privileged '
          'container is not allowed', "Gatekeeper (admission webhook validation.gatekeeper.sh)"),
    (400, 'admission webhook "policy.example.com" denied the request: no', "admission webhook policy.example.com"),
    (403, 'pods "x" is forbidden: exceeded quota: default-quota, requested: requests.cpu=6, used: requests.cpu=0, '
          'limited: requests.cpu=4', "ResourceQuota default-quota"),
    (403, 'pods "x" is forbidden: failed quota: compute: must specify limits.cpu for: c', "ResourceQuota compute"),
    (403, 'pods "x" is forbidden: [maximum cpu usage per Container is 2, but limit is 10k]', "LimitRange"),
    (403, 'pods "x" is forbidden: image policy webhook backend denied one or more images', "ImagePolicyWebhook"),
    (403, 'pods "x" is forbidden: something we do not know', "admission (unnamed plugin)"),
]


@pytest.mark.parametrize("code,message,who", REFUSALS)
def test_a_refusal_names_the_admission_path(code, message, who):
    attempt = attempts.classify(status(code, message), namespace="ns")
    assert attempt.outcome == attempts.REFUSED and attempt.refused_by == who
    assert who in attempt.describe()


@pytest.mark.parametrize("code,message,outcome", [
    (403, 'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace "ns"',
     attempts.NO_PERMISSION),
    (403, 'unable to create new content in namespace ns because it is being terminated', attempts.NAMESPACE_GONE),
    (404, 'namespaces "ns" not found', attempts.NAMESPACE_GONE),
    (422, 'Pod "x" is invalid: spec.containers[0].securityContext.procMount: Invalid value: "Unmasked"', attempts.INVALID),
    (400, 'admission webhook "w.example.com" does not support dry run', attempts.DRY_RUN_UNSUPPORTED),
    (500, 'Internal error occurred: failed calling webhook "w.example.com": connection refused', attempts.ERROR),
    (400, 'failed calling webhook "w.example.com": x509', attempts.ERROR),
])
def test_answers_that_are_not_admission_decisions(code, message, outcome):
    assert attempts.classify(status(code, message), namespace="ns").outcome == outcome


def test_an_accepted_dry_run_keeps_the_admitted_object_and_warnings():
    admitted = {"kind": "Pod", "spec": {"containers": []}}
    attempt = attempts.classify(client.Response(201, admitted, ["would violate PodSecurity"]))
    assert attempt.accepted and attempt.obj is admitted and attempt.warnings == ["would violate PodSecurity"]
    assert client._split_warnings(['299 - "a, b", 299 - "c"']) == ["a, b", "c"]


def test_repro_is_one_kubectl_line_without_the_runs_labels():
    pod = attempts.compliant_pod(IMAGE, "kready-x")
    pod["metadata"]["labels"] = {"kready.dev/run-id": "r"}
    line = attempts.kubectl_create(pod, "team-a")
    assert "\n" not in line and line.endswith("| kubectl create --dry-run=server -n team-a -f -")
    assert "run-id" not in line and json.loads(line.split("'")[1])["metadata"] == {"name": "kready-x"}


# --- attack pods ---------------------------------------------------------------------------------------------


def test_the_compliant_pod_meets_the_restricted_profile_and_never_runs():
    pod = attempts.compliant_pod(IMAGE)
    sc, csc = pod["spec"]["securityContext"], pod["spec"]["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0 and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["spec"]["schedulingGates"] == [{"name": attempts.SCHEDULING_GATE}]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert len(pod["metadata"]["name"]) <= 63


def test_every_pod_security_standards_control_has_an_attack_pod():
    covered = {cover for a in pod_security.ATTACKS for cover in a.covers}
    for level, controls in pod_security.PSS_CONTROLS.items():
        for control in controls:
            assert (level, control) in covered, f"{level} control {control} has no attack pod"
    assert all(names for *_, names in pod_security.control_table())


def test_attack_specs_are_well_formed():
    names = [a.name for a in pod_security.ATTACKS]
    assert len(names) == len(set(names))
    for a in pod_security.ATTACKS:
        assert re.fullmatch(r"pod-security\.[a-z-]+", a.check_id), a
        assert a.severity in SEVERITIES and a.level in ("baseline", "restricted") and a.references
        assert any("Pod Security Standards" in r for r in a.references)
        assert a.ops and (not a.also or a.marker), f"{a.name}: an attack with 'also' needs a marker"
        assert re.fullmatch(r"[A-Za-z0-9_-]+", a.name)


@pytest.mark.parametrize("attack", pod_security.attacks_for_image(IMAGE).values(), ids=lambda a: a.name)
def test_an_attack_pod_is_the_compliant_pod_with_exactly_its_changes(attack):
    base = attempts.compliant_pod(IMAGE, "kready-base")
    pod = attack.build(base)
    assert base == attempts.compliant_pod(IMAGE, "kready-base"), "build must not touch the base pod"
    assert pod["metadata"]["name"] != base["metadata"]["name"]
    undone = copy.deepcopy(pod)
    undone["metadata"]["name"] = base["metadata"]["name"]
    for op in attack.ops:  # putting back what each op changed gives the compliant pod again
        orig = pod_security.get_path(base, op.path)
        if orig is pod_security._MISSING:
            pod_security.delete_path(undone, op.path)
        else:
            pod_security.set_path(undone, op.path, copy.deepcopy(orig))
    assert undone == base
    assert attack.still_present(pod), "the unmutated attack pod carries its change"
    assert "__IMAGE__" not in json.dumps(pod)


def test_an_attack_neutralised_by_a_mutating_policy_is_not_present():
    attack = pod_security.ATTACKS_BY_NAME["privileged"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    admitted = copy.deepcopy(pod)
    admitted["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"  # defaults do not matter
    assert attack.still_present(admitted)
    admitted["spec"]["containers"][0]["securityContext"]["privileged"] = False
    assert not attack.still_present(admitted)
    unset = pod_security.ATTACKS_BY_NAME["runAsNonRoot-unset"]
    pod = unset.build(attempts.compliant_pod(IMAGE))
    assert unset.still_present(pod)
    pod["spec"]["securityContext"]["runAsNonRoot"] = True
    assert not unset.still_present(pod)


def test_contains_is_a_recursive_subset():
    assert pod_security.contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert not pod_security.contains({"a": 1}, {"a": 2})
    assert pod_security.contains([{"x": 1, "y": 2}], [{"x": 1}])
    assert not pod_security.contains([{"x": 1}, {"x": 2}], [{"x": 1}])


# --- verdicts ------------------------------------------------------------------------------------------------

ACCEPTED = attempts.Attempt(attempts.ACCEPTED, 201, namespace="ns")
PSA = REFUSALS[0][1]


def accepted_with(pod):
    return attempts.Attempt(attempts.ACCEPTED, 201, obj=pod, namespace="ns")


def refused(message=PSA, who="Pod Security Admission (restricted:latest)", dry_run=True):
    return attempts.Attempt(attempts.REFUSED, 403, message=message, refused_by=who, namespace="ns", dry_run=dry_run)


def test_admitted_attack_fails_and_refused_attack_passes_naming_the_refuser():
    attack = pod_security.ATTACKS_BY_NAME["hostPID"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    assert pod_security.judge_attack(attack, ACCEPTED, accepted_with(pod))[0] is Verdict.FAIL
    verdict, why = pod_security.judge_attack(attack, ACCEPTED, refused())
    assert verdict is Verdict.PASS and "Pod Security Admission (restricted:latest)" in why


def test_refused_compliant_pod_makes_every_attack_inconclusive_never_pass():
    attack = pod_security.ATTACKS_BY_NAME["hostPID"]
    control = refused(who="Kyverno (admission webhook validate.kyverno.svc-fail)")
    verdict, why = pod_security.judge_attack(attack, control, refused())
    assert verdict is Verdict.INCONCLUSIVE and "compliant pod" in why and "Kyverno" in why
    assert pod_security.judge_attack(attack, None, refused())[0] is Verdict.INCONCLUSIVE
    assert pod_security.judge_control(attempts.Attempt(attempts.ERROR, 500, "boom", namespace="ns"))[0] is Verdict.INCONCLUSIVE


def test_a_refusal_for_the_companion_change_only_is_inconclusive():
    attack = pod_security.ATTACKS_BY_NAME["privileged"]  # also drops allowPrivilegeEscalation: false
    only_ape = 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "probe" ...)'
    assert pod_security.judge_attack(attack, ACCEPTED, refused(only_ape))[0] is Verdict.INCONCLUSIVE
    both = only_ape + ', privileged (container "probe" must not set securityContext.privileged=true)'
    assert pod_security.judge_attack(attack, ACCEPTED, refused(both))[0] is Verdict.PASS


@pytest.mark.parametrize("outcome,verdict", [
    (attempts.NO_PERMISSION, Verdict.NOT_APPLICABLE), (attempts.NAMESPACE_GONE, Verdict.NOT_APPLICABLE),
    (attempts.INVALID, Verdict.INCONCLUSIVE), (attempts.DRY_RUN_UNSUPPORTED, Verdict.INCONCLUSIVE), (attempts.ERROR, Verdict.INCONCLUSIVE),
])
def test_attempts_without_an_admission_decision(outcome, verdict):
    attack = pod_security.ATTACKS_BY_NAME["hostIPC"]
    assert pod_security.judge_attack(attack, ACCEPTED, attempts.Attempt(outcome, 400, "x", namespace="ns"))[0] is verdict


def test_the_real_create_cross_check_overrules_a_dry_run_it_contradicts():
    attack = pod_security.ATTACKS_BY_NAME["hostNetwork"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    real_ok = attempts.Attempt(attempts.ACCEPTED, 201, dry_run=False, namespace="scratch")
    real_no = refused(dry_run=False)
    # dry-run refused, real create accepted: a dry-run refusal proves nothing
    cross = attempts.CrossCheck("scratch", refused(), real_ok)
    assert not cross.agree and pod_security.judge_attack(attack, ACCEPTED, refused(), cross)[0] is Verdict.INCONCLUSIVE
    assert pod_security.judge_attack(attack, ACCEPTED, accepted_with(pod), cross)[0] is Verdict.FAIL
    # dry-run accepted, real create refused: a dry-run acceptance proves nothing
    cross = attempts.CrossCheck("scratch", accepted_with(pod), real_no)
    assert pod_security.judge_attack(attack, ACCEPTED, accepted_with(pod), cross)[0] is Verdict.INCONCLUSIVE
    assert pod_security.judge_attack(attack, ACCEPTED, refused(), cross)[0] is Verdict.PASS
    # agreement changes nothing
    cross = attempts.CrossCheck("scratch", accepted_with(pod), real_ok)
    assert cross.agree and pod_security.judge_attack(attack, ACCEPTED, accepted_with(pod), cross)[0] is Verdict.FAIL


def test_remediation_is_the_namespace_yaml_enforcing_restricted():
    text = pod_security.namespace_remediation("team-a", "baseline")
    assert "name: team-a" in text and "pod-security.kubernetes.io/enforce: restricted" in text
    assert "kubectl label --overwrite namespace team-a" in text and "baseline is the least" in text


def test_docs_table_matches_the_attack_specs():
    text = (DOCS / "checks-pod-security.md").read_text()
    rows = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("baseline", "restricted"):
            rows.add((cells[0], cells[1], cells[2].strip("`"), ", ".join(c.strip(" `") for c in cells[3].split(","))))
    assert rows == set(pod_security.control_table())
    for a in pod_security.ATTACKS:
        assert f"| `{a.name}` | `{a.check_id}` | {a.severity} |" in text, a.name


# --- images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image,registry,path,tag,mutable", [
    ("busybox", "docker.io", "library/busybox", None, True),
    ("busybox:latest", "docker.io", "library/busybox", "latest", True),
    ("library/busybox:1.36", "docker.io", "library/busybox", "1.36", False),
    ("registry.k8s.io/pause:3.10.2", "registry.k8s.io", "pause", "3.10.2", False),
    ("localhost:5000/a/b", "localhost:5000", "a/b", None, True),
    ("ghcr.io/acme/x@sha256:abc", "ghcr.io", "acme/x", None, False),
])
def test_image_references_parse_as_the_runtime_does(image, registry, path, tag, mutable):
    ref = admission.parse(image)
    assert (ref.registry, ref.path, ref.tag, ref.mutable) == (registry, path, tag, mutable)


def test_allow_list_matches_at_path_boundaries():
    allow = ("registry.k8s.io", "ghcr.io/acme")
    assert admission.allowed("registry.k8s.io/pause:3.10", allow)
    assert admission.allowed("ghcr.io/acme/app:1", allow)
    assert not admission.allowed("registry.k8s.io.evil.example/pause:3.10", allow)
    assert not admission.allowed("ghcr.io/acme-evil/app:1", allow)
    assert not admission.allowed("pause:3.10", allow)
    assert admission.allowed("pause:3.10", ("docker.io",))


def test_attack_images_lie_outside_the_allow_list():
    for allow in (("registry.k8s.io",), ("registry.k8s.io/e2e-test-images",)):
        images = admission.outside_images(IMAGE, allow)
        assert all(i and not admission.allowed(i, allow) for i in images.values()), images
    assert admission.outside_images(IMAGE, ("registry.k8s.io", "docker.io"))["docker-hub-short-name"] is None
    assert admission.mutable_images(IMAGE) == {"latest": "registry.k8s.io/e2e-test-images/agnhost:latest",
                                         "untagged": "registry.k8s.io/e2e-test-images/agnhost"}


# --- RBAC ----------------------------------------------------------------------------------------------------


def sa(ns, name):
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


@pytest.mark.parametrize("subject,system", [
    ({"kind": "Group", "name": "system:masters"}, True),
    ({"kind": "User", "name": "system:kube-controller-manager"}, True),
    ({"kind": "Group", "name": "system:authenticated"}, False),
    ({"kind": "Group", "name": "system:unauthenticated"}, False),
    ({"kind": "Group", "name": "system:serviceaccounts:team"}, False),
    ({"kind": "User", "name": "system:anonymous"}, False),
    ({"kind": "User", "name": "alice"}, False),
    (sa("kube-system", "replicaset-controller"), True),
    (sa("kube-system", "default"), False),
    (sa("team", "app"), False),
])
def test_system_subjects(subject, system):
    assert rbac.is_system_subject(subject) is system


def binding(name, role, subjects, ns=None, kind="ClusterRole"):
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": meta, "roleRef": {"kind": kind, "name": role}, "subjects": subjects}


def test_cluster_admin_offenders_are_the_non_system_subjects():
    crbs = [binding("cluster-admin", "cluster-admin", [{"kind": "Group", "name": "system:masters"}]),
            binding("ops", "cluster-admin", [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "system:masters"}]),
            binding("everyone", "cluster-admin", [{"kind": "Group", "name": "system:authenticated"}]),
            binding("viewers", "view", [{"kind": "User", "name": "bob"}])]
    rbs = [binding("ns-admin", "cluster-admin", [sa("team", "ci")], ns="team")]
    offenders = rbac.cluster_admin_offenders(crbs, rbs)
    assert [(o["subject"], o["binding"]) for o in offenders] == [
        ("User alice", "ClusterRoleBinding ops"), ("Group system:authenticated", "ClusterRoleBinding everyone"),
        ("ServiceAccount team/ci", "RoleBinding team/ns-admin")]
    assert rbac.cluster_admin_bindings(crbs) == ["cluster-admin", "ops", "everyone"]


def test_kubeadms_admin_conf_group_is_the_platforms_binding_not_an_offender():
    kubeadm = binding("kubeadm:cluster-admins", "cluster-admin", [{"kind": "Group", "name": "kubeadm:cluster-admins"}])
    # the same group bound under another name, or another subject in kubeadm's binding, is someone's choice
    other_name = binding("admins", "cluster-admin", [{"kind": "Group", "name": "kubeadm:cluster-admins"}])
    extra = binding("kubeadm:cluster-admins", "cluster-admin", [{"kind": "User", "name": "alice"}])
    in_ns = binding("kubeadm:cluster-admins", "cluster-admin", [{"kind": "Group", "name": "kubeadm:cluster-admins"}],
                    ns="team")
    assert rbac.cluster_admin_offenders([kubeadm], []) == []
    assert [o["subject"] for o in rbac.cluster_admin_offenders([other_name, extra], [in_ns])] == [
        "Group kubeadm:cluster-admins", "User alice", "Group kubeadm:cluster-admins"]


def test_wildcard_roles_bound_to_workloads():
    stock = {"metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
             "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    wild = {"metadata": {"name": "wild"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}
    tame = {"metadata": {"name": "tame"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    nsrole = {"metadata": {"name": "r", "namespace": "team"}, "rules": [{"resources": ["*"], "verbs": ["get"]}]}
    crbs = [binding("b1", "cluster-admin", [sa("team", "x")]), binding("b2", "tame", [sa("team", "x")]),
            binding("b3", "wild", [{"kind": "User", "name": "alice"}])]
    rbs = [binding("b4", "wild", [sa("team", "app")], ns="team"),
           binding("b5", "r", [{"kind": "Group", "name": "system:serviceaccounts:team"}], ns="team", kind="Role"),
           binding("b6", "wild", [sa("kube-system", "job-controller")], ns="kube-system")]
    offenders, roles = rbac.wildcard_offenders([stock, wild, tame], [nsrole], crbs, rbs)
    assert [(o["role"], o["binding"], o["subjects"]) for o in offenders] == [
        ("ClusterRole wild", "RoleBinding team/b4", ["ServiceAccount team/app"]),
        ("Role team/r", "RoleBinding team/b5", ["Group system:serviceaccounts:team"])]
    assert roles == ["ClusterRole wild", "Role team/r"]


def test_bindings_granting_the_default_serviceaccount():
    crbs = [binding("all-sa", "view", [{"kind": "Group", "name": "system:serviceaccounts"}]),
            binding("system:discovery", "system:discovery", [{"kind": "Group", "name": "system:authenticated"}])]
    rbs = [binding("edit", "edit", [sa("team", "default")], ns="team"),
           binding("other", "edit", [sa("other", "default")], ns="other")]
    assert rbac.bindings_granting("team", "default", crbs, rbs) == [
        "ClusterRoleBinding all-sa → ClusterRole view", "RoleBinding team/edit → ClusterRole edit"]


def test_a_try_reads_403_as_refused_and_404_as_authorized():
    t = rbac.Try("get", "GET", "/x", {}, status(404, "not found"))
    assert t.allowed and not t.refused
    assert rbac.Try("get", "GET", "/x", {}, status(403, "forbidden")).refused
    assert rbac.Try("get", "GET", "/x", {}, status(500, "boom")).undecided
    assert rbac.Try("list", "GET", "/x", {}, status(404, "x"), allowed_statuses=(200,)).undecided


def test_token_volume_detection():
    assert rbac.has_token_volume({"spec": {"volumes": [{"name": "kube-api-access-abcde", "projected": {}}]}})
    assert rbac.has_token_volume({"spec": {"volumes": [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}]}})
    assert not rbac.has_token_volume({"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}})
    assert not rbac.has_token_volume(None)


# --- control plane -------------------------------------------------------------------------------------------


def test_stored_bytes_are_judged_by_their_envelope_only():
    facts = cpl.judge_stored(b"k8s:enc:aescbc:v1:key1:\x8f\x00binary", b"s3cret")
    assert facts == {"stored_bytes": 31, "prefix": "k8s:enc:aescbc:v1:key1", "encrypted": True, "provider": "aescbc",
                     "plaintext_value_found": False}
    plain = cpl.judge_stored(b"k8s\x00\n\x0f\n\x02v1\x12\x06Secret...s3cret...", b"s3cret")
    assert plain["encrypted"] is False and plain["plaintext_value_found"] is True
    assert "s3cret" not in json.dumps(plain)
    assert cpl.stored_prefix(b'{"kind":"Secret"}').startswith("{ (JSON")
    assert cpl.stored_prefix(b"k8s:enc:kms:v2:my-kms:\x00\xff") == "k8s:enc:kms:v2:my-kms"


class FakeControlPlane:
    def __init__(self, outputs):
        self.outputs = outputs
        self.calls = []
        self.etcd = type("E", (), {"endpoints": "https://127.0.0.1:2379", "cacert": "ca", "cert": "c", "key": "k"})()

    def run(self, argv, *, input=None, timeout=60):
        self.calls.append(argv)
        rc, out, err = self.outputs.pop(0)
        return subprocess.CompletedProcess(argv, rc, out, err)


def test_etcd_reads_through_the_control_plane():
    cp = FakeControlPlane([(0, b"k8s:enc:aescbc:v1:key1:xyz\n", b""), (0, b"", b""), (1, b"", b"context deadline exceeded\n")])
    assert cpl.etcd_get(cp, "/registry/secrets/a/b") == (b"k8s:enc:aescbc:v1:key1:xyz", "")
    assert cp.calls[0][:2] == ["etcdctl", "--endpoints"] and cp.calls[0][-3:] == ["get", "/registry/secrets/a/b",
                                                                                   "--print-value-only"]
    assert cpl.etcd_get(cp, "/registry/secrets/a/missing") == (None, "")
    assert cpl.etcd_get(cp, "/x") == (None, "context deadline exceeded")

    class KindLike(FakeControlPlane):
        def etcdctl(self, args, *, timeout=60):
            return subprocess.CompletedProcess(args, 0, b"v\n", b"")

    assert cpl.etcd_get(KindLike([]), "/k") == (b"v", "")


def test_audit_events_are_found_and_trimmed():
    event = {"kind": "Event", "level": "Metadata", "auditID": "1", "stage": "ResponseComplete", "verb": "get",
             "requestURI": "/api/v1/namespaces/default/configmaps/kready-audit-x", "user": {"username": "admin",
                                                                                           "groups": ["g"]},
             "objectRef": {"resource": "configmaps", "name": "kready-audit-x"}, "responseStatus": {"code": 404},
             "requestObject": {"data": "never shown"}}
    cp = FakeControlPlane([(0, (json.dumps(event) + "\nnot json\n").encode(), b""), (1, b"", b""),
                           (2, b"", b"grep: /log: Permission denied\n")])
    events, err = cpl.audit_events(cp, "/log", "kready-audit-x")
    assert err is None and len(events) == 1 and events[0]["user"] == "admin" and "requestObject" not in events[0]
    assert cpl.audit_events(cp, "/log", "x") == ([], None)
    assert cpl.audit_events(cp, "/log", "x")[1] == "grep: /log: Permission denied"


def test_metric_totals():
    text = ("# HELP apiserver_audit_event_total x\napiserver_audit_event_total 910\n"
            'apiserver_request_total{code="200",verb="GET"} 5\napiserver_request_total{code="404",verb="GET"} 2\n')
    assert cpl.metric_total(text, "apiserver_audit_event_total") == 910
    assert cpl.metric_total(text, "apiserver_request_total") == 7
    assert cpl.metric_total(text, "apiserver_audit_error_total") is None


# --- the option ----------------------------------------------------------------------------------------------


def test_allowed_registries_option_cli_and_ini(pytester):
    pytester.makepyfile(test_show="def test_show(kready_settings):\n"
                                  "    print('REGISTRIES', kready_settings.allowed_registries)\n")
    # a test path is always given: without one the plugin would collect the shipped suites
    result = pytester.runpytest("test_show.py", "--kready", "--kready-provider=local",
                                "--kready-allowed-registries=registry.k8s.io, ghcr.io/acme/", "-s")
    result.stdout.fnmatch_lines(["*REGISTRIES ('registry.k8s.io', 'ghcr.io/acme')*"])
    pytester.makeini("[pytest]\nkready_allowed_registries = quay.io/team\n")
    result = pytester.runpytest("test_show.py", "--kready", "--kready-provider=local", "-s")
    result.stdout.fnmatch_lines(["*REGISTRIES ('quay.io/team',)*"])


def test_allowed_registries_option_rejects_garbage(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("test_x.py", "--kready", "--kready-provider=local",
                                "--kready-allowed-registries=bad registry!")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kready-allowed-registries: 'bad registry!' is not a registry host*"])
