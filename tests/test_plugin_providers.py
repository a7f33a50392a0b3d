"""Provider selection, the kind provider's command lines and control-plane sequences (with a fake runner: there is
no container engine here), kind config rendering, and the kubeconfig provider's capabilities."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from pytest_kready import errors, ownership, providers
from pytest_kready.ownership import Ownership
from pytest_kready.providers import engines
from pytest_kready.providers import kind as kindmod
from pytest_kready.providers.base import AUDIT_LOG, CONTROL_PLANE_EXEC, ETCD, ETCD_RESTORE, ControlPlane, Provider
from pytest_kready.providers.kind import KindControlPlane, KindProvider, render_config
from pytest_kready.providers.kubeconfig import KubeconfigProvider
from pytest_kready.resources import kind_config
from pytest_kready.settings import Settings


def tool(bin_dir: Path, name: str, exit_code: int = 0) -> Path:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def path_dir(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def settings(tmp_path, **kw) -> Settings:
    kw.setdefault("local_bin_dir", tmp_path / "no-local-bins")
    return Settings(enabled=True, run_id="11231600-abc123", **kw)


def test_default_is_kind_with_kind_and_a_running_engine(path_dir, tmp_path):
    tool(path_dir, "kind")
    tool(path_dir, "docker")
    assert providers.resolve_provider_name(settings(tmp_path)) == "kind"


def test_podman_counts_as_an_engine(path_dir, tmp_path):
    tool(path_dir, "kind")
    tool(path_dir, "docker", exit_code=1)  # installed, daemon down
    tool(path_dir, "podman")
    assert engines.container_engine() == "podman"
    assert providers.resolve_provider_name(settings(tmp_path)) == "kind"


def test_default_is_local_without_a_reachable_engine_when_binaries_exist(path_dir, tmp_path):
    tool(path_dir, "kind")
    tool(path_dir, "docker", exit_code=1)
    bins = tmp_path / "k8s-bin"
    bins.mkdir()
    (bins / "kube-apiserver").write_text("")
    assert providers.resolve_provider_name(settings(tmp_path, local_bin_dir=bins)) == "local"


def test_no_provider_is_a_one_line_error_saying_what_to_install(path_dir, tmp_path):
    tool(path_dir, "docker")  # an engine but no kind
    with pytest.raises(errors.ProviderError) as e:
        providers.resolve_provider_name(settings(tmp_path))
    assert "\n" not in str(e.value)
    assert "install kind and docker or podman" in str(e.value) and "--kready-kubeconfig" in str(e.value)


def test_explicit_provider_wins(path_dir, tmp_path):
    assert providers.resolve_provider_name(settings(tmp_path, provider="local")) == "local"
    assert isinstance(providers.select_provider(settings(tmp_path, provider="kind")), KindProvider)


def test_no_provider_end_to_end_is_one_line(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", str(tmp_path / "none"))
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess(str(pytester.path), "--kready", "-p", "no:cacheprovider")
    assert result.ret == 2
    out = result.stdout.str() + result.stderr.str()
    assert len([l for l in out.splitlines() if "no cluster provider available" in l]) == 1
    assert "Traceback" not in out


# --- kind provider ----------------------------------------------------------------------------------


class FakeNode:
    """Plays the commands the kind provider runs, records them, and keeps a little state of the node."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.inputs: dict[str, bytes] = {}
        self.running = {"etcd": "etcd111", "kube-apiserver": "api222"}
        self.clusters: list[str] = []
        self.etcd_yaml = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {
            "containers": [{"name": "etcd", "command": [
                "etcd", "--data-dir=/var/lib/etcd", "--name=kready-x-control-plane",
                "--initial-cluster=kready-x-control-plane=https://172.18.0.2:2380",
                "--initial-advertise-peer-urls=https://172.18.0.2:2380"]}],
            "volumes": [{"name": "etcd-certs", "hostPath": {"path": "/etc/kubernetes/pki/etcd"}},
                        {"name": "etcd-data", "hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}}]}})
        self.fail_on: str | None = None

    def __call__(self, argv, *, input=None, timeout=60, env=None):
        self.calls.append(list(argv))
        out, rc = b"", 0
        if self.fail_on and self.fail_on in argv:
            return subprocess.CompletedProcess(argv, 1, b"", b"boom\nlast line of the error")
        if argv[1:3] == ["get", "clusters"]:
            out = "\n".join(self.clusters).encode()
        elif argv[:2] == ["docker", "exec"]:
            cmd = argv[4:] if argv[2] == "-i" else argv[3:]
            out, rc = self.node(cmd, input)
        return subprocess.CompletedProcess(argv, rc, out, b"")

    def node(self, cmd, data):
        if cmd[:2] == ["crictl", "ps"]:
            name = cmd[3].strip("^$")
            return (self.running[name].encode() if name in self.running else b""), 0
        if cmd[:2] == ["crictl", "inspect"]:
            return b"4242\n", 0
        if cmd[0] == "mv" and cmd[1].startswith(kindmod.MANIFESTS):
            self.running.pop(Path(cmd[1]).stem, None)
        elif cmd[0] == "mv":
            self.running[Path(cmd[1]).stem] = Path(cmd[1]).stem + "-new"
        elif cmd[0] == "cat":
            return self.etcd_yaml.encode(), 0
        elif cmd[0] == "tee":
            self.inputs[cmd[1]] = data
        return b"", 0


def test_kind_create_and_destroy_argv(tmp_path, monkeypatch):
    node = FakeNode()
    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    p = KindProvider(settings(tmp_path), runner=node, which=lambda n: f"/usr/bin/{n}", state_root=tmp_path / "state")
    access = p.create()
    state = tmp_path / "state" / "kready-11231600-abc123"
    assert node.calls == [
        ["/usr/bin/kind", "get", "clusters"],
        ["/usr/bin/kind", "create", "cluster", "--name", "kready-11231600-abc123", "--config",
         str(state / "kind-config.yaml"), "--kubeconfig", str(state / "kubeconfig"), "--wait", "300s"],
    ]
    assert access.kubeconfig == state / "kubeconfig" and access.context == "kind-kready-11231600-abc123"
    assert isinstance(p, Provider) and isinstance(p.control_plane(), ControlPlane)
    p.destroy()
    p.destroy()  # safe twice
    assert node.calls[2:] == [["/usr/bin/kind", "delete", "cluster", "--name", "kready-11231600-abc123",
                               "--kubeconfig", str(state / "kubeconfig")]]
    assert not state.exists()


def test_kind_never_reuses_an_existing_cluster(tmp_path, monkeypatch):
    node = FakeNode()
    node.clusters = ["kready-11231600-abc123"]
    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    p = KindProvider(settings(tmp_path), runner=node, which=lambda n: n, state_root=tmp_path)
    with pytest.raises(errors.ProviderError, match="never reuses a cluster it did not create"):
        p.create()
    p.destroy()
    assert all(c[1] != "delete" for c in node.calls)


def test_kind_missing_or_failing_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(errors.ProviderError, match="kind is not installed"):
        KindProvider(settings(tmp_path), runner=FakeNode(), which=lambda n: None, state_root=tmp_path).create()
    monkeypatch.setattr(kindmod, "container_engine", lambda which: None)
    with pytest.raises(errors.ProviderError, match="kind needs a running container engine"):
        KindProvider(settings(tmp_path), runner=FakeNode(), which=lambda n: n, state_root=tmp_path).create()
    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    node = FakeNode()
    node.fail_on = "create"
    with pytest.raises(errors.ProviderError) as e:
        KindProvider(settings(tmp_path), runner=node, which=lambda n: n, state_root=tmp_path).create()
    assert str(e.value).endswith("failed: last line of the error")


def test_podman_engine_passes_kind_its_provider(tmp_path, monkeypatch):
    seen = []
    node = FakeNode()

    def runner(argv, **kw):
        seen.append(kw.get("env"))
        return node(argv, **kw)

    monkeypatch.setattr(kindmod, "container_engine", lambda which: "podman")
    KindProvider(settings(tmp_path), runner=runner, which=lambda n: n, state_root=tmp_path).create()
    assert all(env and env["KIND_EXPERIMENTAL_PROVIDER"] == "podman" for env in seen)


def test_kind_capabilities_per_profile(tmp_path):
    base = KindProvider(settings(tmp_path), runner=FakeNode(), state_root=tmp_path).capabilities
    assert base.has(ETCD) and base.has(CONTROL_PLANE_EXEC) and not base.has(AUDIT_LOG)
    assert "--kready-profile=hardened" in base.why_not(AUDIT_LOG)
    hard = KindProvider(settings(tmp_path, profile="hardened"), runner=FakeNode(), state_root=tmp_path).capabilities
    assert hard.audit_log == "/var/log/kubernetes/kready-audit.log"


def test_kubeconfig_provider_capabilities_and_no_destroy(tmp_path):
    p = KubeconfigProvider(settings(tmp_path))
    assert isinstance(p, Provider) and p.control_plane() is None and p.destroy() is None
    for cap in (ETCD, CONTROL_PLANE_EXEC, ETCD_RESTORE):
        assert p.capabilities.why_not(cap) == "kubeconfig cluster: control plane not reachable (managed or remote)"
    assert not p.capabilities.ephemeral and not p.capabilities.apply_allowed


def test_kubeconfig_cluster_is_someone_elses(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"current-context": "prod", "contexts": [{"name": "prod", "context": {"cluster": "c"}}],
                                    "clusters": [{"name": "c", "cluster": {}}]}))
    p = KubeconfigProvider(settings(tmp_path, provider="kubeconfig", kubeconfig=path))
    p.create()
    assert p.ownership.maker == "external" and not p.ownership.stale()
    assert not (tmp_path / ownership.FILE_NAME).exists()  # nothing written for a cluster the plugin was given


def test_named_cluster_resolved_from_files_only(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"current-context": "two", "contexts": [{"name": "two", "context": {"cluster": "c"}}],
                                    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}]}))
    s = providers.resolve_named_cluster(settings(tmp_path, provider="kubeconfig", kubeconfig=path))
    assert (s.kubeconfig, s.context) == (path, "two")
    local = settings(tmp_path, provider="local")
    assert providers.resolve_named_cluster(local) is local
    with pytest.raises(errors.ConfigError, match="kubeconfig /nonexistent not found; pass --kready-kubeconfig=PATH"):
        providers.resolve_named_cluster(settings(tmp_path, provider="kubeconfig", kubeconfig=Path("/nonexistent")))


