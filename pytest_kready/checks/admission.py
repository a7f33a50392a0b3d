"""Admission rules for resources and images, tried with server-side dry-run pods (safe in readonly mode):
``limits`` (a pod without requests and limits is refused or defaulted by a LimitRange), ``quota`` (an
oversized pod is refused by a ResourceQuota — only a ResourceQuota refusal over cpu or memory counts), and
``image_attack`` (an image with a mutable tag, or from outside ``--kready-allowed-registries``, is refused).
Each returns a ``findings.CheckResult``; the compliant pod in the same namespace is the positive control of
each. Also: image references parsed as the container runtime does (Docker Hub defaults), mutable tags, and the
registry allow-list.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

import yaml

from .. import attempts
from ..findings import CheckResult, Verdict
from ..resources import profile_file
from . import pod_security
from . import references as ref

DOCKER_HUB = "docker.io"


@dataclasses.dataclass(frozen=True)
class ImageRef:
    registry: str
    path: str  # repository path inside the registry (library/x for Docker Hub official images)
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"

    @property
    def mutable(self) -> bool:
        """Untagged (means :latest) or :latest, and not pinned by digest."""
        return self.digest is None and self.tag in (None, "latest")


def parse(image: str) -> ImageRef:
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, remainder = first, rest
    else:
        registry, remainder = DOCKER_HUB, name
        if "/" not in remainder:
            remainder = f"library/{remainder}"
    last = remainder.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        remainder, _, tag = remainder.rpartition(":")
    return ImageRef(registry.lower(), remainder, tag, digest or None)


def unparsed_repository(image: str) -> str:
    """``image`` as written, without its tag and digest."""
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.partition(":")[0]
    return f"{head}/{last}" if head else last


def allowed(image: str, allow_list: tuple[str, ...]) -> bool:
    """True when ``image`` comes from an entry of ``allow_list`` (a registry host, or a registry/path prefix
    matched at a path boundary)."""
    ref = parse(image)
    full = ref.repository
    for entry in allow_list:
        entry = entry.lower().rstrip("/")
        if entry in ("docker.io", "index.docker.io", "registry-1.docker.io") and ref.registry == DOCKER_HUB:
            return True
        if full == entry or full.startswith(entry + "/"):
            return True
    return False


def outside_images(probe_image: str, allow_list: tuple[str, ...]) -> dict[str, str | None]:
    """Attack images outside the allow-list (None where a variant would be inside it)."""
    ref = parse(probe_image)
    tail = ref.path.rsplit("/", 1)[-1]
    tag = f"@{ref.digest}" if ref.digest else f":{ref.tag or '1.0'}"
    entry = allow_list[0].rstrip("/") if allow_list else "registry.example"
    host, _, prefix = entry.partition("/")
    lookalike = (f"{entry}-kready-lookalike/{tail}{tag}" if prefix
                 else f"{host}.kready-lookalike.example.com/{ref.path}{tag}")
    candidates = {
        "untrusted-registry": f"kready-untrusted.example.com/{ref.path}{tag}",
        "docker-hub-short-name": f"{tail}{tag}",
        "lookalike-registry": lookalike,
    }
    return {k: (None if allowed(v, allow_list) else v) for k, v in candidates.items()}


def mutable_images(probe_image: str) -> dict[str, str]:
    repo = unparsed_repository(probe_image)
    return {"latest": f"{repo}:latest", "untagged": repo}


# --- the checks: each returns findings.CheckResult ----------------------------------------------------------

LIMITRANGE_URL = "https://kubernetes.io/docs/concepts/policy/limit-range/"
QUOTA_URL = "https://kubernetes.io/docs/concepts/policy/resource-quotas/"
VAP_URL = "https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/"
HUGE = {"cpu": "10000", "memory": "100Ti"}
SPLIT_CONTAINERS = 16
COMPUTE = ("cpu", "memory")


def _profile() -> Path:
    return profile_file("hardened")


def reference_doc(path: Path, kind: str, namespace: str | None = None) -> str:
    """The documents of ``kind`` in a reference YAML file (namespace replaced), as YAML text; "" when unreadable.
    Parsed and written once per file version: a remediation names it once per finding, i.e. once per target
    namespace, and the namespace goes into the text where a placeholder stands."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return ""
    text = _reference_doc(path, stamp, kind, _NAMESPACE_PLACEHOLDER if namespace else None)
    return text.replace(_NAMESPACE_PLACEHOLDER, _yaml_scalar(namespace)) if namespace else text


