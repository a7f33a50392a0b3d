"""Findings: what a check concluded about a target, with the evidence to believe it.

A test records findings through the ``kready_finding`` fixture (stored on its item); after the test body the
findings decide the reported outcome:

* any ``fail`` → the test fails, every failing finding listed (all mismatches, not the first);
* else any ``inconclusive`` → the test is reported in its own category ``inconclusive`` (letter ``I``) whose
  report is *failed*: it counts as a failure for the exit status, JUnit and pytest-html — never a pass;
* else only ``not-applicable`` → the test is reported skipped with the reason;
* else the test's own outcome stands.

``--kready-json PATH`` writes every finding; pytest-html gets each finding as a JSON extra. Secret values never
appear in evidence: ``redact`` blanks Secret data, credential-like fields, bearer tokens and registered values.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from .errors import ReadOnlyViolation

FINDINGS_KEY = pytest.StashKey[list]()
REPORTS_KEY = pytest.StashKey[dict]()
SECRETS_KEY = pytest.StashKey[set]()
USER_PROPERTY = "kready_finding"
VERDICT_PROPERTY = "kready_verdict"
SEVERITIES = ("critical", "high", "medium", "low", "info")
REDACTED = "<redacted>"
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not-applicable"

    def __str__(self) -> str:
        return self.value


class Inconclusive(Exception):
    """Raised (via ``kready_finding.inconclusive``) when a check could not decide; reported as INCONCLUSIVE."""


@dataclasses.dataclass
class Finding:
    check_id: str
    verdict: Verdict
    summary: str = ""
    target_namespace: str | None = None
    severity: str = "medium"
    request: Any = None
    response: Any = None
    repro: str | None = None  # a kubectl command that shows the same thing
    remediation: str | None = None
    references: tuple[str, ...] = ()
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    nodeid: str | None = None
    recorded_at: float = dataclasses.field(default_factory=time.time)

    def __post_init__(self):
        self.verdict = Verdict(self.verdict)
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}: choose one of {', '.join(SEVERITIES)}")
        self.references = tuple(self.references)

    def to_dict(self, secrets: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["verdict"] = self.verdict.value
        data["references"] = list(self.references)
        return redact(data, secrets)

    def line(self) -> str:
        target = f" [{self.target_namespace}]" if self.target_namespace else ""
        return f"{self.verdict.value.upper()} {self.check_id}{target}: {self.summary}".rstrip(": ")


@dataclasses.dataclass
class CheckResult:
    """What a check module decided about one target: the one type every ``pytest_kready.checks`` module returns.
    A suite records it with ``result.record(kready_finding)``; evidence, repro and remediation are the module's."""

    verdict: Verdict
    summary: str
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    target_namespace: str | None = None
    severity: str = "medium"
    repro: str | None = None
    remediation: str | None = None
    references: tuple[str, ...] = ()
    request: Any = None
    response: Any = None

    def __post_init__(self):
        self.verdict = Verdict(self.verdict)

    def record(self, kready_finding) -> Finding:
        return kready_finding(self.verdict, self.summary, target_namespace=self.target_namespace,
                              severity=self.severity, evidence=self.evidence, repro=self.repro,
                              remediation=self.remediation, references=self.references, request=self.request,
                              response=self.response)


# --- redaction ---------------------------------------------------------------------------------------

