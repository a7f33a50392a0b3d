"""Control plane, where the provider can reach it: Secrets are encrypted at rest (a Secret of the run is read
back raw from etcd; only whether the stored bytes carry an encryption prefix is shown, never the value), and
the API server's audit log records this run's requests. Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations

import secrets

import pytest

from pytest_kready import attempts, client
from pytest_kready.checks import control_plane_secrets as cpl
from pytest_kready.checks import references as ref
from pytest_kready.findings import Verdict
from pytest_kready.waits import WaitTimeout, wait_for

ENCRYPTION_URL = "https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/"
AUDIT_URL = "https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/"

ENCRYPTION_FIX = """Encrypt Secrets at rest: give kube-apiserver --encryption-provider-config=<file> (KMS v2 keeps the key
off the node; aesgcm/aescbc/secretbox keep it in the file), then rewrite existing Secrets so they are stored
encrypted: kubectl get secrets -A -o json | kubectl replace -f -
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: <32 random bytes, base64: head -c 32 /dev/urandom | base64>
      - identity: {}"""

AUDIT_FIX = """Turn on API server auditing: kube-apiserver --audit-policy-file=<policy> --audit-log-path=<file>
--audit-log-maxage=30 --audit-log-maxbackup=10 --audit-log-maxsize=100 (or --audit-webhook-config-file), with at least
Metadata level for every request (never RequestResponse for Secrets):
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: Metadata"""


def _etcd_repro(cp, key: str) -> str:
    e = cp.etcd
    return (f"ETCDCTL_API=3 etcdctl --endpoints={e.endpoints} --cacert={e.cacert} --cert={e.cert} --key={e.key} "
            f"get {key} --print-value-only | head -c 32 | od -c | head -2")


@pytest.mark.kready_check("etcd.encryption-at-rest")
@pytest.mark.kready_mode("standard")
@pytest.mark.kready_needs("control-plane-exec", "etcd")
def test_secrets_are_encrypted_in_etcd(kready_cluster, kready_ns, kready_finding):
    cp = kready_cluster.control_plane
    value = "kready-" + secrets.token_hex(24)
    kready_finding.secret(value)
    name = attempts.probe_name("encryption")
    kready_cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                           "stringData": {"probe": value}}, namespace=kready_ns)
    kready_cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                           "data": {"probe": value}}, namespace=kready_ns)
    secret_key = f"/registry/secrets/{kready_ns}/{name}"
    control_key = f"/registry/configmaps/{kready_ns}/{name}"
    common = dict(severity="high", target_namespace=kready_ns, repro=_etcd_repro(cp, secret_key),
                  request={"created": [f"Secret {kready_ns}/{name}", f"ConfigMap {kready_ns}/{name} (positive control)"],
                           "etcd_get": [secret_key, control_key]},
                  references=(ref.CIS_ENCRYPTION_CONFIG, ref.CIS_ENCRYPTION_PROVIDERS, ref.NSA_SECRETS, ENCRYPTION_URL))
    control_raw, control_err = cpl.etcd_get(cp, control_key)
    if control_raw is None:
        kready_finding.inconclusive(
            "positive control failed: the run's ConfigMap is not at " + control_key + " in etcd ("
            + (control_err or "no such key: the API server stores under another --etcd-prefix, or in another etcd")
            + "), so a missing or unreadable Secret proves nothing", **common)
    control = cpl.judge_stored(control_raw, value.encode())
    raw, err = cpl.etcd_get(cp, secret_key)
    if raw is None:
        kready_finding.inconclusive(f"the run's Secret is not readable at {secret_key}: {err or 'no such key'}",
                                    evidence={"positive_control": control}, **common)
    facts = cpl.judge_stored(raw, value.encode())
    del raw
    evidence = {"secret": facts, "positive_control": {"configmap_same_value": control}}
    if facts["plaintext_value_found"]:
        kready_finding.failed(f"Secrets are stored in etcd in plaintext (stored bytes begin {facts['prefix']}; the "
                              "value is readable by anyone with etcd or its backups)",
                              response=facts, evidence=evidence, remediation=ENCRYPTION_FIX, **common)
    elif facts["encrypted"]:
        note = {"aescbc": " (accepted by CIS 1.2.28; KMS v2 or aesgcm with key rotation is preferred upstream)"}.get(
            facts["provider"] or "", "")
        kready_finding.passed(f"Secrets are encrypted at rest: stored bytes begin {facts['prefix']}, the value is not in "
                              f"them{note}", response=facts, evidence=evidence, **common)
    else:
        kready_finding.inconclusive(f"the stored Secret neither holds the value in plaintext nor carries the "
                                    f"{cpl.ENCRYPTED_PREFIX.decode()} prefix (begins {facts['prefix']})",
                                    response=facts, evidence=evidence, **common)


def _audited_actions(cluster, marker: str) -> list[dict]:
    """Two requests carrying ``marker`` (safe in readonly mode): a GET of a missing ConfigMap and a dry-run
    create of one. Both reach the audit log whatever their answer."""
    api = cluster.api_client()
    path = "/api/v1/namespaces/default/configmaps"
    got = client.send(api, "GET", f"{path}/{marker}")
    made = client.send(api, "POST", path, query={"dryRun": "All"},
                    body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": marker}})
    return [{"request": f"GET {path}/{marker}", "status": got.status},
            {"request": f"POST {path}?dryRun=All (ConfigMap {marker})", "status": made.status}]


def _metric(api, name: str) -> tuple[int, float | None, float | None]:
    resp = client.send(api, "GET", "/metrics", headers={"Accept": "text/plain"}, text=True)
    if not resp.ok:
        return resp.status, None, None
    return resp.status, cpl.metric_total(resp.body, name), cpl.metric_total(resp.body, "apiserver_request_total")


@pytest.mark.kready_check("audit.logging")
@pytest.mark.kready_mode("readonly")
def test_this_runs_requests_are_in_the_audit_log(kready_cluster, kready_finding):
    caps = kready_cluster.capabilities
    cp = kready_cluster.control_plane
    marker = f"kready-audit-{kready_cluster.run_id}-{secrets.token_hex(3)}"
    common = dict(severity="medium", references=(ref.CIS_AUDIT_LOG_PATH, ref.CIS_AUDIT_POLICY, ref.NSA_AUDIT, AUDIT_URL))
    if caps.audit_log and cp is not None:
        path = caps.audit_log
        actions = _audited_actions(kready_cluster, marker)
        common.update(request=actions, repro=f"grep -F {marker} {path}")
        try:
            events = wait_for(lambda: cpl.audit_events(cp, path, marker)[0], timeout=20, interval=0.5,
                              max_interval=2, what=f"audit events naming {marker} in {path}")
        except WaitTimeout:
            events = []
        if events:
            kready_finding.passed(f"this run's requests are in the audit log ({len(events)} event(s) naming {marker} "
                                  f"in {path})", response=events[:4], evidence={"marker": marker, "events": events[:4]},
                                  **common)
            return
        lines, err = cpl.audit_log_lines(cp, path)
        _, read_err = cpl.audit_events(cp, path, marker)
        if err or read_err:
            kready_finding.inconclusive(f"the audit log {path} cannot be read: {err or read_err}", **common)
        if not lines:
            kready_finding.failed(f"the audit log {path} is empty: the API server writes no audit events there",
                                  remediation=AUDIT_FIX, evidence={"marker": marker, "log_lines": lines}, **common)
            return
        kready_finding.failed(f"none of this run's requests (naming {marker}) reached the audit log {path} within 20 s, "
                              f"though it holds {lines} events: the policy leaves such requests out",
                              remediation=AUDIT_FIX, evidence={"marker": marker, "log_lines": lines}, **common)
        return
    # No audit log this provider can read: the API server's own counter says whether it audits at all.
    api = kready_cluster.api_client()
    status, before, requests_before = _metric(api, "apiserver_audit_event_total")
    why_no_log = caps.why_not("audit-log")
    common.update(repro="kubectl get --raw /metrics | grep -E '^apiserver_audit_event_total'")
    if status in (401, 403):
        kready_finding.not_applicable(f"{why_no_log}; and this run may not read /metrics (HTTP {status})", **common)
    actions = _audited_actions(kready_cluster, marker)
    status, after, requests_after = _metric(api, "apiserver_audit_event_total")
    evidence = {"no_log_because": why_no_log, "apiserver_audit_event_total": {"before": before, "after": after},
                "positive_control": {"apiserver_request_total": {"before": requests_before, "after": requests_after}}}
    common.update(request=actions + [{"request": "GET /metrics (before and after)"}],
                  response={"apiserver_audit_event_total": {"before": before, "after": after}}, evidence=evidence)
    if requests_before is None or requests_after is None or requests_after <= requests_before:
        kready_finding.inconclusive("positive control failed: apiserver_request_total did not count this run's "
                                    "requests, so the audit counter cannot be trusted (another API server instance?)",
                                    **common)
    if before is None or after is None:
        kready_finding.inconclusive("the API server has no apiserver_audit_event_total metric to tell whether it "
                                    f"audits ({why_no_log})", **common)
    if after > before:
        kready_finding.not_applicable(f"{why_no_log}; the API server does generate audit events "
                                      f"(apiserver_audit_event_total rose by {after - before:g}), but their log is not "
                                      "reachable to look for this run's requests", **common)
    kready_finding(Verdict.FAIL, "the API server generates no audit events (apiserver_audit_event_total stays "
                   f"{after:g} across this run's requests): nothing anyone does is recorded",
                   remediation=AUDIT_FIX, **common)
