"""kind for real (issue 11): clusters made by the plugin from kind-configs/<profile>.yaml with the node image
tools/build-kind-images.sh built, the shipped suites on them, compared with the local provider's verdicts, the etcd
restore drill on kind's kubeadm layout, deletion (nothing left: no container, no kind network, no kind cluster),
a SIGKILLed run's cluster removed by the next run, Ctrl-C, and attaching to a pytest-kind cluster.

Prerequisites (an error here, never a skip): kind and the node image (tools/build-kind-images.sh, after
tools/build-local-binaries.sh) and a Docker daemon that answers (tools/docker-daemon.sh start; .ci/run does all
three). The local side of the comparison attaches to the shared local clusters (slot 0 baseline, slot 1 hardened)
with the same --kready-apply directory and --kready-namespaces.

Kind clusters made here: one per profile for the suites (the baseline one is kept for the etcd drill, which runs
last on it, then deleted), one for the killed run, one for the run after it (interrupted with SIGINT), and one
pytest-kind makes. Each is gone when its test ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN_DIR, SLOTS
from pytest_kready.providers.kind_host import find_kind, local_image_id, node_image_candidates
from pytest_kready.resources import suites_dir

from .test_plugin_apply import absent, write_team

pytestmark = [pytest.mark.integration, pytest.mark.ci_build("kind")]

NODE_IMAGE = node_image_candidates()[0]  # kready/node:<version>
BUILD = "run tools/build-kind-images.sh (after tools/build-local-binaries.sh; .ci/run does both)"
RUN_TIMEOUT = 1500
KREADY_NOTE = re.compile(r"^kready: (.*)$", re.M)


# --- what the host has of kind ---------------------------------------------------------------------------------


def sh(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@dataclasses.dataclass(frozen=True)
class KindState:
    clusters: tuple[str, ...]
    containers: tuple[str, ...]
    networks: tuple[str, ...]

    def minus(self, other: KindState) -> dict[str, list[str]]:
        """What this state has that ``other`` has not."""
        return {k: sorted(set(getattr(self, k)) - set(getattr(other, k))) for k in ("clusters", "containers", "networks")
                if set(getattr(self, k)) - set(getattr(other, k))}


def kind_state(kind: str) -> KindState:
    clusters = sh([kind, "get", "clusters"])
    containers = sh(["docker", "ps", "-a", "--format", "{{.Names}}"])
    networks = sh(["docker", "network", "ls", "--format", "{{.Name}}"])
    for proc in (clusters, containers, networks):
        assert proc.returncode == 0, proc.args + [proc.stderr]
    return KindState(*(tuple(sorted(p.stdout.split())) for p in (clusters, containers, networks)))


@pytest.fixture(scope="module")
def kind():
    """The kind binary; kind, docker and the node image must all be there (an error naming the step otherwise)."""
    path = find_kind()
    if not path:
        pytest.fail(f"kind is missing (neither on PATH nor built): {BUILD}")
    if sh(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=60).returncode != 0:
        pytest.fail("docker does not answer: start it with tools/docker-daemon.sh start")
    if not local_image_id("docker", NODE_IMAGE):
        pytest.fail(f"the kind node image {NODE_IMAGE} is not in docker's image store: {BUILD}")
    return path


@pytest.fixture
def clean_kind(kind):
    """The host's kind state before the test; after it nothing of the test may be left (containers, clusters,
    kind's network when it was not there before)."""
    before = kind_state(kind)
    yield before
    left = kind_state(kind).minus(before)
    assert not left, f"left behind: {left}"


def delete_cluster(kind: str, name: str) -> None:
    """The test's own clean-up of a cluster it kept (the plugin never deletes one it attached to)."""
    sh([kind, "delete", "cluster", "--name", name], timeout=300)
    clusters = sh([kind, "get", "clusters"]).stdout.split()
    net = sh(["docker", "network", "inspect", "kind", "--format", "{{len .Containers}}"])
    if not clusters and net.returncode == 0 and net.stdout.strip() == "0":
        sh(["docker", "network", "rm", "kind"])