_NAMESPACE_PLACEHOLDER = "kready-namespace-placeholder-7f3a9c"  # a plain YAML scalar no reference file holds


@functools.lru_cache(maxsize=256)
def _yaml_scalar(value: str) -> str:
    """``value`` as YAML writes it in a mapping (quoted where it would read as a number or a boolean: "123")."""
    return yaml.safe_dump({"k": value}).strip().removeprefix("k: ")


@functools.lru_cache(maxsize=64)
def _reference_doc(path: Path, stamp: int, kind: str, namespace: str | None) -> str:
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


def _result(verdict, summary, ns, pod, attempt, **fields) -> CheckResult:
    return CheckResult(verdict, summary, target_namespace=ns,
                       request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", pod),
                       response=attempt.evidence() if attempt else None, repro=attempts.kubectl_create(pod, ns),
                       **fields)


def _container_resources(pod: dict | None) -> list[dict]:
    return [c.get("resources") or {} for c in ((pod or {}).get("spec") or {}).get("containers") or []]


def limits(probe, ns: str) -> CheckResult:
    """resources.limits in ``ns``: the compliant pod without ``resources`` is refused, or admitted with requests
    and a memory limit filled in (a LimitRange's defaults); admitted without them fails."""
    refs = (ref.NSA_RESOURCE_POLICIES, LIMITRANGE_URL)
    pod = probe.base_pod()
    pod["metadata"]["name"] = attempts.probe_name("no-resources")
    del pod["spec"]["containers"][0]["resources"]
    control = probe.control(ns)
    attempt = attempts.attempt_create(probe.cluster, pod, ns)
    decided = pod_security.judge_reach(attempt) or pod_security.judge_control(control)
    res = (_container_resources(attempt.obj) or [{}])[0]
    requests, lims = res.get("requests") or {}, res.get("limits") or {}
    if decided is not None:
        verdict, summary = decided
    elif attempt.refused:
        verdict, summary = Verdict.PASS, f"a pod without requests and limits is refused by {attempt.refused_by}"
    elif attempt.accepted and set(COMPUTE) <= set(requests) and "memory" in lims:
        verdict, summary = Verdict.PASS, ("a pod without requests and limits is admitted with defaults (LimitRange): "
                                          f"requests {requests}, limits {lims}")
    elif attempt.accepted:
        missing = [f"requests.{r}" for r in COMPUTE if r not in requests] + \
                  (["limits.memory"] if "memory" not in lims else [])
        verdict, summary = Verdict.FAIL, ("a pod without requests and limits is admitted as it is "
                                          f"({', '.join(missing)} unset): one pod can starve its node")
    else:
        verdict, summary = Verdict.INCONCLUSIVE, f"no admission decision: {attempt.describe()}"
    return _result(verdict, summary, ns, pod, attempt, severity="medium", references=refs,
                   remediation=None if verdict is Verdict.PASS else (
                       f"Give namespace {ns} a LimitRange with default requests and limits (and a max):\n"
                       + reference_doc(_profile() / "namespace" / "limits.yaml", "LimitRange", ns)),
                   evidence={"admitted_resources": res if attempt.accepted else None,
                             "positive_control": control.evidence()})


def container_max(api, ns: str) -> tuple[dict[str, str], bool, list[str]]:
    """Tightest per-container max of the namespace's LimitRanges, whether a per-Pod max exists, and names."""
    from kubernetes.utils import parse_quantity

    from ..client import send

    resp = send(api, "GET", f"/api/v1/namespaces/{ns}/limitranges")
    items = (resp.body.get("items") or []) if resp.ok and isinstance(resp.body, dict) else []
    maxes: dict[str, list[str]] = {}
    pod_max = False
    for lr in items:
        for lim in (lr.get("spec") or {}).get("limits") or []:
            if lim.get("type") == "Container":
                for r, v in (lim.get("max") or {}).items():
                    maxes.setdefault(r, []).append(v)
            if lim.get("type") == "Pod" and lim.get("max"):
                pod_max = True
    tight = {r: min(vs, key=parse_quantity) for r, vs in maxes.items() if r in COMPUTE}
    return tight, pod_max, [lr["metadata"]["name"] for lr in items]


