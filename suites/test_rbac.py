"""RBAC, acted out with real credentials: the namespace's default ServiceAccount with a token from the
TokenRequest API (not impersonation, not an access review) tries to read Secrets and to exec into pods; a pod
under it is dry-run to see whether a token would be mounted; requests with no credentials at all try to list;
and the bindings are read for cluster-admin and wildcard roles handed to people and workloads.

The checks, their positive controls and their verdicts are in pytest_kready/checks/rbac.py; this module only
provides fixtures and markers and records what the checks return. Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations

import pytest

from pytest_kready import attempts
from pytest_kready.checks import rbac

pytestmark = pytest.mark.kready_mode("readonly")


@pytest.fixture(scope="module")
def rbac_targets(kready_cluster) -> list[str]:
    targets = kready_cluster.target_namespaces()
    fresh = kready_cluster.defaults_namespace() if kready_cluster.settings.namespaces is None else None
    if fresh:
        kready_cluster.wait_default_serviceaccount(fresh)
    return targets


@pytest.fixture(scope="module")
def bindings(kready_cluster) -> rbac.Bindings:
    """ClusterRoleBindings and RoleBindings, as far as the run may list them."""
    return rbac.read_bindings(kready_cluster.api_client())


@pytest.fixture
def exec_control(request, kready_cluster, kready_as_serviceaccount):
    control = rbac.ExecControl(kready_cluster, kready_as_serviceaccount)
    yield control
    control.close(failed=request.session.testsfailed > 0)


def _targets(targets, kready_finding) -> list[str]:
    if not targets:
        kready_finding.not_applicable(rbac.NO_TARGETS)
    return targets


@pytest.mark.kready_check("rbac.default-sa-secrets")
def test_default_serviceaccount_cannot_read_secrets(kready_cluster, rbac_targets, bindings, kready_as_serviceaccount,
                                                    kready_finding):
    def judge(ns):
        return rbac.default_sa_secrets(kready_cluster, ns, kready_as_serviceaccount, bindings)

    for result in attempts.each_namespace(judge, _targets(rbac_targets, kready_finding)):
        result.record(kready_finding)


@pytest.mark.kready_check("rbac.default-sa-exec")
def test_default_serviceaccount_cannot_exec(kready_cluster, rbac_targets, bindings, kready_as_serviceaccount,
                                            exec_control, kready_finding):
    def judge(ns):
        return rbac.default_sa_exec(kready_cluster, ns, kready_as_serviceaccount, bindings, exec_control)

    for result in attempts.each_namespace(judge, _targets(rbac_targets, kready_finding)):
        result.record(kready_finding)


@pytest.mark.kready_check("rbac.token-automount")
def test_default_serviceaccount_token_not_mounted(kready_cluster, rbac_targets, kready_finding):
    for result in attempts.each_namespace(lambda ns: rbac.token_automount(kready_cluster, ns),
                                          _targets(rbac_targets, kready_finding)):
        result.record(kready_finding)


@pytest.mark.kready_check("rbac.cluster-admin-subjects")
@pytest.mark.kready_needs_permission("list", "clusterrolebindings", rbac.RBAC_GROUP)
def test_cluster_admin_only_for_system_subjects(bindings, kready_finding):
    rbac.cluster_admin_subjects(bindings).record(kready_finding)


@pytest.mark.kready_check("rbac.wildcards")
@pytest.mark.kready_needs_permission("list", "clusterroles", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "roles", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "clusterrolebindings", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "rolebindings", rbac.RBAC_GROUP)
def test_no_wildcard_roles_bound_to_workloads(kready_cluster, bindings, kready_finding):
    rbac.wildcards(kready_cluster.api_client(), bindings).record(kready_finding)


@pytest.mark.kready_check("rbac.anonymous")
def test_anonymous_requests_list_nothing(kready_cluster, rbac_targets, kready_finding):
    kready_finding.record(rbac.anonymous(kready_cluster, rbac_targets))