_SENSITIVE_KEYS = {
    "token", "password", "passwd", "client-key-data", "client-key", "client_key", "authorization", "secret",
    "private-key", "privatekey", "api_key", "apikey", "bearer", "id-token", "refresh-token",
}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def _plain(value: Any) -> Any:
    """JSON-safe copy: models via ``to_dict`` (a ``V1Secret`` stays recognisable as kind Secret)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        data = _plain(to_dict())
        name = type(value).__name__
        if isinstance(data, dict) and name in ("V1Secret", "V1SecretList") and not data.get("kind"):
            data["kind"] = name[2:]
        return data
    return str(value)


def _scrub_text(text: str, secrets: set[str] | frozenset[str]) -> str:
    for s in secrets:
        if len(s) >= 4:
            text = text.replace(s, REDACTED)
            text = text.replace(base64.b64encode(s.encode()).decode(), REDACTED)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


def redact(value: Any, secrets: set[str] | frozenset[str] = frozenset()) -> Any:
    """A JSON-safe copy of ``value`` with no Secret values in it.

    Blanks the values of ``data``/``stringData`` in Secrets (keys kept), string values of credential-like keys
    (token, password, client-key-data, authorization, ...), bearer tokens and JWTs in any string, and every
    occurrence of the registered ``secrets`` (also base64-encoded).
    """
    return _redact(_plain(value), frozenset(secrets), secret_obj=False)


def _redact(value: Any, secrets: frozenset[str], *, secret_obj: bool) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, list):
        return [_redact(v, secrets, secret_obj=secret_obj) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("kind")
    is_secret = secret_obj or kind == "Secret"
    out: dict[str, Any] = {}
    for k, v in value.items():
        if is_secret and k in ("data", "stringData") and isinstance(v, dict):
            out[k] = {dk: REDACTED for dk in v}
        elif k.lower() in _SENSITIVE_KEYS and isinstance(v, (str, bytes)) and v:
            out[k] = REDACTED
        elif kind == "SecretList" and k == "items":
            out[k] = [_redact(i, secrets, secret_obj=True) for i in v or []]
        else:
            out[k] = _redact(v, secrets, secret_obj=False)
    return out


# --- recording ---------------------------------------------------------------------------------------


def check_id_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("kready_check")
    if marker and marker.args:
        return str(marker.args[0])
    return item.nodeid


def findings_of(item: pytest.Item) -> list[Finding]:
    return item.stash.setdefault(FINDINGS_KEY, [])


def record(item: pytest.Item, finding: Finding) -> Finding:
    """Store ``finding`` on ``item`` and announce it through the ``pytest_kready_finding`` hook."""
    finding.nodeid = finding.nodeid or item.nodeid
    findings_of(item).append(finding)
    item.config.hook.pytest_kready_finding(finding=finding, item=item)
    return finding


class FindingRecorder:
    """What the ``kready_finding`` fixture returns: ``kready_finding(verdict, summary, **fields)`` records one."""

    def __init__(self, item: pytest.Item):
        self.item = item

    @property
    def check_id(self) -> str:
        return check_id_of(self.item)

    def __call__(self, verdict: Verdict | str, summary: str = "", **fields: Any) -> Finding:
        fields.setdefault("check_id", self.check_id)
        return record(self.item, Finding(verdict=Verdict(verdict), summary=summary, **fields))

    def passed(self, summary: str = "", **fields: Any) -> Finding:
        return self(Verdict.PASS, summary, **fields)

    def failed(self, summary: str, **fields: Any) -> Finding:
        """Record a failure and carry on (the test is failed at its end, with every failure listed)."""
        return self(Verdict.FAIL, summary, **fields)

    def inconclusive(self, reason: str, **fields: Any) -> None:
        """Record an inconclusive finding and stop the test: it is reported INCONCLUSIVE (a failure)."""
        self(Verdict.INCONCLUSIVE, reason, **fields)
        raise Inconclusive(reason)

    def not_applicable(self, reason: str, **fields: Any) -> None:
        """Record a not-applicable finding and skip the test with ``reason``."""
        self(Verdict.NOT_APPLICABLE, reason, **fields)
        pytest.skip(f"not-applicable: {reason}")

    def secret(self, value: str | bytes) -> None:
        """Register a value that must never appear in evidence (it is blanked wherever it occurs)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        self.item.stash.setdefault(SECRETS_KEY, set()).add(value)


# --- reporting (a plugin object registered by plugin.py when --kready is given) ----------------------


