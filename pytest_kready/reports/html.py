"""The HTML report, through pytest-html (``--html``; with or without ``--self-contained-html``).

What it adds to pytest-html's page (docs/reports.md, section "HTML"):

* the **Environment** table: the cluster (provider, Kubernetes server version) and the run (profile, mode, run id,
  plugin version), written into pytest-metadata's stash, which pytest-html renders;
* at the top of the **Summary**: the run, a **scorecard** per area (pass / fail / inconclusive / not-applicable /
  waived counts of findings), the failing and inconclusive findings with their target and reason, the **waivers in
  force** with their expiry, and what changed since a previous run (``--kready-compare``) when one was given;
* per test, one block per **finding** instead of a raw JSON link: verdict, target, summary, evidence laid out for
  reading (reachability matrices drawn as coloured grids: expected, observed, differences), the kubectl repro,
  the remediation (prose, commands and YAML apart), references, the waiver, and the finding as JSON (collapsed).

Everything is inline: one ``<style>`` block in the summary, no scripts, no external resource. The finding dicts
rendered are the redacted ones the plugin attaches to reports (``report.user_properties``, ``kready_finding``);
they are redacted once more with what the run knows when the block is made. Rendering is tolerant: a field that is
missing is left out (``.get`` everywhere), so the v1 fields (area, scope, object, target key, waiver) show when a
finding carries them and the older ones (``target_namespace``) otherwise.

The plugin object ``HtmlReport`` is registered by ``pytest_kready.plugin`` when ``--kready`` and ``--html`` are
given (``register``). A full findings document (v1: ``run``/``header``, ``findings``, ``waivers``, ``compare``)
can be handed to it through ``config.stash[DOCUMENT_KEY]`` (a dict, or a callable returning one, read when the
summary is made); without one the summary is built from the findings the run reported and the session's meta.
"""

from __future__ import annotations

import datetime
import html
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from ..areas import ORDER, area_of

DOCUMENT_KEY = pytest.StashKey[Any]()
PLUGIN_NAME = "kready-html"
USER_PROPERTY = "kready_finding"  # as pytest_kready.findings.USER_PROPERTY (not imported: no cycle, no cluster code)
VERDICTS = ("pass", "fail", "inconclusive", "not-applicable", "waived")
VERDICT_LABELS = {"pass": "pass", "fail": "fail", "inconclusive": "inconclusive", "not-applicable": "not applicable",
                  "waived": "waived"}
MARK = "kr-finding"  # the class of a finding block (also how an already converted report is recognised)
MAX_TEXT = 20_000  # characters of one preformatted block (the JSON file has everything)
MAX_JSON = 100_000
MAX_GRID = 80  # rows or columns drawn as a grid; larger matrices are listed (the cells table) only
EXPIRING_DAYS = 30

# Environment rows (pytest-metadata keys)
ENV_KEYS = (("provider", "Kubernetes provider"), ("server_version", "Kubernetes server version"),
            ("profile", "kready profile"), ("mode", "kready mode"), ("run_id", "kready run id"),
            ("plugin_version", "pytest-kready version"))