# --- running the plugin -------------------------------------------------------------------------------------------


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KREADY_"))}
    return {**env, "KREADY_LOCAL_BIN_DIR": str(BIN_DIR), "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            **extra}


def pytest_argv(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", f"--rootdir={root}", "-q", "-rA"]


@dataclasses.dataclass
class Run:
    returncode: int
    out: str
    seconds: float

    @property
    def notes(self) -> list[str]:
        return KREADY_NOTE.findall(self.out)


class Started:
    """A ``pytest`` run in ``root`` (a directory of its own) going on in the background; output in
    ``root/<name>.log``. ``wait()`` gives its Run (killed at the deadline)."""

    def __init__(self, root: Path, name: str, *args: str, timeout: float = RUN_TIMEOUT, **env: str):
        root.mkdir(parents=True, exist_ok=True)
        self.log_path, self.timeout = root / f"{name}.log", timeout
        self.t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(pytest_argv(root, *args), cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                         env=env_for(**env), start_new_session=True)

    def wait(self) -> Run:
        try:
            self.proc.wait(timeout=max(1.0, self.timeout - (time.monotonic() - self.t0)))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
            raise AssertionError(f"{self.log_path} ran past {self.timeout:g} s: "
                                 f"{self.log_path.read_text(errors='replace')[-3000:]}") from None
        return Run(self.proc.returncode, self.log_path.read_text(errors="replace"),
                   round(time.monotonic() - self.t0, 1))


def run_plugin(root: Path, name: str, *args: str, timeout: float = RUN_TIMEOUT, **env: str) -> Run:
    """``pytest`` in ``root`` (a directory of its own), output kept in ``root/<name>.log``."""
    return Started(root, name, *args, timeout=timeout, **env).wait()


def created_cluster(run: Run) -> tuple[str, float]:
    """(name, seconds) from the provider's note 'kind cluster NAME created from IMAGE in N s'."""
    m = re.search(r"^kready: kind cluster (kready-\S+) created from (\S+) in ([0-9.]+) s$", run.out, re.M)
    assert m, run.out[-4000:]
    assert m.group(2) == NODE_IMAGE, m.group(0)
    return m.group(1), float(m.group(3))


# --- the verdict comparison ---------------------------------------------------------------------------------------


def finding_key(f: dict) -> tuple[str, str, str]:
    """(check id, target, variant): stable across runs and providers (the run's own names normalised)."""
    target = f.get("target_key") or f.get("target_namespace") or "cluster"
    target = re.sub(r"^kr-([a-z-]+?)-[0-9]{8}-[0-9a-f]{6}.*$", r"kr-\1", target)
    evidence = f.get("evidence") if isinstance(f.get("evidence"), dict) else {}
    variant = f.get("variant") or evidence.get("attack") or ""
    return f["check_id"], target, str(variant)


def verdicts(doc: dict) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], list[str]] = {}
    for f in doc["findings"]:
        out.setdefault(finding_key(f), []).append(f.get("original_verdict") or f["verdict"])
    return {k: ",".join(sorted(v)) for k, v in out.items()}


@dataclasses.dataclass(frozen=True)
class Allowed:
    """A difference between kind and local for one check id: the verdicts each side gives, and why."""

    local: frozenset[str]
    kind: frozenset[str]
    reason: str


def allowed(local: str, kind: str, reason: str) -> Allowed:
    return Allowed(frozenset(local.split("|")), frozenset(kind.split("|")), reason)


NO_ENFORCEMENT = ("kind's node image has no kindnetd (it cannot be built offline): pods get the ptp/host-local CNI "
                  "config, which enforces no NetworkPolicy, while the local provider runs its own enforcer "
                  "(pytest_kready.local.netpol)")
UNDECIDABLE = ("no network check concludes once network.enforcement found NetworkPolicy not enforced (its canary "
               "policy did not block traffic): inconclusive, never a pass, with the enforcement failure as reason")

_COMMON = {
    "network.enforcement": allowed("pass", "fail", NO_ENFORCEMENT),
    "network.default-deny": allowed("pass|fail", "inconclusive", UNDECIDABLE),
    "network.cross-namespace": allowed("pass|fail", "inconclusive", UNDECIDABLE),
    "network.dns": allowed("pass|fail", "inconclusive", UNDECIDABLE),
    "network.egress": allowed("pass|fail", "inconclusive", UNDECIDABLE),
}
# check id -> the allowed difference, per profile. A difference without an entry fails the test; so does an entry
# whose difference does not occur (the table must be kept true both ways).
DIFFERENCES: dict[str, dict[str, Allowed]] = {
    "baseline": dict(_COMMON),
    "hardened": dict(_COMMON),
}


