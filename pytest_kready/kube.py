"""Small Kubernetes helpers shared by the checks (objects, pods, waits, selectors, text endpoints).

Everything goes through a ``KreadyApiClient`` (``api.raw``: typed errors, the readonly guard), every object made
here carries the run's ownership labels, and every wait has a deadline and reports what it saw last.
"""

from __future__ import annotations

import json
from typing import Any

from . import client as kclient
from . import errors, labels
from .selectors import selector_matches  # noqa: F401 - the checks' one selector implementation
from .waits import wait_for

# Pods made by these checks pass Pod Security "restricted", so they run in namespaces that enforce it.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                      "readOnlyRootFilesystem": True}
RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}}


def object_meta(run_id: str, name: str, *, namespace: str | None = None, extra_labels: dict | None = None,
                annotations: dict | None = None) -> dict:
    return labels.object_meta(run_id, name=name, namespace=namespace, labels=extra_labels, annotations=annotations)


def create(api, obj: dict, namespace: str | None = None) -> dict:
    if namespace:
        obj.setdefault("metadata", {})["namespace"] = namespace
    return kclient.create(api, obj)


def get(api, path: str) -> dict | None:
    """GET ``path``; None when it does not exist."""
    try:
        return api.raw("GET", path)
    except errors.APINotFound:
        return None


def merge_patch(api, path: str, patch: dict) -> dict:
    return api.raw("PATCH", path, body=patch, content_type="application/merge-patch+json")


def delete(api, path: str, *, grace: int | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    if grace is not None:
        body["gracePeriodSeconds"] = grace
    try:
        api.raw("DELETE", path, body=body)
    except errors.APINotFound:
        pass


def wait_gone(api, path: str, *, timeout: float, what: str) -> None:
    wait_for(lambda: get(api, path) is None, timeout=timeout, interval=0.3, max_interval=2, what=what,
             retry_on=(errors.APIServerError,))


def container(name: str, image: str, args: list[str], **extra: Any) -> dict:
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "args": list(args),
         "securityContext": dict(CONTAINER_SECURITY), "resources": json.loads(json.dumps(RESOURCES))}
    c.update(extra)
    return c


def pod_spec(containers: list[dict], **extra: Any) -> dict:
    spec = {"securityContext": dict(POD_SECURITY), "automountServiceAccountToken": False,
            "enableServiceLinks": False, "containers": containers}
    spec.update(extra)
    return spec


def pod_ready(pod: dict | None) -> bool:
    if not pod or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def describe_pod(pod: dict | None) -> str:
    """One line about a pod for wait messages: phase, conditions and waiting reasons."""
    if not pod:
        return "absent"
    status = pod.get("status") or {}
    waiting = [f"{c['name']}: {(c.get('state') or {}).get('waiting', {}).get('reason')}"
               for c in status.get("containerStatuses") or [] if (c.get("state") or {}).get("waiting")]
    conds = ",".join(f"{c['type']}={c['status']}" for c in status.get("conditions") or [])
    return f"phase={status.get('phase')} {conds} {'; '.join(waiting)}".strip()


def wait_pod(api, namespace: str, name: str, *, timeout: float, phases: tuple[str, ...] = (),
             ready: bool = False) -> dict:
    """Wait until the pod is ready (``ready``) or in one of ``phases``; return it."""
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"

    def check():
        pod = get(api, path)
        if pod is None:
            return None
        phase = (pod.get("status") or {}).get("phase")
        if (ready and pod_ready(pod)) or (phases and phase in phases):
            return pod
        return None

    last: dict[str, Any] = {}

    def probe():
        pod = check()
        if pod is None:
            last["pod"] = get(api, path)
        return pod

    return wait_for(probe, timeout=timeout, interval=0.3, max_interval=2,
                    what=f"pod {namespace}/{name} {'ready' if ready else '/'.join(phases)}",
                    describe=lambda _: describe_pod(last.get("pod")))


def pod_log(api, namespace: str, name: str, container_name: str | None = None) -> str:
    return get_text(api, f"/api/v1/namespaces/{namespace}/pods/{name}/log",
                    query={"container": container_name} if container_name else None)


def get_text(api, path: str, *, query: dict | None = None, timeout: float = 30) -> str:
    """GET ``path`` as text (pod logs, proxied responses); typed errors like ``api.raw``."""
    params = [(k, v) for k, v in (query or {}).items() if v is not None]
    request = api.param_serialize(method="GET", resource_path=path, query_params=params or None,
                                  header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
    data = api._call_with_legacy_options(request, {"2XX": "str"}, None, True, timeout, True)
    return data if isinstance(data, str) else json.dumps(data)


def list_items(api, path: str, **query: Any) -> list[dict]:
    return api.raw("GET", path, query=query or None).get("items") or []


# --- label selectors -------------------------------------------------------------------------------------


def service_selects(service: dict, pod_labels: dict | None) -> bool:
    """A Service's map selector (empty: selects no pods, endpoints are managed by hand)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all((pod_labels or {}).get(k) == v for k, v in selector.items())


def selector_string(selector: dict) -> str:
    """matchLabels as a label selector string (for list queries and kubectl lines)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(parts)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def wait_default_serviceaccount(api, namespace: str, timeout: float = 60) -> None:
    """Pods are refused until a namespace's default ServiceAccount exists (a fresh namespace gets it shortly)."""
    wait_for(lambda: api.raw("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default"), timeout=timeout,
             interval=0.2, max_interval=2, retry_on=(errors.APINotFound,),
             what=f"ServiceAccount default in namespace {namespace}")
