"""The local provider's pieces that need no cluster: address plan, not-root and missing-binaries errors, the
binaries directory per version, the ownership record, and what the provider does with the cluster it finds on
its slot (start, attach, tear down, refuse) — with the cluster's start and stop replaced by fakes."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

from pytest_kready import ownership
from pytest_kready.errors import NotRootError, ProviderError
from pytest_kready.local import bins, cli, components, runtime
from pytest_kready.local import host as host_mod
from pytest_kready.local.host import check_host
from pytest_kready.local.layout import Layout
from pytest_kready.ownership import Ownership
from pytest_kready.providers.base import CONTROL_PLANE_EXEC, EPHEMERAL, ETCD, ETCD_RESTORE
from pytest_kready.providers.local import LocalProvider
from pytest_kready.settings import Settings


def test_not_root_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["up", "--slot", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs root" in err[0]
    with pytest.raises(NotRootError, match="needs root"):
        check_host(bins.bin_dir())


def test_missing_binaries_name_the_directory_and_the_fix(tmp_path):
    (tmp_path / "kube-apiserver").write_text("")
    with pytest.raises(ProviderError) as err:
        check_host(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "kubelet" in msg and "KREADY_LOCAL_BIN_DIR" in msg


@pytest.mark.parametrize("slot", range(0, 10))
def test_slots_never_overlap_and_stay_private(slot):
    lay = Layout(slot=slot)
    nets = [ipaddress.ip_network(n) for n in (lay.node_network, lay.pod_cidr, lay.service_cidr)]
    assert all(n.is_private for n in nets)
    for other in range(10):
        if other == slot:
            continue
        o = Layout(slot=other)
        for a in nets:
            for b in (o.node_network, o.pod_cidr, o.service_cidr):
                assert not a.overlaps(ipaddress.ip_network(b))
    assert ipaddress.ip_address(lay.dns_ip) in nets[2] and ipaddress.ip_address(lay.node_ip) in nets[0]
    assert len(lay.host_if) <= 15 and len(lay.node_if) <= 15


def test_slot_zero_uses_kinds_ranges():
    lay = Layout()
    assert (lay.name, lay.pod_cidr, lay.service_cidr, lay.dns_ip) == ("kready", "10.244.0.0/16", "10.96.0.0/16", "10.96.0.10")
    with pytest.raises(ValueError):
        Layout(slot=10)


# --- the binaries directory, one per Kubernetes version ---------------------------------------------------------


def test_bin_dir_per_version_and_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path))
    monkeypatch.delenv("KREADY_LOCAL_BIN_DIR", raising=False)
    assert bins.bin_dir() == tmp_path / "local" / f"k8s-{bins.K8S_VERSION}" / "bin"
    assert bins.bin_dir("v1.35.0") == tmp_path / "local" / "k8s-v1.35.0" / "bin"
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(tmp_path / "mine"))
    assert bins.bin_dir() == tmp_path / "mine"  # the override names the binaries to use
    assert bins.bin_dir("v1.35.0") == tmp_path / "local" / "k8s-v1.35.0" / "bin"  # a named version: the cache's
    with pytest.raises(ValueError, match="vMAJOR.MINOR.PATCH"):
        bins.bin_dir("1.35")


def test_installed_versions_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path))
    for v in ("v1.36.2", "v1.9.0", "v1.35.1"):
        (tmp_path / "local" / f"k8s-{v}" / "bin").mkdir(parents=True)
        (tmp_path / "local" / f"k8s-{v}" / "bin" / "kube-apiserver").write_text("")
    (tmp_path / "local" / "k8s-v1.37.0" / "bin").mkdir(parents=True)  # nothing built there
    assert bins.installed_versions() == ["v1.9.0", "v1.35.1", "v1.36.2"]


def test_bins_main_prints_the_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path))
    monkeypatch.delenv("KREADY_LOCAL_BIN_DIR", raising=False)
    assert bins.main(["v1.35.0"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "local" / "k8s-v1.35.0" / "bin")
    assert bins.main(["--x"]) == 2


# --- the ownership record --------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_record_round_trip_and_atomic_write(tmp_path):
    rec = Ownership.this_process(ownership.RUN, "local", "kready4", run_id="12030626-a1b2c3")
    path = rec.write(tmp_path / "state" / "owner.json")
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["maker"] == "run" and data["pid"] == os.getpid()
    assert data["pid_start"] == ownership.process_start(os.getpid()) and data["boot_id"] == ownership.boot_id()
    assert ownership.read(path) == rec
    assert [p.name for p in path.parent.iterdir()] == ["owner.json"]  # no temporary file left
    path.write_text("{not json")
    assert ownership.read(path) is None and ownership.read(tmp_path / "missing.json") is None
    with pytest.raises(ValueError):
        Ownership(maker="somebody", provider="local", cluster="x")


def test_a_run_record_is_stale_once_its_process_is_gone():
    mine = Ownership.this_process(ownership.RUN, "local", "kready4", run_id="r1")
    assert mine.maker_alive() and mine.is_mine() and not mine.stale() and mine.owned_by_live_run()
    dead = mine.replace(pid=_dead_pid())
    assert not dead.maker_alive() and dead.stale() and not dead.owned_by_live_run()
    reused = mine.replace(pid_start=mine.pid_start - 1)  # same PID, another process: not the maker
    assert not reused.maker_alive() and reused.stale()
    rebooted = mine.replace(boot_id="00000000-0000-0000-0000-000000000000")
    assert rebooted.stale()
    harness = mine.replace(maker=ownership.HARNESS)
    assert harness.held_by_live_process() and not harness.owned_by_live_run() and not harness.stale()
    assert harness.replace(pid=_dead_pid()).stale()


def test_manual_and_kept_clusters_are_the_users():
    manual = Ownership.this_process(ownership.MANUAL, "local", "kready").replace(pid=_dead_pid())
    assert manual.stale() and not manual.starting()  # `kready-local up` died half-way
    assert not manual.replace(ready=True).stale()  # started: the user's until kready-local down
    assert Ownership.this_process(ownership.MANUAL, "local", "kready").starting()
    kept = Ownership.this_process(ownership.RUN, "local", "kready", run_id="r1").replace(
        pid=_dead_pid(), ready=True, kept=True)
    assert not kept.stale() and not kept.owned_by_live_run() and "kept with --kready-keep" in kept.describe()
    external = Ownership.external("kubeconfig", "prod")
    assert not external.stale() and not external.held_by_live_process()


# --- what the local provider does with the cluster on its slot ----------------------------------------------------


class FakeCluster:
    """Stands in for LocalCluster's start, stop and probes; records what the provider did."""

    def __init__(self, provider, record=None, running=None):
        self.calls: list[str] = []
        self.record, self.running = record, running
        c = provider.cluster
        c.ownership = lambda: self.record
        c.running_profile = lambda: self.running
        c.down = lambda: self.calls.append("down")
        c.mark_kept = lambda: self.calls.append("mark_kept")

        def up(owner=None, timeout=120, wait_addons=True):
            self.calls.append("up" if wait_addons else "up without add-ons")
            self.record = owner.replace(ready=True)
            return c.kubeconfig

        c.up = up
        c.wait_addons = lambda timeout=120: self.calls.append("wait_addons")


