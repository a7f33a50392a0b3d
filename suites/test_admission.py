"""Admission rules for resources and images, tried with server-side dry-run pods in every target namespace
(safe in readonly mode): a pod without requests and limits is refused or defaulted by a LimitRange, an
oversized pod is refused by a ResourceQuota, an image with a mutable tag is refused, an image from outside the
allow-list (``--kready-allowed-registries``) is refused. The compliant pod is the positive control of each: if it
is refused too, the verdict is inconclusive. Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pytest_kready import attempts, client
from pytest_kready.checks import admission
from pytest_kready.checks import pod_security
from pytest_kready.checks import references as ref
from pytest_kready.findings import Verdict
from pytest_kready.resources import profile_file

pytestmark = pytest.mark.kready_mode("readonly")

_PROFILE = profile_file("hardened")
LIMITRANGE_URL = "https://kubernetes.io/docs/concepts/policy/limit-range/"
QUOTA_URL = "https://kubernetes.io/docs/concepts/policy/resource-quotas/"
VAP_URL = "https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/"
HUGE = {"cpu": "10000", "memory": "100Ti"}
SPLIT_CONTAINERS = 16


@pytest.fixture(scope="module")
def pod_probe(request, kready_cluster):
    probe = attempts.PodProbe(kready_cluster, scratch_prefix="admission-scratch")
    yield probe
    probe.close(failed=request.session.testsfailed > 0)


def _targets(probe, kready_finding) -> list[str]:
    if not probe.targets:
        kready_finding.not_applicable("no target namespaces (readonly mode without --kready-namespaces and no "
                                      "non-system namespace in the cluster)")
    return probe.targets


def _reference_doc(path: Path, kind: str, namespace: str | None = None) -> str:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]
    except (OSError, yaml.YAMLError):
        return ""
    out = []
    for d in docs:
        if namespace and "namespace" in (d.get("metadata") or {}):
            d["metadata"]["namespace"] = namespace
        out.append(yaml.safe_dump(d, sort_keys=False).strip())
    return "\n---\n".join(out)


def _record(kready_finding, verdict, summary, ns, pod, attempt, **fields):
    kready_finding(verdict, summary, target_namespace=ns,
                   request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", pod),
                   response=attempt.evidence() if attempt else None, repro=attempts.kubectl_create(pod, ns), **fields)


# --- resources -----------------------------------------------------------------------------------------------


def _container_limits(pod: dict | None) -> list[dict]:
    return [c.get("resources") or {} for c in ((pod or {}).get("spec") or {}).get("containers") or []]


@pytest.mark.kready_check("resources.limits")
def test_pod_without_requests_and_limits_is_refused_or_defaulted(pod_probe, kready_finding):
    refs = (ref.NSA_RESOURCE_POLICIES, LIMITRANGE_URL)
    for ns in _targets(pod_probe, kready_finding):
        pod = pod_probe.base_pod()
        pod["metadata"]["name"] = attempts.probe_name("no-resources")
        del pod["spec"]["containers"][0]["resources"]
        control = pod_probe.control(ns)
        attempt = attempts.attempt_create(pod_probe.cluster, pod, ns)
        decided = pod_security.judge_reach(attempt) or pod_security.judge_control(control)
        res = (_container_limits(attempt.obj) or [{}])[0]
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if decided is not None:
            verdict, summary = decided
        elif attempt.refused:
            verdict, summary = Verdict.PASS, f"a pod without requests and limits is refused by {attempt.refused_by}"
        elif attempt.accepted and {"cpu", "memory"} <= set(requests) and "memory" in limits:
            verdict, summary = Verdict.PASS, ("a pod without requests and limits is admitted with defaults (LimitRange): "
                                              f"requests {requests}, limits {limits}")
        elif attempt.accepted:
            missing = [f"requests.{r}" for r in ("cpu", "memory") if r not in requests] + \
                      (["limits.memory"] if "memory" not in limits else [])
            verdict, summary = Verdict.FAIL, ("a pod without requests and limits is admitted as it is "
                                              f"({', '.join(missing)} unset): one pod can starve its node")
        else:
            verdict, summary = Verdict.INCONCLUSIVE, f"no admission decision: {attempt.describe()}"
        _record(kready_finding, verdict, summary, ns, pod, attempt, severity="medium", references=refs,
                remediation=None if verdict is Verdict.PASS else (
                    f"Give namespace {ns} a LimitRange with default requests and limits (and a max):\n"
                    + _reference_doc(_PROFILE / "namespace" / "limits.yaml", "LimitRange", ns)),
                evidence={"admitted_resources": res if attempt.accepted else None,
                          "positive_control": control.evidence()})


def _container_max(api, ns: str) -> tuple[dict[str, str], bool, list[str]]:
    """Tightest per-container max of the namespace's LimitRanges, whether a per-Pod max exists, and names."""
    try:
        items = client.send(api, "GET", f"/api/v1/namespaces/{ns}/limitranges").body.get("items") or []
    except AttributeError:
        items = []
    maxes: dict[str, list[str]] = {}
    pod_max = False
    for lr in items:
        for lim in (lr.get("spec") or {}).get("limits") or []:
            if lim.get("type") == "Container":
                for r, v in (lim.get("max") or {}).items():
                    maxes.setdefault(r, []).append(v)
            if lim.get("type") == "Pod" and lim.get("max"):
                pod_max = True
    from kubernetes.utils import parse_quantity

    tight = {r: min(vs, key=parse_quantity) for r, vs in maxes.items() if r in ("cpu", "memory")}
    return tight, pod_max, [lr["metadata"]["name"] for lr in items]