# --- kind configs ----------------------------------------------------------------------------------------


def test_render_fills_the_absolute_profile_dir(tmp_path):
    template = kind_config("hardened").read_text()
    rendered = yaml.safe_load(render_config(template, tmp_path / "profile"))
    assert rendered["kind"] == "Cluster" and rendered["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    mount = rendered["nodes"][0]["extraMounts"][0]
    assert mount == {"hostPath": str(tmp_path / "profile"), "containerPath": "/etc/kubernetes/kready", "readOnly": True}
    assert kindmod.PROFILE_DIR_PLACEHOLDER not in render_config(template, tmp_path)
    with pytest.raises(ValueError):
        render_config(template, Path("relative"))


def test_write_config_writes_profile_files_with_a_fresh_key(tmp_path):
    p = KindProvider(settings(tmp_path, profile="hardened"), runner=FakeNode(), state_root=tmp_path)
    config = yaml.safe_load(p.write_config().read_text())
    host = Path(config["nodes"][0]["extraMounts"][0]["hostPath"])
    assert host.is_absolute() and (host / "audit-policy.yaml").is_file()
    enc = (host / "encryption-config.yaml").read_text()
    assert "__KREADY_ENCRYPTION_KEY__" not in enc and oct((host / "encryption-config.yaml").stat().st_mode)[-3:] == "600"
    baseline = KindProvider(settings(tmp_path / "b"), runner=FakeNode(), state_root=tmp_path / "b")
    assert yaml.safe_load(baseline.write_config().read_text())["nodes"] == [{"role": "control-plane"}]


def test_user_cluster_config_is_used_as_given(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n")
    p = KindProvider(settings(tmp_path, cluster_config=mine), runner=FakeNode(), state_root=tmp_path)
    assert p.write_config().read_text() == mine.read_text()
    assert "audit log location is not known" in p.capabilities.why_not(AUDIT_LOG)


def test_hardened_kind_args_match_the_profile_definition():
    from pytest_kready.profiles import load_profile

    config = yaml.safe_load(kind_config("hardened").read_text())
    patch = yaml.safe_load(config["kubeadmConfigPatches"][0])
    assert patch["kind"] == "ClusterConfiguration"
    expected = load_profile("hardened").rendered_args(conf=kindmod.NODE_CONF_DIR, logdir=kindmod.NODE_LOG_DIR)
    assert patch["apiServer"]["extraArgs"] == expected
    mounts = {v["mountPath"] for v in patch["apiServer"]["extraVolumes"]}
    assert mounts == {kindmod.NODE_CONF_DIR, kindmod.NODE_LOG_DIR}
    for name in load_profile("hardened").apiserver_files:
        assert f"{kindmod.NODE_CONF_DIR}/{name.name}" in expected.values()


# --- kind control plane -----------------------------------------------------------------------------------


def test_control_plane_run_and_read(tmp_path):
    node = FakeNode()
    cp = KindControlPlane("docker", "kready-x-control-plane", runner=node)
    cp.run(["uname", "-r"])
    cp.run(["sh"], input=b"data")
    assert node.calls == [["docker", "exec", "kready-x-control-plane", "uname", "-r"],
                          ["docker", "exec", "-i", "kready-x-control-plane", "sh"]]
    assert cp.etcd.cacert == "/etc/kubernetes/pki/etcd/ca.crt" and cp.etcd.data_dir == "/var/lib/etcd"
    node.fail_on = "cat"
    with pytest.raises(errors.ProviderError, match="on kready-x-control-plane: cat /nope failed"):
        cp.read_file("/nope")


def test_restore_etcd_sequence(tmp_path):
    node = FakeNode()
    cp = KindControlPlane("docker", "n1", runner=node, clock=lambda: 1700000000.0)
    cp.restore_etcd("/var/lib/etcd/snap.db", timeout=30)
    x = ["docker", "exec", "n1"]
    etcdctl = x + ["crictl", "exec", "etcd-new", "etcdctl", "--endpoints", "https://127.0.0.1:2379", "--cacert",
                   "/etc/kubernetes/pki/etcd/ca.crt", "--cert", "/etc/kubernetes/pki/etcd/server.crt", "--key",
                   "/etc/kubernetes/pki/etcd/server.key", "endpoint", "health"]
    assert node.calls == [
        x + ["crictl", "ps", "--name", "^etcd$", "-q"],
        x + ["crictl", "inspect", "--output", "go-template", "--template", "{{.info.pid}}", "etcd111"],
        x + ["cp", "/proc/4242/root/usr/local/bin/etcdutl", "/usr/local/bin/kready-etcdutl"],
        x + ["mkdir", "-p", "/etc/kubernetes/kready-stash"],
        x + ["mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kready-stash/kube-apiserver.yaml"],
        x + ["mv", "/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/kready-stash/etcd.yaml"],
        x + ["crictl", "ps", "--name", "^etcd$", "-q"],
        x + ["crictl", "ps", "--name", "^kube-apiserver$", "-q"],
        x + ["cat", "/etc/kubernetes/kready-stash/etcd.yaml"],
        x + ["/usr/local/bin/kready-etcdutl", "snapshot", "restore", "/var/lib/etcd/snap.db", "--data-dir",
             "/var/lib/etcd-restore-1700000000", "--name", "kready-x-control-plane", "--initial-cluster",
             "kready-x-control-plane=https://172.18.0.2:2380", "--initial-advertise-peer-urls",
             "https://172.18.0.2:2380", "--bump-revision", "1000000000", "--mark-compacted"],
        ["docker", "exec", "-i", "n1", "tee", "/etc/kubernetes/kready-stash/etcd.yaml"],
        x + ["mv", "/etc/kubernetes/kready-stash/etcd.yaml", "/etc/kubernetes/manifests/etcd.yaml"],
        x + ["crictl", "ps", "--name", "^etcd$", "-q"],
        etcdctl,
        x + ["mv", "/etc/kubernetes/kready-stash/kube-apiserver.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml"],
    ]
    written = yaml.safe_load(node.inputs["/etc/kubernetes/kready-stash/etcd.yaml"])
    data = next(v for v in written["spec"]["volumes"] if v["name"] == "etcd-data")
    assert data["hostPath"]["path"] == "/var/lib/etcd-restore-1700000000"
    assert "--data-dir=/var/lib/etcd" in written["spec"]["containers"][0]["command"]  # mount path unchanged
    assert cp.etcd.data_dir == "/var/lib/etcd-restore-1700000000"


def test_restore_failure_puts_the_manifests_back(tmp_path):
    node = FakeNode()
    node.fail_on = "snapshot"
    cp = KindControlPlane("docker", "n1", runner=node, clock=lambda: 1.0)
    with pytest.raises(errors.ProviderError, match="kready-etcdutl snapshot restore failed"):
        cp.restore_etcd("/bad.db", timeout=30)
    moves_back = [c[4:] for c in node.calls if c[3:4] == ["mv"] and c[4].startswith(kindmod.STASH)]
    assert moves_back == [["/etc/kubernetes/kready-stash/etcd.yaml", "/etc/kubernetes/manifests/etcd.yaml"],
                          ["/etc/kubernetes/kready-stash/kube-apiserver.yaml",
                           "/etc/kubernetes/manifests/kube-apiserver.yaml"]]
    assert "/etc/kubernetes/kready-stash/etcd.yaml" not in node.inputs  # original manifest untouched
    assert cp.etcd.data_dir == "/var/lib/etcd"


def test_etcd_flags_and_data_dir_errors():
    with pytest.raises(errors.ProviderError, match="lacks --name"):
        kindmod.etcd_flags({"spec": {"containers": [{"command": ["etcd", "--data-dir=/x"]}]}})
    with pytest.raises(errors.ProviderError, match="no hostPath volume for /var/lib/etcd"):
        kindmod.point_data_dir({"spec": {"volumes": []}}, "/var/lib/etcd", "/new")


def test_run_argv_never_raises_for_exit_status_or_timeouts(tmp_path):
    assert kindmod.run_argv(["false"]).returncode == 1
    assert kindmod.run_argv([str(tmp_path / "missing")]).returncode == 127
    slow = kindmod.run_argv(["sleep", "5"], timeout=0.2)
    assert slow.returncode == 124 and b"timed out" in slow.stderr


def test_settings_dataclass_is_frozen(tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings(tmp_path).mode = "disruptive"
    assert os.sep in str(settings(tmp_path).local_bin_dir)


# --- kind: the ownership record -------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_kind_records_its_cluster_as_this_runs_and_removes_the_record(tmp_path, monkeypatch):
    node = FakeNode()
    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    p = KindProvider(settings(tmp_path), runner=node, which=lambda n: n, state_root=tmp_path / "state")
    p.create()
    record = ownership.read(tmp_path / "state" / "kready-11231600-abc123" / "owner.json")
    assert record == p.ownership
    assert (record.maker, record.provider, record.cluster, record.run_id, record.pid, record.ready) == (
        "run", "kind", "kready-11231600-abc123", "11231600-abc123", os.getpid(), True)
    caps = p.capabilities
    assert caps.ephemeral and caps.has(ETCD_RESTORE) and caps.apply_allowed
    assert "kept" in p.describe_kept() and ownership.read(p.record_path).kept
    p.destroy()
    assert not p.record_path.exists()


def test_kind_record_written_before_kind_runs(tmp_path, monkeypatch):
    seen = []
    node = FakeNode()

    def runner(argv, **kw):
        if argv[1:3] == ["create", "cluster"]:
            seen.append(ownership.read(tmp_path / "kready-11231600-abc123" / "owner.json"))
        return node(argv, **kw)

    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    KindProvider(settings(tmp_path), runner=runner, which=lambda n: n, state_root=tmp_path).create()
    assert seen[0] is not None and seen[0].maker == "run" and not seen[0].ready  # a kill during create is recognised


def test_kind_deletes_only_clusters_whose_run_is_gone(tmp_path, monkeypatch):
    node = FakeNode()
    state = tmp_path / "state"

    def record(name, **kw):
        rec = Ownership.this_process(ownership.RUN, "kind", name, run_id=name[len("kready-"):]).replace(ready=True, **kw)
        rec.write(state / name / "owner.json")
        (state / name / "kubeconfig").write_text("")

    record("kready-killed", pid=_dead_pid())  # killed run: deleted
    record("kready-kept", pid=_dead_pid(), kept=True)  # kept on purpose: stays
    record("kready-live")  # a live run (this process): stays
    record("kready-gone", pid=_dead_pid())  # its cluster already gone: only the state is removed
    (state / "kready-nobody").mkdir()  # no record: someone else's
    node.clusters = ["kready-killed", "kready-kept", "kready-live", "kready-nobody", "kind"]
    monkeypatch.setattr(kindmod, "container_engine", lambda which: "docker")
    p = KindProvider(settings(tmp_path), runner=node, which=lambda n: f"/usr/bin/{n}", state_root=state)
    p.create()
    deletes = [c for c in node.calls if c[1:3] == ["delete", "cluster"]]
    assert deletes == [["/usr/bin/kind", "delete", "cluster", "--name", "kready-killed", "--kubeconfig",
                        str(state / "kready-killed" / "kubeconfig")]]
    assert sorted(d.name for d in state.iterdir()) == ["kready-11231600-abc123", "kready-kept", "kready-live",
                                                       "kready-nobody"]
    assert len(p.notes) == 1 and p.notes[0].startswith("deleted kind cluster kready-killed left by the pytest run killed")