def compare(local_doc: dict, kind_doc: dict, table: dict[str, Allowed]) -> list[str]:
    """Problems (one line each): a finding whose verdict differs (or that only one side has) where the table has no
    entry for its check id; for a check id in the table, verdicts other than the allowed ones, a side without any
    finding of it, or no difference at all (the allowed difference is gone). A check id in the table is compared as
    a whole, since its findings may sit on other targets (kind's network checks stop at the cluster level)."""
    local, kind = verdicts(local_doc), verdicts(kind_doc)
    problems = []
    for key in sorted(set(local) | set(kind)):
        if key[0] not in table and local.get(key) != kind.get(key):
            problems.append(f"unexplained difference {key}: local {local.get(key, 'absent')}, "
                            f"kind {kind.get(key, 'absent')}")

    def of(side: dict, check_id: str) -> set[str]:
        return {v for key, joined in side.items() if key[0] == check_id for v in joined.split(",")}

    for check_id, entry in sorted(table.items()):
        lv, kv = of(local, check_id), of(kind, check_id)
        if not lv or not kv:
            problems.append(f"{check_id}: no finding on {'local' if not lv else 'kind'}; the table expects "
                            f"local {sorted(entry.local)}, kind {sorted(entry.kind)}")
        elif lv == kv:
            problems.append(f"allowed difference gone: {check_id} gives {sorted(kv)} on both ({entry.reason}); "
                            "update DIFFERENCES")
        elif not (lv <= entry.local and kv <= entry.kind):
            problems.append(f"{check_id} differs otherwise than allowed: local {sorted(lv)} (allowed "
                            f"{sorted(entry.local)}), kind {sorted(kv)} (allowed {sorted(entry.kind)}); {entry.reason}")
    return problems


def test_the_comparison_catches_new_and_vanished_differences():
    """The comparison itself (no cluster): an unexplained difference and a vanished allowed one are both problems."""
    def doc(*rows):
        return {"findings": [{"check_id": c, "verdict": v, "target_namespace": t} for c, v, t in rows]}

    table = {"network.dns": allowed("pass", "inconclusive", "why")}
    local = doc(("network.dns", "pass", "shop"), ("a", "pass", "shop"))
    assert compare(local, doc(("network.dns", "inconclusive", None), ("a", "pass", "shop")), table) == []
    assert compare(local, doc(("network.dns", "inconclusive", None), ("a", "fail", "shop")), table) == [
        "unexplained difference ('a', 'shop', ''): local pass, kind fail"]
    assert compare(local, doc(("network.dns", "inconclusive", None)), table) == [
        "unexplained difference ('a', 'shop', ''): local pass, kind absent"]
    assert compare(local, doc(("network.dns", "pass", "shop"), ("a", "pass", "shop")), table) == [
        "allowed difference gone: network.dns gives ['pass'] on both (why); update DIFFERENCES"]
    assert compare(local, doc(("network.dns", "fail", None), ("a", "pass", "shop")), table) == [
        "network.dns differs otherwise than allowed: local ['pass'] (allowed ['pass']), kind ['fail'] (allowed "
        "['inconclusive']); why"]
    assert compare(local, doc(("a", "pass", "shop")), table) == [
        "network.dns: no finding on kind; the table expects local ['pass'], kind ['inconclusive']"]


# --- the shipped suites on kind, compared with local; the etcd drill ---------------------------------------------


def suite_args(profile: str, team: Path, json_path: Path) -> list[str]:
    return ["--kready", f"--kready-profile={profile}", f"--kready-apply={team}", "--kready-namespaces=shop",
            f"--kready-json={json_path}"]


