"""Admission attempts and what refused them.

``send`` makes one request and returns its status, body and warnings whatever the status (the refusal *is* the
evidence). ``attempt_create`` creates an object (server-side dry-run by default) and classifies the answer:
accepted, refused by an admission path (named: Pod Security Admission, ValidatingAdmissionPolicy, Kyverno,
Gatekeeper, another webhook, ResourceQuota, LimitRange, ImagePolicyWebhook), invalid (API validation, not an
admission decision), no permission, namespace gone, dry-run unsupported, or error. ``compliant_pod`` is the pod
every positive control uses: it satisfies the restricted Pod Security profile, sets requests and limits, mounts
no token, and carries a scheduling gate so that even a real create never runs anything.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import re
import secrets
import shlex
from typing import Any, Callable, Iterable, TypeVar

from .client import Response, send

T = TypeVar("T")

ACCEPTED = "accepted"
REFUSED = "refused"
INVALID = "invalid"
NO_PERMISSION = "no-permission"
NAMESPACE_GONE = "namespace-gone"
DRY_RUN_UNSUPPORTED = "dry-run-unsupported"
ERROR = "error"

SCHEDULING_GATE = "kready.dev/never-scheduled"
PROBE_LABEL = "kready.dev/probe"


# --- who refused ---------------------------------------------------------------------------------------------

_PSA = re.compile(r'violates PodSecurity "([^"]+)"')
_VAP = re.compile(r"ValidatingAdmissionPolicy '([^']+)'(?: with binding '([^']+)')? denied request")
_WEBHOOK_DENIED = re.compile(r'admission webhook "([^"]+)" denied the request')
_WEBHOOK_DRY_RUN = re.compile(r'admission webhook "([^"]+)" does not support dry run', re.I)
_WEBHOOK_FAILED = re.compile(r'failed calling webhook "([^"]+)"')
_QUOTA = re.compile(r"exceeded quota: ([^,\s]+)|failed quota: ([^:\s]+)")
_LIMITRANGE = re.compile(r"(maximum|minimum) \S+ usage per (Container|Pod)|limit to request ratio per (Container|Pod)"
                         r"|must be less than or equal to \S+ limit")
_RBAC = re.compile(r'is forbidden: User "([^"]*)" cannot ')
_TERMINATING = re.compile(r"because it is being terminated|namespaces? \"[^\"]+\" not found")
_IMAGE_POLICY = re.compile(r"image policy webhook", re.I)


def webhook_engine(name: str) -> str:
    low = name.lower()
    for key, engine in (("kyverno", "Kyverno"), ("gatekeeper", "Gatekeeper"), ("kubewarden", "Kubewarden"),
                        ("jspolicy", "jsPolicy"), ("polaris", "Polaris"), ("datree", "Datree")):
        if key in low:
            return f"{engine} (admission webhook {name})"
    return f"admission webhook {name}"


def refuser(message: str) -> str | None:
    """Name the admission path a refusal message comes from, or None when it names none."""
    if m := _PSA.search(message):
        return f"Pod Security Admission ({m.group(1)})"
    if m := _VAP.search(message):
        binding = f", binding {m.group(2)}" if m.group(2) else ""
        return f"ValidatingAdmissionPolicy {m.group(1)}{binding}"
    if m := _WEBHOOK_DENIED.search(message):
        return webhook_engine(m.group(1))
    if m := _QUOTA.search(message):
        return f"ResourceQuota {m.group(1) or m.group(2)}"
    if _LIMITRANGE.search(message):
        return "LimitRange"
    if _IMAGE_POLICY.search(message):
        return "ImagePolicyWebhook"
    return None


@dataclasses.dataclass
class Attempt:
    """One create attempt and what became of it."""

    outcome: str
    status: int
    message: str = ""
    refused_by: str | None = None
    obj: dict | None = None  # the admitted object (after mutation) when accepted
    warnings: list[str] = dataclasses.field(default_factory=list)
    dry_run: bool = True
    namespace: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome == ACCEPTED

    @property
    def refused(self) -> bool:
        return self.outcome == REFUSED

    def describe(self) -> str:
        how = "server-side dry-run" if self.dry_run else "real create"
        if self.accepted:
            return f"accepted ({how})"
        if self.refused:
            return f"refused by {self.refused_by} ({how}): {_short(self.message)}"
        return f"{self.outcome} ({how}, HTTP {self.status}): {_short(self.message)}"

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "dry_run": self.dry_run, "status": self.status}
        if self.refused_by:
            out["refused_by"] = self.refused_by
        if self.message:
            out["message"] = self.message
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def _short(text: str, n: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def classify(resp: Response, *, dry_run: bool = True, namespace: str | None = None) -> Attempt:
    """Turn the answer to a create into an ``Attempt``."""
    msg = resp.message
    base = dict(status=resp.status, message=msg, warnings=resp.warnings, dry_run=dry_run, namespace=namespace)
    if resp.ok:
        return Attempt(ACCEPTED, obj=resp.body if isinstance(resp.body, dict) else None, **base)
    if _WEBHOOK_DRY_RUN.search(msg):
        return Attempt(DRY_RUN_UNSUPPORTED, **base)
    if resp.status >= 500 or _WEBHOOK_FAILED.search(msg):
        return Attempt(ERROR, **base)
    if _RBAC.search(msg):
        return Attempt(NO_PERMISSION, **base)
    if _TERMINATING.search(msg) and (resp.status in (403, 404)):
        return Attempt(NAMESPACE_GONE, **base)
    who = refuser(msg)
    if who:
        return Attempt(REFUSED, refused_by=who, **base)
    if resp.status == 403:
        return Attempt(REFUSED, refused_by="admission (unnamed plugin)", **base)
    if resp.status == 422:
        return Attempt(INVALID, **base)
    return Attempt(ERROR, **base)


# --- the requests --------------------------------------------------------------------------------------------


def create_path(api, obj: dict, namespace: str) -> str:
    res = api.resource(obj["apiVersion"], obj["kind"])
    return res.path(None, namespace if res.namespaced else None)


def attempt_create(cluster, obj: dict, namespace: str, *, dry_run: bool = True, api=None) -> Attempt:
    """Create ``obj`` in ``namespace`` (labelled as the run's), server-side dry-run unless ``dry_run=False``."""
    from .client import FIELD_MANAGER, with_labels
    from .labels import created_annotation

    api = api or cluster.api_client()
    body = with_labels(obj, cluster.labels(), created_annotation())
    body["metadata"]["namespace"] = namespace
    query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
    resp = send(api, "POST", create_path(api, body, namespace), query=query, body=body)
    return classify(resp, dry_run=dry_run, namespace=namespace)


ATTEMPT_WORKERS = 8  # requests one check has in flight at a time (one per target namespace)


def each_namespace(fn: Callable[[str], T], namespaces: Iterable[str], *, workers: int | None = None) -> list[T]:
    """``[fn(ns) for ns in namespaces]`` with up to ``workers`` namespaces at a time: a check's requests in many
    target namespaces (dry-run creates, reads) are answered side by side by the API server. The results come in
    the namespaces' order (findings are recorded in that order, by the caller's thread); the first exception is
    raised, as the loop would. Only for ``fn`` that shares nothing mutable between namespaces but thread-safe
    caches (the run's ApiClient is one: plain requests, no exec streams)."""
    namespaces = list(namespaces)
    workers = ATTEMPT_WORKERS if workers is None else workers
    if len(namespaces) <= 1 or workers <= 1:
        return [fn(ns) for ns in namespaces]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(namespaces)),
                                               thread_name_prefix="kready-attempt") as pool:
        return list(pool.map(fn, namespaces))


