"""etcd.snapshot-restore: a backup is only a backup once it has been restored.

On a cluster this run owns (ephemeral: kind or local; disruptive mode): create marker A, take an etcd snapshot
through the control-plane interface, create marker B, restore the snapshot (``ControlPlane.restore_etcd``: stop
the API server and etcd, ``etcdutl snapshot restore`` into a new data directory, start them on it), wait until the
API serves again, then A must exist (with its data) and B must not. The restore time is reported.

Where the snapshot is written: on kind ``etcdctl`` is not on the node but in the etcd container, which sees its
data directory (a hostPath on the node) at ``/var/lib/etcd``; the snapshot is saved there, so the node finds it in
the same directory for ``etcdutl``. On the local provider both run on the host, and the snapshot sits beside the
data directory. The snapshot is removed afterwards.
"""

from __future__ import annotations

import posixpath
import secrets
import time
from collections.abc import Callable
from typing import Any

from .. import errors
from ..findings import CheckResult, Verdict
from ..etcd import EtcdEndpoint
from ..waits import WaitTimeout, wait_for
from ..kube import create, get, object_meta

CHECK_ID = "etcd.snapshot-restore"
REFERENCES = (
    "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#backing-up-an-etcd-cluster",
    "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#restoring-an-etcd-cluster",
    "https://etcd.io/docs/v3.5/op-guide/recovery/",
)
REMEDIATION = (
    "Take etcd snapshots on a schedule (etcdctl snapshot save with the etcd client certificates), keep them off the "
    "node, and rehearse the restore: stop the API servers and etcd, etcdutl snapshot restore into a new data "
    "directory, point etcd at it (on kubeadm nodes: the etcd-data hostPath in /etc/kubernetes/manifests/etcd.yaml), "
    "start etcd, then the API servers, and check the state is the snapshot's.")
KIND_ETCD_MOUNT = "/var/lib/etcd"  # where kind's (kubeadm's) etcd container mounts its data directory


def snapshot_argv(etcd: EtcdEndpoint, path: str) -> list[str]:
    """``etcdctl snapshot save`` with the client certificates, as run on a control-plane node."""
    return ["etcdctl", f"--endpoints={etcd.endpoints}", f"--cacert={etcd.cacert}", f"--cert={etcd.cert}",
            f"--key={etcd.key}", "snapshot", "save", path]


def in_etcd_container(cp) -> bool:
    """kind: etcdctl runs inside the etcd container (``KindControlPlane.etcdctl``), not on the node."""
    return callable(getattr(cp, "etcdctl", None))


def snapshot_paths(cp, name: str) -> tuple[str, str]:
    """(where ``etcdctl`` writes the snapshot, where the node reads it for the restore)."""
    if in_etcd_container(cp):
        return posixpath.join(KIND_ETCD_MOUNT, name), posixpath.join(cp.etcd.data_dir, name)
    directory = posixpath.dirname(cp.etcd.data_dir.rstrip("/"))
    path = posixpath.join(directory, name)
    return path, path


def save_snapshot(cp, path: str, *, timeout: float = 120):
    if in_etcd_container(cp):
        return cp.etcdctl(["snapshot", "save", path], timeout=timeout)
    return cp.run(snapshot_argv(cp.etcd, path), timeout=timeout)


def last_line(proc) -> str:
    """The last line a node command printed (stderr first), or its exit status: the why of a failed step."""
    text = ((proc.stderr or b"") + b"\n" + (proc.stdout or b"")).decode("utf-8", "replace").strip()
    return text.splitlines()[-1][:300] if text else f"exit status {proc.returncode}"


