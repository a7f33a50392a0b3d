"""SARIF 2.1.0 (``--kready-sarif PATH``) for code scanning.

One rule per check id (name, short and full description, help with the remediation, the severity as ``level``
and ``security-severity``), one result per failing or inconclusive finding (a waived one is there too, with an
accepted external suppression naming the waiver), each with the Kubernetes object as its logical location and a
physical location: the ``--kready-apply`` manifest file and the line where the object (or its Namespace) came
from, else a stable path naming it (``cluster/shop/Deployment/web``, ``cluster/shop``, ``cluster``).
``partialFingerprints`` carry the stable identity (check id, target key, variant), so code scanning tracks an
alert from run to run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from . import sources
from .model import identity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
REPORTED = ("fail", "inconclusive", "waived")


def rule_name(check_id: str) -> str:
    """``pod-security.host-namespaces`` → ``PodSecurityHostNamespaces``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", check_id) if p) or "Check"


def _first_sentence(text: str) -> str:
    text = " ".join(str(text or "").split())
    m = re.match(r"(.+?[.:;])(\s|$)", text)
    return (m.group(1) if m else text)[:300]


def rules(findings: list[dict], docs: dict[str, str]) -> list[dict]:
    by_check: dict[str, list[dict]] = {}
    for f in findings:
        by_check.setdefault(f["check_id"], []).append(f)
    out = []
    for check_id in sorted(by_check):
        group = by_check[check_id]
        severity = max((f.get("severity") or "medium" for f in group), key=SEVERITY_ORDER.index)
        doc = " ".join(str(docs.get(check_id) or "").split())
        area = group[0]["area"]
        short = f"{check_id} ({area})" + (f": {_first_sentence(doc)}" if doc else "")
        full = doc or f"pytest-kready check {check_id} in area {area}."
        remedy = next((f["remediation"] for f in group if f.get("remediation") and f["verdict"] in REPORTED), None) \
            or next((f["remediation"] for f in group if f.get("remediation")), None)
        refs = sorted({r for f in group for r in f.get("references") or []})
        help_text = (f"Remediation: {remedy}" if remedy else f"See the evidence and repro of {check_id} in the "
                     "findings JSON (--kready-json) and docs/reports.md.")
        if refs:
            help_text += "\nReferences: " + ", ".join(refs)
        help_md = (f"**Remediation**\n\n```\n{remedy}\n```\n" if remedy else help_text + "\n") + \
            ("\n**References**: " + ", ".join(refs) + "\n" if refs else "")
        rule: dict[str, Any] = {
            "id": check_id, "name": rule_name(check_id),
            "shortDescription": {"text": short[:1000]}, "fullDescription": {"text": full[:4000]},
            "help": {"text": help_text[:20000], "markdown": help_md[:20000]},
            "defaultConfiguration": {"level": LEVEL.get(severity, "warning")},
            "properties": {"security-severity": SECURITY_SEVERITY.get(severity, "5.5"), "severity": severity,
                           "area": area, "tags": ["security", "kubernetes", area]},
        }
        url = next((r for r in refs if r.startswith(("https://", "http://"))), None)
        if url:
            rule["helpUri"] = url
        out.append(rule)
    return out


def stable_path(f: dict) -> str:
    """``cluster/shop/Deployment/web``, ``cluster/StorageClass/standard``, ``cluster/shop``, ``cluster``."""
    obj = f.get("object")
    if obj:
        parts = ["cluster", obj.get("namespace"), obj["kind"], obj["name"], obj.get("part")]
    elif f.get("scope") == "namespace":
        parts = ["cluster", f["target_key"]]
    else:
        parts = ["cluster"]
    return "/".join(quote(str(p), safe="()-._~") for p in parts if p)


def _uri(path: Path, base: Path) -> tuple[str, str | None]:
    """A manifest file as a URI: relative to the directory pytest was started in (``%SRCROOT%``) when it is
    under it, else an absolute file URI."""
    path = Path(path).resolve()
    try:
        rel = path.relative_to(base.resolve())
    except ValueError:
        return path.as_uri(), None
    return quote(rel.as_posix(), safe="/()-._~"), "%SRCROOT%"


