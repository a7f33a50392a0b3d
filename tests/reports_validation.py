"""Validation the report tests share: the findings JSON against the shipped v1 schema, SARIF against the SARIF
2.1.0 schema vendored in tests/data/sarif (see its README), JUnit's shape."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import jsonschema

from pytest_kready.reports import schema as findings_schema

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif" / "sarif-schema-2.1.0.json"


def valid_findings(path_or_doc) -> dict:
    """The findings document (a path or the parsed dict), asserted valid against findings-v1.schema.json."""
    doc = json.loads(Path(path_or_doc).read_text()) if isinstance(path_or_doc, (str, Path)) else path_or_doc
    problems = findings_schema.errors(doc)
    assert problems == [], problems[:10]
    return doc


@lru_cache(maxsize=1)
def _sarif_validator():
    schema = json.loads(SARIF_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def valid_sarif(path_or_log) -> dict:
    """The SARIF log, asserted valid against the vendored SARIF 2.1.0 schema (and a few rules the schema cannot
    say: every result's rule exists at its index, every result has a physical and a logical location)."""
    log = json.loads(Path(path_or_log).read_text()) if isinstance(path_or_log, (str, Path)) else path_or_log
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                for e in _sarif_validator().iter_errors(log)]
    assert problems == [], problems[:10]
    assert log["version"] == "2.1.0"
    for run in log["runs"]:
        rules = run["tool"]["driver"].get("rules", [])
        assert len({r["id"] for r in rules}) == len(rules), "one rule per check id"
        for r in run.get("results", []):
            assert rules[r["ruleIndex"]]["id"] == r["ruleId"], r
            loc = r["locations"][0]
            assert loc["physicalLocation"]["artifactLocation"]["uri"], r
            assert loc["logicalLocations"][0]["fullyQualifiedName"], r
    return log


def junit_cases(path) -> dict[str, ET.Element]:
    """``{testcase name: element}`` of a JUnit file, asserting the suite's counts match its testcases."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    out = {}
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
        assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases)
        for c in cases:
            out[c.get("name")] = c
    return out


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}