def _oversized(base: dict, *, containers: int, size: dict[str, str], prefix: str) -> dict:
    pod = attempts.ensure_pod_name(base, prefix)
    first = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = []
    for i in range(containers):
        c = dict(first, name=f"c{i}", resources={"requests": dict(size), "limits": dict(size)})
        pod["spec"]["containers"].append(c)
    return pod


def _quota_name(attempt) -> bool:
    return bool(attempt.refused and attempt.refused_by and attempt.refused_by.startswith("ResourceQuota"))


@pytest.mark.kready_check("resources.quota")
def test_oversized_pod_is_refused_by_a_quota(pod_probe, kready_finding):
    refs = (ref.NSA_RESOURCE_POLICIES, QUOTA_URL)
    api = pod_probe.cluster.api_client()
    for ns in _targets(pod_probe, kready_finding):
        base = pod_probe.base_pod()
        control = pod_probe.control(ns)
        tries = []
        pod = _oversized(base, containers=1, size=HUGE, prefix="oversized")
        attempt = attempts.attempt_create(pod_probe.cluster, pod, ns)
        tries.append(attempt)
        limitranges: list[str] = []
        if attempt.refused and attempt.refused_by == "LimitRange":
            # a LimitRange caps each container; split the demand over containers that each fit it
            tight, pod_max, limitranges = _container_max(api, ns)
            size = {r: tight.get(r, HUGE[r]) for r in ("cpu", "memory")}
            pod = _oversized(base, containers=SPLIT_CONTAINERS, size=size, prefix="oversized-split")
            attempt = attempts.attempt_create(pod_probe.cluster, pod, ns)
            tries.append(attempt)
        decided = pod_security.judge_reach(attempt) or pod_security.judge_control(control)
        per = pod["spec"]["containers"][0]["resources"]["requests"]
        demand = (f"{len(pod['spec']['containers'])} container(s) each requesting cpu {per['cpu']} and memory "
                  f"{per['memory']}")
        if decided is not None:
            verdict, summary = decided
        elif _quota_name(attempt):
            verdict, summary = Verdict.PASS, f"an oversized pod ({demand}) is refused by {attempt.refused_by}"
        elif attempt.refused and attempt.refused_by == "LimitRange":
            verdict, summary = Verdict.INCONCLUSIVE, (
                "a LimitRange caps the size of a whole pod too, so no single pod can show whether a ResourceQuota caps "
                f"the namespace ({attempt.describe()})")
        elif attempt.refused:
            verdict, summary = Verdict.PASS, f"an oversized pod ({demand}) is refused by {attempt.refused_by}"
        elif attempt.accepted:
            verdict, summary = Verdict.FAIL, (f"an oversized pod ({demand}) is admitted: no ResourceQuota caps what "
                                              f"namespace {ns} may take from the cluster")
        else:
            verdict, summary = Verdict.INCONCLUSIVE, f"no admission decision: {attempt.describe()}"
        _record(kready_finding, verdict, summary, ns, pod, attempt, severity="medium", references=refs,
                remediation=None if verdict is Verdict.PASS else (
                    f"Give namespace {ns} a ResourceQuota sized for its workloads:\n"
                    + _reference_doc(_PROFILE / "namespace" / "limits.yaml", "ResourceQuota", ns)),
                evidence={"attempts": [t.describe() for t in tries], "limitranges": limitranges,
                          "positive_control": control.evidence()})


