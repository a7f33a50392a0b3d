"""The terminal summary at the end of every run: one line per area with its counts, then each failing or
inconclusive check x target with a one-line reason, the waivers, what changed (``--kready-compare``), where the
reports were written and the exit status. Every line fits the terminal's width (80 columns when not a TTY);
colour only where pytest's terminal writer has markup (a TTY)."""

from __future__ import annotations

import textwrap
from typing import Any

from ..areas import ORDER
from . import compare as compare_mod
from .model import identity, worst

MAIN_AREAS = ("pod security", "RBAC", "admission", "network", "resilience", "control plane")
COLUMNS = (("pass", "pass"), ("fail", "fail"), ("inconclusive", "inconcl"), ("not-applicable", "n/a"),
           ("waived", "waived"))
LABEL = {"fail": "FAIL", "inconclusive": "INCONCLUSIVE", "waived": "WAIVED"}
MAX_PROBLEMS = 40

Line = tuple[str, dict[str, bool]]  # text, markup for pytest's TerminalWriter (red=True, ...)


def fit(text: str, width: int) -> str:
    """One line of at most ``width`` characters (its leading indent kept, inner whitespace collapsed)."""
    text = str(text)
    indent = text[: len(text) - len(text.lstrip(" "))]
    text = indent + " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def area_table(findings: list[dict]) -> list[Line]:
    areas = list(MAIN_AREAS) + [a for a in ORDER if a not in MAIN_AREAS and any(f["area"] == a for f in findings)]
    head = f"{'area':<15}" + "".join(f"{title:>9}" for _, title in COLUMNS)
    out: list[Line] = [(head, {"bold": True})]
    totals = dict.fromkeys((v for v, _ in COLUMNS), 0)
    for area in areas:
        row = dict.fromkeys(totals, 0)
        for f in findings:
            if f["area"] == area:
                row[f["verdict"]] = row.get(f["verdict"], 0) + 1
        for k in totals:
            totals[k] += row[k]
        markup = {"red": True} if row["fail"] else {"yellow": True} if row["inconclusive"] else {}
        out.append((f"{area:<15}" + "".join(f"{row[v]:>9}" for v, _ in COLUMNS), markup))
    out.append((f"{'total':<15}" + "".join(f"{totals[v]:>9}" for v, _ in COLUMNS), {"bold": True}))
    return out


def problems(findings: list[dict], width: int, limit: int = MAX_PROBLEMS) -> list[Line]:
    """One line per failing or inconclusive check x target (several findings of one: the worst, counted)."""
    groups: dict[tuple, list[dict]] = {}
    for f in findings:
        if f["verdict"] in ("fail", "inconclusive"):
            groups.setdefault(identity(f), []).append(f)
    order = sorted(groups, key=lambda k: (worst(f["verdict"] for f in groups[k]) != "fail", k))
    out: list[Line] = []
    for key in order[:limit]:
        group = groups[key]
        verdict = worst(f["verdict"] for f in group)
        speaker = next(f for f in group if f["verdict"] == verdict)
        check_id, target, variant = key
        name = check_id + (f"[{variant}]" if variant and variant not in check_id else "")
        more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
        out.append((fit(f"{LABEL[verdict]} {name} {target}{more}: {speaker['summary']}", width),
                    {"red": True} if verdict == "fail" else {"yellow": True}))
    if len(order) > limit:
        out.append((f"... {len(order) - limit} more failing or inconclusive check x target in the JSON report", {}))
    return out


def waiver_lines(waivers: list[dict], width: int) -> list[Line]:
    out: list[Line] = []
    for w in waivers:
        scope = "/".join(p for p in (w.get("namespace"), w.get("object")) if p) or "everywhere"
        if w["status"] == "expired":
            text, markup = f"EXPIRED on {w['expires']}: {w['check']} in {scope} ({w['owner']}, {w['source']})", \
                {"red": True}
        elif w["used"]:
            text, markup = f"waived {w['used']} finding(s): {w['check']} in {scope} until {w['expires']} " \
                f"({w['owner']}): {w['reason']}", {}
        else:
            text, markup = f"unused: {w['check']} in {scope} ({w['source']}): matched nothing", \
                {"yellow": True}
        out.append((fit(text, width), markup))
    return out


def render(doc: dict[str, Any], outputs: list[tuple[str, str]], width: int = 80) -> list[tuple[str, list[Line]]]:
    """The sections (title, lines) of the summary for the v1 document ``doc``; ``outputs``: (what, path) written."""
    width = max(40, min(int(width or 80), 200))
    findings = doc["findings"]
    sections: list[tuple[str, list[Line]]] = [("kready: findings by area", area_table(findings))]
    probs = problems(findings, width)
    if probs:
        sections.append(("kready: failing and inconclusive", probs))
    if doc.get("waivers"):
        sections.append(("kready: waivers", waiver_lines(doc["waivers"], width)))
    if doc.get("compare"):
        sections.append(("kready: compared with the previous run",
                         [(t if t.startswith("previous run ") else fit(t, width), {})  # a path is not cut
                          for t in compare_mod.lines(doc["compare"])]))
    tail: list[Line] = []
    for what, path in outputs:  # a path is never cut (it is what one copies): a long one gets a line of its own
        line = f"kready: {what} written to {path}"
        tail += [(line, {})] if len(line) <= width else [(f"kready: {what} written to:", {}), (f"  {path}", {})]
    gate = doc["summary"]["gate"]
    gating = f"fail-on={gate['fail_on']}, min-severity={gate['min_severity']}"
    if gate["failed"]:
        tail.append((fit(f"kready: exit status {gate['exit_status']} ({gating})", width), {"red": True}))
        for r in gate["reasons"]:  # wrapped, not cut: a reason names what to fix (an expired waiver's file:line)
            tail += [(t, {"red": True}) for t in textwrap.wrap(r, width, initial_indent="  ", subsequent_indent="    ")]
    else:
        tail.append((fit(f"kready: exit status {gate['exit_status']} ({gating})", width), {"green": True}))
    sections.append(("kready: reports", tail))
    return sections