@pytest.mark.parametrize("profile", [
    pytest.param("baseline", marks=pytest.mark.local_profile("baseline")),
    pytest.param("hardened", marks=pytest.mark.local_profile("hardened")),
])
def test_shipped_suites_on_kind_give_the_local_verdicts_but_the_stated_differences(
        tmp_path, kind, clean_kind, local_cluster, core, profile):
    team = write_team(tmp_path)
    drill = profile == "baseline"  # the baseline cluster is kept for the etcd drill, which runs last on it

    # kind: the plugin makes the cluster from kind-configs/<profile>.yaml and the built node image; beside it, local:
    # the shared cluster of the same profile with the same inputs (two clusters of their own; both runs mostly wait)
    absent(core, "shop")
    kind_json, local_json = tmp_path / "kind.json", tmp_path / "local.json"
    keep = ["--kready-keep=all"] if drill else []
    started = Started(tmp_path / "kind", "kind", "--kready-provider=kind", *suite_args(profile, team, kind_json), *keep)
    try:
        local_run = run_plugin(tmp_path / "local", "local", "--kready-provider=local",
                               *suite_args(profile, team, local_json), KREADY_LOCAL_SLOT=str(SLOTS[profile]))
    finally:
        kind_run = started.wait()
    name, create_s = created_cluster(kind_run)
    try:
        assert kind_run.returncode in (0, 1), kind_run.out[-4000:]  # verdicts, not a stop
        assert "kready: applied 4 object(s) from" in kind_run.out, kind_run.out[-4000:]
        assert any(n.startswith(f"node image {NODE_IMAGE} has no kindnetd") and "added networking.disableDefaultCNI"
                   in n for n in kind_run.notes), kind_run.notes
        kind_doc = json.loads(kind_json.read_text())
        run_header = kind_doc.get("run") or kind_doc
        assert (run_header["provider"], run_header["profile"]) == ("kind", profile)
        if drill:
            etcd_drill(tmp_path, kind, name)
    finally:
        if drill:
            delete_cluster(kind, name)
    if not drill:
        # deleted by the run itself: no cluster, no node container, no kind network left (clean_kind checks the rest)
        state = kind_state(kind)
        assert name not in state.clusters and not any(c.startswith(name) for c in state.containers), state
        assert "kind" in clean_kind.networks or "kind" not in state.networks, state
        assert not (Path(os.environ.get("KREADY_CACHE") or Path.home() / ".cache/pytest-kready") / "kind" / name).exists()

    assert local_run.returncode in (0, 1), local_run.out[-4000:]
    local_doc = json.loads(local_json.read_text())

    problems = compare(local_doc, kind_doc, DIFFERENCES[profile])
    assert not problems, "\n".join(problems)
    # the difference is stated in the finding itself: the canary's fail path, and the reason it gives the others
    enforcement = [f for f in kind_doc["findings"] if f["check_id"] == "network.enforcement"]
    assert [f["verdict"] for f in enforcement] == ["fail"], enforcement
    assert "does not enforce NetworkPolicy" in enforcement[0]["summary"], enforcement
    for f in kind_doc["findings"]:
        if f["check_id"].startswith("network.") and f["check_id"] != "network.enforcement":
            assert f["verdict"] == "inconclusive" and "does not enforce NetworkPolicy" in f["summary"], f
        if f["check_id"] == "rbac.cluster-admin-subjects":  # kubeadm's admin.conf group: the platform's, named
            assert f["verdict"] == "pass" and "kubeadm:cluster-admins" in f["summary"], f
            assert f["evidence"]["platform_bindings"]["bindings"] == [
                "ClusterRoleBinding kubeadm:cluster-admins → Group kubeadm:cluster-admins"], f
    print(f"{profile}: kind cluster created in {create_s:g} s; kind run {kind_run.seconds:g} s; "
          f"local run {local_run.seconds:g} s")


