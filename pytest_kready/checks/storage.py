"""storage.pvc-reclaim: does data survive the deletion of its PersistentVolumeClaim?

For the default StorageClass (and each one named by ``--kready-storage-classes``), in a throw-away namespace:

0. a throw-away copy of the class is created (``kr-sc-<class>-<run-id>-<n>``, the run's labels, cluster-scoped):
   the same provisioner, parameters, reclaim policy, volume binding mode, volume expansion, mount options and
   allowed topologies, none of the original's labels or annotations (so never a default class). No pre-made
   PersistentVolume names that class, so only a volume the provisioner makes for the check's claim can bind;
1. a pod writes a random marker to a fresh claim of the copy and exits;
2. the volume bound to the claim is verified as the check's own *before any write*: annotation
   ``pv.kubernetes.io/provisioned-by`` naming the class's provisioner, ``storageClassName`` the copy, ``spec.claimRef``
   the claim's namespace, name and UID, created no earlier than the claim. Otherwise: inconclusive, and the volume
   is never changed (not labelled, not re-bound, its reclaim policy left alone);
3. the claim is deleted; the volume must remain: ``Released``, reclaim policy ``Retain``. A ``Delete`` policy fails,
   naming the original class (the provisioner deletes the volume and the data with the claim);
4. the volume is bound to a new claim (its ``spec.claimRef`` pointed at the new claim) and a second pod must read
   the marker back.

Writes to a PersistentVolume: only to the verified one (its UID sent as a precondition with every patch): the run's
labels (so a killed run's leftovers are found), ``claimRef`` re-pointed at the second claim, and, when done, reclaim
policy ``Delete`` so deleting the claims lets the provisioner remove the volume and its data (a ``Retain`` volume
would otherwise stay on the node for ever). The copy of the class is deleted after its volume is gone.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import errors, labels
from ..cleanup import Ref
from ..findings import CheckResult, Verdict
from ..waits import WaitTimeout, wait_for
from ..kube import (container, create, delete, get, list_items, merge_patch, object_meta,
                              pod_log, pod_spec, wait_gone, wait_pod)

CHECK_ID = "storage.pvc-reclaim"
DEFAULT_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
COPY_OF = "kready.dev/copy-of-storageclass"  # annotation on the throw-away copy: the class it copies
NO_PROVISIONER = "kubernetes.io/no-provisioner"
STORAGECLASS_API = "storage.k8s.io/v1"
COPIED_FIELDS = ("parameters", "reclaimPolicy", "volumeBindingMode", "allowVolumeExpansion", "mountOptions",
                 "allowedTopologies")
CLAIMS = ("data-1", "data-2")
MARKER = "/data/kready-marker"
SIZE = "16Mi"
REFERENCES = (
    "https://kubernetes.io/docs/concepts/storage/persistent-volumes/#reclaiming",
    "https://kubernetes.io/docs/tasks/administer-cluster/change-pv-reclaim-policy/",
    "https://kubernetes.io/docs/concepts/storage/storage-classes/#reclaim-policy",
)


def default_classes(classes: list[dict]) -> list[str]:
    return [c["metadata"]["name"] for c in classes
            if any((c["metadata"].get("annotations") or {}).get(a) == "true" for a in DEFAULT_ANNOTATIONS)]


def classes_to_check(api, named: tuple[str, ...] = ()) -> tuple[list[str], list[str], dict[str, dict]]:
    """(classes to check: the default ones then the named ones, named ones that do not exist, classes by name)."""
    classes = list_items(api, "/apis/storage.k8s.io/v1/storageclasses")
    by_name = {c["metadata"]["name"]: c for c in classes}
    wanted = list(dict.fromkeys(default_classes(classes) + list(named)))
    return [n for n in wanted if n in by_name], [n for n in named if n not in by_name], by_name


def throwaway_copy(sc: dict, name: str) -> dict:
    """The StorageClass the check claims through: ``sc``'s provisioning fields under a new name. Not its labels
    or annotations (never a default class); ``Cluster.create`` adds the run's labels."""
    obj: dict[str, Any] = {
        "apiVersion": STORAGECLASS_API, "kind": "StorageClass",
        "metadata": {"name": name, "annotations": {COPY_OF: sc["metadata"]["name"]}},
        "provisioner": sc.get("provisioner"), "reclaimPolicy": sc.get("reclaimPolicy") or "Delete"}
    for field in COPIED_FIELDS:
        if sc.get(field) is not None:
            obj[field] = copy.deepcopy(sc[field])
    return obj