def delete_pod(cluster, namespace: str, name: str) -> None:
    """Delete a pod this run created (grace 0); gone already is fine."""
    api = cluster.api_client()
    send(api, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}",
         body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})


def request_evidence(method: str, path: str, body: Any = None, *, dry_run: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "path": path}
    if dry_run:
        out["query"] = {"dryRun": "All"}
    if body is not None:
        out["body"] = strip_meta(body)
    return out


def strip_meta(obj: Any) -> Any:
    """``obj`` without the run's labels and annotations (shorter evidence and repro commands)."""
    if not isinstance(obj, dict):
        return obj
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for k in ("labels", "annotations"):
            meta.pop(k, None)
    return out


def kubectl_create(obj: dict, namespace: str, *, dry_run: bool = True) -> str:
    """One line that reproduces a create: ``echo '<json>' | kubectl create --dry-run=server -n NS -f -``."""
    text = json.dumps(strip_meta(obj), separators=(",", ":"), sort_keys=False)
    flag = " --dry-run=server" if dry_run else ""
    return f"echo {shlex.quote(text)} | kubectl create{flag} -n {shlex.quote(namespace)} -f -"


# --- the compliant pod ---------------------------------------------------------------------------------------

CONTAINER = "probe"


def probe_name(prefix: str) -> str:
    """A pod name unique to one attempt: ``kready-<prefix>-<6 hex>`` (DNS-1123, at most 63 characters)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:40].strip("-") or "probe"
    return f"kready-{clean}-{secrets.token_hex(3)}"


def compliant_container(image: str, name: str = CONTAINER) -> dict:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}},
    }


def compliant_pod(image: str, name: str | None = None) -> dict:
    """A pod every policy worth having admits: restricted Pod Security profile, requests and limits, an
    immutable image tag, no token, and a scheduling gate so that even when created it never runs."""
    container = compliant_container(image)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name or probe_name("compliant")},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "schedulingGates": [{"name": SCHEDULING_GATE}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
        },
    }


def ensure_pod_name(pod: dict, prefix: str) -> dict:
    pod = copy.deepcopy(pod)
    pod.setdefault("metadata", {})["name"] = probe_name(prefix)
    return pod


# --- dry-run against reality -----------------------------------------------------------------------------------


@dataclasses.dataclass
class CrossCheck:
    """The same pod in a throw-away namespace of the run: server-side dry-run and real create compared."""

    namespace: str
    dry: Attempt
    real: Attempt

    @property
    def decisive(self) -> bool:
        return self.dry.outcome in (ACCEPTED, REFUSED) and self.real.outcome in (ACCEPTED, REFUSED)

    @property
    def agree(self) -> bool:
        return not self.decisive or self.dry.outcome == self.real.outcome

    def evidence(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "dry_run": self.dry.describe(), "real_create": self.real.describe(),
                "agree": self.agree}


class PodProbe:
    """State one suite module shares: the target namespaces, the compliant pod's answer in each (the positive
    control, asked once), and in standard mode a throw-away namespace of the run for real creates."""

    def __init__(self, cluster, *, scratch_prefix: str):
        self.cluster = cluster
        self.image = cluster.settings.image
        self.scratch_prefix = scratch_prefix
        self._targets: list[str] | None = None
        self._controls: dict[str, Attempt] = {}
        self._scratch: str | None = None
        self._crosses: dict[str, CrossCheck] = {}
        self.created_pods: list[tuple[str, str]] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # the dry-runs begun ahead (``ahead``)
        self._control_futures: dict[str, concurrent.futures.Future] = {}
        self._ahead: dict[str, tuple[dict, dict[str, concurrent.futures.Future]]] = {}

    @property
    def standard(self) -> bool:
        from .settings import READONLY

        return self.cluster.mode != READONLY

    @property
    def targets(self) -> list[str]:
        if self._targets is None:
            targets = self.cluster.target_namespaces()
            fresh = self.cluster.defaults_namespace() if self.cluster.settings.namespaces is None else None
            if fresh:  # the run's fresh namespace: its default ServiceAccount may not exist yet
                self.cluster.wait_default_serviceaccount(fresh)
            self._targets = targets
        return self._targets

    def base_pod(self) -> dict:
        return compliant_pod(self.image)

    def control(self, namespace: str) -> Attempt:
        """The positive control in ``namespace``: the compliant pod, server-side dry-run."""
        if namespace not in self._controls:
            begun = self._control_futures.pop(namespace, None)
            self._controls[namespace] = begun.result() if begun is not None else \
                attempt_create(self.cluster, self.base_pod(), namespace)
        return self._controls[namespace]

    def ahead(self, pods: dict[str, dict]) -> None:
        """Begin in the background the server-side dry-run create of each pod (key -> pod, in the order the tests
        take them) in every target namespace, after the positive controls not asked yet: one stream of requests,
        ``ATTEMPT_WORKERS`` in flight, that the API server answers while the findings of the pods before are
        judged and written. ``tried(key, ...)`` takes them; ``close`` cancels what no test took."""
        targets = self.targets
        if not pods or not targets or self._pool is not None:
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=ATTEMPT_WORKERS,
                                                           thread_name_prefix="kready-ahead")
        for ns in targets:
            if ns not in self._controls:
                self._control_futures[ns] = self._pool.submit(attempt_create, self.cluster, self.base_pod(), ns)
        for key, pod in pods.items():
            self._ahead[key] = (pod, {ns: self._pool.submit(attempt_create, self.cluster, pod, ns) for ns in targets})

    def tried(self, key: str, build: Callable[[], dict]) -> tuple[dict, list[tuple[str, Attempt, Attempt]]]:
        """The pod of ``key`` and, per target namespace, ``(namespace, positive control, dry-run create of the
        pod)``: begun ``ahead`` if it was (the pod built then), else ``build()`` tried now, namespaces side by
        side. An exception of a request is raised here, as if the test had made it."""
        begun = self._ahead.pop(key, None)
        if begun is None:
            pod = build()
            tries = each_namespace(lambda ns: (self.control(ns), attempt_create(self.cluster, pod, ns)), self.targets)
            return pod, [(ns, control, attempt) for ns, (control, attempt) in zip(self.targets, tries)]
        pod, futures = begun
        return pod, [(ns, self.control(ns), futures[ns].result()) for ns in self.targets]

    def scratch(self) -> str | None:
        """A fresh namespace of this run (standard mode only), made on first use and deleted by ``close``."""
        if not self.standard:
            return None
        if self._scratch is None:
            self._scratch = self.cluster.scratch_namespace(self.scratch_prefix)
        return self._scratch

    def cross_check(self, key: str, pod: dict) -> CrossCheck | None:
        """Dry-run and real create of ``pod`` in the throw-away namespace (the real pod is deleted at once; its
        scheduling gate keeps it from ever running). None in readonly mode."""
        if key in self._crosses:
            return self._crosses[key]
        ns = self.scratch()
        if ns is None:
            return None
        dry = attempt_create(self.cluster, pod, ns)
        real_pod = ensure_pod_name(pod, pod["metadata"]["name"].removeprefix("kready-")[:30])
        real = attempt_create(self.cluster, real_pod, ns, dry_run=False)
        if real.accepted:
            self.created_pods.append((ns, real_pod["metadata"]["name"]))
            delete_pod(self.cluster, ns, real_pod["metadata"]["name"])
        self._crosses[key] = CrossCheck(ns, dry, real)
        return self._crosses[key]

    def close(self, *, failed: bool) -> None:
        if self._pool is not None:  # dry-runs no test took (deselected by a failure, Ctrl-C): not begun, or awaited
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._scratch is not None:
            from .cleanup import Ref

            self.cluster.release([Ref("v1", "Namespace", self._scratch)], failed=failed)


def selected_params(request, name: str) -> list[Any]:
    """The values of parameter ``name`` of the tests of the requesting module the run selected, in their order;
    none under pytest-xdist (a worker's items are all collected ones, not those it will run)."""
    if hasattr(request.config, "workerinput"):
        return []
    return [item.callspec.params[name] for item in request.session.items
            if getattr(item, "module", None) is request.module and name in getattr(
                getattr(item, "callspec", None), "params", {})]


def module_pod_probe(scratch_prefix: str):
    """The ``pod_probe`` fixture a suite module shares: one ``PodProbe`` for the module (targets, the compliant
    pod's answer per namespace, a scratch namespace for real creates), released at the module's end."""
    import pytest

    @pytest.fixture(scope="module")
    def pod_probe(request, kready_cluster):
        probe = PodProbe(kready_cluster, scratch_prefix=scratch_prefix)
        yield probe
        probe.close(failed=request.session.testsfailed > 0)

    return pod_probe
