"""The upgrade acceptance gate, run only with ``--kready-upgrade-to=1.37`` (without it these checks are
deselected): ``upgrade.removed-apis``, ``upgrade.crd-stored-versions``, ``upgrade.drain``, ``upgrade.webhooks``,
``upgrade.version-skew`` (readonly: reads and server-side dry runs) and ``upgrade.backup`` (the etcd drill).
See pytest_kready/checks/upgrade.py and docs/checks-upgrade.md."""

import pytest

pytestmark = pytest.mark.kready_upgrade



@pytest.mark.kready_check("upgrade.removed-apis")
@pytest.mark.kready_mode("readonly")
def test_removed_apis(kready_cluster, kready_settings, kready_finding):
    """Nothing clients requested (API server metric, audit log) is removed by the target version."""
    from pytest_kready.checks import upgrade

    upgrade.removed_apis(kready_cluster, kready_settings.upgrade_to).record(kready_finding)


@pytest.mark.kready_check("upgrade.crd-stored-versions")
@pytest.mark.kready_mode("readonly")
def test_crd_stored_versions(kready_cluster, kready_finding):
    """No CRD still stores objects in a version that is unserved or deprecated."""
    from pytest_kready.checks import upgrade

    kready_finding.record(upgrade.crd_stored_versions(kready_cluster))


@pytest.mark.kready_check("upgrade.drain")
@pytest.mark.kready_mode("readonly")
def test_drain(kready_cluster, kready_finding):
    """Every node drains: a dry-run eviction of each pod a drain evicts is not refused by a disruption budget."""
    from pytest_kready.checks import upgrade

    kready_finding.record(upgrade.check_drain(kready_cluster))


@pytest.mark.kready_check("upgrade.webhooks")
@pytest.mark.kready_mode("readonly")
def test_webhooks(kready_cluster, kready_finding):
    """Every fail-closed admission webhook answers a dry-run request it intercepts."""
    from pytest_kready.checks import upgrade

    kready_finding.record(upgrade.check_webhooks(kready_cluster))


@pytest.mark.kready_check("upgrade.version-skew")
@pytest.mark.kready_mode("readonly")
def test_version_skew(kready_cluster, kready_settings, kready_finding):
    """API server, kubelets, kube-proxy, controller-manager and scheduler allow the upgrade by the skew policy."""
    from pytest_kready.checks import upgrade

    upgrade.check_version_skew(kready_cluster, kready_settings.upgrade_to).record(kready_finding)


@pytest.mark.kready_check("upgrade.backup")
@pytest.mark.kready_mode("disruptive")
@pytest.mark.kready_needs("control-plane-exec", "etcd", "etcd-restore")
def test_backup(kready_cluster, kready_namespace, kready_finding):
    """An etcd snapshot restores (the drill of etcd.snapshot-restore) before the upgrade."""
    from pytest_kready.checks import upgrade

    upgrade.backup(kready_cluster, kready_namespace(name_prefix="upgrade-backup")).record(kready_finding)


@pytest.mark.kready_rehearsal
@pytest.mark.kready_check("upgrade.rehearsal")
@pytest.mark.kready_mode("disruptive")
@pytest.mark.kready_needs("upgrade-in-place", "control-plane-exec", "etcd")
def test_upgrade_rehearsal(kready_cluster, kready_namespace, kready_finding):
    """--kready-upgrade-rehearsal=OLD:NEW: the cluster upgraded in place under load, between the two phases of the
    checks; upgrade.version-skew judged in the mid-state too."""
    from pytest_kready.checks import upgrade

    kready_finding.record(upgrade.rehearse(kready_cluster, kready_namespace(name_prefix="rehearsal")))
