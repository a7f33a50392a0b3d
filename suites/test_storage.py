"""``storage.pvc-reclaim``: data outlives its PersistentVolumeClaim on the default StorageClass and on each one
named by ``--kready-storage-classes``, claimed through a labelled throw-away copy of each class (so no pre-made
volume can be bound). See pytest_kready/checks/storage.py and docs/checks-resilience.md."""

import pytest

from pytest_kready.checks import storage as storage_checks


@pytest.mark.kready_check("storage.pvc-reclaim")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs_permission("list", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("create", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("delete", "storageclasses", "storage.k8s.io")
@pytest.mark.kready_needs_permission("patch", "persistentvolumes")
@pytest.mark.kready_early(key="storage.pvc-reclaim", start=storage_checks.start_checks)
def test_pvc_reclaim(kready_cluster, kready_namespace, kready_finding):
    """Write a marker to a fresh claim of a throw-away copy of the class, delete the claim: the volume (verified as
    provisioned for that claim) must be kept (Released, Retain) and, bound to a new claim, give the marker back. A
    Delete reclaim policy fails, naming the original StorageClass."""
    # run in the background from the cluster's start on (pytest_kready/early.py), else here
    outcome, early = kready_cluster.early.take_or("storage.pvc-reclaim", lambda: storage_checks.check_classes(
        kready_cluster, lambda prefix: kready_namespace(name_prefix=prefix)))
    for _, ns, _ in outcome.results if early else ():
        kready_namespace.adopt(ns)
    for name in outcome.missing:
        kready_finding("inconclusive", f"StorageClass {name} (--kready-storage-classes) does not exist")
    if not outcome.names and not outcome.missing:
        kready_finding.not_applicable("the cluster has no default StorageClass and --kready-storage-classes names none")
    for _, _, result in outcome.results:
        result.record(kready_finding)
