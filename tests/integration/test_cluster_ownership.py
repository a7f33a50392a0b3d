"""Who made a local cluster decides what a run may do with it (pytest_kready.ownership), with real
`pytest --kready --kready-provider=local` subprocesses:

* a run that owns its cluster and is killed with SIGKILL (a CI timeout, an OOM kill) leaves the whole cluster
  running; the next run on that slot must not attach to it: it tears it down (the killed run's objects go with
  it), starts its own and removes that at its end, so `kready-local status` shows nothing afterwards (slot 4,
  which no other test uses);
* on a cluster the run only attached to (the harness's baseline cluster, slot 0) the etcd restore drill is
  not-applicable, saying why, unless --kready-allow-etcd-restore is given (the drill itself on an attached
  cluster: test_suite_resilience.py::test_etcd_snapshot_restore_on_own_cluster)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import _bin_dir, host_state

pytestmark = pytest.mark.integration

KILL_SLOT = 4
KILL_AFTER = 40.0  # seconds into the first run
NOTHING = "nothing of the local cluster is on this host"

HOLD = """
import json, os, time
from pathlib import Path


def test_hold(kready_cluster, kready_namespace):
    ns = kready_namespace(name_prefix="killed")
    record = kready_cluster.provider.ownership
    Path(os.environ["KREADY_TEST_MARK"]).write_text(json.dumps({
        "namespace": ns, "ephemeral": kready_cluster.capabilities.ephemeral, "maker": record.maker,
        "pid": record.pid, "run_id": kready_cluster.run_id}))
    time.sleep(900)  # killed long before this ends
"""

CHECK = """
import os


def test_fresh_cluster(kready_cluster):
    names = {n["metadata"]["name"] for n in kready_cluster.api_client().raw("GET", "/api/v1/namespaces")["items"]}
    assert os.environ["KREADY_TEST_KILLED_NS"] not in names, "attached to the killed run's cluster"
    record = kready_cluster.provider.ownership
    assert kready_cluster.capabilities.ephemeral and not kready_cluster.provider.attached
    assert (record.maker, record.run_id, record.pid) == ("run", kready_cluster.run_id, os.getpid())