def provider(**kw):
    settings = Settings(enabled=True, run_id="12030626-a1b2c3", local_bin_dir=Path("/nonexistent"), **kw)
    return LocalProvider(settings, layout=Layout(slot=7))


def test_nothing_on_the_slot_starts_a_cluster_owned_by_this_run():
    p = provider()
    fake = FakeCluster(p)
    access = p.create()
    assert fake.calls == ["up without add-ons"] and access.kubeconfig == p.cluster.kubeconfig
    p.settle()  # the session's, after its apply and while the early starts begin
    assert fake.calls == ["up without add-ons", "wait_addons"]
    rec = p.ownership
    assert (rec.maker, rec.run_id, rec.pid, rec.ready) == ("run", "12030626-a1b2c3", os.getpid(), True)
    caps = p.capabilities
    assert caps.ephemeral and caps.has(ETCD_RESTORE) and caps.apply_allowed and caps.has(ETCD)
    p.destroy()
    p.destroy()
    assert fake.calls == ["up without add-ons", "wait_addons", "down"]


def test_a_killed_runs_cluster_is_torn_down_and_rebuilt_never_attached():
    p = provider()
    killed = Ownership.this_process(ownership.RUN, "local", "kready7", run_id="old").replace(pid=_dead_pid(), ready=True)
    fake = FakeCluster(p, record=killed, running="baseline")
    p.create()
    assert fake.calls == ["down", "up without add-ons"] and not p.attached and p.capabilities.ephemeral
    assert p.ownership.run_id == "12030626-a1b2c3"
    assert p.notes == [f"tore down the local cluster kready7 (slot 7) left by the pytest run old (pid {killed.pid}), "
                       "which is gone"]
    p.destroy()
    assert fake.calls[-1] == "down"


