"""etcd facts shared by the providers (which restore etcd) and the checks (which read it and drill the restore):
how to reach a cluster's etcd, and how a snapshot is restored. Imports nothing of the plugin."""

from __future__ import annotations

import dataclasses

# `etcdutl snapshot restore` flags: move the revision well past anything a watch cache or client has seen and
# mark it compacted, so watchers re-list instead of seeing revisions go backwards (Kubernetes' restore advice).
ETCD_RESTORE_FLAGS = ("--bump-revision", "1000000000", "--mark-compacted")


@dataclasses.dataclass(frozen=True)
class EtcdEndpoint:
    """etcd client settings, with paths as seen by ``ControlPlane.run``."""

    endpoints: str
    cacert: str
    cert: str
    key: str
    data_dir: str
