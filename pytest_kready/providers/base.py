"""The one small interface every cluster provider implements, and what each can do.

Providers (kind, kubeconfig, local) make a cluster reachable and say what they can do. Checks ask the
capabilities, never the provider's name: a check whose capability is missing is reported not-applicable with
``Capabilities.why_not(...)`` as its reason. Who made the cluster is the provider's ``ownership``
(``pytest_kready.ownership``).
"""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Protocol, runtime_checkable

from ..access import ClusterAccess
from ..etcd import EtcdEndpoint
from ..ownership import Ownership

# capability names (the arguments of the kready_needs marker)
EPHEMERAL = "ephemeral"
CONTROL_PLANE_EXEC = "control-plane-exec"
ETCD = "etcd"
ETCD_RESTORE = "etcd-restore"
AUDIT_LOG = "audit-log"
UPGRADE_IN_PLACE = "upgrade-in-place"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a provider can do, and for each thing it cannot, why (one line, shown as the not-applicable reason)."""

    ephemeral: bool = False  # made by this run, deleted at its end (kept with --kready-keep)
    control_plane_exec: bool = False
    etcd: bool = False  # etcd client access through ControlPlane.run (read keys, take snapshots)
    etcd_restore: bool = False  # the restore drill may roll etcd back: made by this run, or --kready-allow-etcd-restore
    audit_log: str | None = None  # path of the audit log as seen by ControlPlane.run, when there is one
    upgrade_in_place: bool = False  # the control plane can restart its components from another version's binaries
    apply_allowed: bool = False  # --kready-apply may go here: a kind/local cluster made by this run or started by the user
    reasons: dict[str, str] = dataclasses.field(default_factory=dict)

    def has(self, name: str) -> bool:
        return bool(
            {
                EPHEMERAL: self.ephemeral,
                CONTROL_PLANE_EXEC: self.control_plane_exec,
                ETCD: self.etcd,
                ETCD_RESTORE: self.etcd_restore,
                AUDIT_LOG: self.audit_log is not None,
                UPGRADE_IN_PLACE: self.upgrade_in_place,
            }[name]
        )

    def why_not(self, name: str) -> str:
        if self.has(name):
            return ""
        return self.reasons.get(name) or f"the cluster provider does not offer {name}"


@runtime_checkable
class ControlPlane(Protocol):
    """Access to the control-plane node: the kind node container (docker exec) or this host (local)."""

    etcd: EtcdEndpoint | None
    audit_log: str | None

    def run(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the control-plane node; never raises for a non-zero exit."""

    def read_file(self, path: str) -> bytes:
        """Read a file on the control-plane node."""

    def restore_etcd(self, snapshot: str, *, timeout: float = 180) -> None:
        """Stop the API server and etcd, restore ``snapshot`` (a path on the node) into a new data directory,
        start them again on it, and return once etcd is serving (the API server may still be starting)."""


@runtime_checkable
class Provider(Protocol):
    """What the session needs of a provider. A provider may also offer, and the session uses when present
    (``KreadySession``, looked up with ``getattr``):

    * ``notes``: lines saying what it did or found besides making the cluster (kind: a stale cluster removed);
    * ``timings``: its own create steps in seconds, recorded under ``cluster.create.<step>``;
    * ``prepare(api)``: work on the cluster after preflight and sweep, before the apply (kind: the profile's
      cluster manifests);
    * ``settle()``: the rest of its start, waited for after the apply while the checks' early starts begin
      (local: CoreDNS and the volume provisioner Ready), with ``settle_timings`` like ``timings``.
    """

    name: str
    capabilities: Capabilities  # final once create() returned (attaching may take some away)
    ownership: Ownership | None  # who made the cluster; None until create()

    def create(self) -> ClusterAccess:
        """Make the cluster reachable (creating it when ephemeral) and return how to reach it."""

    def control_plane(self) -> ControlPlane | None:
        """The control-plane access when ``capabilities.control_plane_exec``, else None."""

    def destroy(self) -> None:
        """Delete the cluster if this provider created it; otherwise do nothing. Safe to call twice."""
