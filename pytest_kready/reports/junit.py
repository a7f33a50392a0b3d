"""JUnit (``--junitxml``): pytest's own file, rewritten at the end of the run so that it carries one testcase per
check x target. A test whose findings name several targets (namespaces, objects, the cluster) becomes one testcase
per target, ``<name>[<target key>]``; every testcase of a check carries the properties ``check_id``, ``severity``,
``verdict``, ``target``, ``scope`` and ``area`` (and ``waiver``). Outcomes per target: fail and inconclusive are
``<failure>``, waived is ``<skipped type="pytest.xfail">`` with the waiver, not-applicable is ``<skipped>``, pass
has none. The raw finding dumps pytest writes as properties are replaced by these. Tests without findings keep
their testcase as pytest wrote it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from _pytest.junitxml import mangle_test_address

from .model import worst

RAW_PROPERTIES = ("kready_finding", "kready_verdict", "kready_inconclusive", "kready_check_doc")
OUTCOME_TAGS = ("failure", "error", "skipped")
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


def _address(nodeid: str, prefix: str | None) -> tuple[str, str]:
    names = mangle_test_address(nodeid)
    classnames = names[:-1]
    if prefix:
        classnames.insert(0, prefix)
    return ".".join(classnames), names[-1]


def _line(f: dict) -> str:
    """As the terminal says it: ``FAIL <check> [<target>]: ...``, ``INCONCLUSIVE: ...``."""
    shown = f.get("original_verdict") or f["verdict"]
    if shown == "inconclusive":
        return f"INCONCLUSIVE: {f.get('summary') or ''}"
    return f"{shown.upper()} {f['check_id']} [{f['target_key']}]: {f.get('summary') or ''}"


def _outcome(group: list[dict]) -> ET.Element | None:
    verdict = worst(f["verdict"] for f in group)
    hits = [f for f in group if f["verdict"] == verdict]
    if verdict in ("fail", "inconclusive"):
        bad = [f for f in group if f["verdict"] in ("fail", "inconclusive")]
        el = ET.Element("failure", message=_line(hits[0])[:1000])
        el.text = "\n".join(_line(f) for f in bad)
        return el
    if verdict == "waived":
        w = hits[0].get("waiver") or {}
        el = ET.Element("skipped", type="pytest.xfail",
                        message=f"waived: {w.get('reason', '')} (owner {w.get('owner', '?')}, until "
                                f"{w.get('expires', '?')}, {w.get('source', '')})")
        el.text = "\n".join(_line(f) for f in hits)
        return el
    if verdict == "not-applicable":
        el = ET.Element("skipped", type="pytest.skip", message=f"not-applicable: {hits[0].get('summary') or ''}"[:1000])
        return el
    return None


def _properties(group: list[dict]) -> ET.Element:
    verdict = worst(f["verdict"] for f in group)
    first = next(f for f in group if f["verdict"] == verdict)
    severity = max((f.get("severity") or "medium" for f in group), key=SEVERITY_ORDER.index)
    props = ET.Element("properties")
    values = [("check_id", first["check_id"]), ("severity", severity), ("verdict", verdict),
              ("target", first["target_key"]), ("scope", first["scope"]), ("area", first["area"]),
              ("findings", str(len(group)))]
    w = first.get("waiver")
    if w:
        values.append(("waiver", f"{w.get('reason')} (owner {w.get('owner')}, until {w.get('expires')}, "
                                 f"{w.get('source')})"))
    for name, value in values:
        ET.SubElement(props, "property", name=name, value=str(value))
    return props


def _counts(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))


def rewrite(path: Path, findings: list[dict[str, Any]], *, prefix: str | None = None,
            whole: set[str] | frozenset[str] = frozenset()) -> int:
    """Rewrite pytest's JUnit file at ``path``; returns how many testcases it holds for checks. A test with one
    target keeps pytest's outcome element; so does a test in ``whole`` (node ids: crashed checks, whose every
    finding is inconclusive because of the crash)."""
    whole_addresses = {_address(n, prefix) for n in whole}
    tree = ET.parse(path)
    root = tree.getroot()
    by_address: dict[tuple[str, str], list[dict]] = {}
    for f in findings:
        if f.get("nodeid"):
            by_address.setdefault(_address(f["nodeid"], prefix), []).append(f)
    made = 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        children = list(suite)
        for case in children:
            if case.tag != "testcase":
                continue
            group = by_address.get((case.get("classname", ""), case.get("name", "")))
            if not group:
                continue
            targets: dict[str, list[dict]] = {}
            for f in group:
                targets.setdefault(f["target_key"], []).append(f)
            keep = [c for c in case if c.tag not in OUTCOME_TAGS and c.tag != "properties"]
            others = [p for props in case.findall("properties") for p in props
                      if p.get("name") not in RAW_PROPERTIES]
            errors = case.findall("error")  # pytest's own error (setup/teardown) stays with the first target
            split = len(targets) > 1 and (case.get("classname", ""), case.get("name", "")) not in whole_addresses
            if not split:
                props = _properties(group)
                for p in others:
                    props.append(p)
                for old in case.findall("properties"):
                    case.remove(old)
                case.insert(0, props)
                made += 1
                continue
            index = children.index(case)
            new_cases = []
            total = float(case.get("time") or 0)
            for i, (target, fs) in enumerate(targets.items()):
                attrs = dict(case.attrib)
                attrs["name"] = f"{case.get('name')}[{target}]"
                attrs["time"] = f"{total / len(targets):.3f}"
                new = ET.Element("testcase", attrs)
                props = _properties(fs)
                for p in others:
                    props.append(p)
                new.append(props)
                outcome = _outcome(fs)
                if outcome is not None:
                    new.append(outcome)
                if i == 0:
                    if outcome is None or outcome.tag != "failure":
                        for e in errors:
                            new.append(e)
                    for c in keep:
                        new.append(c)
                new_cases.append(new)
            suite.remove(case)
            for j, new in enumerate(new_cases):
                suite.insert(index + j, new)
            children = list(suite)
            made += len(new_cases)
        _counts(suite)
    if root.tag == "testsuites":
        for attr in ("tests", "failures", "errors", "skipped"):
            if root.get(attr) is not None:
                root.set(attr, str(sum(int(s.get(attr) or 0) for s in suites)))
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return made
