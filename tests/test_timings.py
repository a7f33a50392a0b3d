"""--kready-timings (pytest_kready/timings.py): the recorder, and the file a run writes through the plugin against
the fake API server — pytest's durations per test, the session's phases (create, preflight, sweep, cleanup), each
fixture's setup and teardown in the test phase it fell in, waits by what; nothing recorded without the option."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_plugin_fakecluster import fake, run  # noqa: F401  (the fake API server fixture)

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready import timings
from pytest_kready.settings import Settings


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# --- the recorder ---------------------------------------------------------------------------------------------


def test_phase_records_name_seconds_start_place_and_attributes():
    clock = Clock()
    rec = timings.Recorder(clock=clock)
    clock.t = 101.0
    rec.where = ("t.py::test_a", "call")
    with rec.phase("apply", files=2):
        clock.t = 103.5
    assert rec.drain() == [{"name": "apply", "seconds": 2.5, "start_s": 1.0, "nodeid": "t.py::test_a",
                            "when": "call", "files": 2}]
    assert rec.drain() == []


def test_a_phase_that_raises_is_recorded_with_the_error_and_the_error_goes_on():
    clock = Clock()
    rec = timings.Recorder(clock=clock)
    with pytest.raises(KeyError), rec.phase("sweep"):
        clock.t += 4
        raise KeyError("x")
    (record,) = rec.drain()
    assert (record["name"], record["seconds"], record["error"]) == ("sweep", 4.0, "KeyError")


def test_steps_measured_elsewhere_become_prefixed_records_without_a_start():
    rec = timings.Recorder()
    rec.steps("cluster.create", {"apiserver": 3.25, "node-ready": 1.5, "note": "x"})
    assert [(r["name"], r["seconds"], r["start_s"]) for r in rec.drain()] == [
        ("cluster.create.apiserver", 3.25, None), ("cluster.create.node-ready", 1.5, None)]


def test_module_phase_is_a_no_op_without_an_active_recorder_and_records_with_one():
    assert timings.active() is None
    with timings.phase("wait", what="nothing"):
        pass
    timings.steps("x", {"a": 1.0})
    rec = timings.Recorder()
    timings._active.append(rec)
    try:
        with timings.phase("wait", what="pods ready"):
            pass
        timings.steps("x", {"a": 1.0})
    finally:
        timings._active.remove(rec)
    assert [(r["name"], r.get("what")) for r in rec.drain()] == [("wait", "pods ready"), ("x.a", None)]


def test_wait_for_is_recorded_as_a_wait_naming_what_it_waited_for():
    from pytest_kready.waits import WaitTimeout, wait_for

    rec = timings.Recorder()
    timings._active.append(rec)
    try:
        assert wait_for(lambda: 7, timeout=5, what="seven") == 7
        with pytest.raises(WaitTimeout):
            wait_for(lambda: False, timeout=0.05, interval=0.01, what="never")
    finally:
        timings._active.remove(rec)
    records = rec.drain()
    assert [(r["name"], r["what"]) for r in records] == [("wait", "seven"), ("wait", "never")]
    assert records[1]["seconds"] >= 0.05 and records[1]["error"] == "RetryError"


def test_totals_sum_per_name_largest_first():
    phases = [{"name": "wait", "seconds": 1.0}, {"name": "apply", "seconds": 3.0}, {"name": "wait", "seconds": 2.5}]
    assert timings.totals(phases) == {"apply": {"seconds": 3.0, "count": 1}, "wait": {"seconds": 3.5, "count": 2}}


def test_the_local_provider_reports_its_start_steps_only_for_a_cluster_it_started():
    from pytest_kready.local.layout import Layout
    from pytest_kready.providers.local import LocalProvider

    p = LocalProvider(Settings(enabled=True, run_id="12030626-a1b2c3", local_bin_dir=Path("/nonexistent")),
                      layout=Layout(slot=7))
    p.cluster.timings.update({"apiserver": 2.0, "up": 9.0})
    assert p.timings == {}  # nothing started yet
    p._started = True
    assert p.timings == {"apiserver": 2.0, "up": 9.0}
    p.timings["up"] = 0  # a copy
    assert p.cluster.timings["up"] == 9.0
    p.attached = True
    assert p.timings == {}


# --- through the plugin -------------------------------------------------------------------------------------------

CHECKS = """
import time
import pytest
from pytest_kready.waits import wait_for


@pytest.fixture(scope="module")
def lab(kready_cluster):
    time.sleep(0.3)
    yield "lab"
    time.sleep(0.2)


@pytest.mark.kready_check("demo.first")
def test_first(lab, kready_namespace, kready_finding):
    kready_namespace()
    time.sleep(0.25)
    kready_finding.passed("fine")


@pytest.mark.kready_check("demo.second")
def test_second(lab, kready_finding):
    wait_for(lambda: True, timeout=5, what="demo condition")
    kready_finding.passed("fine")


def test_plain():
    pass
