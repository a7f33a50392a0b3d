"""Compare (``--kready-compare PREVIOUS.json``): what changed since an earlier run, matched on check id, stable
target key and variant (``model.identity``); several findings of one key speak with their worst verdict.

new failures (fail now, not fail before: passing, inconclusive, waived or absent), fixed (fail before, pass or
not-applicable now), still failing, verdicts that moved to or from inconclusive, every other change, checks added
or gone (by check id) and targets added or gone (keys of a check both runs have).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import identity, upgrade_legacy, worst

FIXED_TO = ("pass", "not-applicable")


class CompareError(ValueError):
    """The previous findings file cannot be used (one line)."""


def load_previous(path: Path) -> dict[str, Any]:
    where = f"--kready-compare={path}"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CompareError(f"{where}: cannot be read ({e.strerror or type(e).__name__})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CompareError(f"{where}: not a JSON file ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise CompareError(f"{where}: not a pytest-kready findings file (--kready-json); it has no 'findings' list")
    return upgrade_legacy(doc)


def _index(findings: list[dict]) -> dict[tuple, dict]:
    grouped: dict[tuple, list[dict]] = {}
    for f in findings:
        grouped.setdefault(identity(f), []).append(f)
    out = {}
    for key, group in grouped.items():
        verdict = worst(f["verdict"] for f in group)
        speaker = next(f for f in group if f["verdict"] == verdict)
        out[key] = {"verdict": verdict, "summary": speaker.get("summary") or ""}
    return out


def _entry(key: tuple, before: dict | None, after: dict | None) -> dict[str, Any]:
    check_id, target_key, variant = key
    return {"check_id": check_id, "target_key": target_key, "variant": variant or None,
            "before": before["verdict"] if before else None, "after": after["verdict"] if after else None,
            "summary": (after or before or {}).get("summary", "")[:500]}


def _run_ref(doc: dict, path: str | None = None) -> dict[str, Any]:
    run = doc.get("run") or {}
    out = {k: run.get(k) for k in ("run_id", "profile", "provider", "started_at")}
    if path is not None:
        out = {"path": path, **out}
    return out


def compare(previous: dict[str, Any], current_findings: list[dict], current_run: dict[str, Any], *,
            previous_path: str = "") -> dict[str, Any]:
    """The COMPARE record (package docstring) of ``current_findings`` against the ``previous`` document."""
    before, after = _index(previous.get("findings") or []), _index(current_findings)
    checks_before = {k[0] for k in before}
    checks_after = {k[0] for k in after}
    out: dict[str, Any] = {
        "previous": _run_ref(previous, previous_path), "current": _run_ref({"run": current_run}),
        "new_failures": [], "fixed": [], "still_failing": [], "to_inconclusive": [], "from_inconclusive": [],
        "changed": [], "checks_added": sorted(checks_after - checks_before),
        "checks_gone": sorted(checks_before - checks_after), "targets_added": [], "targets_gone": [],
    }
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        bv, av = (b or {}).get("verdict"), (a or {}).get("verdict")
        entry = _entry(key, b, a)
        if b is None and key[0] in checks_before:
            out["targets_added"].append(entry)
        if a is None and key[0] in checks_after:
            out["targets_gone"].append(entry)
        if av == "fail" and bv != "fail":
            out["new_failures"].append(entry)
        elif bv == "fail" and av == "fail":
            out["still_failing"].append(entry)
        elif bv == "fail" and av in FIXED_TO:
            out["fixed"].append(entry)
        if bv is not None and av is not None and bv != av:
            if av == "inconclusive":
                out["to_inconclusive"].append(entry)
            elif bv == "inconclusive":
                out["from_inconclusive"].append(entry)
            out["changed"].append(entry)
    return out


def lines(cmp: dict[str, Any], *, limit: int = 10) -> list[str]:
    """The terminal's view of a compare (at most ``limit`` entries per section)."""
    prev = cmp["previous"]
    head = (f"{len(cmp['new_failures'])} new failure(s), {len(cmp['fixed'])} fixed, "
            f"{len(cmp['still_failing'])} still failing, {len(cmp['to_inconclusive'])} to and "
            f"{len(cmp['from_inconclusive'])} from inconclusive")
    out = [head]
    for title, name in (("new failure", "new_failures"), ("fixed", "fixed"), ("to inconclusive", "to_inconclusive"),
                        ("from inconclusive", "from_inconclusive")):
        for e in cmp[name][:limit]:
            out.append(f"  {title}: {describe(e)} ({e['before'] or 'absent'} -> {e['after'] or 'absent'})")
        if len(cmp[name]) > limit:
            out.append(f"  ... {len(cmp[name]) - limit} more {title} in the JSON report")
    if cmp["checks_added"]:
        out.append("  checks added: " + ", ".join(cmp["checks_added"][:limit])
                   + (" ..." if len(cmp["checks_added"]) > limit else ""))
    if cmp["checks_gone"]:
        out.append("  checks gone: " + ", ".join(cmp["checks_gone"][:limit])
                   + (" ..." if len(cmp["checks_gone"]) > limit else ""))
    out.append(f"previous run {prev.get('run_id') or '?'} ({prev.get('profile') or '?'}): "
               f"{prev.get('path') or '?'}")
    return out


def describe(e: dict) -> str:
    variant = f"[{e['variant']}]" if e.get("variant") else ""
    return f"{e['check_id']}{variant} {e['target_key']}"
