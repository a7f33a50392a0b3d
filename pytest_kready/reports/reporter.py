"""The reporting plugin object (registered by plugin.py when --kready is given): turns findings into outcomes,
applies waivers, attaches the v1 finding records to reports, and at the end of the run writes the findings JSON,
SARIF and JUnit, prints the terminal summary and sets the exit status (``gate``).

Outcomes: any unwaived ``fail`` fails the test (every failing finding listed); else any unwaived ``inconclusive``
is the category ``inconclusive`` (letter ``I``, a failure for pytest, JUnit and pytest-html); else failing or
inconclusive findings that are all waived make the test an expected failure (xfailed, the waiver as reason); else
only ``not-applicable`` skips the test with the reason; else the test's own outcome stands. A crash is
inconclusive (never waived: it is the plugin's or the check's problem, not the cluster's).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ..errors import ReadOnlyViolation
from ..findings import (_PACKAGE_DIR, REPORTS_KEY, SECRETS_KEY, USER_PROPERTY, VERDICT_PROPERTY, Finding,
                        Inconclusive, RedactingFilter, Verdict, check_id_of, findings_of, forget_secrets,
                        redact_finding, redact_text, redaction_generation, scrub_report, still_clean)
from . import compare as compare_mod
from . import gate as gate_mod
from . import junit as junit_mod
from . import model, sarif, summary
from . import waivers as waivers_mod

def _declares_readonly(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("kready_mode")
    return bool(marker and marker.args and marker.args[0] == "readonly")


def _skip_longrepr(item: pytest.Item, reason: str) -> tuple[str, int, str]:
    path, lineno, _ = item.reportinfo()
    return (str(path), (lineno or 0) + 1, f"Skipped: {reason}")


def is_check(item: pytest.Item) -> bool:
    """A check: a test carrying ``kready_check`` or recording findings (it uses ``kready_finding``)."""
    return item.get_closest_marker("kready_check") is not None or \
        "kready_finding" in getattr(item, "fixturenames", ())


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    """``KeyError: 'x'``: the exception's type and the first line of its text, redacted, at most 300 chars."""
    exc = excinfo.value
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, KeyError) and exc.args:
        text = repr(exc.args[0])
    name = type(exc).__name__
    return redact_text(f"{name}: {text}" if text else name)[:300]


REASON_PROPERTY = "kready_inconclusive"  # the one-line reason of an inconclusive report (user property)
# (redaction generation, ids of the finding records _attach just redacted): scrub_report leaves those as they are
_CLEAN_KEY = pytest.StashKey[tuple[int, set[int]]]()