def _time(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def not_own_volume(pv: dict | None, pvc: dict, claim_class: str, provisioner: str | None) -> str | None:
    """None when ``pv`` was dynamically provisioned for ``pvc`` (through ``claim_class``); else why it may not be."""
    if not pv:
        return "no volume"
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    by = (meta.get("annotations") or {}).get(PROVISIONED_BY)
    if not provisioner or by != provisioner:
        return f"annotation {PROVISIONED_BY} is {by!r}, not the class's provisioner {provisioner!r}"
    if spec.get("storageClassName") != claim_class:
        return f"its storageClassName is {spec.get('storageClassName')!r}, not {claim_class!r}"
    ref, claim = spec.get("claimRef") or {}, pvc.get("metadata") or {}
    want = {"namespace": claim.get("namespace"), "name": claim.get("name"), "uid": claim.get("uid")}
    got = {k: ref.get(k) for k in want}
    if not want["uid"] or got != want:
        return f"its claimRef is {got}, not the claim {want}"
    made, claimed = _time(meta.get("creationTimestamp")), _time(claim.get("creationTimestamp"))
    if made is None or claimed is None or made < claimed:
        return f"it was created at {meta.get('creationTimestamp')}, before the claim ({claim.get('creationTimestamp')})"
    return None


def _pvc(run_id: str, name: str, storage_class: str, *, volume: str | None = None,
         access_modes: list[str] | None = None, size: str = SIZE) -> dict:
    spec: dict[str, Any] = {"storageClassName": storage_class, "accessModes": access_modes or ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": object_meta(run_id, name), "spec": spec}


def _pod(run_id: str, name: str, image: str, claim: str, script: str) -> dict:
    c = container("c", image, [], command=["/bin/sh", "-c", script],
                  volumeMounts=[{"name": "data", "mountPath": "/data"}])
    spec = pod_spec([c], restartPolicy="Never", terminationGracePeriodSeconds=1,
                    volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}])
    spec["securityContext"]["fsGroup"] = 65534
    return {"apiVersion": "v1", "kind": "Pod", "metadata": object_meta(run_id, name), "spec": spec}


def _pv_summary(pv: dict | None) -> dict | None:
    if not pv:
        return None
    spec = pv.get("spec") or {}
    source = next((k for k in ("hostPath", "local", "csi", "nfs") if k in spec), None)
    return {"name": pv["metadata"]["name"], "phase": (pv.get("status") or {}).get("phase"),
            "reclaimPolicy": spec.get("persistentVolumeReclaimPolicy"), "storageClassName": spec.get("storageClassName"),
            "provisionedBy": (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY),
            "capacity": (spec.get("capacity") or {}).get("storage"), "source": {source: spec.get(source)} if source else None,
            "claimRef": {k: (spec.get("claimRef") or {}).get(k) for k in ("namespace", "name", "uid")}}


@dataclasses.dataclass
class Outcome:
    """``storage.pvc-reclaim`` over the classes it checks: the named ones that do not exist, and per class checked
    (name, its throw-away namespace, the result)."""

    names: list[str]
    missing: list[str]
    results: list[tuple[str, str, CheckResult]]


def check_classes(cluster, make_namespace: Callable[[str], str]) -> Outcome:
    """The default StorageClass and each one of ``--kready-storage-classes``, one after the other, each in a fresh
    namespace from ``make_namespace(prefix)``."""
    names, missing, by_name = classes_to_check(cluster.api_client(), cluster.settings.storage_classes)
    results = []
    for name in names:
        ns = make_namespace(f"pvc-{name}")
        results.append((name, ns, check_class(cluster, ns, name, by_name[name])))
    return Outcome(names, missing, results)


def start_checks(cluster) -> Outcome:
    """The check's early start (``kready_early``): the whole cycle, in the background from the cluster's start on
    (it only waits on its own claims and volumes)."""
    return check_classes(cluster, cluster.scratch_namespace)