def oversized(base: dict, *, containers: int, size: dict[str, str], prefix: str) -> dict:
    pod = attempts.ensure_pod_name(base, prefix)
    first = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = []
    for i in range(containers):
        c = dict(first, name=f"c{i}", resources={"requests": dict(size), "limits": dict(size)})
        pod["spec"]["containers"].append(c)
    return pod


_QUOTA_REQUESTED = re.compile(r"exceeded quota: [^,\s]+, requested: (\S+?), used:")


def quota_resources(message: str) -> list[str]:
    """The resources a ResourceQuota refusal says were requested beyond the quota (``requested: a=1,b=2``)."""
    m = _QUOTA_REQUESTED.search(message)
    return [part.split("=", 1)[0] for part in m.group(1).split(",")] if m else []


def quota_refusal(attempt) -> tuple[bool, list[str]]:
    """(refused by the ResourceQuota admission over cpu or memory, the resources it named)."""
    if not (attempt.refused and (attempt.refused_by or "").startswith("ResourceQuota")):
        return False, []
    named = quota_resources(attempt.message)
    return any(r.rsplit(".", 1)[-1] in COMPUTE for r in named), named


def quota(probe, ns: str) -> CheckResult:
    """resources.quota in ``ns``: an oversized pod (split over containers when a LimitRange caps each one) must
    be refused by the ResourceQuota admission over cpu or memory; a refusal by anything else (LimitRange, a
    policy engine, a webhook) decides nothing about a quota, and is inconclusive."""
    refs = (ref.NSA_RESOURCE_POLICIES, QUOTA_URL)
    base = probe.base_pod()
    control = probe.control(ns)
    tries = []
    pod = oversized(base, containers=1, size=HUGE, prefix="oversized")
    attempt = attempts.attempt_create(probe.cluster, pod, ns)
    tries.append(attempt)
    limitranges: list[str] = []
    if attempt.refused and attempt.refused_by == "LimitRange":
        # a LimitRange caps each container; split the demand over containers that each fit it
        tight, _pod_max, limitranges = container_max(probe.cluster.api_client(), ns)
        size = {r: tight.get(r, HUGE[r]) for r in COMPUTE}
        pod = oversized(base, containers=SPLIT_CONTAINERS, size=size, prefix="oversized-split")
        attempt = attempts.attempt_create(probe.cluster, pod, ns)
        tries.append(attempt)
    decided = pod_security.judge_reach(attempt) or pod_security.judge_control(control)
    per = pod["spec"]["containers"][0]["resources"]["requests"]
    demand = (f"{len(pod['spec']['containers'])} container(s) each requesting cpu {per['cpu']} and memory "
              f"{per['memory']}")
    by_quota, named = quota_refusal(attempt)
    if decided is not None:
        verdict, summary = decided
    elif by_quota:
        verdict, summary = Verdict.PASS, (f"an oversized pod ({demand}) is refused by {attempt.refused_by} "
                                          f"(over {', '.join(named)})")
    elif attempt.refused and (attempt.refused_by or "").startswith("ResourceQuota"):
        verdict, summary = Verdict.INCONCLUSIVE, (
            f"{attempt.refused_by} refused the oversized pod, but not over cpu or memory "
            f"({', '.join(named) or 'no resource named'}): {attempt.describe()}")
    elif attempt.refused and attempt.refused_by == "LimitRange":
        verdict, summary = Verdict.INCONCLUSIVE, (
            "a LimitRange refuses the oversized pod (even split over containers that each fit its per-container "
            "max), so the request never reaches the ResourceQuota admission: no single pod can show whether a "
            f"ResourceQuota caps the namespace ({attempt.describe()})")
    elif attempt.refused:
        verdict, summary = Verdict.INCONCLUSIVE, (
            f"the oversized pod ({demand}) is refused by {attempt.refused_by}, not by a ResourceQuota: that may cap "
            "the size of one pod, but not what the namespace takes in total (many pods that each pass it), and the "
            f"refusal comes before the ResourceQuota admission could show anything ({attempt.describe()})")
    elif attempt.accepted:
        verdict, summary = Verdict.FAIL, (f"an oversized pod ({demand}) is admitted: no ResourceQuota caps what "
                                          f"namespace {ns} may take from the cluster")
    else:
        verdict, summary = Verdict.INCONCLUSIVE, f"no admission decision: {attempt.describe()}"
    return _result(verdict, summary, ns, pod, attempt, severity="medium", references=refs,
                   remediation=None if verdict is Verdict.PASS else (
                       f"Give namespace {ns} a ResourceQuota sized for its workloads:\n"
                       + reference_doc(_profile() / "namespace" / "limits.yaml", "ResourceQuota", ns)),
                   evidence={"attempts": [t.describe() for t in tries], "limitranges": limitranges,
                             "refused_by_resourcequota_over": named if by_quota else [],
                             "positive_control": control.evidence()})


