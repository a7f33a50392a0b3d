"""Pod security: an attack pod for every control of the Pod Security Standards (baseline and restricted),
each its own pytest parameter, tried in every target namespace with a server-side dry-run (safe in readonly
mode). A refusal by any admission path counts and the evidence names it. The compliant pod is the positive
control: refused too, and the namespace's verdict is inconclusive, never pass. In standard mode each attack pod
is also created for real in a throw-away namespace of the run, to prove the dry-run tells the truth.

The controls are those of the Pod Security Admission policy registry of the pinned Kubernetes version
(pytest_kready/checks/data/psa-controls-v1.<minor>.json). Verdicts, evidence, repro and remediation come from
pytest_kready/checks/pod_security.py; this module only records them. Control-to-check table:
docs/checks-pod-security.md.
"""

from __future__ import annotations

import pytest

from pytest_kready import attempts
from pytest_kready.checks import pod_security

pytestmark = pytest.mark.kready_mode("readonly")


pod_probe = attempts.module_pod_probe("podsec-scratch")


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
    targets = _targets(pod_probe, kready_finding)
    for ns, control in zip(targets, attempts.each_namespace(pod_probe.control, targets)):
        pod_security.compliant_result(pod, ns, control, cross).record(kready_finding)


@pytest.fixture(scope="module")
def attacks_ahead(pod_probe, request):
    """The selected attacks' dry-runs, begun together when the first of them runs (``PodProbe.ahead``)."""
    attacks = pod_security.attacks_for_image(pod_probe.image)
    pod_probe.ahead({name: attacks[name].build(pod_probe.base_pod())
                     for name in attempts.selected_params(request, "attack_name") if name in attacks})


@pytest.mark.parametrize("attack_name", [
    pytest.param(a.name, id=a.name, marks=pytest.mark.kready_check(a.check_id)) for a in pod_security.ATTACKS])
def test_attack_pod_is_refused(attack_name, pod_probe, attacks_ahead, kready_finding):
    """One attack pod (the compliant pod with one change) must be refused, or neutralised, in every target."""
    attack = pod_security.attacks_for_image(pod_probe.image)[attack_name]
    _targets(pod_probe, kready_finding)
    pod, tried = pod_probe.tried(attack.name, lambda: attack.build(pod_probe.base_pod()))
    cross = pod_probe.cross_check(attack.name, pod)
    for ns, control, attempt in tried:
        pod_security.attack_result(attack, pod, ns, control, attempt, cross).record(kready_finding)
