"""Pod security: an attack pod for every control of the Pod Security Standards (baseline and restricted),
each its own pytest parameter, tried in every target namespace with a server-side dry-run (safe in readonly
mode). A refusal by any admission path counts and the evidence names it. The compliant pod is the positive
control: refused too, and the namespace's verdict is inconclusive, never pass. In standard mode each attack pod
is also created for real in a throw-away namespace of the run, to prove the dry-run tells the truth.

Control-to-check table: docs/checks-pod-security.md.
"""

from __future__ import annotations

import pytest

from pytest_kready import attempts
from pytest_kready.checks import pod_security
from pytest_kready.checks import references as ref
from pytest_kready.findings import Verdict

pytestmark = pytest.mark.kready_mode("readonly")


@pytest.fixture(scope="module")
def pod_probe(request, kready_cluster):
    probe = attempts.PodProbe(kready_cluster, scratch_prefix="podsec-scratch")
    yield probe
    probe.close(failed=request.session.testsfailed > 0)


def _targets(probe, kready_finding) -> list[str]:
    targets = probe.targets
    if not targets:
        kready_finding.not_applicable("no target namespaces (readonly mode without --kready-namespaces and no "
                                      "non-system namespace in the cluster)")
    return targets


@pytest.mark.kready_check(pod_security.COMPLIANT_CHECK)
def test_compliant_pod_is_admitted(pod_probe, kready_finding):
    """The positive control: a pod meeting the restricted profile is admitted where the attacks are tried."""
    pod = pod_probe.base_pod()
    cross = pod_probe.cross_check("compliant", pod)
    for ns in _targets(pod_probe, kready_finding):
        control = pod_probe.control(ns)
        decided = pod_security.judge_control(control)
        if decided is None:
            verdict, summary = Verdict.PASS, "the compliant pod is admitted (server-side dry-run)"
            if cross is not None and not cross.real.accepted:
                verdict = Verdict.INCONCLUSIVE
                summary += (f"; but its real create in throw-away namespace {cross.namespace} was not: "
                            f"{cross.real.describe()}")
        else:
            verdict, summary = decided
        kready_finding(
            verdict, summary, target_namespace=ns, severity="info",
            request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", pod),
            response=control.evidence(), repro=attempts.kubectl_create(pod, ns),
            remediation=None if verdict is Verdict.PASS else (
                "Find what refuses a pod meeting the restricted Pod Security profile (the refusal message names it) "
                "and let such pods through: until then no refusal here proves anything."),
            references=(ref.CIS_POLICY_MECHANISM, ref.PSS_URL),
            evidence={"cross_check": cross.evidence() if cross else None})


@pytest.mark.parametrize("attack_name", [
    pytest.param(a.name, id=a.name, marks=pytest.mark.kready_check(a.check_id)) for a in pod_security.ATTACKS])
def test_attack_pod_is_refused(attack_name, pod_probe, kready_finding):
    """One attack pod (the compliant pod with one change) must be refused, or neutralised, in every target."""
    attack = pod_security.attacks_for_image(pod_probe.image)[attack_name]
    base = pod_probe.base_pod()
    pod = attack.build(base)
    cross = pod_probe.cross_check(attack.name, pod)
    for ns in _targets(pod_probe, kready_finding):
        control = pod_probe.control(ns)
        attempt = attempts.attempt_create(pod_probe.cluster, pod, ns)
        verdict, summary = pod_security.judge_attack(attack, control, attempt, cross)
        kready_finding(
            verdict, summary, target_namespace=ns, severity=attack.severity,
            request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", pod),
            response=attempt.evidence(), repro=attempts.kubectl_create(pod, ns),
            remediation=None if verdict is Verdict.PASS else pod_security.namespace_remediation(ns, attack.level),
            references=attack.references,
            evidence={"attack": attack.name, "control": attack.control, "level": attack.level,
                      "changes": attack.changes(), "also_violates": list(attack.also),
                      "positive_control": control.evidence(),
                      "cross_check": cross.evidence() if cross else None})
