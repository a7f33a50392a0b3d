"""Control-plane helpers: raw reads from etcd (judged by their first bytes only: the value is never shown),
the audit log searched for one of the run's requests, and API server metrics.

``etcdctl`` uses the provider's own ``etcdctl`` method when it has one (kind: inside the etcd container), else
runs ``etcdctl`` through ``ControlPlane.run`` with the endpoint and certificates of ``ControlPlane.etcd``.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

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
