"""``storage.pvc-reclaim``: data outlives its PersistentVolumeClaim on the default StorageClass and on each one
named by ``--kready-storage-classes``. See pytest_kready/checks/storage.py and
docs/checks-resilience.md."""

import pytest


@pytest.mark.kready_check("storage.pvc-reclaim")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs_permission("list", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("patch", "persistentvolumes")
def test_pvc_reclaim(kready_cluster, kready_namespace, kready_finding):
    """Write a marker to a fresh claim, delete the claim: the volume must be kept (Released, Retain) and, bound to
    a new claim, give the marker back. A Delete reclaim policy fails, naming the StorageClass."""
    from pytest_kready.checks import storage as storage

    api = kready_cluster.api_client()
    names, missing, by_name = storage.classes_to_check(api, kready_cluster.settings.storage_classes)
    for name in missing:
        kready_finding("inconclusive", f"StorageClass {name} (--kready-storage-classes) does not exist")
    if not names and not missing:
        kready_finding.not_applicable("the cluster has no default StorageClass and --kready-storage-classes names none")
    for name in names:
        ns = kready_namespace(name_prefix=f"pvc-{name}")
        storage.check_reclaim(api, ns, kready_cluster.run_id, kready_cluster.settings.image, name,
                              by_name[name]).record(kready_finding)