def image_attack(name: str, check_id: str, image: str, description: str, severity: str,
                 refs) -> pod_security.Attack:
    return pod_security.Attack(name, check_id, "image rules", "n/a", severity, description,
                               (pod_security.set_(*pod_security.C0, "image", value=image),), tuple(refs))


def mutable_tag_attack(variant: str, probe_image: str) -> pod_security.Attack:
    image = mutable_images(probe_image)[variant]
    return image_attack(variant, "images.mutable-tag", image,
                        f"a pod with image {image} ({'tag latest' if variant == 'latest' else 'no tag: means latest'}; "
                        "what runs changes whenever the tag moves)", "medium",
                        (ref.CIS_IMAGE_PROVENANCE, ref.NSA_IMAGES, VAP_URL))


def registry_attack(variant: str, image: str, allow_list: tuple[str, ...]) -> pod_security.Attack:
    return image_attack(variant, "images.registry", image,
                        f"a pod with image {image} (outside the allow-list {', '.join(allow_list)})", "high",
                        (ref.CIS_IMAGE_PROVENANCE, ref.NSA_IMAGES, VAP_URL))


def vap_remediation(allow_list: tuple[str, ...] | None) -> str:
    path = _profile() / "cluster" / "vap-images.yaml"
    text = reference_doc(path, "ValidatingAdmissionPolicy") + "\n---\n" + \
        reference_doc(path, "ValidatingAdmissionPolicyBinding")
    if allow_list:
        expr = " || ".join(f"i.startsWith('{e.rstrip('/')}/')" for e in allow_list)
        text = re.sub(r"variables\.images\.all\(i, i\.startsWith\('registry\.k8s\.io/'\)\)",
                      f"variables.images.all(i, {expr})", text)
        text = text.replace("(registry.k8s.io/)", "(" + ", ".join(f"{e}/" for e in allow_list) + ")")
    return ("Refuse such pods with a ValidatingAdmissionPolicy (or Kyverno/Gatekeeper rule) covering every "
            "container list:\n" + text)


def image_result(probe, ns: str, attack: pod_security.Attack, pod: dict, cross, allow_list=None,
                 extra: dict[str, Any] | None = None) -> CheckResult:
    """An image attack pod in ``ns``, judged like a pod-security attack (compliant pod as the control)."""
    control = probe.control(ns)
    attempt = attempts.attempt_create(probe.cluster, pod, ns)
    verdict, summary = pod_security.judge_attack(attack, control, attempt, cross)
    return _result(verdict, summary, ns, pod, attempt, severity=attack.severity, references=attack.references,
                   remediation=None if verdict is Verdict.PASS else vap_remediation(allow_list),
                   evidence={"attack": attack.name, "image": attack.ops[0].value, "positive_control": control.evidence(),
                             "cross_check": cross.evidence() if cross else None, **(extra or {})})