"""


def _by(phases, name, **match):
    return [p for p in phases if p["name"] == name and all(p.get(k) == v for k, v in match.items())]


def test_the_timings_file_holds_tests_session_phases_fixtures_and_waits(pytester, fake):  # noqa: F811
    pytester.makepyfile(test_checks=CHECKS)
    out = pytester.path / "out" / "timings.json"
    result = run(pytester, fake, "--kready-mode=standard", f"--kready-timings={out}")
    result.assert_outcomes(passed=3)
    doc = json.loads(out.read_text())
    assert doc["schema"] == "pytest-kready/timings/v1"
    assert doc["run"]["provider"] == "kubeconfig" and doc["run"]["mode"] == "standard"
    assert doc["run"]["server_version"] == "v1.36.2-fake" and doc["run"]["duration_s"] > 0.5

    tests = {t["nodeid"].split("::")[-1]: t for t in doc["tests"]}
    assert list(tests) == ["test_first", "test_second", "test_plain"]
    first, second = tests["test_first"], tests["test_second"]
    assert (first["check_id"], second["check_id"], tests["test_plain"]["check_id"]) == ("demo.first",
                                                                                        "demo.second", None)
    assert first["outcome"] == "passed" and first["call_s"] >= 0.25 and first["setup_s"] >= 0.3
    plain = tests["test_plain"]
    assert plain["teardown_s"] >= 0.2  # the module fixture's teardown falls in the last test of the module
    assert first["started_at"] <= first["stopped_at"] <= second["started_at"]

    phases = doc["phases"]
    first_id, second_id = first["nodeid"], second["nodeid"]
    for name in ("cluster.create", "preflight", "sweep", "check-namespaces"):
        (p,) = _by(phases, name)
        assert (p["nodeid"], p["when"]) == (first_id, "setup"), p  # the cluster is made for the first test
    (setup,) = _by(phases, "fixture.setup", fixture="lab")
    assert (setup["scope"], setup["nodeid"], setup["when"]) == ("module", first_id, "setup")
    assert setup["seconds"] >= 0.3
    (teardown,) = _by(phases, "fixture.teardown", fixture="lab")
    assert (teardown["nodeid"], teardown["when"]) == (plain["nodeid"], "teardown")
    assert 0.2 <= teardown["seconds"] < 1
    assert _by(phases, "fixture.setup", fixture="kready_cluster", scope="session")
    (ns_teardown,) = _by(phases, "fixture.teardown", fixture="kready_namespace")
    assert (ns_teardown["nodeid"], ns_teardown["when"]) == (first_id, "teardown")
    (wait,) = _by(phases, "wait", what="demo condition")
    assert (wait["nodeid"], wait["when"]) == (second_id, "call")
    (cleanup,) = _by(phases, "cleanup")  # the session's end: in the last test's teardown
    assert (cleanup["nodeid"], cleanup["when"]) == (plain["nodeid"], "teardown")
    assert _by(phases, "cleanup.objects")
    assert doc["totals"]["fixture.setup"]["seconds"] >= 0.3


def test_reports_carry_the_records_through_serialization_for_xdist(pytester, fake):  # noqa: F811
    from _pytest.reports import TestReport

    pytester.makepyfile(test_checks=CHECKS)
    out = pytester.path / "timings.json"
    reprec = pytester.inline_run(str(pytester.path), "--kready", f"--kready-kubeconfig={fake.kubeconfig}",
                                 "--kready-mode=standard", "-p", "no:cacheprovider", f"--kready-timings={out}")
    setup = next(r for r in reprec.getreports("pytest_runtest_logreport")
                 if r.when == "setup" and r.nodeid.endswith("test_first"))
    again = TestReport._from_json(setup._to_json())
    data = getattr(again, timings.REPORT_ATTR)
    assert data["check_id"] == "demo.first"
    assert {"cluster.create", "preflight", "fixture.setup"} <= {p["name"] for p in data["phases"]}


def test_without_the_option_nothing_is_recorded_or_written(pytester, fake):  # noqa: F811
    pytester.makepyfile("""
        from pytest_kready import timings

        def test_inactive(kready_cluster, pytestconfig):
            assert timings.active() is None
            assert not pytestconfig.pluginmanager.has_plugin("kready-timings")
    """)
    result = run(pytester, fake, "--kready-mode=standard")
    result.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("*timings*.json"))
    assert timings.active() is None  # and the recorder of the runs above is gone


@pytest.mark.parametrize(("args", "message"), [
    (["--kready-timings={d}"], "--kready-timings=* is a directory; give a file name"),
    (["--kready-timings={d}/x.json", "--kready-json={d}/x.json"],
     "*--kready-json and --kready-timings name the same file*"),
])
def test_bad_timings_paths_are_one_line_usage_errors(pytester, args, message):
    d = str(pytester.path)
    result = pytester.runpytest("--kready", "-p", "no:cacheprovider", *[a.format(d=d) for a in args])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_the_file_is_written_by_the_controller_only(tmp_path):
    from types import SimpleNamespace

    worker = SimpleNamespace(config=SimpleNamespace(workerinput={"workerid": "gw0"}))
    plugin = timings.TimingsPlugin(tmp_path / "t.json", {"run_id": "r"})
    gen = plugin.pytest_sessionfinish(worker)
    next(gen)
    with pytest.raises(StopIteration):
        gen.send(None)
    assert not os.listdir(tmp_path)
