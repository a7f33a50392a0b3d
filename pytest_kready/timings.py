"""Where a run's time goes: ``--kready-timings=PATH`` writes one JSON file (schema ``pytest-kready/timings/v1``)
that the benchmark scripts (``tools/bench_run.py``) turn into a per-check table.

It holds:

* ``tests``: pytest's own durations of every test (``setup_s``, ``call_s``, ``teardown_s``, as ``--durations``
  shows them), its outcome, check id, and when it started and stopped (epoch seconds);
* ``phases``: named intervals, each with the test and test phase (``setup``/``call``/``teardown``) it fell in:

  - the session's: ``cluster.create`` (provider: make or attach), ``cluster.create.<step>`` (the provider's own
    steps, when it reports them: the local provider's API server, images, node Ready, add-ons), ``preflight``,
    ``sweep``, ``prepare``, ``apply``, ``check-namespaces``, ``cleanup`` (with ``cluster.destroy`` or
    ``cleanup.objects`` inside it);
  - ``fixture.setup`` and ``fixture.teardown`` of every fixture taking at least ``FIXTURE_MIN_S`` (``fixture`` and
    ``scope`` say which): a check's setup (namespaces, pods, labs) as opposed to its probing (the ``call``);
  - ``wait``: every deadline wait (``pytest_kready.waits.wait_for``; ``what`` says for what) — polling time;
  - ``reach.observe``: every reachability observation (one matrix, all its rounds);

* ``totals``: per phase name, the summed seconds and the count.

Any code may mark a phase with ``with timings.phase("name", key=value):``; without the option nothing is recorded
and ``phase`` costs nothing. Under pytest-xdist the workers record and attach what they saw to their test reports
(``report.kready_timings``); the controller writes the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

SCHEMA = "pytest-kready/timings/v1"
REPORT_ATTR = "kready_timings"  # on a TestReport: {"check_id": ..., "phases": [...]} (travels with xdist reports)
FIXTURE_MIN_S = 0.001  # fixtures quicker than this are not listed (pytest's own, plain values)

_tags = threading.local()  # attributes every record made in this thread carries (``tagged``)
_active: list[Recorder] = []  # the recorder of the running session (a stack: pytester runs nest sessions)


class Recorder:
    """Collects phase records until they are drained (into the report of the test phase they fell in)."""

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self.origin = clock()
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self.where: tuple[str | None, str | None] = (None, None)  # (nodeid, setup|call|teardown) now running

    def now(self) -> float:
        """Seconds since the recorder was made."""
        return self._clock() - self.origin

    def add(self, name: str, seconds: float, *, start: float | None = None, **attrs: Any) -> dict[str, Any]:
        nodeid, when = self.where
        record = {"name": name, "seconds": round(max(seconds, 0.0), 4),
                  "start_s": None if start is None else round(start, 4), "nodeid": nodeid, "when": when}
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:
            record["worker"] = worker
        record.update(getattr(_tags, "attrs", None) or {})
        record.update(attrs)
        with self._lock:
            self._pending.append(record)
        return record

    @contextlib.contextmanager
    def phase(self, name: str, **attrs: Any) -> Iterator[None]:
        start = self.now()
        try:
            yield
        except BaseException as e:
            self.add(name, self.now() - start, start=start, error=type(e).__name__, **attrs)
            raise
        self.add(name, self.now() - start, start=start, **attrs)

    def steps(self, prefix: str, steps: Mapping[str, float] | None) -> None:
        """Durations something measured itself (``{"apiserver": 3.1, ...}``), as ``<prefix>.<step>`` records."""
        for step, seconds in (steps or {}).items():
            if isinstance(seconds, (int, float)):
                self.add(f"{prefix}.{step}", float(seconds))

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._pending = self._pending, []
        return out


def active() -> Recorder | None:
    return _active[-1] if _active else None


@contextlib.contextmanager
def phase(name: str, **attrs: Any) -> Iterator[None]:
    """Record how long the block takes as phase ``name`` (with ``attrs``) when ``--kready-timings`` is on."""
    recorder = active()
    if recorder is None:
        yield
        return
    with recorder.phase(name, **attrs):
        yield


@contextlib.contextmanager
def tagged(**attrs: Any) -> Iterator[None]:
    """Every record made in this thread inside the block carries ``attrs`` (e.g. ``early="network"``: work done in
    the background while other tests ran)."""
    before = getattr(_tags, "attrs", None)
    _tags.attrs = {**(before or {}), **attrs}
    try:
        yield
    finally:
        _tags.attrs = before


def steps(prefix: str, values: Mapping[str, float] | None) -> None:
    recorder = active()
    if recorder is not None:
        recorder.steps(prefix, values)


def totals(phases: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for p in phases:
        t = out.setdefault(p["name"], {"seconds": 0.0, "count": 0})
        t["seconds"] = round(t["seconds"] + float(p.get("seconds") or 0.0), 4)
        t["count"] += 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["seconds"]))


def _check_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("kready_check")
    return str(marker.args[0]) if marker and marker.args else None


class TimingsPlugin:
    """Registered by plugin.py when ``--kready-timings`` is given."""

    def __init__(self, path: Path, meta: dict[str, Any], *, recorder: Recorder | None = None):
        self.path = path
        self.meta = meta  # the session's (provider, server version filled in as the run learns them)
        self.recorder = recorder or Recorder()
        self.started = time.time()
        self.tests: dict[str, dict[str, Any]] = {}
        self.phases: list[dict[str, Any]] = []
        self._tearing: dict[Any, float] = {}  # fixturedef -> when its teardown began
        self.document: dict[str, Any] | None = None

    # --- the recorder is active for the session -------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        _active.append(self.recorder)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.recorder in _active:
            _active.remove(self.recorder)

    # --- where we are ---------------------------------------------------------------------------------------
    def _in(self, item: pytest.Item, when: str):
        self.recorder.where = (item.nodeid, when)
        try:
            return (yield)
        finally:
            self.recorder.where = (None, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        return (yield from self._in(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        return (yield from self._in(item, "call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem):
        return (yield from self._in(item, "teardown"))

    # --- fixtures -------------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        start = self.recorder.now()
        try:
            return (yield)
        finally:
            seconds = self.recorder.now() - start
            if seconds >= FIXTURE_MIN_S:
                self.recorder.add("fixture.setup", seconds, start=start, fixture=fixturedef.argname,
                                  scope=fixturedef.scope)
            # finalizers run last-added first: this one runs before the fixture's own teardown code
            fixturedef.addfinalizer(lambda: self._tearing.__setitem__(fixturedef, self.recorder.now()))

    def pytest_fixture_post_finalizer(self, fixturedef, request) -> None:
        start = self._tearing.pop(fixturedef, None)
        if start is None:
            return
        seconds = self.recorder.now() - start
        if seconds >= FIXTURE_MIN_S:
            self.recorder.add("fixture.teardown", seconds, start=start, fixture=fixturedef.argname,
                              scope=fixturedef.scope)

    # --- reports carry what their phase recorded (also from xdist workers) ----------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        setattr(report, REPORT_ATTR, {"check_id": _check_id(item), "phases": self.recorder.drain()})
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None) or {}
        entry = self.tests.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "check_id": data.get("check_id"), "outcome": None,
            "setup_s": 0.0, "call_s": 0.0, "teardown_s": 0.0, "started_at": None, "stopped_at": None})
        entry[f"{report.when}_s"] = round(float(report.duration or 0.0), 4)
        start, stop = getattr(report, "start", None), getattr(report, "stop", None)
        if start is not None and entry["started_at"] is None:
            entry["started_at"] = round(start, 3)
        if stop is not None:
            entry["stopped_at"] = round(stop, 3)
        if report.when == "call" or (report.when == "setup" and not report.passed) or report.failed:
            entry["outcome"] = report.outcome
        self.phases.extend(data.get("phases") or [])

    # --- the file -------------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session):
        result = yield  # after every other sessionfinish (a session fixture torn down late is in)
        if hasattr(session.config, "workerinput"):
            return result
        self.phases.extend(self.recorder.drain())
        self.document = self.build()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.document, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
        return result

    def build(self) -> dict[str, Any]:
        finished = time.time()
        run = {k: self.meta.get(k) for k in ("run_id", "provider", "profile", "mode", "server_version")}
        run.update(started_at=round(self.started, 3), finished_at=round(finished, 3),
                   duration_s=round(finished - self.started, 3))
        return {"schema": SCHEMA, "run": run, "tests": list(self.tests.values()), "phases": self.phases,
                "totals": totals(self.phases)}
