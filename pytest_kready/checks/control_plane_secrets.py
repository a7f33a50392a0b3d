"""Control plane, where the provider can reach it: ``encryption_at_rest`` (a Secret of the run read back raw
from etcd, judged by its envelope only: the value is never shown; a ConfigMap holding the same value is the
positive control) and ``audit_logging`` (this run's marker requests searched for in the API server's audit log;
without a log, only the absence of any audit policy can be shown). Each returns a ``findings.CheckResult``.

``etcdctl`` uses the provider's own ``etcdctl`` method when it has one (kind: inside the etcd container), else
runs ``etcdctl`` through ``ControlPlane.run`` with the endpoint and certificates of ``ControlPlane.etcd``.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from typing import Any

from .. import attempts, client
from ..findings import CheckResult, Verdict
from ..waits import WaitTimeout, wait_for
from . import references as ref

ENCRYPTED_PREFIX = b"k8s:enc:"
PROTOBUF_PREFIX = b"k8s\x00"


def etcdctl(cp, args: list[str], *, timeout: float = 30) -> subprocess.CompletedProcess:
    own = getattr(cp, "etcdctl", None)
    if callable(own):
        return own(args, timeout=timeout)
    e = cp.etcd
    return cp.run(["etcdctl", "--endpoints", e.endpoints, "--cacert", e.cacert, "--cert", e.cert, "--key", e.key,
                   *args], timeout=timeout)


def etcd_get(cp, key: str) -> tuple[bytes | None, str]:
    """(stored bytes or None when the key does not exist, error text when etcdctl failed)."""
    proc = etcdctl(cp, ["get", key, "--print-value-only"])
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        return None, (err[-1] if err else f"etcdctl exit status {proc.returncode}")[:300]
    out = proc.stdout or b""
    if out.endswith(b"\n"):
        out = out[:-1]
    return (out or None), ""


def stored_prefix(raw: bytes) -> str:
    """What the first bytes of a stored object say about it — never more than its envelope."""
    if raw.startswith(ENCRYPTED_PREFIX):
        fields = raw[:160].split(b":")[:5]  # k8s:enc:<provider>:<version>:<key name>
        shown = ":".join(f.decode("ascii", "replace") for f in fields)
        return re.sub(r"[^\x20-\x7e]", "?", shown)
    if raw.startswith(PROTOBUF_PREFIX):
        return "k8s\\x00 (protobuf envelope, not encrypted)"
    if raw[:1] == b"{":
        return "{ (JSON, not encrypted)"
    return "unrecognised"


def judge_stored(raw: bytes, value: bytes) -> dict[str, Any]:
    """Facts about a stored Secret: length, envelope prefix, encrypted, plaintext value present (bool only)."""
    provider = None
    if raw.startswith(ENCRYPTED_PREFIX):
        parts = raw[len(ENCRYPTED_PREFIX):160].split(b":")
        provider = parts[0].decode("ascii", "replace") if parts else None
    return {"stored_bytes": len(raw), "prefix": stored_prefix(raw), "encrypted": raw.startswith(ENCRYPTED_PREFIX),
            "provider": provider, "plaintext_value_found": value in raw}


AUDIT_FIELDS = ("auditID", "stage", "verb", "requestURI", "objectRef", "responseStatus", "requestReceivedTimestamp",
                "level")


def audit_events(cp, path: str, marker: str, *, limit: int = 20) -> tuple[list[dict], str | None]:
    """Events of the audit log at ``path`` mentioning ``marker`` (selected fields), and an error when the log
    cannot be read."""
    proc = cp.run(["grep", "-F", "-m", str(limit), marker, path], timeout=30)
    if proc.returncode not in (0, 1):  # 1: no match
        err = (proc.stderr or b"").decode("utf-8", "replace").strip()
        return [], err.splitlines()[-1][:300] if err else f"grep exit status {proc.returncode}"
    events = []
    for line in (proc.stdout or b"").decode("utf-8", "replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        out = {k: ev[k] for k in AUDIT_FIELDS if k in ev}
        out["user"] = (ev.get("user") or {}).get("username")
        events.append(out)
    return events, None


def audit_log_lines(cp, path: str) -> tuple[int | None, str | None]:
    """How many events the audit log holds (positive control: it is written at all)."""
    proc = cp.run(["wc", "-l", path], timeout=30)
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode("utf-8", "replace").strip()
        return None, err.splitlines()[-1][:300] if err else f"wc exit status {proc.returncode}"
    try:
        return int((proc.stdout or b"0").split()[0]), None
    except (ValueError, IndexError):
        return None, "unreadable line count"


def metric_total(text: str, name: str) -> float | None:
    """Sum of every sample of metric ``name`` in Prometheus text, None when the metric is absent."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)", line)
        if m:
            seen = True
            total += float(m.group(1))
    return total if seen else None


# --- the checks: each returns findings.CheckResult ----------------------------------------------------------

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


