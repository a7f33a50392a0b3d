"""Rollouts under load: ``rollout.zero-downtime`` (a reference workload in a throw-away namespace) and
``rollout.zero-downtime-target`` (your Deployment, ``--kready-rollout-target NAMESPACE/NAME``, disruptive mode).
How the load is sent and measured: pytest_kready/load.py and docs/checks-resilience.md."""

import pytest

from pytest_kready.checks import rollout as rollout_checks


@pytest.mark.kready_check("rollout.zero-downtime")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs_permission("create", "deployments", "apps")
@pytest.mark.kready_needs_permission("get", "pods", subresource="proxy")
@pytest.mark.kready_early(key="rollout.reference", start=rollout_checks.start_reference)
def test_rollout_zero_downtime(kready_cluster, kready_namespace, kready_finding):
    """A workload done right (readiness distinct from liveness, preStop delay, grace period, surge-only rolling
    update) loses no request while a new revision rolls out under steady load through its Service."""
    # run in the background from the cluster's start on (pytest_kready/early.py), else here
    (ns, result), early = kready_cluster.early.take_or("rollout.reference", lambda: rollout_checks.check_reference(
        kready_cluster, lambda prefix: kready_namespace(name_prefix=prefix)))
    if early:
        kready_namespace.adopt(ns)
    result.record(kready_finding)


@pytest.mark.kready_check("rollout.zero-downtime-target")
@pytest.mark.kready_mode("disruptive")
@pytest.mark.kready_needs_permission("get", "pods", subresource="proxy")
def test_rollout_zero_downtime_target(kready_cluster, kready_namespace, kready_finding):
    """Your Deployment (``--kready-rollout-target``), restarted as ``kubectl rollout restart`` does, while an
    in-cluster client requests ``--kready-rollout-path`` through the Service selecting its pods: 0 failures."""
    from pytest_kready.checks import rollout as rollout

    target = kready_cluster.settings.rollout_target
    if target is None:
        kready_finding.not_applicable("no --kready-rollout-target NAMESPACE/NAME given")
    namespace, name = target
    for verb in ("get", "patch"):
        if not kready_cluster.can(verb, "deployments", "apps", namespace=namespace):
            kready_finding.not_applicable(f"no permission to {verb} deployments.apps in namespace {namespace}")
    client_ns = kready_namespace(name_prefix="rollout-client")
    result = rollout.run_target(kready_cluster.api_client(), kready_cluster.no_retry_client_factory(), client_ns,
                                kready_cluster.run_id, kready_cluster.settings.image, namespace=namespace, name=name,
                                path=kready_cluster.settings.rollout_path)
    result.record(kready_finding)
