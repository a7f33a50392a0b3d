"""What the project's own tests share (pytester, the integration clusters, the installed wheel). Integration
tests run on a real local cluster that this session starts (and stops) with the `local` provider's
LocalCluster; they never skip: a missing prerequisite is an error.

This file sits at the top of the repository, so it is also loaded when the shipped suites are collected from a
checkout: it defines fixtures and markers, reorders only the items under ``tests/`` and waits only for tests marked
``ci_build``, so the suites behave exactly as from an installed wheel (tests/test_plugin_packaging.py shows it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _compute_bin_dir() -> Path:
    from pytest_kready.local.bins import bin_dir

    return bin_dir()


# computed at import: pytester changes HOME for the tests that use it, and the default lives under ~/.cache
BIN_DIR = _compute_bin_dir()


def _bin_dir() -> Path:
    return BIN_DIR


@pytest.fixture(scope="session")
def host_snapshot():
    """The host's network state before the cluster: interfaces, routes, iptables rules, network namespaces."""
    return host_state()


def host_state() -> dict[str, str]:
    def out(argv):
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout

    return {
        "links": "\n".join(sorted(l.split(":")[1].strip().split("@")[0] for l in out(["ip", "-o", "link"]).splitlines())),
        "routes": out(["ip", "route", "show", "table", "all"]),
        "iptables": "\n".join(l for l in out(["iptables-save"]).splitlines() if not l.startswith("#")),
        "netns": out(["ip", "netns", "list"]),
    }


SLOTS = {"baseline": 0, "hardened": 1}  # one local cluster per profile, side by side (see Layout)
TEARDOWN_SLOT = 2


class ClusterManager:
    """The local clusters this session's tests use: baseline on slot 0, hardened on slot 1. A cluster already
    up with the right profile (`kready-local up --slot N --profile P`) is attached to and left running;
    one this session starts (recorded as the test harness's, with this process's PID) is stopped at its end. A
    cluster left by a killed session or run (its maker gone) is rebuilt, never attached to."""

    def __init__(self):
        self.clusters = {}
        self.started = []

    def ensure(self, profile: str):
        from pytest_kready.local.cluster import LocalCluster
        from pytest_kready.local.layout import Layout

        if profile in self.clusters:
            return self.clusters[profile]
        cluster = LocalCluster(_bin_dir(), profile=profile, layout=Layout(slot=SLOTS[profile]))
        running = cluster.running_profile()
        owner = cluster.ownership()
        if running is None or (owner is not None and owner.stale()):
            cluster.up()
            self.started.append(cluster)
        elif owner is not None and owner.owned_by_live_run():
            pytest.fail(f"local cluster slot {SLOTS[profile]} belongs to {owner.describe()}, which deletes it at its end")
        elif running != profile:
            pytest.fail(f"local cluster slot {SLOTS[profile]} runs profile {running}, tests need {profile}")
        self.clusters[profile] = cluster
        return cluster

    def close(self):
        for cluster in self.started:
            cluster.down()


@pytest.fixture(scope="session")
def _cluster_manager():
    manager = ClusterManager()
    yield manager
    manager.close()


def _profile_of(item) -> str:
    marker = item.get_closest_marker("local_profile")
    return marker.args[0] if marker else "baseline"


def pytest_configure(config):
    config.addinivalue_line("markers", "local_profile(name): the local cluster profile a test needs (default baseline)")
    config.addinivalue_line("markers", "ci_build(name): needs what .ci/run builds in the background while the first "
                            "tests run (kind: the kind binary and node image; upgrade: the newer version's binaries); "
                            "such tests run last and wait for that build")
    # A job started in the background of a non-interactive shell (`bash .ci/run &`) inherits SIGINT ignored, and
    # Python leaves an ignored SIGINT ignored, in itself and in every run it starts: the Ctrl-C tests would wait
    # for nothing. Restore Python's KeyboardInterrupt; the runs the tests start get SIGINT's default again.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


TESTS_DIR = Path(__file__).resolve().parent / "tests"


def pytest_collection_modifyitems(config, items):
    # the project's tests only: baseline tests, then hardened ones, then the teardown check (order kept within)
    ours = [item for item in items if TESTS_DIR in Path(str(item.path)).parents]
    if len(ours) != len(items):
        return
    items.sort(key=lambda item: ("test_zz_teardown" in item.nodeid, item.get_closest_marker("ci_build") is not None,
                                 _profile_of(item) != "baseline"))


# ---- builds .ci/run does in the background -------------------------------------------------------------------

CI_BUILD_DEADLINE_S = 45 * 60  # the longest a background build may take from the start of the tests


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    marker = item.get_closest_marker("ci_build")
    if marker is not None:
        wait_for_ci_build(marker.args[0])


def wait_for_ci_build(name: str, deadline_s: float = CI_BUILD_DEADLINE_S) -> None:
    """.ci/run starts the builds only some tests need (the kind images, the upgrade's newer binaries) in the
    background and names their directory in KREADY_CI_BUILDS; each writes ``<name>.rc`` ("<exit status>
    <seconds>") when it ends, its output in ``<name>.log``. A test that needs one waits for it (with a deadline)
    and fails with the log's end when it failed. Outside .ci/run (no KREADY_CI_BUILDS) there is nothing to wait for:
    the test's own prerequisite checks say what to build."""
    builds = os.environ.get("KREADY_CI_BUILDS")
    if not builds:
        return
    rc_file, log = Path(builds) / f"{name}.rc", Path(builds) / f"{name}.log"
    end = time.monotonic() + deadline_s
    while not rc_file.exists():
        if time.monotonic() > end:
            pytest.fail(f"the background build {name!r} did not end within {deadline_s:.0f} s (log: {log})")
        time.sleep(2)
    rc = rc_file.read_text().split()[0]
    if rc != "0":
        tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else ["(no log)"]
        pytest.fail(f"the background build {name!r} failed (exit {rc}); the end of {log}:\n" + "\n".join(tail))


@pytest.fixture
def local_cluster(request, _cluster_manager):
    """The running local cluster with the profile the test asks for (marker ``local_profile``)."""
    return _cluster_manager.ensure(_profile_of(request.node))


@pytest.fixture
def api(local_cluster):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(local_cluster.kubeconfig))


@pytest.fixture
def core(api):
    from kubernetes import client

    return client.CoreV1Api(api)


@pytest.fixture
def ns_factory(core):
    """Namespaces for one test, deleted after it."""
    made = []

    def make(prefix="t", labels=None):
        from integration.kube import namespace

        name = namespace(core, prefix, labels)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name, grace_period_seconds=0)
        except Exception:  # noqa: BLE001 - the cluster may already be gone
            pass


# ---- the plugin as users get it -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """The project built as a wheel and installed, with its dependencies, into a clean virtualenv (nothing from
    the machine's site-packages): ``{"wheel", "py", "cwd" (an empty directory), "env"}``."""
    root = Path(__file__).resolve().parent
    work = tmp_path_factory.mktemp("pkg")

    def run(argv, cwd=work, env=None, timeout=900):
        return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)

    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", work / "dist", root])
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((work / "dist").glob("pytest_kready-*.whl"))
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", venv])
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    inst = run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel])
    assert inst.returncode == 0, inst.stdout + inst.stderr
    empty = work / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KREADY_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env.pop("PYTHONPATH", None)
    return {"wheel": wheel, "py": py, "cwd": empty, "env": env}