def marker(run_id: str, name: str, token: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": object_meta(run_id, name), "data": {"token": token}}


def run_drill(api, new_api: Callable[[], Any], cp, namespace: str, run_id: str, *, timeout: float = 240) -> CheckResult:
    """The drill on ``cp`` (a ControlPlane); ``new_api()`` gives a client that does not retry (for polling)."""
    cm = f"/api/v1/namespaces/{namespace}/configmaps"
    tokens = {"a": secrets.token_hex(8), "b": secrets.token_hex(8)}
    name = f"kready-snapshot-{run_id}-{secrets.token_hex(3)}.db"
    save_path, node_path = snapshot_paths(cp, name)
    evidence: dict[str, Any] = {"etcd_endpoint": cp.etcd.endpoints, "data_dir_before": cp.etcd.data_dir,
                                "snapshot": node_path, "marker_a": f"ConfigMap {namespace}/kready-marker-a",
                                "marker_b": f"ConfigMap {namespace}/kready-marker-b"}
    common = dict(target_namespace=namespace, references=REFERENCES, evidence=evidence, severity="high")
    remedy = dict(remediation=REMEDIATION)
    repro = ("ETCDCTL_API=3 etcdctl --endpoints=<etcd> --cacert=<ca> --cert=<cert> --key=<key> snapshot save "
             "snap.db && etcdutl snapshot restore snap.db --data-dir <new dir> ... (then point etcd at it)")
    try:
        create(api, marker(run_id, "kready-marker-a", tokens["a"]), namespace)
        t = time.monotonic()
        proc = save_snapshot(cp, save_path)
        evidence["snapshot_seconds"] = round(time.monotonic() - t, 2)
        if proc.returncode != 0:
            # the plugin's own tooling (etcdctl run through the control plane) failed: not a finding on the cluster
            return CheckResult(Verdict.INCONCLUSIVE, f"the plugin's etcd snapshot (etcdctl snapshot save) failed: "
                               f"{last_line(proc)}", repro=repro, **common)
        create(api, marker(run_id, "kready-marker-b", tokens["b"]), namespace)

        t0 = time.monotonic()
        try:
            cp.restore_etcd(node_path, timeout=timeout)
        except (errors.KreadyError, OSError) as e:
            return CheckResult(Verdict.INCONCLUSIVE, f"the plugin's etcd restore procedure failed: {e}", repro=repro,
                               **common)  # our tooling (exec into the control plane, etcdutl), not the cluster
        evidence["restore_call_seconds"] = round(time.monotonic() - t0, 1)
        evidence["data_dir_after"] = cp.etcd.data_dir
        poll = new_api()
        try:
            try:
                wait_for(lambda: str(poll.raw("GET", "/readyz", timeout=5)).strip() == "ok", timeout=timeout, interval=1,
                         retry_on=(errors.KreadyError, errors.APIError), what="API server ready after the restore")
            except WaitTimeout as e:
                return CheckResult(Verdict.FAIL, f"the API did not come back after the restore: {e}", repro=repro,
                              **remedy, **common)
            evidence["api_ready_seconds"] = round(time.monotonic() - t0, 1)
            a = wait_for(lambda: get(poll, f"{cm}/kready-marker-a") or {"absent": True}, timeout=60, interval=1,
                         retry_on=(errors.KreadyError, errors.APIError), what="marker A readable")
            b = wait_for(lambda: get(poll, f"{cm}/kready-marker-b") or {"absent": True}, timeout=60, interval=1,
                         retry_on=(errors.KreadyError, errors.APIError), what="marker B readable")
        finally:
            poll.close()
        restore_s = round(time.monotonic() - t0, 1)
        evidence["restore_seconds"] = restore_s
        a_ok = not a.get("absent") and (a.get("data") or {}).get("token") == tokens["a"]
        b_gone = bool(b.get("absent"))
        evidence["after_restore"] = {"marker_a": "present" if a_ok else "missing", "marker_b":
                                     "absent" if b_gone else "present"}
        if a_ok and b_gone:
            return CheckResult(Verdict.PASS, f"etcd snapshot restored in {restore_s} s (API serving again): marker A "
                          "created before the snapshot is back, marker B created after it is gone", repro=repro,
                          **common)
        problems = []
        if not a_ok:
            problems.append("marker A (created before the snapshot) is missing")
        if not b_gone:
            problems.append("marker B (created after the snapshot) still exists: the restore did not roll back")
        return CheckResult(Verdict.FAIL, f"etcd restore drill: {'; '.join(problems)}", repro=repro, **remedy, **common)
    finally:
        try:
            cp.run(["rm", "-f", node_path], timeout=30)
        except (errors.KreadyError, OSError):
            pass
