"""The benchmark scripts' reading of a run (tools/bench_run.py): the timings file a real plugin run writes (fake
API server) gives the time to the last verdict, the session's phases and the per-check table; statistics of
repeated runs (tools/bench_common.py)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from test_plugin_fakecluster import fake, run  # noqa: F401  (the fake API server fixture)

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def tool(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module(name)


def test_stats_are_median_min_max_of_the_values_given():
    common = tool("bench_common")
    assert common.stats([3.0, 1.0, 2.5, None]) == {"median": 2.5, "min": 1.0, "max": 3.0, "n": 3}
    assert common.stats([]) == {"median": None, "min": None, "max": None, "n": 0}
    assert common.stats_line("wall_s", [2.0, 4.0]) == "wall_s: median 3.00 s (min 2.00, max 4.00, n=2)"


CHECKS = """
import time
import pytest
from pytest_kready.waits import wait_for


@pytest.fixture(scope="module")
def lab(kready_cluster):
    time.sleep(0.2)
    yield


@pytest.mark.kready_check("demo.slow")
def test_slow(lab, kready_finding):
    time.sleep(0.3)
    kready_finding.passed("fine")


@pytest.mark.kready_check("demo.waits")
def test_waits(kready_finding):
    wait_for(lambda: time.sleep(0.1) or True, timeout=5, what="pods in kr-x-12030926-014f51-3 ready")
    kready_finding.passed("fine")
"""


def test_the_bench_reads_a_real_timings_file(pytester, fake):  # noqa: F811
    bench = tool("bench_run")
    pytester.makepyfile(test_checks=CHECKS)
    out = pytester.path / "timings.json"
    t0 = time.time()
    run(pytester, fake, "--kready-mode=standard", f"--kready-timings={out}").assert_outcomes(passed=2)
    doc = json.loads(out.read_text())

    m = bench.measure(doc, t0)
    assert m["tests"] == 2 and m["in_run_s"] > 0.5
    assert 0.6 <= m["to_last_finding_s"] <= time.time() - t0
    assert set(m["phases"]) >= {"cluster.create", "preflight", "sweep", "cleanup"}
    assert {"collection_s", "between_phases_s", "between_tests_s", "after_tests_s"} <= set(m)
    assert m["tests_s"] >= 0.6 and m["tests_s"] + m["between_phases_s"] <= m["in_run_s"]

    rows = bench.per_test(doc)
    slow = next(r for n, r in rows.items() if n.endswith("test_slow"))
    waits = next(r for n, r in rows.items() if n.endswith("test_waits"))
    assert slow["check"] == "demo.slow" and slow["call"] >= 0.3 and slow["setup"] >= 0.2
    assert slow["parts"]["lab setup"] >= 0.2 and slow["session"] > 0
    assert waits["wait"] >= 0.1 and waits["parts"]["wait: pods in kr-x ready"] >= 0.1  # run ids left out

    lines = bench.table([doc, doc], top=5)
    assert lines[0].startswith("per check (median of 2 run(s)")
    assert any("test_checks::test_slow" in line and "demo.slow" in line for line in lines)
    assert any(line.startswith("plugin phases") and "cluster.create" in line for line in lines)
    assert any(line.startswith("outside the tests") and "between phases" in line for line in lines)
    assert any(line.startswith("waits by kind") and "pods in kr-x ready" in line for line in lines)


def test_the_team_directory_is_one_namespace_and_what_runs_in_it(tmp_path):
    bench = tool("bench_run")
    team = bench.team_dir(tmp_path, "bench-team")
    kinds = [json.loads(p.read_text())["kind"] for p in sorted(team.iterdir())]
    assert kinds == ["Namespace", "Deployment", "Service", "NetworkPolicy"]
    assert all(json.loads(p.read_text())["metadata"].get("namespace", "bench-team") == "bench-team"
               for p in team.iterdir())


def test_compare_findings_tells_a_real_change_from_the_names_a_run_generates(tmp_path, capsys, monkeypatch):
    compare = tool("compare_findings")

    def finding(ns, pod, summary, verdict="fail"):
        return {"check_id": "pod-security.root", "target_namespace": ns, "verdict": verdict, "summary": summary,
                "evidence": {"attack": "runAsUser-0", "pod": pod}, "repro": f"kubectl create -n {ns} ({pod})"}

    def write(name, *findings):
        path = tmp_path / name
        path.write_text(json.dumps({"findings": list(findings)}))
        return str(path)

    before = write("a.json", finding("bench-ro-1a2b3-000", "kready-runasuser-0-1f2e3d", "admitted"))
    same = write("b.json", finding("bench-ro-9f8e7-000", "kready-runasuser-0-a0b1c2", "admitted"))
    changed = write("c.json", finding("bench-ro-9f8e7-000", "kready-runasuser-0-a0b1c2", "admitted as root"))

    def differing(*args):
        monkeypatch.setattr(sys, "argv", ["compare_findings.py", *args])
        compare.main()
        first = capsys.readouterr().out.splitlines()[0]
        return int(first.split("differing ")[1].split()[0])

    assert differing(before, same) == 0 and differing(before, same, "--content") == 0
    assert differing(before, changed) == 0 and differing(before, changed, "--content") == 1
