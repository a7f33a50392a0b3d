"""``storage.pvc-reclaim``: data outlives its PersistentVolumeClaim on the default StorageClass and on each one
named by ``--kready-storage-classes``, claimed through a labelled throw-away copy of each class (so no pre-made
volume can be bound). See pytest_kready/checks/storage.py and docs/checks-resilience.md."""

import pytest


@pytest.mark.kready_check("storage.pvc-reclaim")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs_permission("list", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("create", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("delete", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("patch", "persistentvolumes")
def test_pvc_reclaim(kready_cluster, kready_namespace, kready_finding):
    """Write a marker to a fresh claim of a throw-away copy of the class, delete the claim: the volume (verified as
    provisioned for that claim) must be kept (Released, Retain) and, bound to a new claim, give the marker back. A
    Delete reclaim policy fails, naming the original StorageClass."""
    from pytest_kready.checks import storage as storage

    api = kready_cluster.api_client()
    names, missing, by_name = storage.classes_to_check(api, kready_cluster.settings.storage_classes)
    for name in missing:
        kready_finding("inconclusive", f"StorageClass {name} (--kready-storage-classes) does not exist")
    if not names and not missing:
        kready_finding.not_applicable("the cluster has no default StorageClass and --kready-storage-classes names none")
    for name in names:
        ns = kready_namespace(name_prefix=f"pvc-{name}")
        storage.check_class(kready_cluster, ns, name, by_name[name]).record(kready_finding)
