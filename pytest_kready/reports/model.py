"""The v1 records (see the package docstring): a finding's scope, namespace, object reference and stable target
key; the run header; the summary; the document.

Where a finding belongs is decided here, in one table per check id (``CLUSTER_CHECKS``, ``OBJECT_FROM``), unless
the check module said so itself on its ``CheckResult`` (``scope=``, ``object=``), which wins:

* the check ids in ``CLUSTER_CHECKS`` (and every ``upgrade.*``) are about the cluster: scope ``cluster``, key
  ``cluster``, whatever throw-away namespace of the run they ran in (the fresh one included); a result such a
  check gives per *user* namespace (``rbac.anonymous`` also lists per namespace) stays with that namespace;
* the check ids in ``OBJECT_FROM`` name an object in their evidence (the StorageClass of ``storage.pvc-reclaim``,
  the workload of ``disruption.pdb``, the Node of ``upgrade.drain``, ...): scope ``object``, key the reference;
* any other finding in a user namespace is about that namespace (key: its name); one in the run's fresh
  namespace (``kr-defaults-<run>-<n>``: what a new namespace gets) is keyed ``(new-namespace)``; one in any
  other throw-away namespace of the run, or with no namespace, is about the cluster.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from .. import __version__
from ..areas import ORDER, area_of
from . import SCHEMA_ID, VERDICTS

NEW_NAMESPACE_KEY = "(new-namespace)"
CLUSTER_KEY = "cluster"

# checks about the cluster as a whole (they may run in a throw-away namespace of the run; that is not their target)
CLUSTER_CHECKS = frozenset({
    "etcd.encryption-at-rest", "etcd.snapshot-restore", "audit.logging",
    "rbac.cluster-admin-subjects", "rbac.wildcards", "rbac.anonymous",
    "network.enforcement", "disruption.pdb-eviction", "rollout.zero-downtime",
    "upgrade.removed-apis", "upgrade.version-skew", "upgrade.backup",
})
CLUSTER_PREFIXES = ("upgrade.",)

# run-owned namespace names: kr-<prefix>-<MMDDHHMM>-<hex6>[-gwN]-<n> (session.KreadySession.namespace_name)
RUN_NAMESPACE = re.compile(r"^kr-(?P<prefix>[a-z0-9-]*?)-?(?P<run>\d{8}-[0-9a-f]{6})(?:-gw\d+)?-\d+$")
_WORKLOAD = re.compile(r"^(?P<kind>[A-Z][A-Za-z]*)[ /](?:(?P<ns>[a-z0-9][-a-z0-9]*)/)?(?P<name>[a-z0-9][-a-z0-9.]*)")


def _ref(kind: Any, name: Any, namespace: Any = None, part: Any = None) -> dict | None:
    if not kind or not name:
        return None
    out = {"kind": str(kind), "namespace": str(namespace) if namespace else None, "name": str(name)}
    if part:
        out["part"] = str(part)
    return out


def _workload(ev: dict, ns: str | None) -> dict | None:
    m = _WORKLOAD.match(str(ev.get("workload") or ""))
    if not m:
        return None
    namespace = m.group("ns") or ns
    if namespace and RUN_NAMESPACE.match(namespace):
        return None  # a reference workload the check made for itself: about the cluster, not an object of yours
    return _ref(m.group("kind"), m.group("name"), namespace)


# check id -> the object a finding is about, read from its evidence (and target namespace)
OBJECT_FROM: dict[str, Callable[[dict, str | None], dict | None]] = {
    "storage.pvc-reclaim": lambda ev, ns: _ref("StorageClass", ev.get("storage_class")),
    "disruption.pdb": _workload,
    "probes.separate": _workload,
    "rollout.zero-downtime-target": _workload,
    "upgrade.crd-stored-versions": lambda ev, ns: _ref("CustomResourceDefinition", ev.get("crd")),
    "upgrade.drain": lambda ev, ns: _ref("Node", ev.get("node")),
    "upgrade.webhooks": lambda ev, ns: _ref(ev.get("type"), ev.get("configuration"), None, ev.get("webhook")),
}


def is_cluster_check(check_id: str) -> bool:
    return check_id in CLUSTER_CHECKS or check_id.startswith(CLUSTER_PREFIXES)


def run_namespace_prefix(namespace: str | None) -> str | None:
    """The prefix of a throw-away namespace of a run (``defaults`` for ``kr-defaults-12030648-a1b2c3-1``), else
    None (a user namespace)."""
    m = RUN_NAMESPACE.match(namespace or "")
    return m.group("prefix") if m else None


def object_key(obj: dict) -> str:
    key = "/".join(p for p in (obj.get("namespace"), obj["kind"], obj["name"]) if p)
    return f"{key}#{obj['part']}" if obj.get("part") else key


def placement(check_id: str, target_namespace: str | None, evidence: Any, *, scope: str | None = None,
              obj: dict | None = None) -> dict[str, Any]:
    """``scope``, ``namespace``, ``object``, ``target_key`` and ``run_namespace`` of one finding (the module doc)."""
    ev = evidence if isinstance(evidence, dict) else {}
    prefix = run_namespace_prefix(target_namespace)
    user_ns = target_namespace if target_namespace and prefix is None else None
    run_ns = target_namespace if prefix is not None else None
    if obj is None and scope != "cluster" and check_id in OBJECT_FROM:
        try:
            obj = OBJECT_FROM[check_id](ev, target_namespace)
        except (TypeError, AttributeError):
            obj = None
    if obj is not None:
        obj = _ref(obj.get("kind"), obj.get("name"), obj.get("namespace"), obj.get("part"))
    if obj is not None:
        return {"scope": "object", "namespace": obj["namespace"], "object": obj, "target_key": object_key(obj),
                "run_namespace": run_ns}
    if scope == "cluster" or user_ns is None and (is_cluster_check(check_id) or prefix != "defaults"):
        return {"scope": "cluster", "namespace": None, "object": None, "target_key": CLUSTER_KEY,
                "run_namespace": run_ns}
    return {"scope": "namespace", "namespace": user_ns, "object": None,
            "target_key": user_ns if user_ns else NEW_NAMESPACE_KEY, "run_namespace": run_ns}


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ``2026-12-03T06:48:13Z`` (UTC)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def variant_of(nodeid: str | None) -> str | None:
    """The parameter id of a parametrized test (``privileged`` of ``test_attack[privileged]``), else None."""
    if nodeid and nodeid.endswith("]") and "[" in nodeid:
        return nodeid[nodeid.index("[") + 1:-1]
    return None


def finding_record(data: dict[str, Any]) -> dict[str, Any]:
    """The v1 record of a finding from ``Finding.to_dict()`` (already redacted): placement, area, ISO time."""
    out = dict(data)
    evidence = out.get("evidence")
    place = placement(out["check_id"], out.get("target_namespace"), evidence, scope=out.pop("scope", None),
                      obj=out.pop("object", None))
    waiver = out.pop("waiver", None)
    verdict = out["verdict"]
    original = None
    if waiver is not None and verdict in ("fail", "inconclusive"):
        original, verdict = verdict, "waived"
    recorded = out.get("recorded_at")
    return {
        "check_id": out["check_id"], "area": area_of(out["check_id"]), "verdict": verdict,
        "severity": out.get("severity") or "medium", **place,
        "summary": out.get("summary") or "", "evidence": evidence if isinstance(evidence, dict) else {},
        "repro": out.get("repro"), "remediation": out.get("remediation"),
        "references": list(out.get("references") or []), "waiver": waiver, "original_verdict": original,
        "nodeid": out.get("nodeid"), "recorded_at": iso(recorded) if isinstance(recorded, (int, float)) else recorded,
        "variant": out.get("variant") or variant_of(out.get("nodeid")),
        "target_namespace": out.get("target_namespace"),
        "request": out.get("request"), "response": out.get("response"),
    }


def identity(f: dict) -> tuple[str, str, str]:
    """What compare and JUnit match findings on: check id, target key, variant (never a throw-away name)."""
    return f["check_id"], f["target_key"], f.get("variant") or ""


RANK = {"fail": 5, "inconclusive": 4, "waived": 3, "pass": 2, "not-applicable": 1}


def worst(verdicts: Iterable[str]) -> str:
    """The verdict that speaks for several findings of one check x target: fail > inconclusive > waived > pass >
    not-applicable."""
    return max(verdicts, key=lambda v: RANK.get(v, 0), default="not-applicable")


def counts(findings: Iterable[dict]) -> dict[str, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for f in findings:
        out[f["verdict"]] = out.get(f["verdict"], 0) + 1
    return out


def by_area(findings: list[dict]) -> dict[str, dict[str, int]]:
    areas = {f["area"] for f in findings}
    return {a: counts(f for f in findings if f["area"] == a) for a in ORDER if a in areas}


def run_header(meta: dict[str, Any], *, started: float, finished: float, selected: Iterable[str],
               context: str | None = None) -> dict[str, Any]:
    return {
        "plugin_version": __version__, "provider": meta.get("provider"), "profile": meta.get("profile"),
        "mode": meta.get("mode"), "server_version": meta.get("server_version"), "run_id": meta.get("run_id"),
        "started_at": iso(started), "finished_at": iso(finished), "duration_s": round(finished - started, 3),
        "selected_checks": sorted(set(selected)), "context": context,
    }


def document(run: dict, findings: list[dict], *, waivers: list[dict], compare: dict | None,
             gate: dict) -> dict[str, Any]:
    return {"schema": SCHEMA_ID, "run": run,
            "summary": {"verdicts": counts(findings), "areas": by_area(findings), "gate": gate},
            "findings": findings, "waivers": waivers, "compare": compare}


def upgrade_legacy(doc: dict) -> dict:
    """A findings file of before v1 (run fields at the top, ``target_namespace`` only) in the v1 shape, enough for
    compare: run header, findings with placement and target keys."""
    if doc.get("schema") == SCHEMA_ID:
        return doc
    run = {k: doc.get(k) for k in ("run_id", "mode", "profile", "provider", "server_version")}
    findings = []
    for f in doc.get("findings") or []:
        if not isinstance(f, dict) or "check_id" not in f or "verdict" not in f:
            continue
        findings.append(finding_record(f))
    return {"schema": "legacy", "run": run, "findings": findings}