def test_a_cluster_started_by_hand_is_attached_not_ephemeral_and_left_running():
    p = provider()
    manual = Ownership.this_process(ownership.MANUAL, "local", "kready7").replace(pid=_dead_pid(), ready=True)
    fake = FakeCluster(p, record=manual, running="baseline")
    p.create()
    assert fake.calls == [] and p.attached and p.ownership == manual
    caps = p.capabilities
    why = "attached to a local cluster started by kready-local up; pass --kready-allow-etcd-restore to run the restore drill on it"
    assert not caps.ephemeral and caps.why_not(EPHEMERAL) == why
    assert not caps.has(ETCD_RESTORE) and caps.why_not(ETCD_RESTORE) == why
    assert caps.has(ETCD) and caps.has(CONTROL_PLANE_EXEC) and caps.apply_allowed  # encryption check, --kready-apply
    p.destroy()
    assert fake.calls == []


def test_the_restore_drill_on_an_attached_cluster_only_when_asked():
    p = provider(allow_etcd_restore=True)
    FakeCluster(p, record=Ownership.this_process(ownership.HARNESS, "local", "kready7").replace(ready=True),
                running="baseline")
    p.create()
    assert p.attached and not p.capabilities.ephemeral and p.capabilities.has(ETCD_RESTORE)
    assert "started by the project's test harness" in p.capabilities.why_not(EPHEMERAL)


def test_an_unrecorded_running_cluster_counts_as_started_by_hand():
    p = provider()
    fake = FakeCluster(p, record=None, running="baseline")
    p.create()
    assert fake.calls == [] and p.attached and p.ownership.maker == "manual" and not p.capabilities.ephemeral


def test_a_live_runs_cluster_or_one_being_started_is_refused_untouched():
    p = provider()
    live = Ownership.this_process(ownership.RUN, "local", "kready7", run_id="other").replace(ready=True)
    fake = FakeCluster(p, record=live, running="baseline")
    with pytest.raises(ProviderError) as e:
        p.create()
    assert f"belongs to the pytest run other (pid {os.getpid()}), which is still running" in str(e.value)
    assert "KREADY_LOCAL_SLOT" in str(e.value) and "\n" not in str(e.value)
    p.destroy()  # the session still calls it: nothing of the other run's cluster is touched
    p.describe_kept()  # nor marked kept (--kready-keep)
    assert fake.calls == []
    starting = Ownership.this_process(ownership.MANUAL, "local", "kready7")
    q = provider()
    fake = FakeCluster(q, record=starting, running=None)
    with pytest.raises(ProviderError, match="is being started by kready-local up"):
        q.create()
    q.destroy()
    assert fake.calls == []


def test_a_hand_started_cluster_that_does_not_answer_is_an_error_not_a_rebuild():
    p = provider()
    fake = FakeCluster(p, record=Ownership(maker="manual", provider="local", cluster="kready7", ready=True))
    with pytest.raises(ProviderError, match=r"does not answer; restart it \(kready-local down --slot 7"):
        p.create()
    p.destroy()
    assert fake.calls == []


def test_profile_mismatch_is_still_one_line():
    p = provider(profile="hardened")
    FakeCluster(p, record=Ownership(maker="manual", provider="local", cluster="kready7", ready=True),
                running="baseline")
    with pytest.raises(ProviderError, match="profile baseline is already running"):
        p.create()


def test_kept_cluster_is_handed_to_the_user():
    p = provider()
    fake = FakeCluster(p)
    p.create()
    message = p.describe_kept()
    assert fake.calls == ["up without add-ons", "mark_kept"] and "kready-local down --slot 7" in message


def test_up_refuses_a_slot_held_by_a_live_run_and_records_itself(tmp_path, monkeypatch):
    from pytest_kready.local import cluster as cluster_mod
    from pytest_kready.local import layout as layout_mod

    monkeypatch.setattr(layout_mod, "STATE_ROOT", tmp_path / "state")
    monkeypatch.setattr(layout_mod, "RUN_ROOT", tmp_path / "run")
    monkeypatch.setattr(cluster_mod, "check_host", lambda bin_dir: None)
    c = cluster_mod.LocalCluster(tmp_path / "bin", layout=Layout(slot=8))
    other = subprocess.Popen(["sleep", "30"])
    try:
        held = Ownership.this_process(ownership.RUN, "local", "kready8", run_id="other").replace(
            pid=other.pid, pid_start=ownership.process_start(other.pid), ready=True)
        held.write(c.owner_file)
        with pytest.raises(ProviderError, match=f"belongs to the pytest run other \\(pid {other.pid}\\), which is still running"):
            c.up()
        assert c.ownership() == held  # untouched
        c.mark_kept()  # what --kready-keep does: the cluster becomes the user's
        assert c.ownership() == held.replace(kept=True)
    finally:
        other.kill()
        other.wait()
    c.owner_file.unlink()
    c.mark_kept()  # no record: nothing to do
    assert c.ownership() is None