CSS = """
.kr{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:13px;color:#222;margin:6px 0 14px}
.kr h3{font-size:15px;margin:14px 0 6px}
.kr h4{font-size:12px;margin:10px 0 4px;text-transform:uppercase;letter-spacing:.04em;color:#555}
.kr code,.kr pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.kr pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:6px 8px;margin:4px 0;
 white-space:pre-wrap;word-break:break-word;max-height:420px;overflow:auto}
.kr pre.kr-cmd{background:#263238;color:#eceff1;border-color:#263238}
.kr pre.kr-yaml{background:#fffdf3;border-color:#eadfae}
.kr table.kr-table{border-collapse:collapse;margin:4px 0 8px}
.kr table.kr-table th,.kr table.kr-table td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;
 vertical-align:top}
.kr table.kr-table th{background:#f0f3f6}
.kr table.kr-scorecard td.kr-n{text-align:right;min-width:3.2em;font-variant-numeric:tabular-nums}
.kr table.kr-scorecard td.kr-zero{color:#aaa}
.kr table.kr-scorecard tr.kr-total th,.kr table.kr-scorecard tr.kr-total td{font-weight:bold;
 border-top:2px solid #888}
.kr .kr-badge{display:inline-block;border-radius:3px;padding:1px 6px;font-weight:bold;font-size:11px;
 text-transform:uppercase;color:#fff;background:#777}
.kr .kr-pass{background:#2e7d32;color:#fff}.kr .kr-fail{background:#c62828;color:#fff}
.kr .kr-inconclusive{background:#ef8f00;color:#fff}.kr .kr-not-applicable{background:#8a949e;color:#fff}
.kr .kr-waived{background:#5e35b1;color:#fff}
.kr td.kr-pass,.kr td.kr-fail,.kr td.kr-inconclusive,.kr td.kr-not-applicable,.kr td.kr-waived{font-weight:bold}
.kr td.kr-zero{background:none;color:#aaa;font-weight:normal}
.kr .kr-sev{display:inline-block;border:1px solid #bbb;border-radius:3px;padding:0 5px;font-size:11px;color:#444}
.kr .kr-sev-critical{border-color:#8e0000;color:#8e0000;font-weight:bold}
.kr .kr-sev-high{border-color:#c62828;color:#c62828}
.kr .kr-sev-medium{border-color:#ef8f00;color:#a05f00}
.kr .kr-area{color:#555;font-size:11px}
.kr .kr-target{font-family:"DejaVu Sans Mono",Menlo,monospace;font-size:12px;background:#eef2f6;padding:0 4px;
 border-radius:3px}
.kr .kr-run span{margin-right:14px}
.kr-finding{border:1px solid #d0d7de;border-left:5px solid #8a949e;border-radius:4px;padding:6px 10px;
 margin:6px 0;background:#fff}
.kr-finding.kr-v-pass{border-left-color:#2e7d32}.kr-finding.kr-v-fail{border-left-color:#c62828}
.kr-finding.kr-v-inconclusive{border-left-color:#ef8f00}.kr-finding.kr-v-waived{border-left-color:#5e35b1}
.kr .kr-head{font-size:13px}.kr .kr-head>*{margin-right:6px}
.kr p.kr-summary{margin:5px 0;font-size:13px}
.kr .kr-waiver{border:1px dashed #5e35b1;background:#f5f0ff;padding:4px 8px;border-radius:4px;margin:6px 0}
.kr dl.kr-ev{margin:0}.kr dl.kr-ev dt{font-weight:bold;margin-top:6px;color:#333}
.kr dl.kr-ev dd{margin:2px 0 2px 14px}
.kr .kr-grids{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin:4px 0 8px}
.kr .kr-gridbox{overflow-x:auto;max-width:100%}
.kr .kr-gridbox .kr-gridtitle{font-weight:bold;margin-bottom:3px}
.kr table.kr-grid{border-collapse:collapse}
.kr table.kr-grid th{font-weight:normal;font-size:11px;padding:2px 4px;color:#333;white-space:nowrap}
.kr table.kr-grid thead th{vertical-align:bottom;white-space:nowrap;writing-mode:vertical-rl;
 transform:rotate(180deg);text-align:left;padding:4px 1px}
.kr table.kr-grid thead th.kr-corner{writing-mode:horizontal-tb;transform:none;vertical-align:bottom;color:#777}
.kr table.kr-grid tbody th{text-align:right}
.kr table.kr-grid td{width:24px;min-width:24px;height:22px;text-align:center;font-weight:bold;
 border:1px solid #fff;font-size:12px}
.kr td.kr-connects{background:#43a047;color:#fff}.kr td.kr-blocked{background:#546e7a;color:#fff}
.kr td.kr-unknown{background:#ffb300;color:#222}
.kr td.kr-notprobed{background:#f4f4f4;color:#bbb}
.kr td.kr-agree{background:#e8f5e9;color:#6a8f6d}.kr td.kr-differs{background:#e53935;color:#fff}
.kr .kr-legend{font-size:11px;color:#555;margin:2px 0 6px}
.kr .kr-legend span.kr-key{display:inline-block;width:14px;height:12px;vertical-align:middle;margin:0 3px 0 8px}
.kr .kr-legend .kr-connects{background:#43a047}.kr .kr-legend .kr-blocked{background:#546e7a}
.kr .kr-legend .kr-unknown{background:#ffb300}.kr .kr-legend .kr-differs{background:#e53935}
.kr .kr-legend .kr-agree{background:#e8f5e9;border:1px solid #cde3cf}
.kr tr.kr-expired td{background:#ffebee}.kr tr.kr-expiring td{background:#fff8e1}.kr tr.kr-unused td{color:#777}
.kr a{color:#0b5cad}.kr details{margin:4px 0}.kr details>summary{cursor:pointer;color:#0b5cad}
.kr ul.kr-list{margin:2px 0;padding-left:18px}
.kr .kr-muted{color:#777}
.kr .kr-compare td.kr-moved{white-space:nowrap}
td.col-result[data-kready-result]{font-size:0}
td.col-result[data-kready-result]::before{content:attr(data-kready-result);font-size:12px}
td.col-result[data-kready-result]::after{font-size:12px}
td.col-result[data-kready-result="Inconclusive"]::before{color:#d07800}
td.col-result[data-kready-result="Waived"]::before{color:#5e35b1}
"""


# --- small pieces -----------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _cap(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters in the findings JSON)"


def pre(text: Any, cls: str = "") -> str:
    return f'<pre class="{esc(cls)}">{esc(_cap(str(text)))}</pre>' if cls else f"<pre>{esc(_cap(str(text)))}</pre>"


def to_yaml(value: Any) -> str:
    """Block YAML of a JSON-like value (keys in their order), for reading; JSON when PyYAML cannot dump it."""
    try:
        import yaml

        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=110).rstrip()
    except Exception:  # noqa: BLE001 - anything odd in evidence: show it as JSON rather than fail the report
        return json.dumps(value, indent=2, default=str)


def verdict_of(finding: Mapping[str, Any]) -> str:
    return str(finding.get("verdict") or "inconclusive")


def area_for(finding: Mapping[str, Any]) -> str:
    return str(finding.get("area") or area_of(str(finding.get("check_id") or "")))


def badge(verdict: str) -> str:
    return f'<span class="kr-badge kr-{esc(verdict)}">{esc(VERDICT_LABELS.get(verdict, verdict))}</span>'


def object_text(obj: Any) -> str:
    """``Deployment shop/web`` from ``{kind, namespace, name}``; a string as it is."""
    if isinstance(obj, Mapping):
        kind, ns, name = obj.get("kind"), obj.get("namespace"), obj.get("name")
        where = f"{ns}/{name}" if ns and name else (name or ns or "")
        return " ".join(p for p in (kind, where) if p)
    return "" if obj is None else str(obj)


def target_text(finding: Mapping[str, Any], *, short: bool = False) -> str:
    """What a finding is about: the object, else the user namespace, else its target key (``cluster``,
    ``(new-namespace)``); a finding before v1 (no target key): its target namespace."""
    obj = object_text(finding.get("object"))
    if obj:
        return obj
    if finding.get("namespace"):
        return str(finding["namespace"]) if short else f"namespace {finding['namespace']}"
    key = finding.get("target_key")
    if key:
        return str(key)
    if finding.get("scope") == "cluster":
        return "cluster"
    ns = finding.get("target_namespace")
    return "" if not ns else str(ns) if short else f"namespace {ns}"


