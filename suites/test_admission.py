"""Admission rules for resources and images, tried with server-side dry-run pods in every target namespace
(safe in readonly mode): a pod without requests and limits is refused or defaulted by a LimitRange, an
oversized pod is refused by a ResourceQuota, an image with a mutable tag is refused, an image from outside the
allow-list (``--kready-allowed-registries``) is refused. The compliant pod is the positive control of each.

The checks and their verdicts are in pytest_kready/checks/admission.py; this module only provides fixtures and
markers and records what the checks return. Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations

import pytest

from pytest_kready import attempts
from pytest_kready.checks import admission
from pytest_kready.checks.rbac import NO_TARGETS

pytestmark = pytest.mark.kready_mode("readonly")


pod_probe = attempts.module_pod_probe("admission-scratch")


def _targets(probe, kready_finding) -> list[str]:
    if not probe.targets:
        kready_finding.not_applicable(NO_TARGETS)
    return probe.targets


@pytest.mark.kready_check("resources.limits")
def test_pod_without_requests_and_limits_is_refused_or_defaulted(pod_probe, kready_finding):
    targets = _targets(pod_probe, kready_finding)
    for result in attempts.each_namespace(lambda ns: admission.limits(pod_probe, ns), targets):
        result.record(kready_finding)


@pytest.mark.kready_check("resources.quota")
def test_oversized_pod_is_refused_by_a_quota(pod_probe, kready_finding):
    targets = _targets(pod_probe, kready_finding)
    for result in attempts.each_namespace(lambda ns: admission.quota(pod_probe, ns), targets):
        result.record(kready_finding)


def _judge_image(pod_probe, kready_finding, attack, allow_list=None, extra=None):
    pod = attack.build(pod_probe.base_pod())
    cross = pod_probe.cross_check(attack.check_id + ":" + attack.name, pod)
    targets = _targets(pod_probe, kready_finding)

    def judge(ns):
        return admission.image_result(pod_probe, ns, attack, pod, cross, allow_list, extra)

    for result in attempts.each_namespace(judge, targets):
        result.record(kready_finding)


@pytest.mark.kready_check("images.mutable-tag")
@pytest.mark.parametrize("variant", ["latest", "untagged"])
def test_mutable_image_tag_is_refused(variant, pod_probe, kready_finding):
    probe_image = pod_probe.image
    if admission.parse(probe_image).mutable:
        kready_finding.inconclusive(f"the probe image {probe_image} itself has a mutable tag, so the positive control "
                                    "cannot be a compliant pod; pass --kready-image with a pinned tag or digest")
    _judge_image(pod_probe, kready_finding, admission.mutable_tag_attack(variant, probe_image),
                 pod_probe.cluster.settings.allowed_registries)


@pytest.mark.kready_check("images.registry")
@pytest.mark.parametrize("variant", ["untrusted-registry", "docker-hub-short-name", "lookalike-registry"])
def test_image_from_outside_the_allow_list_is_refused(variant, pod_probe, kready_finding):
    allow_list = pod_probe.cluster.settings.allowed_registries
    if not allow_list:
        kready_finding.not_applicable("no registry allow-list given: pass --kready-allowed-registries=REG,REG "
                                      "(or kready_allowed_registries in the ini file)")
    probe_image = pod_probe.image
    if not admission.allowed(probe_image, allow_list):
        kready_finding.inconclusive(f"the probe image {probe_image} is outside the allow-list {', '.join(allow_list)}, "
                                    "so the positive control cannot be a compliant pod; pass --kready-image with an "
                                    "image from an allowed registry")
    image = admission.outside_images(probe_image, allow_list)[variant]
    if image is None:
        kready_finding.not_applicable(f"every {variant} image is inside the allow-list {', '.join(allow_list)}")
    _judge_image(pod_probe, kready_finding, admission.registry_attack(variant, image, allow_list), allow_list,
                 {"allow_list": list(allow_list)})