def location(f: dict, idx: dict, base: Path) -> dict[str, Any]:
    obj = f.get("object")
    hit = None
    if obj:
        hit = sources.locate(idx, obj["kind"], obj.get("namespace"), obj["name"])
    if hit is None and f.get("namespace"):
        hit = sources.locate(idx, "Namespace", None, f["namespace"])
    if hit is not None:
        uri, base_id = _uri(hit[0], base)
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri, **({"uriBaseId": base_id} if base_id else {})},
                                    "region": {"startLine": hit[1]}}
    else:
        physical = {"artifactLocation": {"uri": stable_path(f)}}
    if obj:
        qualified = "/".join(p for p in (obj.get("namespace"), obj["kind"], obj["name"]) if p)
        logical = {"name": obj["name"], "fullyQualifiedName": qualified, "kind": "resource"}
    elif f.get("scope") == "namespace":
        logical = {"name": f["target_key"], "fullyQualifiedName": f"Namespace/{f['target_key']}", "kind": "namespace"}
    else:
        logical = {"name": "cluster", "fullyQualifiedName": "cluster", "kind": "resource"}
    return {"physicalLocation": physical, "logicalLocations": [logical]}


def result(f: dict, rule_index: dict[str, int], idx: dict, base: Path) -> dict[str, Any]:
    verdict = f["verdict"]
    shown = f.get("original_verdict") if verdict == "waived" else verdict
    level = LEVEL.get(f.get("severity") or "medium", "warning")
    if shown == "inconclusive" and level == "error":
        level = "warning"  # could not decide: worth a look, not proven broken
    text = f"{(shown or verdict).upper()} {f['check_id']} {f['target_key']}: {f.get('summary') or ''}".strip()
    out: dict[str, Any] = {
        "ruleId": f["check_id"], "ruleIndex": rule_index[f["check_id"]], "kind": "fail", "level": level,
        "message": {"text": text[:20000]},
        "locations": [location(f, idx, base)],
        "partialFingerprints": {"kreadyTarget/v1": "|".join(identity(f))},
        "properties": {"verdict": verdict, "severity": f.get("severity"), "scope": f.get("scope"),
                       "target_key": f["target_key"], "area": f["area"],
                       **({"repro": f["repro"]} if f.get("repro") else {}),
                       **({"variant": f["variant"]} if f.get("variant") else {}),
                       **({"nodeid": f["nodeid"]} if f.get("nodeid") else {})},
    }
    w = f.get("waiver")
    if verdict == "waived" and w:
        out["suppressions"] = [{"kind": "external", "status": "accepted",
                                "justification": f"{w['reason']} (owner {w['owner']}, until {w['expires']}, "
                                                 f"{w['source']})"[:2000]}]
    return out


def build(doc: dict[str, Any], *, apply_paths: list[Path] = (), base: Path | None = None,
          docs: dict[str, str] | None = None) -> dict[str, Any]:
    """The SARIF log of the v1 document ``doc``."""
    base = Path(base or os.getcwd())
    findings = doc["findings"]
    rule_list = rules(findings, docs or {})
    rule_index = {r["id"]: i for i, r in enumerate(rule_list)}
    idx = sources.index(list(apply_paths)) if apply_paths else {}
    results = [result(f, rule_index, idx, base) for f in findings if f["verdict"] in REPORTED]
    run = doc["run"]
    invocation: dict[str, Any] = {
        "executionSuccessful": doc["summary"]["gate"]["exit_status"] in (0, 1),
        "exitCode": doc["summary"]["gate"]["exit_status"],
        "properties": {"gate": doc["summary"]["gate"]},
    }
    if run.get("started_at"):
        invocation["startTimeUtc"] = run["started_at"]
    if run.get("finished_at"):
        invocation["endTimeUtc"] = run["finished_at"]
    sarif_run: dict[str, Any] = {
        "tool": {"driver": {"name": "pytest-kready", "version": __version__, "semanticVersion": __version__,
                            "rules": rule_list}},
        "automationDetails": {"id": f"pytest-kready/{run.get('profile') or 'cluster'}/"},
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"run": run, "summary": doc["summary"]["verdicts"], "waivers": doc.get("waivers") or []},
    }
    if idx:
        sarif_run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": base.resolve().as_uri() + "/"}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [sarif_run]}
