"""``etcd.snapshot-restore``: snapshot etcd, restore it, and see the cluster come back as it was at the snapshot.
Disruptive, and only on clusters this run made (kind, local). See pytest_kready/checks/etcd.py and
docs/checks-resilience.md."""

import pytest


@pytest.mark.kready_check("etcd.snapshot-restore")
@pytest.mark.kready_mode("disruptive")
@pytest.mark.kready_needs("control-plane-exec", "etcd", "etcd-restore")
def test_etcd_snapshot_restore(kready_cluster, kready_namespace, kready_finding):
    """Marker A, snapshot, marker B, restore: A is back, B is gone; the restore time is reported."""
    from pytest_kready.checks import etcd as etcd

    kready_cluster.early.idle()  # a restore undoes what is created after the snapshot: nothing may be under way
    ns = kready_namespace(name_prefix="etcd")
    result = etcd.run_drill(kready_cluster.api_client(), kready_cluster.no_retry_client_factory(retry_deadline=5),
                            kready_cluster.control_plane, ns, kready_cluster.run_id)
    result.record(kready_finding)