def etcd_drill(tmp_path: Path, kind: str, name: str) -> None:
    """etcd.snapshot-restore in disruptive mode on the kept cluster (attached by name, restore allowed)."""
    json_path = tmp_path / "drill.json"
    run = run_plugin(tmp_path / "drill", "drill", "--kready", "--kready-provider=kind", "--kready-mode=disruptive",
                     f"--cluster-name={name}", "--kready-allow-etcd-restore", str(suites_dir() / "test_etcd.py"),
                     f"--kready-json={json_path}")
    assert run.returncode == 0, run.out[-4000:]
    assert any(n.startswith(f"attached to kind cluster {name} (--cluster-name; ") for n in run.notes), run.notes
    findings = [f for f in json.loads(json_path.read_text())["findings"] if f["check_id"] == "etcd.snapshot-restore"]
    assert [f["verdict"] for f in findings] == ["pass"], findings
    evidence = findings[0]["evidence"]
    assert evidence["restore_seconds"] > 0 and evidence["data_dir_after"].startswith("/var/lib/etcd-restore-"), evidence
    assert evidence["after_restore"] == {"marker_a": "present", "marker_b": "absent"}, evidence
    assert f"restored in {evidence['restore_seconds']} s" in findings[0]["summary"]
    assert kind_state(kind).clusters.count(name) == 1  # attached, not deleted
    print(f"etcd drill on kind: RTO {evidence['restore_seconds']} s (run {run.seconds:g} s)")


# --- killed, interrupted, and pytest-kind ----------------------------------------------------------------------------

HOLD = '''
import json, os, time
def test_hold(kready_cluster):
    p = kready_cluster.provider
    mark = os.environ["KREADY_TEST_MARK"]
    nodes = kready_cluster.api_client().raw("GET", "/api/v1/nodes")["items"]
    json.dump({"cluster": p.cluster_name, "pid": os.getpid(), "run_id": kready_cluster.run_id,
               "ephemeral": kready_cluster.capabilities.ephemeral,
               "node_labels": nodes[0]["metadata"].get("labels") or {}}, open(mark + ".tmp", "w"))
    os.replace(mark + ".tmp", mark)
    time.sleep(900)
'''

USER_CONFIG = """# a user's kind config: the plugin adds what this host needs to its own copy, never to this file
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    labels:
      team: shop
"""

ATTACH = '''
def test_attached_to_pytest_kinds_cluster(kind_cluster, kready_cluster):
    p = kready_cluster.provider
    assert p.name == "kind" and p.attached and p.cluster_name == kind_cluster.name
    assert p.ownership.maker == "external" and not kready_cluster.capabilities.ephemeral
    assert not kready_cluster.capabilities.has("etcd-restore")
    nodes = kready_cluster.api_client().raw("GET", "/api/v1/nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [kind_cluster.name + "-control-plane"]
    assert kind_cluster.name + "-control-plane" in kind_cluster.kubectl("get", "nodes", "-o", "name")
    assert kready_cluster.control_plane.run(["true"]).returncode == 0  # docker exec into pytest-kind's node
'''


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before its test started"
        assert time.monotonic() < deadline, f"{path} not written within {timeout:g}s"
        time.sleep(1)
    return json.loads(path.read_text())


def hold_run(root: Path, name: str, *args: str) -> tuple[subprocess.Popen, dict, object]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_hold.py").write_text(HOLD)
    mark = root / "mark.json"
    log = (root / f"{name}.log").open("wb")
    proc = subprocess.Popen(pytest_argv(root, str(root / "test_hold.py"), "--kready", "--kready-provider=kind", "-s",
                                        *args),
                            cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=env_for(KREADY_TEST_MARK=str(mark)))
    try:
        held = wait_for_file(mark, proc, timeout=900)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
        raise
    return proc, held, log


def freeze_a_pod(node: str, timeout: float = 120) -> Path | None:
    """Freeze one pod's cgroup of a kind node from the host, as a runc killed between its freeze and thaw leaves
    a container's (seen after a CI run: the node could not be killed, `docker rm -f` failed). cgroup v1: the frozen
    cgroup (SIGKILL does not reach its processes); cgroup v2 (a fatal signal does): None."""
    pid = sh(["docker", "inspect", "--format", "{{.State.Pid}}", node]).stdout.strip()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    v1 = [line.split(":", 2)[2] for line in lines if "freezer" in line.split(":", 2)[1].split(",")]
    top = Path("/sys/fs/cgroup/freezer" + v1[0]) if v1 else Path("/sys/fs/cgroup" + lines[-1].split(":", 2)[2])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a pod's cgroup (its containers' parent, which the kubelet's runc never thaws, unlike a container's own,
        # which a probe-failure restart would) with a container that has processes (an exited one's may go away)
        scopes = [d.parent for d in sorted(top.rglob("cri-containerd-*.scope"))
                  if d.parent.name.endswith(".slice") and (d / "cgroup.procs").read_text().strip()]
        if scopes:
            if v1:
                (scopes[0] / "freezer.state").write_text("FROZEN")
                return scopes[0]
            (scopes[0] / "cgroup.freeze").write_text("1")
            return None
        time.sleep(1)
    raise AssertionError(f"no pod container cgroup under {top} within {timeout:g} s")


