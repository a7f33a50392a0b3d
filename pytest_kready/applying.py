"""``--kready-apply``: the team's manifests applied to the cluster before the checks, then waited for.

Order: every object of every given path (a file, or every YAML/JSON file under a directory, recursively, in a
stable order), Namespaces and CRDs first (``client.load_manifest_sources``); custom resources once their CRDs are
Established. Each object is server-side applied (field manager ``pytest-kready``). An object that did not exist
gets the run's labels (so the run deletes it at its end, or the cluster goes with it); one that already existed
is updated as the manifest says and never gets our labels (the run does not delete what it did not create).

Then the run waits, under one deadline, for what was applied to settle: each applied Namespace has its default
ServiceAccount, each Deployment is available with its updated replicas, each StatefulSet ready, each DaemonSet
available, each Job's pods started. A Deployment whose own progress deadline passes stops the wait at once.
Anything that does not settle stops the run with one line naming it and what it is waiting for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import client, errors, findings, labels
from .cleanup import Ref

SETTLE_TIMEOUT = 300.0  # seconds for everything applied to settle
POLL_INTERVAL = 1.0
from .session import APPLIED_LABEL  # noqa: E402 - on what --kready-apply created (the team's objects)


@dataclass
class Applied:
    """What ``apply_paths`` did: objects it created (carrying the run's labels), objects that already existed
    and were updated, and the Namespaces and workloads to wait for."""

    created: list[Ref] = field(default_factory=list)
    updated: list[Ref] = field(default_factory=list)

    @property
    def all(self) -> list[Ref]:
        return self.created + self.updated


def _ref(obj: dict, namespaced: bool) -> Ref:
    meta = obj.get("metadata") or {}
    return Ref(obj["apiVersion"], obj["kind"], meta["name"], (meta.get("namespace") or "default") if namespaced
               else None)


def _one_line(text: str) -> str:
    text = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return text[:300]


def apply_paths(api, paths: list[Path], run_id: str, *, timeout: float | None = None,
                into: Applied | None = None) -> Applied:
    """Apply every manifest under ``paths`` in order and wait for it to settle; ``ConfigError`` (one line) for a
    manifest the server refuses, ``ProviderError`` (one line) for something that does not settle in time.
    ``into`` (if given) records progress as it goes, so a caller can undo a half-done apply."""
    manifests = client.sort_for_apply([m for p in paths for m in client.load_manifest_sources(Path(p))])
    for m in manifests:
        findings.harvest(m.obj)  # the team's Secrets and credential env/header values: blanked in every output
    deadline = time.monotonic() + (SETTLE_TIMEOUT if timeout is None else timeout)
    done = into if into is not None else Applied()
    crds: list[str] = []
    waited_crds = False
    for m in manifests:
        obj = m.obj
        if crds and not waited_crds and client.apply_rank(obj) > client.CRD_RANK:
            _wait_crds(api, crds, deadline)
            waited_crds = True
        try:
            res = api.resource(obj["apiVersion"], obj["kind"])
        except errors.APINotFound:
            raise errors.ConfigError(f"--kready-apply: {m.source}: the cluster does not serve {obj['kind']} in "
                                     f"{obj['apiVersion']} ({obj['metadata']['name']})") from None
        ref = _ref(obj, res.namespaced)
        existing = _get(api, res, ref)
        if existing is not None and (existing.get("metadata") or {}).get("deletionTimestamp"):
            existing = _wait_deleted(api, res, ref, deadline)  # e.g. a killed run's namespace the sweep removes
        meta = (existing or {}).get("metadata") or {}
        ours = existing is None or labels.is_managed(meta.get("labels"), run_id)
        if ours:  # new, or made by this very run (another pytest-xdist worker applied it first)
            body = client.with_labels(obj, {**labels.run_labels(run_id), APPLIED_LABEL: "true"},
                                      labels.created_annotation())
        else:
            # someone else's object: updated as asked, never labelled ours (never deleted by us); the ownership
            # labels of another run of the plugin stay as they are (that run deletes it, or the sweep does)
            kept = {k: v for k, v in (meta.get("labels") or {}).items()
                    if k in (labels.MANAGED_BY, labels.RUN_ID, APPLIED_LABEL)}
            notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k == labels.CREATED_AT}
            body = client.with_labels(obj, kept, notes) if kept else obj
        if res.namespaced:
            body = {**body, "metadata": {**body["metadata"], "namespace": ref.namespace}}
        try:
            client.apply(api, body)
        except errors.APIError as e:
            raise errors.ConfigError(f"--kready-apply: {m.source}: {ref} was refused ({e.status} "
                                     f"{e.reason or ''}: {_one_line(e)})".replace(" :", ":")) from None
        (done.created if ours else done.updated).append(ref)
        if ref.kind == "CustomResourceDefinition":
            crds.append(ref.name)
    if crds and not waited_crds:
        _wait_crds(api, crds, deadline)
    settle(api, done.all, deadline)
    return done


def _wait_deleted(api, res, ref: Ref, deadline: float) -> None:
    while _get(api, res, ref) is not None:
        if time.monotonic() >= deadline:
            raise errors.ProviderError(f"--kready-apply: {ref} is being deleted and was not gone within the deadline")
        time.sleep(POLL_INTERVAL)
    return None


def _get(api, res, ref: Ref) -> dict | None:
    try:
        return api.raw("GET", res.path(ref.name, ref.namespace))
    except errors.APINotFound:
        return None


def _wait_crds(api, names: list[str], deadline: float) -> None:
    pending = list(names)
    while True:
        for name in list(pending):
            crd = _get_path(api, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            if crd and _condition(crd, "Established") == "True":
                pending.remove(name)
        if not pending:
            api.forget_discovery()  # the new kinds are served now
            return
        if time.monotonic() >= deadline:
            raise errors.ProviderError(f"--kready-apply: CustomResourceDefinition {pending[0]} was not Established "
                                       f"within the deadline")
        time.sleep(POLL_INTERVAL)


def _get_path(api, path: str) -> dict | None:
    try:
        return api.raw("GET", path)
    except errors.APINotFound:
        return None


def _condition(obj: dict, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status")
    return None


def _condition_obj(obj: dict, kind: str) -> dict:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


# --- settling -----------------------------------------------------------------------------------------------


def settle(api, refs: list[Ref], deadline: float) -> None:
    """Wait until every applied Namespace has its default ServiceAccount and every applied workload is
    available; one line naming the first that is not, by ``deadline`` (``time.monotonic()``)."""
    pending = [r for r in refs if r.kind in _JUDGES]
    last: dict[Ref, str] = {}
    while True:
        for ref in list(pending):
            ok, state = _JUDGES[ref.kind](api, ref)
            last[ref] = state
            if ok:
                pending.remove(ref)
            elif ok is None:  # can never settle (a Deployment past its own progress deadline)
                raise errors.ProviderError(f"--kready-apply: {ref} will not become available: {state}"
                                           f"{_pods_hint(api, ref)}")
        if not pending:
            return
        if time.monotonic() >= deadline:
            ref = pending[0]
            raise errors.ProviderError(f"--kready-apply: {ref} did not become {_GOAL[ref.kind]} within the "
                                       f"deadline: {last.get(ref, 'not seen')}{_pods_hint(api, ref)}")
        time.sleep(POLL_INTERVAL)


def _namespace_ready(api, ref: Ref) -> tuple[bool | None, str]:
    sa = _get_path(api, f"/api/v1/namespaces/{ref.name}/serviceaccounts/default")
    return (sa is not None, "its default ServiceAccount exists" if sa else "no default ServiceAccount yet")


def _workload(api, ref: Ref) -> dict | None:
    return _get_path(api, f"/apis/apps/v1/namespaces/{ref.namespace}/{ref.kind.lower()}s/{ref.name}")


def _observed(obj: dict) -> bool:
    return (obj.get("status") or {}).get("observedGeneration", 0) >= (obj.get("metadata") or {}).get("generation", 0)


def _deployment_ready(api, ref: Ref) -> tuple[bool | None, str]:
    d = _workload(api, ref)
    if d is None:
        return False, "not found"
    want = (d.get("spec") or {}).get("replicas", 1)
    st = d.get("status") or {}
    state = (f"{st.get('availableReplicas', 0)}/{want} available, {st.get('updatedReplicas', 0)}/{want} updated")
    progressing = _condition_obj(d, "Progressing")
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return None, f"{state}; ProgressDeadlineExceeded: {_one_line(progressing.get('message', ''))}"
    if (d.get("spec") or {}).get("paused"):
        return True, "paused"
    if not want:
        return _observed(d), state
    ok = (_observed(d) and st.get("updatedReplicas", 0) >= want and st.get("availableReplicas", 0) >= want
          and st.get("replicas", 0) <= want and _condition(d, "Available") == "True")
    return ok, state


def _statefulset_ready(api, ref: Ref) -> tuple[bool | None, str]:
    s = _workload(api, ref)
    if s is None:
        return False, "not found"
    want = (s.get("spec") or {}).get("replicas", 1)
    st = s.get("status") or {}
    ok = _observed(s) and st.get("readyReplicas", 0) >= want and st.get("updatedReplicas", want) >= want
    return ok, f"{st.get('readyReplicas', 0)}/{want} ready"


def _daemonset_ready(api, ref: Ref) -> tuple[bool | None, str]:
    ds = _workload(api, ref)
    if ds is None:
        return False, "not found"
    st = ds.get("status") or {}
    want = st.get("desiredNumberScheduled", 0)
    ok = (_observed(ds) and st.get("numberAvailable", 0) >= want and st.get("updatedNumberScheduled", 0) >= want)
    return ok, f"{st.get('numberAvailable', 0)}/{want} available"


_JUDGES = {"Namespace": _namespace_ready, "Deployment": _deployment_ready, "StatefulSet": _statefulset_ready,
           "DaemonSet": _daemonset_ready}
_GOAL = {"Namespace": "ready (default ServiceAccount)", "Deployment": "available", "StatefulSet": "ready",
         "DaemonSet": "available"}


def _pods_hint(api, ref: Ref) -> str:
    """`` (pod web-1: ImagePullBackOff ...)``: why the workload's first unready pod is not ready, if it says."""
    if ref.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return ""
    try:
        obj = _workload(api, ref)
        selector = ((obj or {}).get("spec") or {}).get("selector") or {}
        from .kube import selector_string

        query = {"labelSelector": selector_string(selector)} if selector else {}
        pods = api.raw("GET", f"/api/v1/namespaces/{ref.namespace}/pods", query=query).get("items") or []
    except (errors.APIError, errors.KreadyError):
        return ""
    for pod in pods:
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                message = _one_line(waiting.get("message") or "")
                return (f" (pod {pod['metadata']['name']}: {waiting['reason']}"
                        + (f": {message[:150]}" if message else "") + ")")
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                return f" (pod {pod['metadata']['name']} not scheduled: {_one_line(cond.get('message', ''))[:150]})"
    return ""