def check_class(cluster, namespace: str, storage_class: str, sc: dict, *, timeout: float = 120) -> CheckResult:
    """The whole cycle for one StorageClass, claimed through a throw-away copy of it (created, tracked and
    released here, after its volume is gone); the finding names ``storage_class``."""
    provisioner = sc.get("provisioner")
    evidence: dict[str, Any] = {"storage_class": storage_class, "provisioner": provisioner,
                                "class_reclaim_policy": sc.get("reclaimPolicy") or "Delete"}
    if not provisioner or provisioner == NO_PROVISIONER:
        return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class} has no dynamic provisioner "
                           f"({provisioner}): its claims bind only pre-made volumes, which this check never touches",
                           evidence=evidence, target_namespace=namespace, references=REFERENCES)
    copy_name = cluster.namespace_name(f"sc-{storage_class}")
    ref = cluster.track(Ref(STORAGECLASS_API, "StorageClass", copy_name))
    result: CheckResult | None = None
    try:
        try:
            made = cluster.create(throwaway_copy(sc, copy_name))
        except errors.APIError as e:
            evidence["claimed_through"] = copy_name
            result = CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: could not create its "
                                 f"throw-away copy {copy_name}: {e}", evidence=evidence, target_namespace=namespace,
                                 references=REFERENCES)
            return result
        result = check_reclaim(cluster.api_client(), namespace, cluster.run_id, cluster.settings.image, storage_class,
                               sc, claim_class=copy_name, timeout=timeout)
        result.evidence["copy"] = {"name": copy_name, "labels": (made.get("metadata") or {}).get("labels"),
                                   **{k: made.get(k) for k in ("provisioner",) + COPIED_FIELDS if k in made}}
        return result
    finally:
        cluster.release([ref], failed=result is None or result.verdict is not Verdict.PASS)


