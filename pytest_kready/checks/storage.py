"""storage.pvc-reclaim: does data survive the deletion of its PersistentVolumeClaim?

For the default StorageClass (and each one named by ``--kready-storage-classes``), in a throw-away namespace:

1. a pod writes a random marker to a fresh claim of that class and exits;
2. the claim is deleted;
3. the volume must remain: ``Released``, reclaim policy ``Retain``. A ``Delete`` policy fails, naming the class
   (the provisioner deletes the volume and the data with the claim);
4. the volume is bound to a new claim (its ``spec.claimRef`` pointed at the new claim) and a second pod must read
   the marker back.

About changing the PersistentVolume: the provisioner created it, not this run, but for a claim this run made; the
check only ever changes PersistentVolumes whose ``claimRef`` names its own namespace. It labels the volume with the
run's labels (so a killed run's leftovers are found), re-points ``claimRef`` at its second claim and, when done, sets
the volume's reclaim policy to ``Delete`` so deleting that claim lets the provisioner remove the volume and its data
(otherwise a ``Retain`` volume would stay on the node forever).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .. import errors, labels
from ..findings import CheckResult, Verdict
from ..waits import WaitTimeout, wait_for
from ..kube import (container, create, delete, get, list_items, merge_patch, object_meta,
                              pod_log, pod_spec, wait_gone, wait_pod)

CHECK_ID = "storage.pvc-reclaim"
DEFAULT_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
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
            "capacity": (spec.get("capacity") or {}).get("storage"), "source": {source: spec.get(source)} if source else None,
            "claimRef": {k: (spec.get("claimRef") or {}).get(k) for k in ("namespace", "name")}}


def check_reclaim(api, namespace: str, run_id: str, image: str, storage_class: str, sc: dict, *,
                  timeout: float = 120) -> CheckResult:
    """The whole cycle for one StorageClass; cleans up after itself (see the module docstring)."""
    token = secrets.token_hex(12)
    sc_policy = sc.get("reclaimPolicy", "Delete")
    evidence: dict[str, Any] = {"storage_class": storage_class, "provisioner": sc.get("provisioner"),
                                "class_reclaim_policy": sc_policy,
                                "volume_binding_mode": sc.get("volumeBindingMode", "Immediate"), "steps": []}
    common = dict(target_namespace=namespace, references=REFERENCES, evidence=evidence)
    steps = evidence["steps"]
    t0 = time.monotonic()

    def step(text: str) -> None:
        steps.append(f"{time.monotonic() - t0:5.1f}s {text}")

    pvc_base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    pv_name: str | None = None
    try:
        create(api, _pvc(run_id, "data-1", storage_class), namespace)
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
        pv = api.raw("GET", pv_path)
        evidence["volume"] = _pv_summary(pv)
        step(f"marker written to claim data-1, volume {pv_name} "
             f"({pv['spec'].get('persistentVolumeReclaimPolicy')})")
        # ours to track: the provisioner made it for our claim
        merge_patch(api, pv_path, {"metadata": {"labels": labels.run_labels(run_id),
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
            if v is None:
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
        step(f"volume {pv_name} Released and kept (Retain)")

        # bind the kept volume to a new claim: point claimRef at it (uid cleared), then claim it by name
        merge_patch(api, pv_path, {"spec": {"claimRef": {"namespace": namespace, "name": "data-2", "uid": None,
                                                          "resourceVersion": None}}})
        create(api, _pvc(run_id, "data-2", storage_class, volume=pv_name,
                         access_modes=pv["spec"].get("accessModes"), size=SIZE), namespace)
        create(api, _pod(run_id, "reader", image, "data-2", f"cat {MARKER}"), namespace)
        try:
            pod = wait_pod(api, namespace, "reader", timeout=timeout, phases=("Succeeded", "Failed"))
        except WaitTimeout as e:
            return CheckResult(Verdict.FAIL, f"StorageClass {storage_class}: the kept volume {pv_name} could not be used "
                          f"by a new claim: {e}", repro=_repro(storage_class),
                          remediation=f"Check the provisioner of {storage_class} ({sc.get('provisioner')}): a "
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
                      remediation=f"Check the provisioner of {storage_class} ({sc.get('provisioner')}): a retained "
                                  "volume must keep its data and be bindable to a new claim.", **common)
    finally:
        cleanup(api, namespace, pv_name)
        evidence["cleanup"] = f"{time.monotonic() - t0:.1f}s"


def cleanup(api, namespace: str, pv_name: str | None, *, timeout: float = 60) -> None:
    """Delete the pods and claims, and the volume with its data (reclaim policy set to Delete first), when its
    claimRef names ``namespace``."""
    for pod in ("writer", "reader"):
        delete(api, f"/api/v1/namespaces/{namespace}/pods/{pod}", grace=0)
    if pv_name:
        pv = get(api, f"/api/v1/persistentvolumes/{pv_name}")
        if pv and ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace:
            try:
                merge_patch(api, f"/api/v1/persistentvolumes/{pv_name}",
                            {"spec": {"persistentVolumeReclaimPolicy": "Delete"}})
            except errors.APIError:
                pass
    for pvc in ("data-1", "data-2"):
        delete(api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{pvc}")
    if pv_name:
        try:
            wait_gone(api, f"/api/v1/persistentvolumes/{pv_name}", timeout=timeout,
                      what=f"volume {pv_name} deleted by its provisioner")
        except WaitTimeout:
            pass  # labelled with the run id: the session's cleanup (or a later sweep) deletes it


def leftover_volumes(api, namespace: str) -> list[str]:
    return [pv["metadata"]["name"] for pv in list_items(api, "/api/v1/persistentvolumes")
            if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace]


def _repro(storage_class: str) -> str:
    return (f"kubectl get storageclass {storage_class} -o jsonpath='{{.reclaimPolicy}}{{\"\\n\"}}'; "
            "kubectl get pv -o custom-columns=NAME:.metadata.name,CLASS:.spec.storageClassName,"
            "POLICY:.spec.persistentVolumeReclaimPolicy,STATUS:.status.phase")


def _remediation(storage_class: str) -> str:
    return (f"Use reclaimPolicy: Retain for data that must outlive its claim. reclaimPolicy is immutable: create a "
            f"class with Retain (or recreate {storage_class}) and make it the default; for existing volumes run "
            "kubectl patch pv <name> -p '{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"}}'. Retained "
            "volumes must be cleaned up deliberately.")