def test_a_killed_runs_cluster_goes_with_the_next_run_which_deletes_its_own_after_ctrl_c(tmp_path, kind,
                                                                                         clean_kind):
    from pytest_kready import ownership

    first, held, log1 = hold_run(tmp_path / "killed", "killed")
    try:
        assert held["ephemeral"] and held["cluster"].startswith("kready-")
        # its node cannot be killed as it is (a pod's cgroup frozen): the next run must still delete it
        frozen = freeze_a_pod(f"{held['cluster']}-control-plane")
        os.killpg(first.pid, signal.SIGKILL)  # the whole run, as a CI timeout does
        first.wait(timeout=60)
    finally:
        log1.close()
    killed = held["cluster"]
    assert killed in kind_state(kind).clusters  # SIGKILL: nothing could clean up
    record = ownership.read(Path(os.environ.get("KREADY_CACHE") or Path.home() / ".cache/pytest-kready") / "kind"
                            / killed / ownership.FILE_NAME)
    assert record is not None and record.pid == held["pid"] and record.stale(), record

    # the next run (from a user's kind config, which it copies and never writes) removes the killed run's cluster
    # before making its own ...
    mine = tmp_path / "my-kind.yaml"
    mine.write_text(USER_CONFIG)
    written = mine.stat().st_mtime_ns
    second, held2, log2 = hold_run(tmp_path / "next", "next", f"--kready-cluster-config={mine}")
    try:
        assert killed not in kind_state(kind).clusters
        assert held2["cluster"] in kind_state(kind).clusters
        assert held2["node_labels"].get("team") == "shop"  # made from the user's config
        # ... and deletes its own after Ctrl-C (SIGINT to the process group, as a terminal sends it)
        os.killpg(second.pid, signal.SIGINT)
        second.wait(timeout=600)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(timeout=60)
        log2.close()
    out = (tmp_path / "next" / "next.log").read_text()
    assert f"kready: deleted kind cluster {killed} left by the pytest run {held['run_id']} (pid {held['pid']})" in out, \
        out[-3000:]
    if frozen is not None:
        assert (f"kready: thawed 1 frozen cgroup(s) in kind node {killed}-control-plane so that it could be deleted "
                f"(a container kill cut off while frozen): {frozen.name}") in out, KREADY_NOTE.findall(out)
    assert held2["cluster"] not in kind_state(kind).clusters, out[-3000:]
    assert mine.read_text() == USER_CONFIG and mine.stat().st_mtime_ns == written
    assert (f"kready: node image {NODE_IMAGE} has no kindnetd (kready's placeholder: kindnetd cannot be built "
            f"offline): added networking.disableDefaultCNI: true to this run's copy of your kind config {mine}") in out


def test_attach_to_the_sessions_pytest_kind_cluster(tmp_path, kind, clean_kind):
    """pytest-kind makes its cluster (its kind_cluster fixture; --kind-bin and --kind-kubectl-bin filled in by the
    plugin, so nothing is downloaded); the kready run attaches to it and leaves it to pytest-kind."""
    name = f"pk-{uuid.uuid4().hex[:6]}"
    root = tmp_path / "pk"
    root.mkdir()
    (root / "test_attach.py").write_text(ATTACH)
    try:
        run = run_plugin(root, "attach", str(root / "test_attach.py"), "--kready", "--kready-provider=kind",
                         f"--cluster-name={name}", f"--kind-image={NODE_IMAGE}", "--keep-cluster", timeout=900)
        assert run.returncode == 0, run.out[-4000:]
        assert "1 passed" in run.out
        assert any(n.startswith(f"attached to kind cluster {name} (pytest-kind's kind_cluster fixture; someone else")
                   for n in run.notes), run.notes
        assert name in kind_state(kind).clusters  # kept by pytest-kind (--keep-cluster), never deleted by kready
    finally:
        delete_cluster(kind, name)
