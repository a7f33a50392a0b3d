"""The `local` provider: a real single-node cluster of host processes (see pytest_kready.local).

On its slot (``KREADY_LOCAL_SLOT``, default 0) the provider reads who started the cluster there
(``pytest_kready.ownership``) and then:

* nothing there: starts a cluster, recorded as this run's (run id, PID), and removes it at the end of the run;
* a cluster whose maker is gone (a run or harness killed with SIGKILL, an OOM kill, a CI timeout; a
  `kready-local up` killed half-way; anything from before a reboot): tears it down and starts its own;
* a cluster started by hand (`kready-local up`), by the project's test harness, or kept by an earlier run
  (``--kready-keep``): attaches to it and leaves it running. Attached is not ephemeral: the etcd restore drill runs
  only with ``--kready-allow-etcd-restore``; ``--kready-apply`` and standard mode are allowed;
* a cluster that another live run owns, or that is still being started: refuses, saying whose it is.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from .. import ownership
from ..access import ClusterAccess
from ..errors import ProviderError
from ..etcd import EtcdEndpoint
from ..local.bins import bin_dir as default_bin_dir
from ..local.cluster import LocalCluster
from ..local.layout import Layout
from ..local.netns import in_netns
from ..ownership import Ownership
from .base import AUDIT_LOG, EPHEMERAL, ETCD_RESTORE, UPGRADE_IN_PLACE, Capabilities, ControlPlane

NO_AUDIT_LOG = "the cluster's API server writes no audit log (profile baseline has none)"


class LocalControlPlane:
    """The control-plane node is this host; commands run inside the cluster's network namespace."""

    def __init__(self, cluster: LocalCluster):
        self.cluster = cluster
        pki = cluster.pki
        self.etcd = EtcdEndpoint(
            endpoints="https://127.0.0.1:2379",
            cacert=str(pki / "etcd-ca.crt"),
            cert=str(pki / "etcd-client.crt"),
            key=str(pki / "etcd-client.key"),
            data_dir=str(cluster.etcd_data_dir),
        )
        self.audit_log = str(cluster.audit_log) if cluster.audit_log else None
        self.bin_dir = cluster.bin

    def run(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = list(argv)
        # etcdctl/etcdutl/kubectl come from the binaries directory, as on a kind node they come from its image;
        # etcd's tools from the directory etcd runs from (an in-place upgrade leaves etcd as it is)
        where = self.cluster.etcd_bin if argv and argv[0] in ("etcdctl", "etcdutl") else self.bin_dir
        if argv and "/" not in argv[0] and (where / argv[0]).is_file():
            argv[0] = str(where / argv[0])
        return subprocess.run(in_netns(self.cluster.layout, argv), input=input, capture_output=True, timeout=timeout)

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def start(self, argv: list[str]) -> subprocess.Popen:
        """Start ``argv`` on the node (the cluster's network namespace) in the background; stdout is a text pipe.
        The caller stops it."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
        return subprocess.Popen(in_netns(self.cluster.layout, list(argv)), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=env)

    # --- in-place upgrade (the upgrade rehearsal; capability upgrade-in-place) ----------------------------------
    @property
    def upgrade_steps(self) -> tuple[tuple[str, ...], ...]:
        return LocalCluster.UPGRADE_STEPS

    def upgrade_step(self, names: tuple[str, ...], version: str) -> None:
        """Restart ``names`` from ``version``'s binaries directory (pytest_kready.local.bins)."""
        target = default_bin_dir(version)
        if not (target / "kube-apiserver").is_file():
            raise ProviderError(f"no binaries for Kubernetes {version} in {target}: build them with "
                                f"K8S_VERSION={version} bash tools/build-local-binaries.sh")
        self.cluster.upgrade_step(names, target)
        self.bin_dir = self.cluster.bin

    def restore_etcd(self, snapshot: str, *, timeout: float = 180) -> None:
        self.cluster.restore_etcd(snapshot, timeout=timeout)
        self.etcd = dataclasses.replace(self.etcd, data_dir=str(self.cluster.etcd_data_dir))


def owned_capabilities(audit: str | None) -> Capabilities:
    """A cluster this run started: ephemeral, every control-plane capability."""
    return Capabilities(ephemeral=True, control_plane_exec=True, etcd=True, etcd_restore=True, audit_log=audit,
                        apply_allowed=True, upgrade_in_place=True, reasons={AUDIT_LOG: NO_AUDIT_LOG})


def attached_capabilities(audit: str | None, record: Ownership, *, allow_etcd_restore: bool) -> Capabilities:
    """A cluster the run only attached to: not ephemeral; the etcd restore drill only when asked for."""
    if record.kept:
        made = f"kept by {record.describe()}"
    elif record.maker == ownership.MANUAL:
        made = "started by kready-local up"
    else:
        made = f"started by {record.describe()}"
    why = f"attached to a local cluster {made}; pass --kready-allow-etcd-restore to run the restore drill on it"
    return Capabilities(ephemeral=False, control_plane_exec=True, etcd=True, etcd_restore=allow_etcd_restore,
                        audit_log=audit, apply_allowed=True,
                        reasons={EPHEMERAL: why, ETCD_RESTORE: why, AUDIT_LOG: NO_AUDIT_LOG,
                                 UPGRADE_IN_PLACE: f"attached to a local cluster {made}; the upgrade rehearsal "
                                                   "upgrades only a cluster the run starts"})


class LocalProvider:
    name = "local"

    def __init__(self, settings, *, layout: Layout | None = None):
        self.settings = settings
        bin_dir = getattr(settings, "local_bin_dir", None) or default_bin_dir()
        self.cluster = LocalCluster(Path(bin_dir), profile=getattr(settings, "profile", None) or "baseline",
                                    layout=layout or Layout.from_env())
        audit = self.cluster.audit_log
        self._audit = str(audit) if audit else None
        self.capabilities = owned_capabilities(self._audit)  # until create() finds a cluster to attach to
        self.ownership: Ownership | None = None
        self.notes: list[str] = []  # what the provider did besides its own cluster (a stale cluster torn down)
        self._control_plane: LocalControlPlane | None = None
        self.attached = False
        self._started = False

    @property
    def slot_name(self) -> str:
        return f"local cluster {self.cluster.layout.name} (slot {self.cluster.layout.slot})"

    def create(self) -> ClusterAccess:
        """Start the local cluster, attach to one started by hand, or refuse one another run owns (see above)."""
        cluster = self.cluster
        record = cluster.ownership()
        running = cluster.running_profile()
        if record is not None and record.stale():
            self.notes.append(f"tore down the {self.slot_name} left by {record.describe()}, which is gone")
            cluster.down()
            record = running = None
        elif record is None and running is not None:
            # serving but unrecorded: started by hand with an older version; treated as started by hand
            record = Ownership(maker=ownership.MANUAL, provider="local", cluster=cluster.layout.name, ready=True)
        if record is not None:
            return self._attach(record, running)
        self.ownership = Ownership.this_process(ownership.RUN, "local", cluster.layout.name,
                                                run_id=getattr(self.settings, "run_id", None))
        self._started = True  # from here on destroy() removes whatever up() left
        kubeconfig = cluster.up(owner=self.ownership, wait_addons=False)  # settle() waits for them
        self.ownership = self.ownership.replace(ready=True)
        return ClusterAccess(kubeconfig=kubeconfig, context=None)

    def settle(self) -> None:
        """The rest of the start (CoreDNS and the volume provisioner Ready), waited for after the run's preflight,
        sweep and apply, and while the checks' early starts begin (a cluster attached to is ready already)."""
        if self._started and not self.attached:
            self.cluster.wait_addons()  # ProviderError naming what is not ready, with the kubelet's last lines

    @property
    def settle_timings(self) -> dict[str, float]:
        return {k: v for k, v in self.cluster.timings.items() if k.startswith("addons-") and k != "addons-apply"} \
            if self._started and not self.attached else {}

    def _attach(self, record: Ownership, running: str | None) -> ClusterAccess:
        if record.owned_by_live_run() or record.starting():
            doing = "is being started by" if record.starting() else "belongs to"
            raise ProviderError(f"the {self.slot_name} {doing} {record.describe()}, which is still running; "
                                "wait for it, or use another slot (KREADY_LOCAL_SLOT=N, N 0-9)")
        slot = self.cluster.layout.slot
        if running is None:
            raise ProviderError(f"the {self.slot_name} was started by {record.describe()} but does not answer; "
                                f"restart it (kready-local down --slot {slot}; kready-local up --slot {slot}) "
                                "or use another slot (KREADY_LOCAL_SLOT)")
        if running != self.cluster.profile.name:
            raise ProviderError(
                f"a local cluster with profile {running} is already running; stop it (kready-local down) "
                f"or run with --kready-profile={running}"
            )
        self.attached = True
        self.ownership = record
        self.capabilities = attached_capabilities(
            self._audit, record, allow_etcd_restore=bool(getattr(self.settings, "allow_etcd_restore", False)))
        return ClusterAccess(kubeconfig=self.cluster.kubeconfig, context=None)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per start step (``LocalCluster.timings``: cleanup, apiserver, images, node-ready, addons-ready,
        up) when this run started the cluster; empty when it attached (pytest_kready.timings records them)."""
        return dict(self.cluster.timings) if self._started and not self.attached else {}

    def control_plane(self) -> ControlPlane | None:
        if self._control_plane is None:
            self._control_plane = LocalControlPlane(self.cluster)
        return self._control_plane

    def destroy(self) -> None:
        """Remove the cluster if this run started it; a cluster attached to is left running. Safe to call twice."""
        if self._started and not self.attached:
            self._started = False
            self.cluster.down()

    def describe_kept(self) -> str:
        """The cluster this run started stays (--kready-keep): it becomes the user's, and later runs attach to it."""
        if self._started and not self.attached:  # never another's record (create() may have refused the slot)
            self.cluster.mark_kept()
        slot = self.cluster.layout.slot
        return (f"local cluster {self.cluster.layout.name} kept (kubeconfig {self.cluster.kubeconfig}); stop it "
                f"with: kready-local down --slot {slot}")