# --- images --------------------------------------------------------------------------------------------------


def _image_attack(name: str, check_id: str, image: str, description: str, severity: str, refs) -> pod_security.Attack:
    return pod_security.Attack(name, check_id, "image rules", "n/a", severity, description,
                         (pod_security.set_(*pod_security.C0, "image", value=image),), tuple(refs))


def _vap_remediation(allow_list: tuple[str, ...] | None) -> str:
    text = _reference_doc(_PROFILE / "cluster" / "vap-images.yaml", "ValidatingAdmissionPolicy") + "\n---\n" + \
        _reference_doc(_PROFILE / "cluster" / "vap-images.yaml", "ValidatingAdmissionPolicyBinding")
    if allow_list:
        expr = " || ".join(f"i.startsWith('{e.rstrip('/')}/')" for e in allow_list)
        text = re.sub(r"variables\.images\.all\(i, i\.startsWith\('registry\.k8s\.io/'\)\)",
                      f"variables.images.all(i, {expr})", text)
        text = text.replace("(registry.k8s.io/)", "(" + ", ".join(f"{e}/" for e in allow_list) + ")")
    return ("Refuse such pods with a ValidatingAdmissionPolicy (or Kyverno/Gatekeeper rule) covering every "
            "container list:\n" + text)


def _judge_image(pod_probe, kready_finding, attack: pod_security.Attack, pod: dict, allow_list=None, extra=None):
    cross = pod_probe.cross_check(attack.check_id + ":" + attack.name, pod)
    for ns in _targets(pod_probe, kready_finding):
        control = pod_probe.control(ns)
        attempt = attempts.attempt_create(pod_probe.cluster, pod, ns)
        verdict, summary = pod_security.judge_attack(attack, control, attempt, cross)
        _record(kready_finding, verdict, summary, ns, pod, attempt, severity=attack.severity,
                references=attack.references,
                remediation=None if verdict is Verdict.PASS else _vap_remediation(allow_list),
                evidence={"attack": attack.name, "image": attack.ops[0].value, "positive_control": control.evidence(),
                          "cross_check": cross.evidence() if cross else None, **(extra or {})})


@pytest.mark.kready_check("images.mutable-tag")
@pytest.mark.parametrize("variant", ["latest", "untagged"])
def test_mutable_image_tag_is_refused(variant, pod_probe, kready_finding):
    probe_image = pod_probe.image
    if admission.parse(probe_image).mutable:
        kready_finding.inconclusive(f"the probe image {probe_image} itself has a mutable tag, so the positive control "
                                    "cannot be a compliant pod; pass --kready-image with a pinned tag or digest")
    image = admission.mutable_images(probe_image)[variant]
    attack = _image_attack(variant, "images.mutable-tag", image,
                           f"a pod with image {image} ({'tag latest' if variant == 'latest' else 'no tag: means latest'}; "
                           "what runs changes whenever the tag moves)", "medium",
                           (ref.CIS_IMAGE_PROVENANCE, ref.NSA_IMAGES, VAP_URL))
    pod = attack.build(pod_probe.base_pod())
    _judge_image(pod_probe, kready_finding, attack, pod, pod_probe.cluster.settings.allowed_registries)


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
    attack = _image_attack(variant, "images.registry", image,
                           f"a pod with image {image} (outside the allow-list {', '.join(allow_list)})", "high",
                           (ref.CIS_IMAGE_PROVENANCE, ref.NSA_IMAGES, VAP_URL))
    pod = attack.build(pod_probe.base_pod())
    _judge_image(pod_probe, kready_finding, attack, pod, allow_list, {"allow_list": list(allow_list)})
