"""Safety on a real cluster (the session's local cluster, used as an existing kubeconfig cluster): whatever way a
run ends — pass, failure, Ctrl-C, SIGTERM — it leaves zero labelled objects; a SIGKILLed run's leftovers are swept
by the next run; readonly mode creates nothing at all."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_kready import labels

pytestmark = pytest.mark.integration

CREATES = """
import pathlib, time
import pytest

def test_creates(kready_namespace, kready_cluster):
    kready_namespace(name_prefix="one")
    kready_namespace(name_prefix="two")
    kready_cluster.create({{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": {{"name": "kready-it-" + kready_cluster.run_id}}, "rules": []}})
    # placed in a namespace the run did not create (as probe pods are placed in target namespaces)
    kready_cluster.create({{"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {{"name": "kready-it-" + kready_cluster.run_id}}}}, namespace="default")
    pathlib.Path({marker!r}).write_text(kready_cluster.run_id)
    {then}
"""


@pytest.fixture
def kube(local_cluster):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    yield client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    api.close()


def labelled(kube, run_id: str | None = None) -> list[str]:
    """Namespaces, ClusterRoles and ConfigMaps (any namespace) carrying our labels (of ``run_id`` when given)."""
    core, rbac = kube
    selector = labels.run_selector(run_id) if run_id else labels.MANAGED_SELECTOR
    found = [f"ns/{n.metadata.name}" for n in core.list_namespace(label_selector=selector).items]
    found += [f"clusterrole/{r.metadata.name}" for r in rbac.list_cluster_role(label_selector=selector).items]
    found += [f"configmap/{c.metadata.namespace}/{c.metadata.name}"
              for c in core.list_config_map_for_all_namespaces(label_selector=selector).items]
    return found


def start(local_cluster, path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(path), "--kready", "--kready-provider=kubeconfig",
         f"--kready-kubeconfig={local_cluster.kubeconfig}", "-p", "no:cacheprovider", *args],
        cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def write_test(tmp_path: Path, then: str) -> tuple[Path, Path]:
    marker = tmp_path / "started"
    path = tmp_path / "test_creates.py"
    path.write_text(textwrap.dedent(CREATES.format(marker=str(marker), then=then)))
    return path, marker


def wait_started(proc: subprocess.Popen, marker: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("run did not start its test:\n" + proc.communicate(timeout=30)[0].decode())
        time.sleep(0.2)
    return marker.read_text()


@pytest.mark.parametrize("then", ["pass", "assert False, 'fails on purpose'"])
def test_pass_or_fail_leaves_nothing(local_cluster, kube, tmp_path, then):
    path, marker = write_test(tmp_path, then)
    proc = start(local_cluster, path, "--kready-mode=standard")
    out = proc.communicate(timeout=300)[0].decode()
    run_id = marker.read_text()
    assert proc.returncode == (0 if then == "pass" else 1), out
    assert labelled(kube, run_id) == [], out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_nothing(local_cluster, kube, tmp_path, sig):
    path, marker = write_test(tmp_path, "time.sleep(600)")
    proc = start(local_cluster, path, "--kready-mode=standard")
    run_id = wait_started(proc, marker)
    assert len(labelled(kube, run_id)) == 4
    proc.send_signal(sig)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 2, out
    assert labelled(kube, run_id) == [], out


def test_sigkill_leftovers_are_swept_by_the_next_run(local_cluster, kube, tmp_path):
    path, marker = write_test(tmp_path, "time.sleep(600)")
    proc = start(local_cluster, path, "--kready-mode=standard")
    killed_run = wait_started(proc, marker)
    proc.kill()
    proc.wait(timeout=60)
    assert len(labelled(kube, killed_run)) == 4  # nothing could clean up

    (tmp_path / "next").mkdir()
    follow = tmp_path / "next" / "test_next.py"
    follow.write_text("def test_x(kready_cluster):\n    pass\n")
    young = start(local_cluster, follow, "--kready-mode=standard")  # default grace (10 min): too young to sweep
    assert young.wait(timeout=300) == 0
    assert len(labelled(kube, killed_run)) == 4
    sweeper = start(local_cluster, follow, "--kready-mode=standard", "--kready-sweep-grace=0")
    out = sweeper.communicate(timeout=300)[0].decode()
    assert sweeper.returncode == 0, out
    assert "kready: swept 4 object(s) left by earlier runs" in out

    def gone():
        return labelled(kube, killed_run) == []

    deadline = time.monotonic() + 180  # namespaces terminate asynchronously after the sweep's delete
    while not gone() and time.monotonic() < deadline:
        time.sleep(1)
    assert gone()


def test_readonly_creates_nothing(local_cluster, kube, tmp_path):
    core, rbac = kube
    before_ns = {n.metadata.name: n.metadata.resource_version for n in core.list_namespace().items}
    before_roles = {r.metadata.name for r in rbac.list_cluster_role().items}
    path = tmp_path / "test_readonly.py"
    path.write_text(textwrap.dedent("""
        import pytest
        from pytest_kready import client

        @pytest.mark.kready_mode("readonly")
        def test_reads_and_dry_runs(kready_cluster):
            assert kready_cluster.mode == "readonly"
            assert "default" in kready_cluster.target_namespaces()
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}
            answer = client.create(kready_cluster.api_client(), pod, dry_run=True)
            assert answer["metadata"]["name"] == "probe"

        def test_needs_a_namespace(kready_namespace):
            kready_namespace()

        def test_as_default_sa(kready_cluster, kready_as_serviceaccount):
            sa = kready_as_serviceaccount("default", "default")
            assert sa.raw("GET", "/version")["gitVersion"]
    """))
    proc = start(local_cluster, path, "-rs")
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    assert "2 passed, 1 skipped" in out, out
    after_ns = {n.metadata.name: n.metadata.resource_version for n in core.list_namespace().items}
    assert after_ns == before_ns
    assert {r.metadata.name for r in rbac.list_cluster_role().items} == before_roles
    assert core.list_namespaced_pod("default", field_selector="metadata.name=probe").items == []


EARLY = """
import pathlib, time
import pytest
from pytest_kready import waits


def slow_start(cluster):
    ns = cluster.scratch_namespace("early")
    pathlib.Path({marker!r}).write_text(cluster.run_id)
    waits.wait_for(lambda: False, timeout=300, interval=1, what="something that never comes")
    return ns


def test_first(kready_cluster):  # runs first (it takes no early start) while the early start waits
    time.sleep(600)


@pytest.mark.kready_early(key="slow", start=slow_start)
def test_takes(kready_cluster):
    kready_cluster.early.take("slow")
"""


def test_interrupt_during_an_early_start_cancels_it_and_leaves_nothing(local_cluster, kube, tmp_path):
    """Ctrl-C while an early start (pytest_kready/early.py) waits in the background: its wait ends at once, the
    run's cleanup runs after it and removes what it made."""
    marker = tmp_path / "started"
    path = tmp_path / "test_early.py"
    path.write_text(textwrap.dedent(EARLY.format(marker=str(marker))))
    proc = start(local_cluster, path, "--kready-mode=standard")
    run_id = wait_started(proc, marker)
    assert [x for x in labelled(kube, run_id) if x.startswith("ns/kr-early-")], "the early start made its namespace"
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 2, out
    assert time.monotonic() - t < 25, out  # not the early start's 300 s wait, nor close()'s 30 s join
    assert "still running" not in out, out
    assert labelled(kube, run_id) == [], out