class FindingsReporter:
    """Turns findings into outcomes, attaches them to reports, shows and writes them."""

    def __init__(self, config: pytest.Config, settings, meta: dict[str, Any]):
        self.config = config
        self.settings = settings
        self.json_path: Path | None = settings.json_path
        self.sarif_path: Path | None = getattr(settings, "sarif_path", None)
        self.fail_on: str = getattr(settings, "fail_on", None) or "inconclusive"
        self.min_severity: str = getattr(settings, "min_severity", None) or "info"
        self.meta = meta
        self.waivers: list[waivers_mod.Waiver] = []
        self.previous: dict | None = None
        waivers_path, compare_path = getattr(settings, "waivers_path", None), getattr(settings, "compare_path", None)
        try:
            if waivers_path is not None:
                self.waivers = waivers_mod.load(waivers_path)
            if compare_path is not None:
                self.previous = compare_mod.load_previous(compare_path)
        except (waivers_mod.WaiverError, compare_mod.CompareError) as e:
            raise pytest.UsageError(str(e)) from None
        self.collected: list[dict[str, Any]] = []  # the v1 records the reports carried
        self.collected_at: list[int | None] = []  # the redaction generation each was redacted at (None: unknown)
        self._attached: dict[int, tuple[dict[str, Any], int]] = {}  # id -> (record, generation), until logged
        self.inconclusive: list[tuple[str, str]] = []
        self.crashes: list[pytest.TestReport] = []
        self.failed_nodeids: list[str] = []
        self.judged_nodeids: set[str] = set()  # tests with a failing, inconclusive or waived finding
        self.selected: set[str] = set()
        self.docs: dict[str, str] = {}  # check id -> its test's docstring (SARIF rule descriptions)
        self.started = time.time()
        self.doc: dict[str, Any] | None = None
        self.outputs: list[tuple[str, str]] = []
        forget_secrets()  # a new run in this process knows only its own secrets
        config.pluginmanager.register(_Late(self), "kready-reports-late")
        try:
            from .html import DOCUMENT_KEY  # the HTML report reads the document when it makes its summary
        except ImportError:
            pass
        else:
            config.stash[DOCUMENT_KEY] = self.document

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()
        logging_plugin = self.config.pluginmanager.get_plugin("logging-plugin")
        for attr in ("log_cli_handler", "log_file_handler", "caplog_handler", "report_handler"):
            handler = getattr(logging_plugin, attr, None)
            if isinstance(handler, logging.Handler) and not any(
                    isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        item.stash.setdefault(REPORTS_KEY, {})[report.when] = report
        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if final:
            self._decide(item, call, report)
        elif report.when == "teardown" and report.failed and is_check(item) and call.excinfo is not None:
            self._teardown_crash(item, call, report)
        try:
            clean = item.stash.get(_CLEAN_KEY, None)
            if clean is not None:
                del item.stash[_CLEAN_KEY]
            scrub_report(report, item.stash.get(SECRETS_KEY, set()), clean=clean)
        except Exception as e:  # noqa: BLE001 - never an INTERNALERROR, and never an unredacted report
            report.longrepr = f"(the failure text was withheld: redacting it failed with {type(e).__name__})" \
                if report.longrepr is not None and not isinstance(report.longrepr, tuple) else report.longrepr
            report.sections = []
        return report

    @staticmethod
    def _crashed(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> bool:
        """A check ended by an exception that is not a recorded finding (AssertionError included): a crash."""
        exc = call.excinfo
        return (exc is not None and report.failed and is_check(item) and not hasattr(report, "wasxfail")
                and not exc.errisinstance((Inconclusive, pytest.skip.Exception)))

    def _decide(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        findings = findings_of(item)
        records = self._waive(item, findings)
        if call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
            open_ = [r for f, r in records if f.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE) and f.waiver is None]
            waived = [f for f in findings if f.waiver is not None]
            if waived and not open_:
                self._xfail(report, waived)
            else:
                self._mark_inconclusive(report, [str(call.excinfo.value)])
        elif call.excinfo is not None and call.excinfo.errisinstance(ReadOnlyViolation) and not _declares_readonly(item):
            reason = f"not-applicable: writes to the cluster; this run is readonly ({call.excinfo.value})"
            report.outcome = "skipped"
            report.longrepr = _skip_longrepr(item, reason)
        elif self._crashed(item, call, report):
            self._crash(item, call, report, findings)
        elif report.passed and findings:
            fails = [r for f, r in records if f.verdict is Verdict.FAIL and f.waiver is None]
            unsure = [r for f, r in records if f.verdict is Verdict.INCONCLUSIVE and f.waiver is None]
            waived = [f for f in findings if f.waiver is not None]
            if fails:
                report.outcome = "failed"
                report.longrepr = redact_text("\n".join(line(r) for r in fails + unsure))
            elif unsure:
                self._mark_inconclusive(report, [r["summary"] for r in unsure])
            elif waived:
                self._xfail(report, waived)
            elif all(f.verdict is Verdict.NOT_APPLICABLE for f in findings):
                report.outcome = "skipped"
                reason = "; ".join(dict.fromkeys(f.summary for f in findings))
                report.longrepr = _skip_longrepr(item, f"not-applicable: {reason}")
        if report.skipped and isinstance(report.longrepr, tuple) and _PACKAGE_DIR in str(report.longrepr[0]):
            report.longrepr = _skip_longrepr(item, report.longrepr[2].removeprefix("Skipped: "))  # the test, not us
        if not findings and item.get_closest_marker("kready_check"):
            findings.append(self._implicit(item, report))
        self._attach(item, report, findings)

    def _waive(self, item: pytest.Item, findings: list[Finding]) -> list[tuple[Finding, dict]]:
        """Each finding with its placement (target key: ``model.placement``); a failing or inconclusive one that a
        waiver in force covers gets the waiver (``Finding.waiver``)."""
        out = []
        for f in findings:
            place = model.placement(f.check_id, f.target_namespace, f.evidence, scope=f.scope, obj=f.object)
            light = {"check_id": f.check_id, "verdict": f.verdict.value, "summary": f.summary, **place}
            if self.waivers and f.waiver is None:
                w = waivers_mod.find(self.waivers, light)
                if w is not None:
                    f.waiver = w.record()
            out.append((f, light))
        return out

    @staticmethod
    def _xfail(report: pytest.TestReport, waived: list[Finding]) -> None:
        """Every failing or inconclusive finding is waived: an expected failure, the waiver as reason."""
        reasons = list(dict.fromkeys(
            f"waived: {w['check']} in {'/'.join(p for p in (w.get('namespace'), w.get('object')) if p) or 'everywhere'}"
            f" ({w['owner']}, until {w['expires']}): {w['reason']}" for w in (f.waiver for f in waived)))
        report.outcome = "skipped"
        report.wasxfail = redact_text("; ".join(reasons))
        report.longrepr = None

    def _attach(self, item: pytest.Item, report: pytest.TestReport, findings: list[Finding]) -> None:
        secrets = item.stash.get(SECRETS_KEY, set())
        generation = redaction_generation()
        dicts = [model.finding_record(f.to_dict(secrets)) for f in findings]
        if redaction_generation() == generation:  # redacted: scrub_report, right after, need not do it again
            item.stash[_CLEAN_KEY] = (generation, {id(d) for d in dicts})
            self._attached.update((id(d), (d, generation)) for d in dicts)
        for d in dicts:
            report.user_properties.append((USER_PROPERTY, d))
        self._html_extras(report, dicts)

    def _crash(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport,
               findings: list[Finding], phase: str | None = None) -> None:
        """Inconclusive with the error: never a fail against the cluster, and no verdict recorded before the
        crash stands (each is kept as evidence, demoted to inconclusive, its verdict in ``verdict_before_crash``)."""
        phase = phase or report.when
        error = one_line(call.excinfo)
        reason = f"the check crashed{'' if phase == 'call' else f' in {phase}'}: {error}"
        earlier = []
        for f in findings:
            f.waiver = None  # a crash is never waived: it is not a verdict about the cluster
            if f.verdict in (Verdict.PASS, Verdict.FAIL):
                earlier.append(f"recorded before the crash: {f.line()}")
                f.evidence = {**(f.evidence or {}), "verdict_before_crash": f.verdict.value}
                f.verdict = Verdict.INCONCLUSIVE
        entry = call.excinfo.traceback[-1] if call.excinfo.traceback else None
        findings.append(Finding(
            check_id=check_id_of(item), verdict=Verdict.INCONCLUSIVE, summary=reason, nodeid=item.nodeid,
            evidence={"error": error, "phase": phase,
                      **({"raised_at": f"{entry.path}:{entry.lineno + 1}"} if entry is not None else {})}))
        self._mark_inconclusive(report, [reason], keep_traceback=True, extra=earlier)

    def _teardown_crash(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
        crash: list[Finding] = []
        self._crash(item, call, report, crash, phase="teardown")
        self._attach(item, report, crash)
        findings_of(item).extend(crash)

    @staticmethod
    def _mark_inconclusive(report: pytest.TestReport, reasons: list[str], *, keep_traceback: bool = False,
                           extra: list[str] = ()) -> None:
        reasons = [redact_text(r) for r in reasons]
        text = "\n".join([f"INCONCLUSIVE: {r}" for r in reasons] + [redact_text(e) for e in extra])
        report.outcome = "failed"
        longrepr = report.longrepr
        if keep_traceback and hasattr(longrepr, "addsection") and getattr(longrepr, "reprcrash", None) is not None:
            longrepr.reprcrash.message = f"INCONCLUSIVE: {reasons[0]}"  # pytest's short summary, JUnit's message
            longrepr.addsection("kready: inconclusive", text)
        elif keep_traceback and longrepr:
            report.longrepr = f"{text}\n\n{longrepr}"
        else:
            report.longrepr = text
        report.user_properties.append((VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value))
        report.user_properties.append((REASON_PROPERTY, "; ".join(reasons)))

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

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        """pytest-html's result column says Inconclusive, as the terminal does."""
        if report.failed and (VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value) in getattr(report, "user_properties", ()):
            for i, cell in enumerate(cells):
                if 'class="col-result"' in cell:
                    cells[i] = '<td class="col-result">Inconclusive</td>'

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        if report.failed and (VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value) in getattr(report, "user_properties", ()):
            return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            if is_check(item):
                check_id = check_id_of(item)
                self.selected.add(check_id)
                doc = getattr(getattr(item, "obj", None), "__doc__", None)
                if doc and check_id not in self.docs:
                    self.docs[check_id] = " ".join(doc.split())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == USER_PROPERTY and isinstance(value, dict):
                record = value if "target_key" in value else model.finding_record(value)
                attached = self._attached.pop(id(value), None)
                self.collected.append(record)
                self.collected_at.append(attached[1] if attached is not None and attached[0] is value else None)
                if record["verdict"] in ("fail", "inconclusive", "waived"):
                    self.judged_nodeids.add(report.nodeid)
        if report.failed and report.nodeid not in self.failed_nodeids:
            self.failed_nodeids.append(report.nodeid)
        if report.failed and (VERDICT_PROPERTY, Verdict.INCONCLUSIVE.value) in report.user_properties:
            reasons = [v for k, v in report.user_properties if k == REASON_PROPERTY]
            self.inconclusive.append((report.nodeid, reasons[0] if reasons else report.longreprtext))
            if report.longrepr is not None and not isinstance(report.longrepr, (str, tuple)):
                self.crashes.append(report)  # a crash: its traceback is shown (pytest lists failures only)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.crashes:
            terminalreporter.section("kready: crashed checks (inconclusive)", sep="=", yellow=True)
            for report in self.crashes:
                terminalreporter.write_sep("_", report.head_line or report.nodeid, yellow=True)
                report.toterminal(terminalreporter._tw)
        if self.inconclusive:
            terminalreporter.section("kready: inconclusive (counted as failures)", sep="-", yellow=True)
            for nodeid, text in self.inconclusive:
                terminalreporter.line(f"{nodeid}: INCONCLUSIVE: {text}")
        if self.doc is None:
            return
        width = getattr(terminalreporter._tw, "fullwidth", 80)
        for title, lines in summary.render(self.doc, self.outputs, width):
            terminalreporter.section(title, sep="-")
            for text, markup in lines:
                terminalreporter.line(text, **markup)

    # --- end of the run ------------------------------------------------------------------------------------
    def document(self) -> dict[str, Any] | None:
        """The v1 document of the run (built once the session finishes; until then from what is known)."""
        return self.doc if self.doc is not None else self._build(None)

    def _build(self, session: pytest.Session | None) -> dict[str, Any]:
        # what the run learnt later is blanked too: each record is redacted again unless none of it is in it
        records = [dict(r) if at is not None and still_clean(r, at) else redact_finding(r)
                   for r, at in zip(self.collected, self.collected_at)]
        listing = waivers_mod.listing(self.waivers, records)
        by_source = {w["source"]: w for w in listing}
        for r in records:
            if r.get("waiver") and r["waiver"].get("source") in by_source:
                r["waiver"] = by_source[r["waiver"]["source"]]
        context = getattr(self.settings, "context", None)
        run = model.run_header(self.meta, started=self.started, finished=time.time(),
                               selected=self.selected | {r["check_id"] for r in records}, context=context)
        cmp = None
        if self.previous is not None:
            cmp = compare_mod.compare(self.previous, records, run,
                                      previous_path=str(getattr(self.settings, "compare_path", "") or ""))
        status = int(session.exitstatus) if session is not None else 0
        other = [n for n in self.failed_nodeids if n not in self.judged_nodeids]
        gate = gate_mod.decide(records, listing, pytest_status=status, fail_on=self.fail_on,
                               min_severity=self.min_severity, other_failures=other)
        doc = model.document(run, records, waivers=listing, compare=cmp, gate=gate)
        versions = getattr(self.settings, "upgrade_rehearsal", None)
        if versions is not None:  # the upgrade rehearsal: what changed between the phases
            from ..rehearsal_phases import changes_section

            doc["rehearsal"] = changes_section(records, versions)
        return doc

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Before pytest-html writes its page (trylast) and after the tests: the document, the exit status, the
        JSON and SARIF files."""
        if hasattr(self.config, "workerinput"):
            return
        self.doc = doc = self._build(session)
        if int(session.exitstatus) in (0, 1):
            session.exitstatus = pytest.ExitCode(doc["summary"]["gate"]["exit_status"])
        if self.json_path is not None:
            self._write(self.json_path, doc)
            self.outputs.append((f"{len(doc['findings'])} findings (JSON)", str(self.json_path)))
        if self.sarif_path is not None:
            log = sarif.build(doc, apply_paths=list(getattr(self.settings, "apply", ()) or ()),
                              base=Path(self.config.invocation_params.dir), docs=self.docs)
            self._write(self.sarif_path, log)
            self.outputs.append(("SARIF", str(self.sarif_path)))

    def rewrite_junit(self) -> None:
        """After pytest's junitxml wrote its file (``_Late``): one testcase per check x target."""
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if self.doc is None or not xmlpath or hasattr(self.config, "workerinput"):
            return
        path = Path(xmlpath).expanduser()
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        if not path.is_file():
            return
        try:
            made = junit_mod.rewrite(path, self.doc["findings"], prefix=getattr(self.config.option, "junitprefix", None),
                                     whole={r.nodeid for r in self.crashes} | {
                                         f["nodeid"] for f in self.doc["findings"]
                                         if str(f.get("summary") or "").startswith("the check crashed")})
        except Exception as e:  # noqa: BLE001 - pytest's file stays as it was; the run says why
            self.outputs.append((f"JUnit (not split per target: {type(e).__name__}: {e})", str(path)))
            return
        self.outputs.append((f"JUnit ({made} check x target testcases)", str(path)))

    @staticmethod
    def _write(path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)


class _Late:
    """The part of the reporter that runs after pytest's own junitxml has written its file."""

    def __init__(self, reporter: FindingsReporter):
        self.reporter = reporter

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.reporter.rewrite_junit()
        html = self.reporter.config.getoption("htmlpath", None)
        if html and not hasattr(self.reporter.config, "workerinput"):
            self.reporter.outputs.append(("HTML", str(Path(html).expanduser().resolve())))


def line(record: dict) -> str:
    """``FAIL etcd.encryption-at-rest [cluster]: ...``: one finding as the test's failure text shows it."""
    return f"{record['verdict'].upper()} {record['check_id']} [{record['target_key']}]: {record['summary']}".rstrip(": ")