def etcd_repro(cp, key: str) -> str:
    e = cp.etcd
    return (f"ETCDCTL_API=3 etcdctl --endpoints={e.endpoints} --cacert={e.cacert} --cert={e.cert} --key={e.key} "
            f"get {key} --print-value-only | head -c 32 | od -c | head -2")


def judge_encryption(control: dict[str, Any] | None, facts: dict[str, Any] | None) -> tuple[Verdict, str]:
    """The verdict from the facts of the run's Secret and of its positive control (a ConfigMap holding the same
    value, read the same way). The control must show that this read sees stored values as they are: its bytes hold
    the value in plaintext (ConfigMaps are not encrypted: the value detector works), or carry an encryption
    envelope themselves (ConfigMaps are encrypted too). Otherwise only a plaintext Secret decides (fail)."""
    if facts is not None and facts["plaintext_value_found"]:
        return Verdict.FAIL, (f"Secrets are stored in etcd in plaintext (stored bytes begin {facts['prefix']}; the "
                              "value is readable by anyone with etcd or its backups)")
    if control is None:
        return Verdict.INCONCLUSIVE, "positive control failed: the run's ConfigMap could not be read from etcd"
    if not (control["plaintext_value_found"] or control["encrypted"]):
        return Verdict.INCONCLUSIVE, (
            "positive control failed: the run's ConfigMap holding the same value is stored neither with the value in "
            f"plaintext nor encrypted (begins {control['prefix']}), so this read does not show stored values as they "
            "are and the Secret's bytes prove nothing")
    if facts is None:
        return Verdict.INCONCLUSIVE, "the run's Secret could not be read from etcd"
    if facts["encrypted"]:
        note = {"aescbc": " (accepted by CIS 1.2.28; KMS v2 or aesgcm with key rotation is preferred upstream)"}.get(
            facts["provider"] or "", "")
        how = ("the same value is found in plaintext in the ConfigMap read the same way (positive control)"
               if control["plaintext_value_found"] else
               f"ConfigMaps are encrypted too (control begins {control['prefix']})")
        return Verdict.PASS, (f"Secrets are encrypted at rest: stored bytes begin {facts['prefix']}, the value is not "
                              f"in them; {how}{note}")
    return Verdict.INCONCLUSIVE, (f"the stored Secret neither holds the value in plaintext nor carries the "
                                  f"{ENCRYPTED_PREFIX.decode()} prefix (begins {facts['prefix']})")


def encryption_at_rest(cluster, namespace: str, register_secret) -> CheckResult:
    """etcd.encryption-at-rest: create a Secret with a random value (registered with ``register_secret`` for
    redaction) and a ConfigMap with the same value in ``namespace``, read both raw from etcd, judge the bytes."""
    cp = cluster.control_plane
    value = "kready-" + secrets.token_hex(24)
    register_secret(value)
    name = attempts.probe_name("encryption")
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                    "stringData": {"probe": value}}, namespace=namespace)
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"probe": value}},
                   namespace=namespace)
    secret_key = f"/registry/secrets/{namespace}/{name}"
    control_key = f"/registry/configmaps/{namespace}/{name}"
    fields = dict(severity="high", target_namespace=namespace, repro=etcd_repro(cp, secret_key),
                  request={"created": [f"Secret {namespace}/{name}",
                                       f"ConfigMap {namespace}/{name} (positive control)"],
                           "etcd_get": [secret_key, control_key]},
                  references=(ref.CIS_ENCRYPTION_CONFIG, ref.CIS_ENCRYPTION_PROVIDERS, ref.NSA_SECRETS, ENCRYPTION_URL))
    control_raw, control_err = etcd_get(cp, control_key)
    if control_raw is None:
        return CheckResult(Verdict.INCONCLUSIVE, "positive control failed: the run's ConfigMap is not at "
                           f"{control_key} in etcd ("
                           + (control_err or "no such key: the API server stores under another --etcd-prefix, or in "
                              "another etcd") + "), so a missing or unreadable Secret proves nothing", **fields)
    control = judge_stored(control_raw, value.encode())
    raw, err = etcd_get(cp, secret_key)
    facts = judge_stored(raw, value.encode()) if raw is not None else None
    del raw
    evidence = {"secret": facts, "positive_control": {"configmap_same_value": control}}
    verdict, summary = judge_encryption(control, facts)
    if facts is None:
        summary = f"{summary} at {secret_key}: {err or 'no such key'}"
    return CheckResult(verdict, summary, response=facts, evidence=evidence,
                       remediation=ENCRYPTION_FIX if verdict is Verdict.FAIL else None, **fields)


