"""Disruptions and probes: ``disruption.pdb`` (every replicated Deployment/StatefulSet in the target namespaces
has a PodDisruptionBudget the Eviction API honours), ``disruption.pdb-eviction`` (a breaching eviction is refused,
shown on a reference budget) and ``probes.separate`` (readiness present, liveness a different check).
See pytest_kready/checks/disruption.py and docs/checks-resilience.md."""

import pytest


def _per_namespace(cluster, finding, check, *, nothing: str) -> None:
    """Run ``check(namespace)`` on every target namespace (side by side), recording its results in their order;
    not-applicable when none."""
    from pytest_kready import attempts, errors

    def judge(ns):
        try:
            return check(ns), None
        except errors.APIForbidden as e:
            return None, e

    targets = cluster.target_namespaces()
    judged = 0
    for ns, (results, forbidden) in zip(targets, attempts.each_namespace(judge, targets)):
        if forbidden is not None:
            finding("not-applicable", f"cannot read namespace {ns}: {forbidden}", target_namespace=ns)
            continue
        finding.record(results)
        judged += len(results)
    if not judged:
        finding.not_applicable(nothing)


@pytest.mark.kready_check("disruption.pdb")
@pytest.mark.kready_mode("readonly")
def test_pdb_coverage(kready_cluster, kready_finding):
    """Each Deployment and StatefulSet with more than one replica has one PodDisruptionBudget that protects
    something, and a dry-run eviction of one of its pods is answered as the budget says."""
    from pytest_kready.checks import disruption as d

    api, evict = kready_cluster.api_client(), kready_cluster.api_client(retries=False)
    try:
        _per_namespace(kready_cluster, kready_finding, lambda ns: d.check_pdbs(api, evict, ns),
                       nothing="no Deployment or StatefulSet with more than one replica in the target namespaces")
    finally:
        evict.close()


@pytest.mark.kready_check("disruption.pdb-eviction")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs_permission("create", "poddisruptionbudgets", "policy")
@pytest.mark.kready_needs_permission("create", "pods", subresource="eviction")
def test_pdb_eviction_refused(kready_cluster, kready_namespace, kready_finding):
    """On a reference budget: the eviction it allows is accepted (control), the one that would breach it is
    refused with 429."""
    from pytest_kready.checks import disruption as d

    ns = kready_namespace(name_prefix="pdb")
    evict = kready_cluster.api_client(retries=False)
    try:
        result = d.reference_budget(kready_cluster.api_client(), evict, ns, kready_cluster.run_id,
                                    kready_cluster.settings.image)
    finally:
        evict.close()
    result.record(kready_finding)


@pytest.mark.kready_check("probes.separate")
@pytest.mark.kready_mode("readonly")
def test_probes_separate(kready_cluster, kready_finding):
    """Serving containers of the target workloads have a readiness probe, and their liveness probe is not the
    same check on the same endpoint."""
    from pytest_kready.checks import disruption as d

    api = kready_cluster.api_client()
    _per_namespace(kready_cluster, kready_finding, lambda ns: d.check_probes(api, ns),
                   nothing="no serving Deployment, StatefulSet or DaemonSet in the target namespaces")