def check_reclaim(api, namespace: str, run_id: str, image: str, storage_class: str, sc: dict, *, claim_class: str,
                  timeout: float = 120) -> CheckResult:
    """The cycle for ``storage_class`` with claims of ``claim_class`` (its throw-away copy); cleans up after itself
    (see the module docstring). Writes only to a volume verified as provisioned for its own claim."""
    token = secrets.token_hex(12)
    sc_policy = sc.get("reclaimPolicy") or "Delete"
    provisioner = sc.get("provisioner")
    evidence: dict[str, Any] = {"storage_class": storage_class, "claimed_through": claim_class,
                                "provisioner": provisioner, "class_reclaim_policy": sc_policy,
                                "volume_binding_mode": sc.get("volumeBindingMode", "Immediate"), "steps": []}
    common = dict(target_namespace=namespace, references=REFERENCES, evidence=evidence)
    steps = evidence["steps"]
    t0 = time.monotonic()
    owned: dict[str, str] = {}  # the volume verified as provisioned for data-1: name, uid

    def step(text: str) -> None:
        steps.append(f"{time.monotonic() - t0:5.1f}s {text}")

    pvc_base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    try:
        create(api, _pvc(run_id, "data-1", claim_class), namespace)
        create(api, _pod(run_id, "writer", image, "data-1", f"echo {token} > {MARKER} && sync && cat {MARKER}"),
               namespace)
        try:
            pod = wait_pod(api, namespace, "writer", timeout=timeout, phases=("Succeeded", "Failed"))
        except WaitTimeout as e:
            return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: no volume to write to: {e}", **common)
        if pod["status"]["phase"] != "Succeeded":
            return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: the writer pod failed: "
                          f"{pod_log(api, namespace, 'writer')[-200:]!r}", **common)
        pvc = api.raw("GET", f"{pvc_base}/data-1")
        pv_name = pvc["spec"].get("volumeName")
        pv_path = f"/api/v1/persistentvolumes/{pv_name}"
        pv = get(api, pv_path) if pv_name else None
        evidence["volume"] = _pv_summary(pv)
        why = not_own_volume(pv, pvc, claim_class, provisioner)
        if why:
            return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: claim data-1 is bound to volume "
                               f"{pv_name}, not shown to be provisioned for it ({why}); the volume was not touched",
                               **common)
        owned.update(name=pv_name, uid=pv["metadata"]["uid"])
        step(f"marker written to claim data-1, volume {pv_name} "
             f"({pv['spec'].get('persistentVolumeReclaimPolicy')}), provisioned for data-1 by {provisioner}")
        # ours to track: the provisioner made it for our claim (verified above); the UID is a precondition
        merge_patch(api, pv_path, {"metadata": {"uid": owned["uid"], "labels": labels.run_labels(run_id),
                                                "annotations": labels.created_annotation()}})

        delete(api, f"/api/v1/namespaces/{namespace}/pods/writer", grace=0)
        wait_gone(api, f"/api/v1/namespaces/{namespace}/pods/writer", timeout=60, what="writer pod deleted")
        delete(api, f"{pvc_base}/data-1")
        wait_gone(api, f"{pvc_base}/data-1", timeout=60, what="claim data-1 deleted")
        step("claim data-1 deleted")

        policy = pv["spec"].get("persistentVolumeReclaimPolicy")
        # Retain: wait for Released; any other policy: for the provisioner to act (deleted, or Failed)
        final = ("Released", "Failed", "Available") if policy == "Retain" else ("Failed",)

        def settled():
            v = get(api, pv_path)
            if v is None or v["metadata"].get("uid") != owned["uid"]:
                return {"gone": True}
            return v if (v.get("status") or {}).get("phase") in final else None

        try:
            after = wait_for(settled, timeout=60, interval=0.5, max_interval=2,
                             what=f"volume {pv_name} released or deleted",
                             describe=lambda _: str(_pv_summary(get(api, pv_path))))
        except WaitTimeout as e:
            after = get(api, pv_path)
            step(f"volume still {((after or {}).get('status') or {}).get('phase')}: {e}")
        if after is None or after.get("gone"):
            step(f"volume {pv_name} deleted with its claim")
            evidence["volume_after_claim_deletion"] = "deleted"
            return CheckResult(Verdict.FAIL, f"StorageClass {storage_class} has reclaim policy {policy}: deleting the "
                          f"claim deleted volume {pv_name} and its data", severity="high", repro=_repro(storage_class),
                          remediation=_remediation(storage_class), **common)
        evidence["volume_after_claim_deletion"] = _pv_summary(after)
        phase = (after.get("status") or {}).get("phase")
        if policy != "Retain":
            return CheckResult(Verdict.FAIL, f"StorageClass {storage_class} has reclaim policy {policy}: volume {pv_name} "
                          f"is {phase} after its claim was deleted, not kept for reuse", severity="high",
                          repro=_repro(storage_class), remediation=_remediation(storage_class), **common)
        if phase != "Released":
            return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: volume {pv_name} is {phase}, not "
                          "Released, after its claim was deleted", **common)
        if ((after.get("spec") or {}).get("claimRef") or {}).get("uid") != pvc["metadata"]["uid"]:
            return CheckResult(Verdict.INCONCLUSIVE, f"StorageClass {storage_class}: volume {pv_name} no longer names "
                          "claim data-1 after its deletion; not re-bound", **common)
        step(f"volume {pv_name} Released and kept (Retain)")

        # bind the kept volume to a new claim: point claimRef at it (uid cleared), then claim it by name
        merge_patch(api, pv_path, {"metadata": {"uid": owned["uid"]},
                                   "spec": {"claimRef": {"namespace": namespace, "name": "data-2", "uid": None,
                                                         "resourceVersion": None}}})
        create(api, _pvc(run_id, "data-2", claim_class, volume=pv_name,
                         access_modes=pv["spec"].get("accessModes"), size=SIZE), namespace)
        create(api, _pod(run_id, "reader", image, "data-2", f"cat {MARKER}"), namespace)
        try:
            pod = wait_pod(api, namespace, "reader", timeout=timeout, phases=("Succeeded", "Failed"))
        except WaitTimeout as e:
            return CheckResult(Verdict.FAIL, f"StorageClass {storage_class}: the kept volume {pv_name} could not be used "
                          f"by a new claim: {e}", repro=_repro(storage_class),
                          remediation=f"Check the provisioner of {storage_class} ({provisioner}): a "
                                      "retained volume must be bindable to a new claim once its claimRef is "
                                      "cleared.", **common)
        read = pod_log(api, namespace, "reader").strip()
        evidence["marker_written"] = token
        evidence["marker_read"] = read[:100]
        step(f"claim data-2 bound to {pv_name}; reader got {read[:40]!r}")
        if pod["status"]["phase"] == "Succeeded" and read == token:
            return CheckResult(Verdict.PASS, f"StorageClass {storage_class}: the volume outlived its claim (Released, "
                          f"Retain) and a new claim read the data back", severity="high", **common)
        return CheckResult(Verdict.FAIL, f"StorageClass {storage_class}: volume {pv_name} was kept but the data did not "
                      f"read back (got {read[:60]!r})", severity="high", repro=_repro(storage_class),
                      remediation=f"Check the provisioner of {storage_class} ({provisioner}): a retained "
                                  "volume must keep its data and be bindable to a new claim.", **common)
    finally:
        evidence["cleanup_volume"] = cleanup(api, namespace, owned, claim_class=claim_class, provisioner=provisioner)
        evidence["cleanup"] = f"{time.monotonic() - t0:.1f}s"