def _declares_readonly(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("kready_mode")
    return bool(marker and marker.args and marker.args[0] == "readonly")


def _skip_longrepr(item: pytest.Item, reason: str) -> tuple[str, int, str]:
    path, lineno, _ = item.reportinfo()
    return (str(path), (lineno or 0) + 1, f"Skipped: {reason}")


class FindingsReporter:
    """Turns findings into outcomes, attaches them to reports, shows and writes them."""

    def __init__(self, config: pytest.Config, json_path: Path | None, meta: dict[str, Any]):
        self.config = config
        self.json_path = json_path
        self.meta = meta
        self.collected: list[dict[str, Any]] = []
        self.inconclusive: list[tuple[str, str]] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        item.stash.setdefault(REPORTS_KEY, {})[report.when] = report
        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if final:
            self._decide(item, call, report)
        return report

    def _decide(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        findings = findings_of(item)
        if call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
            self._mark_inconclusive(report, [str(call.excinfo.value)])
        elif call.excinfo is not None and call.excinfo.errisinstance(ReadOnlyViolation) and not _declares_readonly(item):
            reason = f"not-applicable: writes to the cluster; this run is readonly ({call.excinfo.value})"
            report.outcome = "skipped"
            report.longrepr = _skip_longrepr(item, reason)
        elif report.passed and findings:
            fails = [f for f in findings if f.verdict is Verdict.FAIL]
            unsure = [f for f in findings if f.verdict is Verdict.INCONCLUSIVE]
            if fails:
                report.outcome = "failed"
                report.longrepr = "\n".join(f.line() for f in fails + unsure)
            elif unsure:
                self._mark_inconclusive(report, [f.summary for f in unsure])
            elif all(f.verdict is Verdict.NOT_APPLICABLE for f in findings):
                report.outcome = "skipped"
                reason = "; ".join(dict.fromkeys(f.summary for f in findings))
                report.longrepr = _skip_longrepr(item, f"not-applicable: {reason}")
        if report.skipped and isinstance(report.longrepr, tuple) and _PACKAGE_DIR in str(report.longrepr[0]):
            report.longrepr = _skip_longrepr(item, report.longrepr[2].removeprefix("Skipped: "))  # the test, not us
        if not findings and item.get_closest_marker("kready_check"):
            findings.append(self._implicit(item, report))
        secrets = item.stash.get(SECRETS_KEY, set())
        dicts = [f.to_dict(secrets) for f in findings]
        for d in dicts:
            report.user_properties.append((USER_PROPERTY, d))
        self._html_extras(report, dicts)

    @staticmethod
    def _mark_inconclusive(report: pytest.TestReport, reasons: list[str]) -> None:
        report.outcome = "failed"
        report.longrepr = "\n".join(f"INCONCLUSIVE: {r}" for r in reasons)
        report.user_properties.append((VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value))

    @staticmethod
    def _implicit(item: pytest.Item, report: pytest.TestReport) -> Finding:
        if report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            reason = reason.removeprefix("Skipped: ").removeprefix("not-applicable: ")
            verdict = Verdict.NOT_APPLICABLE
        elif report.failed:
            verdict = Verdict.INCONCLUSIVE if (VERDICT_PROPERTY, "inconclusive") in report.user_properties \
                else Verdict.FAIL
            reason = (report.longreprtext or "").strip().splitlines()[-1:] or [""]
            reason = reason[0][:300]
        else:
            verdict, reason = Verdict.PASS, ""
        return Finding(check_id=check_id_of(item), verdict=verdict, summary=reason, nodeid=item.nodeid)

    def _html_extras(self, report: pytest.TestReport, dicts: list[dict]) -> None:
        if not dicts or not self.config.pluginmanager.hasplugin("html"):
            return
        try:
            from pytest_html import extras
        except ImportError:
            return
        report.extras = list(getattr(report, "extras", [])) + [
            extras.json(d, name=f"finding {d['check_id']} ({d['verdict']})") for d in dicts]

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        if report.failed and (VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value) in getattr(report, "user_properties", ()):
            return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == USER_PROPERTY:
                self.collected.append(value)
        if report.failed and (VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value) in report.user_properties:
            self.inconclusive.append((report.nodeid, report.longreprtext))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.inconclusive:
            terminalreporter.section("kready: inconclusive (counted as failures)", sep="-", yellow=True)
            for nodeid, text in self.inconclusive:
                terminalreporter.line(f"{nodeid}: {text}")
        if self.json_path and self.written:
            terminalreporter.line(f"kready: {len(self.collected)} findings written to {self.json_path}")

    written = False

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.json_path is None or hasattr(self.config, "workerinput"):
            return
        counts: dict[str, int] = {}
        for f in self.collected:
            counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
        doc = {**self.meta, "summary": counts, "findings": self.collected}
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        self.written = True