# --- the container runtime: bundled with the binaries (containerd 2 from its Go module) or the host's ----------
def _fake_runtime_dir(root: Path, *, version: str = "v2.3.4") -> Path:
    bin_dir = root / "bin"
    (bin_dir / "cni").mkdir(parents=True)
    for name in runtime.RUNTIME_BINARIES:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "containerd").write_text(f"#!/bin/sh\necho containerd github.com/containerd/containerd/v2 {version} abc\n")
    for p in runtime.CNI_PLUGINS:
        (bin_dir / "cni" / p).write_text("")
    return bin_dir


def test_runtime_bundled_with_the_binaries_is_used_before_the_hosts(tmp_path):
    bin_dir = _fake_runtime_dir(tmp_path)
    rt = runtime.find(bin_dir)
    assert rt.bundled and rt.missing() == []
    assert rt.program("containerd") == str(bin_dir / "containerd") and rt.cni_bin == bin_dir / "cni"
    assert rt.env_path("/usr/bin").split(os.pathsep) == [str(bin_dir), "/usr/bin"]  # the shim, and runc
    assert rt.containerd_version() == (2, 3, 4)
    conf = components.containerd_config(Layout(slot=7), rt)
    assert conf.startswith("version = 3") and f'bin_dirs = ["{bin_dir / "cni"}"]' in conf
    assert "io.containerd.nri.v1.nri" in conf  # NRI's socket is a fixed host path: off
    assert 'sandbox = "registry.k8s.io/pause:' in conf


def test_runtime_falls_back_to_the_host_and_writes_its_config_version(tmp_path, monkeypatch):
    rt = runtime.find(tmp_path)  # a release's server/bin: no containerd beside the binaries
    assert not rt.bundled and rt.program("ctr") == "ctr" and rt.cni_bin == runtime.HOST_CNI_BIN
    old = tmp_path / "old"
    old.mkdir()
    (old / "containerd").write_text("#!/bin/sh\necho containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1\n")
    (old / "containerd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")
    assert rt.containerd_version() == (1, 6, 20)
    conf = components.containerd_config(Layout(slot=7), rt)
    assert conf.startswith("version = 2") and 'bin_dir = "/usr/lib/cni"' in conf and "sandbox_image" in conf


def test_missing_bundled_runtime_names_what_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    bin_dir = _fake_runtime_dir(tmp_path)
    for b in (*host_mod.K8S_BINARIES, *host_mod.EXTRA_BINARIES):
        (bin_dir / b).write_text("")
    (bin_dir / "runc").unlink()
    (bin_dir / "cni" / "bridge").unlink()
    with pytest.raises(ProviderError) as err:
        check_host(bin_dir)
    msg = str(err.value)
    assert "\n" not in msg and "runc" in msg and "CNI plugins" in msg and "build-local-binaries.sh" in msg


def test_the_local_clusters_waits_are_the_runs_one_wait():
    """readiness.wait_for is waits.wait_for (deadline, timed, cancellable in an early start's thread) with the
    local cluster's one-line error: what was awaited and what the diagnosis saw."""
    import threading

    from pytest_kready import waits
    from pytest_kready.errors import ProviderError
    from pytest_kready.local import readiness

    seen = iter([0, "", None, "up"])
    assert readiness.wait_for("etcd", lambda: next(seen), timeout=5) == "up"
    with pytest.raises(ProviderError, match=r"^local cluster: etcd not ready after 0s: etcd exited: boom$"):
        readiness.wait_for("etcd", lambda: False, timeout=0.2, diagnose=lambda: "etcd exited: boom")
    cancelled, out = threading.Event(), []

    def in_an_early_thread():
        waits.cancel_on(cancelled)
        try:
            readiness.wait_for("kube-apiserver", lambda: False, timeout=30)
        except BaseException as e:  # noqa: BLE001 - what the wait raised is the result
            out.append(e)

    t = threading.Thread(target=in_an_early_thread)
    t.start()
    cancelled.set()
    t.join(timeout=5)
    assert not t.is_alive() and isinstance(out[0], waits.WaitCancelled)