def cleanup(api, namespace: str, owned: dict[str, str], *, claim_class: str, provisioner: str | None,
            timeout: float = 60) -> str:
    """Delete the pods and claims and, when it is the check's own, the volume with its data (reclaim policy set to
    ``Delete`` first). ``owned`` is the volume verified earlier (name, uid); when empty (the cycle stopped early),
    claim data-1's volume is verified now. A volume not shown to be the check's own is never changed. Returns what
    happened to the volume, for the evidence."""
    for pod in ("writer", "reader"):
        delete(api, f"/api/v1/namespaces/{namespace}/pods/{pod}", grace=0)
    outcome = "no volume of the check's own"
    if not owned:
        pvc = get(api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data-1")
        name = ((pvc or {}).get("spec") or {}).get("volumeName")
        pv = get(api, f"/api/v1/persistentvolumes/{name}") if name else None
        if pvc and pv and not_own_volume(pv, pvc, claim_class, provisioner) is None:
            owned = {"name": name, "uid": pv["metadata"]["uid"]}
        elif name:
            outcome = f"volume {name} not shown to be the check's own: left untouched"
    pv_path = f"/api/v1/persistentvolumes/{owned['name']}" if owned else None
    if pv_path:
        pv = get(api, pv_path)
        spec = (pv or {}).get("spec") or {}
        if pv and pv["metadata"].get("uid") == owned["uid"] and (spec.get("claimRef") or {}).get("namespace") == namespace \
                and spec.get("persistentVolumeReclaimPolicy") != "Delete":
            try:
                merge_patch(api, pv_path, {"metadata": {"uid": owned["uid"]},
                                           "spec": {"persistentVolumeReclaimPolicy": "Delete"}})
            except errors.APIError:
                pass
    for pvc_name in CLAIMS:
        delete(api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{pvc_name}")
    if pv_path:
        def gone() -> bool:
            pv = get(api, pv_path)
            return pv is None or pv["metadata"].get("uid") != owned["uid"]

        try:
            wait_for(gone, timeout=timeout, interval=0.3, max_interval=2,
                     what=f"volume {owned['name']} deleted by its provisioner", retry_on=(errors.APIServerError,))
            outcome = f"volume {owned['name']} deleted"
        except WaitTimeout:
            # labelled with the run id: the session's cleanup (or a later sweep) deletes the object
            outcome = f"volume {owned['name']} still there after {timeout:.0f}s"
    return outcome


def _repro(storage_class: str) -> str:
    return (f"kubectl get storageclass {storage_class} -o jsonpath='{{.reclaimPolicy}}{{\"\\n\"}}'; "
            "kubectl get pv -o custom-columns=NAME:.metadata.name,CLASS:.spec.storageClassName,"
            "POLICY:.spec.persistentVolumeReclaimPolicy,STATUS:.status.phase")


def _remediation(storage_class: str) -> str:
    return (f"Use reclaimPolicy: Retain for data that must outlive its claim. reclaimPolicy is immutable: create a "
            f"class with Retain (or recreate {storage_class}) and make it the default; for existing volumes run "
            "kubectl patch pv <name> -p '{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"}}'. Retained "
            "volumes must be cleaned up deliberately.")