def _label(key: str) -> str:
    return key.replace("_", " ")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# --- reachability grids -------------------------------------------------------------------------------------------

_CONNECTS = ("connects", "resolves", "true", "+", "yes", "allowed")
_BLOCKED = ("blocked", "does not resolve", "false", "-", "no", "denied")


def cell_class(word: Any) -> str:
    """``kr-connects`` / ``kr-blocked`` / ``kr-unknown`` for a cell's word (``connects``, ``blocked``, ...)."""
    w = str(word).strip().lower() if word is not None else ""
    if w in _CONNECTS:
        return "kr-connects"
    if w in _BLOCKED:
        return "kr-blocked"
    return "kr-unknown"


_SYMBOLS = {"kr-connects": "+", "kr-blocked": "−", "kr-unknown": "?"}


def is_cells(value: Any) -> bool:
    """A reachability cell list (``Result.cell_evidence``): dicts with ``from``, ``to`` and ``observed``."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(c, Mapping) and "from" in c and "to" in c and "observed" in c for c in value)


def _cell_title(c: Mapping[str, Any]) -> str:
    parts = [f"{c.get('from')} → {c.get('to')}"]
    if "expected" in c:
        parts.append(f"expected {c.get('expected')}")
    parts.append(f"observed {c.get('observed')}")
    seen = c.get("seen")
    if seen:
        parts.append("rounds: " + ", ".join(map(str, seen)) if isinstance(seen, list) else f"rounds: {seen}")
    for key in ("message", "alive", "why_unknown"):
        if c.get(key):
            parts.append(f"{_label(key)}: {c[key]}")
    return "\n".join(parts)


def _short(label: str) -> str:
    """A column label without the address in brackets (kept in the cell's title)."""
    text = re.sub(r"\s+\([^()]*\)$", "", label) or label
    return esc(text)


def grids(cells: list[Mapping[str, Any]]) -> str:
    """Expected, observed and differences as coloured grids: rows are where a probe came from, columns where it
    went (``namespace/pod:port/protocol``). A pair not probed is blank. Without expectations: observed only."""
    rows = list(dict.fromkeys(str(c.get("from")) for c in cells))
    cols = list(dict.fromkeys(str(c.get("to")) for c in cells))
    if len(rows) > MAX_GRID or len(cols) > MAX_GRID:
        return f'<p class="kr-muted">{len(rows)} × {len(cols)} cells: too large to draw, listed below.</p>'
    by = {(str(c.get("from")), str(c.get("to"))): c for c in cells}
    has_expected = any("expected" in c for c in cells)
    wrong = sum(1 for c in cells if has_expected and cell_class(c.get("expected")) != cell_class(c.get("observed")))

    def table(title: str, which: str) -> str:
        head = "".join(f'<th title="{esc(col)}">{_short(col)}</th>' for col in cols)
        body = []
        for row in rows:
            tds = []
            for col in cols:
                c = by.get((row, col))
                if c is None:
                    tds.append('<td class="kr-cell kr-notprobed" title="not probed"></td>')
                    continue
                if which == "diff":
                    same = cell_class(c.get("expected")) == cell_class(c.get("observed"))
                    cls, sym = ("kr-agree", "·") if same else ("kr-differs", "✗")
                else:
                    cls = cell_class(c.get(which))
                    sym = _SYMBOLS[cls]
                tds.append(f'<td class="kr-cell {cls}" title="{esc(_cell_title(c))}">{sym}</td>')
            body.append(f'<tr><th scope="row">{esc(row)}</th>{"".join(tds)}</tr>')
        return (f'<div class="kr-gridbox"><div class="kr-gridtitle">{esc(title)}</div>'
                f'<table class="kr-grid kr-grid-{which}"><thead><tr><th class="kr-corner">from \\ to</th>{head}</tr>'
                f'</thead><tbody>{"".join(body)}</tbody></table></div>')

    parts = [table("expected", "expected")] if has_expected else []
    parts.append(table("observed", "observed"))
    if has_expected:
        parts.append(table(f"differences ({wrong} of {len(cells)})", "diff"))
    legend = ('<div class="kr-legend">rows: from, columns: to;'
              '<span class="kr-key kr-connects"></span>connects'
              '<span class="kr-key kr-blocked"></span>blocked'
              '<span class="kr-key kr-unknown"></span>unknown'
              + ('<span class="kr-key kr-agree"></span>as expected<span class="kr-key kr-differs"></span>differs'
                 if has_expected else "") + "; hover a cell for what each round saw</div>")
    return f'<div class="kr-reach">{legend}<div class="kr-grids">{"".join(parts)}</div></div>'


def cells_table(cells: list[Mapping[str, Any]]) -> str:
    """One row per probed pair, wrong ones first: expected, observed, what each counted round saw, why."""
    def wrong(c):
        return "expected" in c and cell_class(c.get("expected")) != cell_class(c.get("observed"))

    ordered = sorted(cells, key=lambda c: not wrong(c))
    has_expected = any("expected" in c for c in cells)
    head = "<th>from</th><th>to</th>" + ("<th>expected</th>" if has_expected else "") + \
        "<th>observed</th><th>rounds</th><th>detail</th>"
    rows = []
    for c in ordered:
        seen = c.get("seen")
        seen = ", ".join(map(str, seen)) if isinstance(seen, list) else (seen or "")
        detail = "; ".join(f"{_label(k)}: {c[k]}" if k != "message" else str(c[k])
                           for k in ("message", "alive", "why_unknown") if c.get(k))
        exp = f'<td class="{cell_class(c.get("expected"))}-text">{esc(c.get("expected"))}</td>' if has_expected else ""
        rows.append(f'<tr class="{"kr-wrong" if wrong(c) else ""}"><td>{esc(c.get("from"))}</td>'
                    f'<td>{esc(c.get("to"))}</td>{exp}<td>{esc(c.get("observed"))}</td><td>{esc(seen)}</td>'
                    f'<td>{esc(detail)}</td></tr>')
    return f'<table class="kr-table kr-cells"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


# --- evidence, remediation ----------------------------------------------------------------------------------------

_TEXT_GRIDS = ("grid", "canary")


def value_html(key: str, value: Any) -> str:
    """One evidence value laid out for reading (a table, a list, commands, YAML or text)."""
    if value is None or value == "" or value == [] or value == {}:
        return '<span class="kr-muted">none</span>'
    if isinstance(value, str):
        if key in ("kubectl", "repro", "command") or value.startswith("kubectl "):
            return pre(value, "kr-cmd")
        if "\n" in value or len(value) > 200:
            return pre(value)
        return esc(value)
    if _scalar(value):
        return esc(json.dumps(value))
    if is_cells(value):
        return cells_table(value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            if key == "kubectl" or all(v.startswith("kubectl ") for v in value):
                return "".join(pre(v, "kr-cmd") for v in value)
            return '<ul class="kr-list">' + "".join(f"<li>{esc(v)}</li>" for v in value) + "</ul>"
        if all(_scalar(v) for v in value):
            return esc(", ".join(json.dumps(v) if not isinstance(v, str) else v for v in value))
        if all(isinstance(v, Mapping) for v in value) and all(
                _scalar(x) or (isinstance(x, list) and all(_scalar(y) for y in x)) for v in value for x in v.values()):
            keys = list(dict.fromkeys(k for v in value for k in v))
            if len(keys) <= 10:
                head = "".join(f"<th>{esc(_label(k))}</th>" for k in keys)
                body = "".join("<tr>" + "".join(f"<td>{_cell_value(v.get(k))}</td>" for k in keys) + "</tr>"
                               for v in value)
                return f'<table class="kr-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        return pre(to_yaml(value), "kr-yaml")
    if isinstance(value, Mapping):
        if all(_scalar(v) for v in value.values()) and len(value) <= 20:
            body = "".join(f"<tr><th>{esc(k)}</th><td>{_cell_value(v)}</td></tr>" for k, v in value.items())
            return f'<table class="kr-table kr-kv"><tbody>{body}</tbody></table>'
        return pre(to_yaml(value), "kr-yaml")
    return esc(value)


def _cell_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return esc(", ".join(str(v) for v in value))
    if isinstance(value, str) and "\n" in value:
        return pre(value)
    return esc(value)


def evidence_html(evidence: Any) -> str:
    """The evidence: reachability grids first (drawn from the cell lists), then every field in its order. A text
    grid next to a drawn one is kept, collapsed."""
    if not isinstance(evidence, Mapping):
        return value_html("evidence", evidence)
    parts = []
    cells = evidence.get("cells")
    drawn = is_cells(cells)
    if drawn:
        parts.append(grids(cells))
    items = []
    for key, value in evidence.items():
        if key in _TEXT_GRIDS and isinstance(value, str):
            if drawn:
                items.append(f'<dt>{esc(_label(key))}</dt><dd><details><summary>as text</summary>'
                             f'{pre(value)}</details></dd>')
            else:
                items.append(f'<dt>{esc(_label(key))}</dt><dd>{pre(value, "kr-textgrid")}</dd>')
            continue
        if key == "cells" and drawn:
            items.append(f'<dt>cells ({len(cells)})</dt><dd>{cells_table(cells)}</dd>')
            continue
        items.append(f"<dt>{esc(_label(key))}</dt><dd>{value_html(key, value)}</dd>")
    if items:
        parts.append(f'<dl class="kr-ev">{"".join(items)}</dl>')
    return "".join(parts)


_YAML_LINE = re.compile(r"^\s*(?:[\w./-]+:(?:\s|$)|-\s|#|apiVersion:|kind:)")


def remediation_html(text: Any) -> str:
    """Prose as paragraphs, ``kubectl`` lines as commands, manifests (after ``---`` or YAML-looking lines) as YAML."""
    if text is None or text == "":
        return ""
    if not isinstance(text, str):
        return pre(to_yaml(text), "kr-yaml")
    blocks: list[tuple[str, list[str]]] = []
    in_yaml = False
    for line in text.splitlines():
        if line.strip() == "---":
            in_yaml = True
            blocks.append(("yaml", []))
            continue
        if line.lstrip().startswith(("kubectl ", "$ ")):
            kind = "cmd"
            in_yaml = False
        elif in_yaml or _YAML_LINE.match(line):
            kind = "yaml"
        else:
            kind = "text"
        if blocks and blocks[-1][0] == kind:
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    out = []
    for kind, lines in blocks:
        body = "\n".join(lines).strip("\n")
        if not body.strip():
            continue
        if kind == "text":
            out.append(f'<p class="kr-remedy">{esc(body)}</p>')
        else:
            out.append(pre(body, "kr-cmd" if kind == "cmd" else "kr-yaml"))
    return "".join(out)


def references_html(refs: Any) -> str:
    if not refs:
        return ""
    if isinstance(refs, str):
        refs = [refs]
    items = []
    for ref in refs:
        text = ref if isinstance(ref, str) else (ref.get("id") or ref.get("url") or json.dumps(ref)) \
            if isinstance(ref, Mapping) else str(ref)
        url = ref.get("url") if isinstance(ref, Mapping) else (ref if isinstance(ref, str) else None)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            items.append(f'<li><a href="{esc(url)}" rel="noreferrer">{esc(text)}</a></li>')
        else:
            items.append(f"<li>{esc(text)}</li>")
    return '<ul class="kr-list">' + "".join(items) + "</ul>"


def waiver_html(waiver: Any, original: Any = None) -> str:
    if not waiver:
        return ""
    if not isinstance(waiver, Mapping):
        return f'<div class="kr-waiver">waived: {esc(waiver)}</div>'
    scope = " ".join(p for p in (waiver.get("namespace") and f"namespace {waiver['namespace']}",
                                 waiver.get("object") and object_text(waiver["object"])) if p)
    return (f'<div class="kr-waiver"><b>Waived</b> by <code>{esc(waiver.get("check"))}</code>'
            f'{f" ({esc(scope)})" if scope else ""}: {esc(waiver.get("reason"))} — owner '
            f'<b>{esc(waiver.get("owner"))}</b>, expires <b>{esc(waiver.get("expires"))}</b>'
            f'{f" (the finding was {esc(original)})" if original else ""}</div>')


def finding_html(finding: Mapping[str, Any]) -> str:
    """One finding laid out for reading."""
    verdict = verdict_of(finding)
    check = finding.get("check_id") or "?"
    target = target_text(finding)
    severity = finding.get("severity")
    head = [badge(verdict), f"<code>{esc(check)}</code>", f'<span class="kr-area">{esc(area_for(finding))}</span>']
    if severity and verdict not in ("pass", "not-applicable"):
        head.append(f'<span class="kr-sev kr-sev-{esc(severity)}">{esc(severity)}</span>')
    if target:
        head.append(f'<span class="kr-target">{esc(target)}</span>')
    ran_in = finding.get("run_namespace")
    if ran_in and ran_in not in target:
        head.append(f'<span class="kr-muted">ran in {esc(ran_in)}</span>')
    parts = [f'<div class="kr-head">{"".join(head)}</div>']
    if finding.get("summary"):
        parts.append(f'<p class="kr-summary">{esc(finding["summary"])}</p>')
    parts.append(waiver_html(finding.get("waiver"), finding.get("original_verdict")))
    evidence = finding.get("evidence")
    if evidence:
        parts.append(f'<h4>Evidence</h4><div class="kr-evidence">{evidence_html(evidence)}</div>')
    for key, title in (("request", "Request"), ("response", "Response")):
        if finding.get(key) not in (None, "", {}, []):
            parts.append(f'<details class="kr-{key}"><summary>{title}</summary>'
                         f'{pre(to_yaml(finding[key]), "kr-yaml")}</details>')
    if finding.get("repro"):
        parts.append(f'<h4>Reproduce</h4>{pre(finding["repro"], "kr-cmd")}')
    if finding.get("remediation"):
        fix = remediation_html(finding["remediation"])
        parts.append(f'<h4>Remediation</h4><div class="kr-remediation">{fix}</div>')
    if finding.get("references"):
        parts.append(f'<h4>References</h4>{references_html(finding["references"])}')
    try:
        as_json = json.dumps(finding, indent=2, default=str)
    except (TypeError, ValueError):
        as_json = str(finding)
    parts.append(f'<details class="kr-json"><summary>finding as JSON</summary>{pre(_cap(as_json, MAX_JSON))}</details>')
    return (f'<div class="kr {MARK} kr-v-{esc(verdict)}" data-check="{esc(check)}" data-verdict="{esc(verdict)}">'
            f'{"".join(parts)}</div>')


# --- the summary: run, scorecard, failures, waivers, compare ----------------------------------------------------


def counts_by_area(findings: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """area → verdict → count, areas in the reports' order (only areas with findings)."""
    out: dict[str, dict[str, int]] = {}
    for f in findings:
        area = area_for(f)
        row = out.setdefault(area, dict.fromkeys(VERDICTS, 0))
        v = verdict_of(f)
        row[v] = row.get(v, 0) + 1
    order = {a: i for i, a in enumerate(ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(ORDER)), kv[0])))


def scorecard_html(findings: list[Mapping[str, Any]]) -> str:
    """A table: one row per area of the run, one column per verdict, and the total."""
    table = counts_by_area(findings)
    extra = [v for v in sorted({v for row in table.values() for v in row}) if v not in VERDICTS]
    verdicts = list(VERDICTS) + extra
    head = "<th>area</th>" + "".join(f"<th>{badge(v)}</th>" for v in verdicts) + "<th>findings</th>"
    body = []
    totals = dict.fromkeys(verdicts, 0)

    def row_html(name: str, row: Mapping[str, int], cls: str = "") -> str:
        tds = "".join(
            f'<td class="kr-n {"kr-zero" if not row.get(v) else "kr-" + esc(v)}" data-verdict="{esc(v)}">'
            f'{row.get(v, 0)}</td>' for v in verdicts)
        return (f'<tr class="{cls}" data-area="{esc(name)}"><th scope="row">{esc(name)}</th>{tds}'
                f'<td class="kr-n">{sum(row.values())}</td></tr>')

    for area, row in table.items():
        for v in verdicts:
            totals[v] += row.get(v, 0)
        body.append(row_html(area, row))
    body.append(row_html("all areas", totals, "kr-total"))
    absent = [a for a in ORDER if a not in table and a != "other"]
    note = (f'<p class="kr-muted">not in this run: {esc(", ".join(absent))}</p>' if absent and table else "")
    if not table:
        return '<p id="kready-scorecard" class="kr-muted">No findings were recorded.</p>'
    return (f'<table id="kready-scorecard" class="kr-table kr-scorecard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{note}')


def _anchor(nodeid: Any) -> str:
    return "#" + esc(re.sub(r"[^\w.:/\[\]=-]", lambda m: f"%{ord(m.group()):02X}", str(nodeid))) if nodeid else ""


def problems_html(findings: list[Mapping[str, Any]], shown: int = 12) -> str:
    """The failing and inconclusive findings, one row per check and verdict: its targets and one reason (the
    first); the rows past ``shown`` are collapsed."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for f in findings:
        if verdict_of(f) in ("fail", "inconclusive"):
            groups.setdefault((verdict_of(f), str(f.get("check_id"))), []).append(f)
    if not groups:
        return ""
    order = {a: i for i, a in enumerate(ORDER)}
    keys = sorted(groups, key=lambda k: (k[0] != "fail", order.get(area_for(groups[k][0]), len(ORDER)), k[1]))
    rows = []
    for verdict, check in keys:
        fs = groups[(verdict, check)]
        targets = list(dict.fromkeys(t for t in (target_text(f, short=True) for f in fs) if t))
        shown_targets = ", ".join(targets[:6]) + (f" and {len(targets) - 6} more" if len(targets) > 6 else "")
        reason = str(fs[0].get("summary") or "").strip().splitlines()
        reason = reason[0][:300] if reason else ""
        link = _anchor(fs[0].get("nodeid"))
        check_html = f'<a href="{link}"><code>{esc(check)}</code></a>' if link else f"<code>{esc(check)}</code>"
        rows.append(f'<tr data-check="{esc(check)}" data-verdict="{esc(verdict)}"><td>{badge(verdict)}</td>'
                    f'<td>{check_html}</td><td class="kr-n">{len(fs)}</td><td>{esc(shown_targets)}</td>'
                    f'<td>{esc(reason)}</td></tr>')
    head = ('<thead><tr><th>verdict</th><th>check</th><th>findings</th><th>targets</th><th>reason (the first)</th>'
            '</tr></thead>')
    total = sum(len(v) for v in groups.values())
    table = f'<table id="kready-problems" class="kr-table">{head}<tbody>{"".join(rows[:shown])}</tbody></table>'
    if len(rows) > shown:
        table += (f'<details><summary>{len(rows) - shown} more checks</summary><table class="kr-table">{head}'
                  f'<tbody>{"".join(rows[shown:])}</tbody></table></details>')
    return f"<h3>Failing and inconclusive: {total} findings of {len(groups)} checks</h3>{table}"


def _date(value: Any) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def waiver_status(waiver: Mapping[str, Any], today: datetime.date) -> str:
    """``expired``, ``unused`` (waived nothing in this run), ``expiring`` (within 30 days) or ``in force``."""
    status = str(waiver.get("status") or "").replace("-", " ")
    end = _date(waiver.get("expires"))
    if status == "expired" or waiver.get("expired") is True or (end is not None and end < today):
        return "expired"
    used = _used(waiver)
    if used is not None and not used or status == "unused":
        return "unused"
    if end is not None and (end - today).days <= EXPIRING_DAYS:
        return "expiring"
    return status or "in force"


def _used(waiver: Mapping[str, Any]) -> int | None:
    for key in ("used", "matched", "matches"):
        value = waiver.get(key)
        if isinstance(value, (list, tuple)):
            return len(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def waivers_html(waivers: list[Mapping[str, Any]] | None, today: datetime.date | None = None) -> str:
    """Every waiver of the run: scope, reason, owner, expiry (days left), findings waived, status."""
    today = today or datetime.date.today()
    waivers = [w for w in waivers or [] if isinstance(w, Mapping)]
    if not waivers:
        return '<h3>Waivers in force</h3><p id="kready-waivers" class="kr-muted">none</p>'
    rows = []
    for w in waivers:
        status = waiver_status(w, today)
        end = _date(w.get("expires"))
        left = f" ({(end - today).days} days left)" if end is not None and end >= today else ""
        used = _used(w)
        source = f' <span class="kr-muted">{esc(w.get("source"))}</span>' if w.get("source") else ""
        rows.append(f'<tr class="kr-{esc(status.replace(" ", "-"))}" data-status="{esc(status)}">'
                    f'<td><code>{esc(w.get("check"))}</code>{source}</td>'
                    f'<td>{esc(w.get("namespace") or "any")}</td><td>{esc(object_text(w.get("object")) or "any")}</td>'
                    f'<td>{esc(w.get("reason"))}</td><td>{esc(w.get("owner"))}</td>'
                    f'<td>{esc(w.get("expires"))}{esc(left)}</td>'
                    f'<td class="kr-n">{esc("" if used is None else used)}</td>'
                    f'<td>{esc(status)}</td></tr>')
    return ('<h3>Waivers in force</h3><table id="kready-waivers" class="kr-table"><thead><tr><th>check</th>'
            '<th>namespace</th><th>object</th><th>reason</th><th>owner</th><th>expires</th><th>waived</th>'
            f'<th>status</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


COMPARE_SECTIONS = (("new_failures", "new failures"), ("fixed", "fixed"), ("still_failing", "still failing"),
                    ("to_inconclusive", "moved to inconclusive"), ("from_inconclusive", "moved from inconclusive"),
                    ("checks_added", "checks added"), ("checks_gone", "checks gone"),
                    ("targets_added", "targets added"), ("targets_gone", "targets gone"),
                    ("added", "added"), ("gone", "gone"))


COMPARE_SHOWN = 10  # rows shown per kind of change; the rest collapsed


def _compare_entry(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return f'<td colspan="4"><code>{esc(entry)}</code></td>'
    check = entry.get("check_id") or entry.get("check") or ""
    target = entry.get("target_key") or target_text(entry)
    if entry.get("variant"):
        target = f"{target} [{entry['variant']}]"
    before, after = entry.get("before"), entry.get("after")
    if isinstance(before, Mapping):
        before = before.get("verdict")
    if isinstance(after, Mapping):
        after = after.get("verdict")
    moved = f"{badge(before) if before else '—'} → {badge(after) if after else '—'}"
    return (f"<td><code>{esc(check)}</code></td><td>{esc(target)}</td><td class=\"kr-moved\">{moved}</td>"
            f"<td>{esc(str(entry.get('summary') or '').splitlines()[0][:200] if entry.get('summary') else '')}</td>")


def compare_html(compare: Mapping[str, Any] | None) -> str:
    """What changed since the previous run (``--kready-compare``): one table per kind of change."""
    if not compare or not isinstance(compare, Mapping):
        return ""
    previous = compare.get("previous")
    if isinstance(previous, Mapping):
        bits = [f"run {previous['run_id']}" if previous.get("run_id") else "",
                f"profile {previous['profile']}" if previous.get("profile") else "",
                f"provider {previous['provider']}" if previous.get("provider") else "",
                f"started {previous['started_at']}" if previous.get("started_at") else "",
                f"from {previous['path']}" if previous.get("path") else ""]
        previous = ", ".join(b for b in bits if b)
    known = dict(COMPARE_SECTIONS)
    keys = [k for k, _ in COMPARE_SECTIONS] + [k for k, v in compare.items()
                                               if k not in known and k != "changed" and isinstance(v, list)]
    blocks, counts = [], []
    for key in keys:
        entries = compare.get(key)
        if not isinstance(entries, list):
            continue
        title = known.get(key, _label(key))
        if entries or key in ("new_failures", "fixed", "still_failing"):
            counts.append(f"{len(entries)} {title}")
        if not entries:
            continue
        rows = [f"<tr>{_compare_entry(e)}</tr>" for e in entries[:500]]
        more = ""
        if len(rows) > COMPARE_SHOWN:  # the rest collapsed, in the same table (one table per kind of change)
            more = (f'<tr><td colspan="4"><details><summary>{len(entries) - COMPARE_SHOWN} more</summary>'
                    f'<table class="kr-table kr-compare-more"><tbody>{"".join(rows[COMPARE_SHOWN:])}</tbody>'
                    f'</table></details></td></tr>')
            rows = rows[:COMPARE_SHOWN]
        cut = '<p class="kr-muted">the first 500 shown; all in the findings JSON</p>' if len(entries) > 500 else ""
        blocks.append(f'<h4>{esc(title)} ({len(entries)})</h4><table class="kr-table kr-compare" '
                      f'data-change="{esc(key)}"><tbody>{"".join(rows)}{more}</tbody></table>{cut}')
    changed = compare.get("changed")
    if isinstance(changed, list) and changed:
        rows = "".join(f"<tr>{_compare_entry(e)}</tr>" for e in changed[:500])
        blocks.append(f'<details><summary>every verdict that changed ({len(changed)})</summary>'
                      f'<table class="kr-table kr-compare" data-change="changed"><tbody>{rows}</tbody></table>'
                      '</details>')
    head = f"since {esc(previous)}: " if previous else ""
    return (f'<div id="kready-compare"><h3>Compared with the previous run</h3><p>{head}{esc("; ".join(counts))}</p>'
            f'{"".join(blocks)}</div>')


def run_html(run: Mapping[str, Any]) -> str:
    fields = (("provider", "provider"), ("server_version", "server"), ("profile", "profile"), ("mode", "mode"),
              ("run_id", "run id"), ("plugin_version", "pytest-kready"), ("started_at", "started"),
              ("duration_s", "duration"))
    spans = []
    for key, label in fields:
        value = run.get(key)
        if value in (None, ""):
            continue
        if key == "duration_s" and isinstance(value, (int, float)):
            value = f"{value:.0f}s"
        spans.append(f'<span data-field="{esc(key)}">{esc(label)}: <b>{esc(value)}</b></span>')
    return f'<div class="kr-run">{"".join(spans)}</div>' if spans else ""


def summary_html(document: Mapping[str, Any], today: datetime.date | None = None) -> str:
    """The block at the top of pytest-html's summary: style, run, scorecard, problems, waivers, compare."""
    findings = [f for f in document.get("findings") or [] if isinstance(f, Mapping)]
    run = document.get("run") or document.get("header") or {}
    waivers = document.get("waivers")
    if waivers is None:
        waivers = waivers_from(findings)
    return (f'<style>{CSS}</style><div id="kready-summary" class="kr"><h3>pytest-kready</h3>{run_html(run)}'
            f'<h3>Scorecard</h3>{scorecard_html(findings)}{problems_html(findings)}'
            f'{waivers_html(waivers, today)}{compare_html(document.get("compare"))}</div>')


def waivers_from(findings: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The waivers the findings carry (each once), with how many findings each matched."""
    out: dict[str, dict] = {}
    for f in findings:
        w = f.get("waiver")
        if isinstance(w, Mapping):
            key = json.dumps(w, sort_keys=True, default=str)
            entry = out.setdefault(key, {**w, "used": 0})
            entry["used"] += 1
    return list(out.values())


def environment(run: Mapping[str, Any]) -> dict[str, str]:
    """Environment rows: the cluster and the run (HTML-escaped: pytest-html puts values in as HTML)."""
    return {label: esc(run[key]) for key, label in ENV_KEYS if run.get(key) not in (None, "")}


# --- the pytest plugin --------------------------------------------------------------------------------------------


def v1_record(finding: dict) -> dict:
    """The v1 record of a finding dict as attached to reports (placement, area, target key: ``model``); one that
    is a v1 record already (it has a ``target_key``), or that the model cannot place, as it is."""
    if "target_key" in finding:
        return finding
    try:
        from .model import finding_record

        return finding_record(finding)
    except Exception:  # noqa: BLE001 - the model is another module's: render what there is rather than fail
        return finding


OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed", "rerun")  # pytest-html 4's filters


def outcome_word(report: pytest.TestReport) -> str:
    """The result pytest-html gives ``report`` (its filters and colours go by it)."""
    if report.when in ("setup", "teardown", "collect") and report.outcome == "failed":
        return "Error"
    if hasattr(report, "wasxfail"):
        return "XPassed" if report.outcome in ("passed", "failed") else "XFailed"
    return report.outcome.capitalize()


def result_label(report: pytest.TestReport) -> str | None:
    """``Inconclusive`` (a failed report the plugin marked so), ``Waived`` (every failing finding waived), else
    None."""
    props = list(getattr(report, "user_properties", ()) or ())
    if report.failed and ("kready_verdict", "inconclusive") in props:
        return "Inconclusive"
    verdicts = {verdict_of(v) for k, v in props if k == USER_PROPERTY and isinstance(v, dict)}
    if "waived" in verdicts and not verdicts & {"fail", "inconclusive"} and hasattr(report, "wasxfail"):
        return "Waived"
    return None


def _is_kready_json_extra(extra: Any) -> bool:
    return isinstance(extra, dict) and extra.get("format_type") == "json" and \
        str(extra.get("name") or "").startswith("finding ")


class HtmlReport:
    """pytest-html wiring: the Environment rows, the summary block and the per-finding blocks."""

    def __init__(self, config: pytest.Config, meta: Mapping[str, Any] | None = None):
        self.config = config
        self.meta = meta if meta is not None else {}
        self.findings: list[dict] = []
        self.started = time.time()

    # run header ------------------------------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The run's v1 document when the findings reporter handed one over (``DOCUMENT_KEY``), else ``{}``."""
        source = self.config.stash.get(DOCUMENT_KEY, None)
        try:
            doc = source() if callable(source) else source
        except Exception:  # noqa: BLE001 - the report still renders from what the run reported
            return {}
        return dict(doc) if isinstance(doc, Mapping) else {}

    def run(self, doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The run header: the document's, else the session's meta (with what the Environment learnt from xdist
        workers: the server version)."""
        from .. import __version__

        run: dict[str, Any] = {"plugin_version": __version__, **dict(self.meta)}
        header = (doc or {}).get("run") or (doc or {}).get("header")
        if isinstance(header, Mapping):
            run.update({k: v for k, v in header.items() if v not in (None, "")})
        metadata = self._metadata() or {}
        for key, label in ENV_KEYS:
            if run.get(key) in (None, "") and metadata.get(label):
                run[key] = html.unescape(str(metadata[label]))
        run.setdefault("started_at", datetime.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"))
        run.setdefault("duration_s", time.time() - self.started)
        return run

    def _metadata(self) -> dict | None:
        """pytest-metadata's dict (None without pytest-metadata)."""
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return None
        metadata = self.config.stash.get(metadata_key, None)
        return metadata if isinstance(metadata, dict) else None

    def _update_environment(self) -> None:
        """The cluster and the run in pytest-metadata's stash: pytest-html's Environment table shows it (the dict
        it renders is this one, so what is known by the end of the run is shown)."""
        from .. import __version__

        metadata = self._metadata()
        if metadata is not None:
            metadata.update(environment({"plugin_version": __version__, **dict(self.meta)}))

    # hooks -----------------------------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()
        self._update_environment()  # before pytest-html reads it (its hook is trylast)

    def pytest_kready_cluster_ready(self, cluster) -> None:
        self._update_environment()  # the server version is known now (xdist: sent back with the worker's metadata)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._update_environment()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Replace the findings' JSON links by finding blocks (once: an xdist worker already converted them)."""
        dicts = [v for k, v in getattr(report, "user_properties", ()) if k == USER_PROPERTY and isinstance(v, dict)]
        if not dicts:
            return
        from ..findings import redact_finding

        dicts = [v1_record(redact_finding(d)) for d in dicts]  # what the run learnt since the test is blanked too
        self.findings.extend(dicts)
        extras = [e for e in getattr(report, "extras", None) or [] if not _is_kready_json_extra(e)]
        if not any(isinstance(e, dict) and e.get("format_type") == "html" and MARK in str(e.get("content"))
                   for e in extras):
            extras += [{"name": f"finding {d.get('check_id')} ({verdict_of(d)})", "format_type": "html",
                        "content": finding_html(d), "mime_type": None, "extension": None} for d in dicts]
        report.extras = extras

    @pytest.hookimpl(trylast=True, optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        """The result column says Inconclusive or Waived while the row keeps pytest-html's outcome word as its
        data: pytest-html 4's page shows only rows whose result is one of its outcomes (a cell reading
        ``Inconclusive`` made the test vanish from the table). Runs after the other plugins' rewrites."""
        for i, cell in enumerate(cells):
            if 'class="col-result"' not in cell:
                continue
            m = re.search(r"<td[^>]*>(.*?)</td>", cell)
            shown = m.group(1) if m else ""
            label = result_label(report)
            if label is None and shown.lower() in OUTCOMES:
                return
            label = label or re.sub(r"<[^>]*>", "", shown) or outcome_word(report)
            cells[i] = (f'<td class="col-result" data-kready-result="{esc(label)}" title="{esc(label)}">'
                        f'{outcome_word(report)}</td>')
            return

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        doc = self.document()
        findings = doc.get("findings") if isinstance(doc.get("findings"), list) else self.findings
        prefix.append(summary_html({**doc, "findings": findings, "run": self.run(doc)}))


def register(config: pytest.Config, meta: Mapping[str, Any] | None = None) -> HtmlReport | None:
    """Register ``HtmlReport`` when pytest-html is installed and ``--html`` given (also on xdist workers: they
    make the finding blocks; the controller writes the page)."""
    if not config.pluginmanager.hasplugin("html") or not config.getoption("htmlpath", None):
        return None
    plugin = HtmlReport(config, meta)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin
