"""Control plane, where the provider can reach it: Secrets are encrypted at rest (a Secret of the run is read
back raw from etcd; only whether the stored bytes carry an encryption prefix is shown, never the value), and
the API server's audit log records this run's requests.

The checks, their positive controls and their verdicts are in pytest_kready/checks/control_plane_secrets.py;
this module only provides fixtures and markers and records what the checks return.
Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations

import pytest

from pytest_kready.checks import control_plane_secrets as cpl


@pytest.mark.kready_check("etcd.encryption-at-rest")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs("control-plane-exec", "etcd")
def test_secrets_are_encrypted_in_etcd(kready_cluster, kready_ns, kready_finding):
    cpl.encryption_at_rest(kready_cluster, kready_ns, kready_finding.secret).record(kready_finding)


@pytest.mark.kready_check("audit.logging")
@pytest.mark.kready_mode("readonly")
def test_this_runs_requests_are_in_the_audit_log(kready_cluster, kready_finding):
    cpl.audit_logging(kready_cluster).record(kready_finding)