"""


def _pytest_argv(test_file: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", str(test_file), "--kready", "--kready-provider=local",
            "-p", "no:cacheprovider", "-q", "-s", f"--rootdir={root}"]


def _status() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_kready.local.cli", "status", "--slot", str(KILL_SLOT)],
                          capture_output=True, text=True, timeout=60, env=_env({}))


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KREADY_"))}
    return {**env, "KREADY_LOCAL_SLOT": str(KILL_SLOT), "KREADY_LOCAL_BIN_DIR": str(_bin_dir()),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **extra}


def _wait(what: str, condition, timeout: float, *, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)


def test_a_killed_runs_cluster_is_torn_down_by_the_next_run(tmp_path):
    from pytest_kready import ownership
    from pytest_kready.local.cluster import LocalCluster
    from pytest_kready.local.layout import Layout

    cluster = LocalCluster(_bin_dir(), layout=Layout(slot=KILL_SLOT))
    assert _status().stdout.strip() == NOTHING, f"slot {KILL_SLOT} is not free"
    before = host_state()
    (tmp_path / "test_hold.py").write_text(HOLD)
    (tmp_path / "test_check.py").write_text(CHECK)
    mark = tmp_path / "mark.json"
    log = (tmp_path / "first-run.log").open("wb")
    first = subprocess.Popen(_pytest_argv(tmp_path / "test_hold.py", tmp_path), cwd=tmp_path, stdout=log,
                             stderr=subprocess.STDOUT, env=_env({"KREADY_TEST_MARK": str(mark)}),
                             start_new_session=True)
    try:
        started = time.monotonic()
        # the run is in its test (its cluster up, a namespace of its own made) and at least 40 s old
        _wait("first run holding its cluster", lambda: mark.exists() or first.poll() is not None, timeout=400)
        assert first.poll() is None, (tmp_path / "first-run.log").read_text()[-3000:]
        time.sleep(max(0.0, KILL_AFTER - (time.monotonic() - started)))
        held = json.loads(mark.read_text())
        assert held["ephemeral"] and held["maker"] == "run" and held["pid"] == first.pid
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        killed_at = time.monotonic() - started

        left = cluster.leftovers()
        assert any(x.startswith("process") for x in left) and any("network namespace" in x for x in left), left
        record = cluster.ownership()
        assert (record.maker, record.pid, record.run_id, record.ready) == ("run", first.pid, held["run_id"], True)
        assert record.stale() and cluster.running_profile() == "baseline"  # still serving, its maker gone
        status = _status().stdout
        assert f"started by the pytest run {held['run_id']} (pid {first.pid}) (gone: the next run removes it)" in status

        second = subprocess.run(_pytest_argv(tmp_path / "test_check.py", tmp_path), cwd=tmp_path,
                                capture_output=True, text=True, timeout=600,
                                env=_env({"KREADY_TEST_KILLED_NS": held["namespace"]}))
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
        assert "1 passed" in second.stdout

        status = _status()
        assert (status.returncode, status.stdout.strip()) == (0, NOTHING), status.stdout + status.stderr
        assert cluster.ownership() is None and not cluster.owner_file.exists()
        print(f"killed after {killed_at:.0f}s; the second run tore the cluster down and removed its own")
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        log.close()
        if cluster.leftovers():
            cluster.down()
    assert cluster.leftovers() == []
    after = _slot_state(host_state(), cluster.layout)
    assert after == _slot_state(before, cluster.layout), "the host keeps something of slot 4"
    assert ownership.read(cluster.owner_file) is None


def _slot_state(state: dict[str, str], layout) -> dict[str, list[str]]:
    """The lines of the host's network state (interfaces, routes, iptables rules, namespaces) that name this slot's
    namespace, interfaces or address ranges; other work on the host may change the rest meanwhile."""
    import ipaddress

    words = (layout.netns, layout.host_if, layout.node_if, layout.cni_network)
    nets = [ipaddress.ip_network(n) for n in (layout.pod_cidr, layout.service_cidr, layout.node_network)]

    def ours(line: str) -> bool:
        if any(w in line.split() or f"{w}@" in line or f" {w}:" in line for w in words):
            return True
        for token in line.replace("/", " /").split():
            try:
                if any(ipaddress.ip_address(token) in n for n in nets):
                    return True
            except ValueError:
                continue
        return False

    return {key: sorted(line for line in text.splitlines() if ours(line)) for key, text in state.items()}


def test_no_etcd_restore_drill_on_an_attached_cluster_unless_asked(local_cluster, tmp_path):
    from pytest_kready.resources import suites_dir

    out = tmp_path / "findings.json"
    env = _env({"KREADY_LOCAL_SLOT": str(local_cluster.layout.slot)})
    proc = subprocess.run([sys.executable, "-m", "pytest", str(suites_dir() / "test_etcd.py"), "--kready",
                           "--kready-provider=local", "--kready-mode=disruptive", f"--kready-json={out}",
                           "-p", "no:cacheprovider", "-q", f"--rootdir={tmp_path}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    (finding,) = [f for f in json.loads(out.read_text())["findings"] if f["check_id"] == "etcd.snapshot-restore"]
    assert finding["verdict"] == "not-applicable", finding
    assert finding["summary"] == (
        f"attached to a local cluster {_made(local_cluster)}; pass --kready-allow-etcd-restore to run "
        "the restore drill on it")
    assert local_cluster.running_profile() == "baseline"  # left running, untouched


def _made(cluster) -> str:
    from pytest_kready import ownership

    record = cluster.ownership()
    if record is not None and record.kept:
        return f"kept by {record.describe()}"
    if record is None or record.maker == ownership.MANUAL:  # an unrecorded cluster counts as started by hand
        return "started by kready-local up"
    return f"started by {record.describe()}"