def audited_actions(api, marker: str) -> list[dict]:
    """Two requests carrying ``marker`` (safe in readonly mode): a GET of a missing ConfigMap and a dry-run
    create of one. Both reach the audit log whatever their answer."""
    path = "/api/v1/namespaces/default/configmaps"
    got = client.send(api, "GET", f"{path}/{marker}")
    made = client.send(api, "POST", path, query={"dryRun": "All"},
                       body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": marker}})
    return [{"request": f"GET {path}/{marker}", "status": got.status},
            {"request": f"POST {path}?dryRun=All (ConfigMap {marker})", "status": made.status}]


AUDIT_METRICS = ("apiserver_audit_event_total", "apiserver_audit_level_total")


def judge_audit_metrics(status: int, text: str | None) -> tuple[Verdict, str, dict[str, Any]]:
    """Without an audit log to search, what the API server's own metrics can prove — only that it has no audit
    policy at all. ``apiserver_audit_level_total`` counts one policy decision per request whenever a policy is
    loaded (this very read included), so its absence, with ``apiserver_audit_event_total`` at 0, shows the API
    server audits nothing; reading /metrics can only raise these counters, never hide a policy. Any audit activity
    at all is inconclusive: which requests it records cannot be told without the log (and the read raises it)."""
    if status in (401, 403):
        return Verdict.NOT_APPLICABLE, f"this run may not read /metrics (HTTP {status})", {}
    if text is None:
        return Verdict.INCONCLUSIVE, f"GET /metrics answered HTTP {status}", {}
    values = {m: metric_total(text, m) for m in AUDIT_METRICS}
    events, levels = values["apiserver_audit_event_total"], values["apiserver_audit_level_total"]
    if events is None:
        return Verdict.INCONCLUSIVE, ("the API server exposes no apiserver_audit_event_total metric, so whether it "
                                      "audits cannot be told"), values
    if events == 0 and not levels:
        return Verdict.FAIL, ("the API server has no audit policy: apiserver_audit_level_total, one count per request "
                              "whenever a policy is loaded, is absent after serving this run's requests (this read "
                              "included), and apiserver_audit_event_total is 0: nothing anyone does is recorded"), values
    return Verdict.INCONCLUSIVE, (
        f"the API server audits (apiserver_audit_event_total {events:g}, policy decisions {levels or 0:g}), but its "
        "audit log is not readable here, so whether this run's marker requests were recorded cannot be shown (the "
        "counters cannot: reading /metrics raises them itself)"), values


def audit_logging(cluster, *, wait: float = 20) -> CheckResult:
    """audit.logging: two requests naming a marker unique to the run, searched for in the audit log (pass when
    found); without a readable log, ``judge_audit_metrics``."""
    caps = cluster.capabilities
    cp = cluster.control_plane
    api = cluster.api_client()
    marker = f"kready-audit-{cluster.run_id}-{secrets.token_hex(3)}"
    fields: dict[str, Any] = dict(severity="medium", references=(ref.CIS_AUDIT_LOG_PATH, ref.CIS_AUDIT_POLICY,
                                                                 ref.NSA_AUDIT, AUDIT_URL))
    if caps.audit_log and cp is not None:
        path = caps.audit_log
        actions = audited_actions(api, marker)
        fields.update(request=actions, repro=f"grep -F {marker} {path}")
        try:
            events = wait_for(lambda: audit_events(cp, path, marker)[0], timeout=wait, interval=0.5,
                              max_interval=2, what=f"audit events naming {marker} in {path}")
        except WaitTimeout:
            events = []
        if events:
            return CheckResult(Verdict.PASS, f"this run's requests are in the audit log ({len(events)} event(s) naming "
                               f"{marker} in {path})", response=events[:4],
                               evidence={"marker": marker, "events": events[:4]}, **fields)
        lines, err = audit_log_lines(cp, path)
        _, read_err = audit_events(cp, path, marker)
        if err or read_err:
            return CheckResult(Verdict.INCONCLUSIVE, f"the audit log {path} cannot be read: {err or read_err}",
                               evidence={"marker": marker}, **fields)
        if not lines:
            return CheckResult(Verdict.FAIL, f"the audit log {path} is empty: the API server writes no audit events "
                               "there", remediation=AUDIT_FIX, evidence={"marker": marker, "log_lines": lines}, **fields)
        return CheckResult(Verdict.FAIL, f"none of this run's requests (naming {marker}) reached the audit log {path} "
                           f"within {wait:g} s, though it holds {lines} events: the policy leaves such requests out",
                           remediation=AUDIT_FIX, evidence={"marker": marker, "log_lines": lines}, **fields)
    why_no_log = caps.why_not("audit-log")
    actions = audited_actions(api, marker)
    resp = client.send(api, "GET", "/metrics", headers={"Accept": "text/plain"}, text=True)
    verdict, why, values = judge_audit_metrics(resp.status, resp.body if resp.ok else None)
    fields.update(request=actions + [{"request": "GET /metrics (after the marker requests)", "status": resp.status}],
                  response=values, repro="kubectl get --raw /metrics | grep -E '^apiserver_audit_(event|level)_total'",
                  evidence={"marker": marker, "no_log_because": why_no_log, "metrics": values,
                            "note": "the metrics are those of the API server instance that answered /metrics"})
    return CheckResult(verdict, f"{why_no_log}; {why}", remediation=AUDIT_FIX if verdict is Verdict.FAIL else None,
                       **fields)
