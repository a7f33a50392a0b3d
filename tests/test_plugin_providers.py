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
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path / "cache"))  # no kind built by tools/build-kind-images.sh
    return bin_dir


def engine_tool(bin_dir: Path, name: str = "docker", *, images: tuple[str, ...] = ("kready/node:v1.36.2",),
                info_exit: int = 0) -> Path:
    """A fake engine: `info` exits with info_exit; `image inspect` knows ``images``."""
    path = bin_dir / name
    cases = "".join(f'    *" {image}") echo sha256:{abs(hash(image)):x}; exit 0;;\n' for image in images)
    path.write_text("#!/bin/sh\n"
                    f'[ "$1" = info ] && exit {info_exit}\n'
                    'if [ "$1 $2" = "image inspect" ]; then\n  case "$*" in\n' + cases + "  esac\n  exit 1\nfi\nexit 0\n")
    path.chmod(0o755)
    return path


def settings(tmp_path, **kw) -> Settings:
    kw.setdefault("local_bin_dir", tmp_path / "no-local-bins")
    return Settings(enabled=True, run_id="11231600-abc123", **kw)


def test_default_is_kind_with_kind_a_running_engine_and_a_local_node_image(path_dir, tmp_path):
    tool(path_dir, "kind")
    engine_tool(path_dir)
    assert providers.choose_provider(settings(tmp_path)) == ("kind", None)


def test_kindest_node_image_of_the_version_counts_too(path_dir, tmp_path):
    tool(path_dir, "kind")
    engine_tool(path_dir, images=("kindest/node:v1.36.2",))
    assert providers.resolve_provider_name(settings(tmp_path)) == "kind"


def test_podman_counts_as_an_engine(path_dir, tmp_path):
    tool(path_dir, "kind")
    tool(path_dir, "docker", exit_code=1)  # installed, daemon down
    engine_tool(path_dir, "podman")
    assert engines.container_engine() == "podman"
    assert providers.resolve_provider_name(settings(tmp_path)) == "kind"


def local_bins(tmp_path) -> Path:
    bins = tmp_path / "k8s-bin"
    bins.mkdir(exist_ok=True)
    (bins / "kube-apiserver").write_text("")
    return bins


def test_default_is_local_without_a_reachable_engine_when_binaries_exist(path_dir, tmp_path):
    tool(path_dir, "kind")
    tool(path_dir, "docker", exit_code=1)
    name, why = providers.choose_provider(settings(tmp_path, local_bin_dir=local_bins(tmp_path)))
    assert name == "local" and why == ("provider local (chosen by default): not kind, because no container engine "
                                       "answers (docker info, podman info)")


def test_default_is_local_without_a_local_node_image_and_never_pulls(path_dir, tmp_path):
    tool(path_dir, "kind")
    log = tmp_path / "engine.log"
    engine = engine_tool(path_dir, images=("kready/node:v1.35.0", "other/node:v1.36.2"))
    engine.write_text(engine.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$*" >> {log}\n', 1))
    name, why = providers.choose_provider(settings(tmp_path, local_bin_dir=local_bins(tmp_path)))
    assert name == "local"
    assert why == ("provider local (chosen by default): not kind, because no kind node image on this machine "
                   "(kready/node:v1.36.2 or kindest/node:v1.36.2; tools/build-kind-images.sh builds one; none is "
                   "pulled to find out)")
    calls = log.read_text().splitlines()
    assert all(c.split()[0] in ("info", "image") for c in calls), calls  # only looked: no pull, no run
    assert "image inspect --format {{.Id}} kready/node:v1.36.2" in calls


def test_default_is_local_without_kind_and_says_why(path_dir, tmp_path):
    engine_tool(path_dir)
    name, why = providers.choose_provider(settings(tmp_path, local_bin_dir=local_bins(tmp_path)))
    assert (name, why) == ("local", "provider local (chosen by default): not kind, because kind is not installed "
                                    "(tools/build-kind-images.sh builds it)")


def test_the_kind_built_by_the_build_step_counts(path_dir, tmp_path):
    from pytest_kready.providers.kind_host import find_kind

    built = tmp_path / "cache" / "kind" / "bin" / "kind"
    built.parent.mkdir(parents=True)
    tool(built.parent, "kind")
    engine_tool(path_dir)
    assert find_kind() == str(built)
    assert providers.choose_provider(settings(tmp_path)) == ("kind", None)


def test_the_local_provider_chosen_by_default_carries_the_line(path_dir, tmp_path):
    engine_tool(path_dir)
    provider = providers.select_provider(settings(tmp_path, local_bin_dir=local_bins(tmp_path)))
    assert provider.name == "local" and provider.notes == [
        "provider local (chosen by default): not kind, because kind is not installed (tools/build-kind-images.sh "
        "builds it)"]


def test_no_provider_is_a_one_line_error_saying_what_to_install(path_dir, tmp_path):
    engine_tool(path_dir)  # an engine but no kind
    with pytest.raises(errors.ProviderError) as e:
        providers.resolve_provider_name(settings(tmp_path))
    assert "\n" not in str(e.value)
    assert "install kind and docker or podman" in str(e.value) and "--kready-kubeconfig" in str(e.value)
    assert str(e.value).endswith("(kind: kind is not installed (tools/build-kind-images.sh builds it))")


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


PLACEHOLDER_PROBE = (
    "cni-config 10-kready-ptp.conflist\n"
    'cni-subnet "subnet": "10.244.0.0/16"\n'
    "default-cni docker.io/kindest/kindnetd:v20260820-69b56db7\n"
    "placeholder /var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/ad26c950f0ac\n"
    "probe-done\n")
KINDNETD_PROBE = "default-cni docker.io/kindest/kindnetd:v20260820-69b56db7\nprobe-done\n"


class FakeNode:
    """Plays the commands the kind provider runs (kind, the engine, and commands on the node), records them, and
    keeps a little state: clusters, local images and what is inside them, the node's static pods."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.inputs: dict[str, bytes] = {}
        self.running = {"etcd": "etcd111", "kube-apiserver": "api222"}
        self.clusters: list[str] = []
        self.images: dict[str, str] = {}  # name -> (probe output)
        self.network_containers = "0"
        self.apiserver_args = ["kube-apiserver", "--secure-port=6443"]
        self.etcd_yaml = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "spec": {
            "containers": [{"name": "etcd", "command": [
                "etcd", "--data-dir=/var/lib/etcd", "--name=kready-x-control-plane",
                "--initial-cluster=kready-x-control-plane=https://172.18.0.2:2380",
                "--initial-advertise-peer-urls=https://172.18.0.2:2380"]}],
            "volumes": [{"name": "etcd-certs", "hostPath": {"path": "/etc/kubernetes/pki/etcd"}},
                        {"name": "etcd-data", "hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}}]}})
        self.fail_on: str | None = None
        self.node_pids: dict[str, int] = {}  # node container -> its init's pid (docker ps/inspect for the thaw)
        self.delete_failures = 0  # kind delete cluster fails this many times first (a frozen node)

    def kind_calls(self):
        return [c for c in self.calls if c[0].endswith("kind")]

    def __call__(self, argv, *, input=None, timeout=60, env=None):
        self.calls.append(list(argv))
        out, rc = b"", 0
        if self.fail_on and self.fail_on in argv:
            return subprocess.CompletedProcess(argv, 1, b"", b"boom\nlast line of the error")
        if argv[1:3] == ["get", "clusters"]:
            out = "\n".join(self.clusters).encode()
        elif argv[1:3] == ["get", "kubeconfig"]:
            out = b"apiVersion: v1\nkind: Config\n"
        elif argv[1:3] == ["create", "cluster"]:
            self.clusters.append(argv[argv.index("--name") + 1])
        elif argv[1:3] == ["delete", "cluster"]:
            if self.delete_failures:
                self.delete_failures -= 1
                return subprocess.CompletedProcess(argv, 1, b"", b"ERROR: failed to delete cluster: Could not kill "
                                                   b"running container, cannot remove - tried to kill container")
            name = argv[argv.index("--name") + 1]
            self.clusters = [c for c in self.clusters if c != name]
        elif argv[1:2] == ["ps"]:
            cluster = argv[-1].rpartition("=")[2]
            out = "\n".join(f"id-{n}" for n in self.node_pids if n.startswith(f"{cluster}-")).encode()
        elif argv[1:2] == ["inspect"] and argv[3] == "{{.Name}} {{.Id}} {{.State.Pid}}":
            out = "".join(f"/{i[3:]} {NODE_ID} {self.node_pids[i[3:]]}\n" for i in argv[4:]).encode()
        elif argv[1:3] == ["image", "inspect"]:
            image = argv[-1]
            out, rc = (f"sha256:{len(image):04x}{image.replace('/', '').replace(':', '')}".encode(), 0) \
                if image in self.images else (b"", 1)
        elif argv[1:2] == ["run"]:
            image = argv[argv.index("--entrypoint") + 2]
            out = self.images[image].encode()
        elif argv[1:2] == ["inspect"]:
            out = b"true\n"
        elif argv[1:3] == ["network", "inspect"]:
            out = self.network_containers.encode()
        elif argv[1:2] == ["exec"]:
            cmd = argv[3:] if argv[2] == "-i" else argv[2:]
            out, rc = self.node(cmd[1:], input)
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
        elif cmd[:2] == ["cat", f"{kindmod.MANIFESTS}/kube-apiserver.yaml"]:
            return yaml.safe_dump({"spec": {"containers": [{"command": self.apiserver_args}]}}).encode(), 0
        elif cmd[0] == "cat":
            return self.etcd_yaml.encode(), 0
        elif cmd[0] == "tee":
            self.inputs[cmd[1]] = data
        return b"", 0


def kind_provider(tmp_path, node, **kw) -> KindProvider:
    s = kw.pop("settings", None) or settings(tmp_path, **kw.pop("settings_kw", {}))
    kw.setdefault("which", lambda n: f"/usr/bin/{n}")
    kw.setdefault("state_root", tmp_path / "state")
    return KindProvider(s, runner=node, engine_finder=lambda which: "docker", **kw)


def test_kind_create_and_destroy_argv(tmp_path):
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE}
    p = kind_provider(tmp_path, node)
    access = p.create()
    state = tmp_path / "state" / "kready-11231600-abc123"
    assert node.kind_calls() == [
        ["/usr/bin/kind", "get", "clusters"],
        ["/usr/bin/kind", "create", "cluster", "--name", "kready-11231600-abc123", "--config",
         str(state / "kind-config.yaml"), "--kubeconfig", str(state / "kubeconfig"), "--wait", "300s",
         "--image", "kready/node:v1.36.2"],
    ]
    assert access.kubeconfig == state / "kubeconfig" and access.context == "kind-kready-11231600-abc123"
    assert isinstance(p, Provider) and isinstance(p.control_plane(), ControlPlane)
    assert p.notes[-1].startswith("kind cluster kready-11231600-abc123 created from kready/node:v1.36.2 in ")
    before = len(node.calls)
    p.destroy()
    p.destroy()  # safe twice
    assert node.calls[before:] == [
        ["docker", "ps", "--all", "--quiet", "--filter", "label=io.x-k8s.kind.cluster=kready-11231600-abc123"],
        ["/usr/bin/kind", "delete", "cluster", "--name", "kready-11231600-abc123", "--kubeconfig",
         str(state / "kubeconfig")],
        ["/usr/bin/kind", "get", "clusters"],
        ["docker", "network", "inspect", "kind", "--format", "{{len .Containers}}"],
        ["docker", "network", "rm", "kind"],  # no kind cluster and no container left on kind's network
    ]
    assert not state.exists()


@pytest.mark.parametrize("clusters, containers", [(["someone-elses"], "0"), ([], "1")])
def test_kind_network_stays_while_anything_uses_it(tmp_path, clusters, containers):
    node = FakeNode()
    p = kind_provider(tmp_path, node)
    p.create()
    node.clusters += clusters
    node.network_containers = containers
    p.destroy()
    assert ["docker", "network", "rm", "kind"] not in node.calls
    assert node.clusters == clusters


def test_locally_built_node_image_without_kindnetd_gets_its_cni_disabled(tmp_path):
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE}
    p = kind_provider(tmp_path, node)
    p.create()
    written = yaml.safe_load((p.state / "kind-config.yaml").read_text())
    profile = yaml.safe_load(kind_config("baseline").read_text())
    assert written == {**profile, "networking": {"disableDefaultCNI": True}}
    assert "disableDefaultCNI" not in kind_config("baseline").read_text()  # the shipped file is not touched
    assert p.node_image.default_cni_placeholder and p.node_image.cni_configs == ("10-kready-ptp.conflist",)
    assert p.notes[0] == ("node image kready/node:v1.36.2 has no kindnetd (kready's placeholder: kindnetd cannot be "
                          "built offline): added networking.disableDefaultCNI: true to this run's copy of "
                          "kind-configs/baseline.yaml; pods use the image's CNI config (10-kready-ptp.conflist), "
                          "which enforces no NetworkPolicy")
    # what is inside an image is looked up once per image ID
    runs = [c for c in node.calls if c[1:2] == ["run"]]
    assert runs == [["docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "kready/node:v1.36.2",
                     "-c", kindmod.PROBE_SCRIPT]]
    node2 = FakeNode()
    node2.images = node.images
    p2 = kind_provider(tmp_path, node2, settings=dataclasses.replace(settings(tmp_path), run_id="11231601-def456"))
    p2.create()
    assert not [c for c in node2.calls if c[1:2] == ["run"]] and p2.node_image == p.node_image


def test_node_image_with_kindnetd_keeps_the_config_as_it_is(tmp_path):
    node = FakeNode()
    node.images = {"kindest/node:v1.36.2": KINDNETD_PROBE}
    p = kind_provider(tmp_path, node, settings_kw={"profile": "hardened"})
    p.create()
    assert node.kind_calls()[1][-2:] == ["--image", "kindest/node:v1.36.2"]
    rendered = render_config(kind_config("hardened").read_text(), (p.state / "profile").resolve())
    assert (p.state / "kind-config.yaml").read_text() == rendered
    assert not p.node_image.default_cni_placeholder and len(p.notes) == 1  # only "created ... in N s"


def test_no_local_node_image_lets_kind_choose_and_says_so(tmp_path):
    node = FakeNode()
    p = kind_provider(tmp_path, node)
    p.create()
    assert "--image" not in node.kind_calls()[1] and not [c for c in node.calls if c[1:2] == ["run"]]
    assert p.notes[0] == ("no kind node image on this machine (kready/node:v1.36.2 or kindest/node:v1.36.2; "
                          "tools/build-kind-images.sh builds one): kind uses its default image, which it pulls")


def test_user_config_is_copied_adjusted_and_never_written(tmp_path):
    mine = tmp_path / "mine.yaml"
    text = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
            "  image: kready/node:v1.36.2\n- role: worker\n  image: kready/node:v1.36.2\n"
            "kubeadmConfigPatches:\n- |\n  kind: ClusterConfiguration\n  apiServer:\n    extraArgs:\n"
            "      v: \"2\"\n")
    mine.write_text(text)
    mtime = mine.stat().st_mtime_ns
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE}
    p = kind_provider(tmp_path, node, settings_kw={"cluster_config": mine})
    p.create()
    assert mine.read_text() == text and mine.stat().st_mtime_ns == mtime
    assert "--image" not in node.kind_calls()[1]  # the config names its nodes' images
    written = (p.state / "kind-config.yaml").read_text()
    assert written.startswith(f"# pytest-kready: your kind config {mine}, with what this host needs added:")
    assert yaml.safe_load(written) == {**yaml.safe_load(text), "networking": {"disableDefaultCNI": True}}
    assert "extraArgs:\n      v: \"2\"" in written  # the patch stays a readable block
    assert any("pods on different nodes of this 2-node cluster cannot reach each other" in n for n in p.notes)


def test_user_config_that_keeps_the_default_cni_is_warned_not_changed(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: false\n")
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE}
    p = kind_provider(tmp_path, node, settings_kw={"cluster_config": mine})
    p.create()
    assert (p.state / "kind-config.yaml").read_text() == mine.read_text()
    assert p.notes[0].endswith("sets networking.disableDefaultCNI: false: the kindnetd pod will crash-loop")


def test_placeholder_without_a_cni_config_is_refused(tmp_path):
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE.replace("cni-config 10-kready-ptp.conflist\n", "")}
    with pytest.raises(errors.ProviderError, match="has no kindnetd .* and no CNI config"):
        kind_provider(tmp_path, node).create()
    assert all(c[1:3] != ["create", "cluster"] for c in node.calls)


def test_node_image_probe_parses_the_real_output():
    image = kindmod.NodeImage.parse("n", "sha256:1", PLACEHOLDER_PROBE)
    assert (image.cni_configs, image.cni_subnets, image.default_cni, image.default_cni_placeholder) == (
        ("10-kready-ptp.conflist",), ("10.244.0.0/16",), "docker.io/kindest/kindnetd:v20260820-69b56db7", True)
    assert not kindmod.NodeImage.parse("n", "sha256:1", KINDNETD_PROBE).default_cni_placeholder


def test_kind_never_reuses_an_existing_cluster(tmp_path):
    node = FakeNode()
    node.clusters = ["kready-11231600-abc123"]
    p = kind_provider(tmp_path, node)
    with pytest.raises(errors.ProviderError, match="never reuses a cluster it did not create"):
        p.create()
    p.destroy()
    assert all(c[1] != "delete" for c in node.calls) and node.clusters == ["kready-11231600-abc123"]


def test_kind_missing_or_failing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(errors.ProviderError, match="kind is not installed"):
        KindProvider(settings(tmp_path), runner=FakeNode(), which=lambda n: None, state_root=tmp_path).create()
    with pytest.raises(errors.ProviderError, match="kind needs a running container engine"):
        KindProvider(settings(tmp_path), runner=FakeNode(), which=lambda n: n, state_root=tmp_path,
                     engine_finder=lambda which: None).create()
    node = FakeNode()
    node.fail_on = "create"
    with pytest.raises(errors.ProviderError) as e:
        kind_provider(tmp_path, node).create()
    assert str(e.value).endswith("failed: last line of the error")


def test_podman_engine_passes_kind_its_provider(tmp_path):
    seen = []
    node = FakeNode()

    def runner(argv, **kw):
        if argv[0].endswith("kind"):
            seen.append(kw.get("env"))
        return node(argv, **kw)

    KindProvider(settings(tmp_path), runner=runner, which=lambda n: n, state_root=tmp_path,
                 engine_finder=lambda which: "podman").create()
    assert seen and all(env and env["KIND_EXPERIMENTAL_PROVIDER"] == "podman" for env in seen)


def test_kind_lock_is_exclusive_and_released(tmp_path):
    import fcntl

    with kindmod.kind_lock(tmp_path):
        with open(tmp_path / ".lock") as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(errors.ProviderError, match="another pytest-kready run held"):
            with kindmod.kind_lock(tmp_path, timeout=0.2):
                pass
    with kindmod.kind_lock(tmp_path, timeout=0.2):
        pass


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


def test_kind_records_its_cluster_as_this_runs_and_removes_the_record(tmp_path):
    node = FakeNode()
    p = kind_provider(tmp_path, node)
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


def test_kind_record_written_before_kind_runs(tmp_path):
    seen = []
    node = FakeNode()

    def runner(argv, **kw):
        if argv[1:3] == ["create", "cluster"]:
            seen.append(ownership.read(tmp_path / "kready-11231600-abc123" / "owner.json"))
        return node(argv, **kw)

    KindProvider(settings(tmp_path), runner=runner, which=lambda n: n, state_root=tmp_path,
                 engine_finder=lambda which: "docker").create()
    assert seen[0] is not None and seen[0].maker == "run" and not seen[0].ready  # a kill during create is recognised


def test_kind_deletes_only_clusters_whose_run_is_gone(tmp_path):
    node = FakeNode()
    state = tmp_path / "state"

    def record(name, **kw):
        rec = Ownership.this_process(ownership.RUN, "kind", name, run_id=name[len("kready-"):]).replace(ready=True, **kw)
        rec.write(state / name / "owner.json")
        (state / name / "kubeconfig").write_text("")
        return rec

    record("kready-killed", pid=_dead_pid())  # killed run: deleted
    record("kready-kept", pid=_dead_pid(), kept=True)  # kept on purpose: stays
    record("kready-live")  # a live run (this process): stays
    record("kready-gone", pid=_dead_pid())  # its cluster already gone: only the state is removed
    record("kready-kept-deleted", pid=_dead_pid(), kept=True)  # kept, then deleted by hand: the state goes
    record("kready-live-starting").replace(ready=False).write(state / "kready-live-starting" / "owner.json")
    (state / "kready-nobody").mkdir()  # no record: someone else's
    Ownership(maker="run", provider="kind", cluster="pytest-kind", pid=_dead_pid(), pid_start=1).write(
        state / "pytest-kind" / "owner.json")  # not a kready-* name: never ours to delete
    node.clusters = ["kready-killed", "kready-kept", "kready-live", "kready-nobody", "kind", "pytest-kind"]
    p = kind_provider(tmp_path, node, state_root=state)
    p.create()
    deletes = [c for c in node.calls if c[1:3] == ["delete", "cluster"]]
    assert deletes == [["/usr/bin/kind", "delete", "cluster", "--name", "kready-killed", "--kubeconfig",
                        str(state / "kready-killed" / "kubeconfig")]]
    assert sorted(d.name for d in state.iterdir() if d.is_dir()) == [
        "kready-11231600-abc123", "kready-kept", "kready-live", "kready-live-starting", "kready-nobody", "pytest-kind"]
    assert p.notes[0].startswith("deleted kind cluster kready-killed left by the pytest run killed")



NODE_ID = "5861b1e0ea8354468331dd22fdfde170542c65a54c50e64489a86d5a934ce97c"


def frozen_node(tmp_path: Path, pid: int, parent: str = "docker", name: str = NODE_ID) -> tuple[Path, Path, Path]:
    """A /proc and a cgroup v1 freezer hierarchy where the node container NODE_ID (init ``pid``, cgroup
    ``parent/name``) has a pod container's cgroup FROZEN (what a runc killed between freeze and thaw leaves).
    (proc, freezer root, frozen)"""
    proc, root = tmp_path / "proc", tmp_path / "freezer"
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cgroup").write_text(f"12:cpu,cpuacct:/{parent}/{name}\n6:freezer:/{parent}/{name}/init.scope\n"
                                            "0::/\n")
    node = root / parent / name
    pod = node / "kubelet.slice" / "kubelet-kubepods.slice" / "pod1"
    frozen = pod / "cri-containerd-c1.scope"
    for d, state in ((root, "THAWED"), (node, "THAWED"), (pod, "THAWED"), (frozen, "FROZEN"),
                     (pod / "cri-containerd-c2.scope", "THAWED"), (root / "docker" / "other", "FROZEN"),
                     (root / "system.slice", "THAWED")):
        d.mkdir(parents=True, exist_ok=True)
        (d / "freezer.state").write_text(state)
    return proc, root, frozen


def test_thaw_container_thaws_only_what_is_frozen_under_that_container(tmp_path):
    from pytest_kready.providers import freezer

    proc, root, frozen = frozen_node(tmp_path, 4242)
    assert freezer.thaw_container(NODE_ID, 4242, root=root, proc=proc) == [frozen]
    assert (frozen / "freezer.state").read_text() == "THAWED"
    assert (root / "docker" / "other" / "freezer.state").read_text() == "FROZEN"  # another container's: untouched
    assert freezer.thaw_container(NODE_ID, 4242, root=root, proc=proc) == []  # nothing left frozen
    (frozen / "freezer.state").write_text("FROZEN")
    # after a failed kill the engine may report an init pid that is gone, or reused by a host process (in the root
    # cgroup, or another container's): the container's cgroup is then found by its ID, never from that process
    (proc / "7").mkdir()
    (proc / "7" / "cgroup").write_text("6:freezer:/docker/other\n")
    for pid in (0, 99, 7):
        assert freezer.thaw_container(NODE_ID, pid, root=root, proc=proc) == [frozen]
        (frozen / "freezer.state").write_text("FROZEN")
    assert (root / "docker" / "other" / "freezer.state").read_text() == "FROZEN"
    assert freezer.thaw_container("0123456789abcdef", 7, root=root, proc=proc) == []  # no cgroup of that container
    assert freezer.thaw_container("", 4242, root=root, proc=proc) == []
    assert freezer.thaw_container(NODE_ID, 4242, root=tmp_path / "no-v1-freezer", proc=proc) == []  # cgroup v2 host


def test_thaw_container_finds_a_systemd_drivers_scope(tmp_path):
    from pytest_kready.providers import freezer

    proc, root, frozen = frozen_node(tmp_path, 4242, parent="system.slice", name=f"docker-{NODE_ID}.scope")
    assert freezer.thaw_container(NODE_ID, 0, root=root, proc=proc) == [frozen]
    (frozen / "freezer.state").write_text("FROZEN")
    assert freezer.thaw_container(NODE_ID, 4242, root=root, proc=proc) == [frozen]


def test_a_node_that_cannot_be_killed_is_thawed_and_deleted(tmp_path):
    """kind delete fails while a pod cgroup of the node is frozen; the provider thaws it and deletes again, and
    says so (the killed-run sweep and destroy both go through delete_cluster)."""
    from pytest_kready.providers import freezer

    proc, root, frozen = frozen_node(tmp_path, 4242)
    node = FakeNode()
    node.images = {"kready/node:v1.36.2": PLACEHOLDER_PROBE}
    p = kind_provider(tmp_path, node, thaw=lambda cid, pid: freezer.thaw_container(cid, pid, root=root, proc=proc))
    p.create()
    name = p.cluster_name
    node.node_pids = {f"{name}-control-plane": 4242, "someone-control-plane": 5151}
    node.delete_failures = 1
    (frozen / "freezer.state").write_text("FROZEN")  # frozen again after the first thaw: the kill cut off anew
    real_runner = node.__call__

    def refreeze(argv, **kw):
        done = real_runner(argv, **kw)
        if argv[1:3] == ["delete", "cluster"] and done.returncode != 0:
            (frozen / "freezer.state").write_text("FROZEN")
        return done

    p.runner = refreeze
    p.destroy()
    deletes = [c for c in node.calls if c[1:3] == ["delete", "cluster"]]
    assert len(deletes) == 2 and name not in node.clusters
    thawed = [n for n in p.notes if n.startswith("thawed ")]
    assert thawed == [f"thawed 1 frozen cgroup(s) in kind node {name}-control-plane so that it could be deleted "
                      "(a container kill cut off while frozen): cri-containerd-c1.scope"] * 2
    assert ["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.Pid}}", f"id-{name}-control-plane"] in node.calls

    # still frozen after every try: destroy says it failed, with kind's last line
    p2 = kind_provider(tmp_path / "2", FakeNode(), thaw=lambda cid, pid: [])
    p2.create()
    p2.runner.delete_failures = 3
    with pytest.raises(errors.ProviderError, match="kind delete cluster --name .* failed: ERROR: failed to delete cluster"):
        p2.destroy()
    assert len([c for c in p2.runner.calls if c[1:3] == ["delete", "cluster"]]) == 3


# --- kind: attaching to the session's pytest-kind cluster ---------------------------------------------------------


def test_attach_to_a_pytest_kind_cluster_by_name(tmp_path):
    from pytest_kready.providers.pytest_kind import PytestKindCluster

    node = FakeNode()
    node.clusters = ["pk-users"]
    node.apiserver_args = ["kube-apiserver", "--audit-log-path=/var/log/audit.log"]
    p = kind_provider(tmp_path, node, pytest_kind=PytestKindCluster("pk-users", "--cluster-name"))
    access = p.create()
    assert [c for c in node.kind_calls() if c[1] in ("create", "delete")] == []
    assert node.kind_calls()[-1] == ["/usr/bin/kind", "get", "kubeconfig", "--name", "pk-users"]
    assert access.context == "kind-pk-users" and access.kubeconfig.read_text().startswith("apiVersion: v1")
    assert oct(access.kubeconfig.stat().st_mode)[-3:] == "600"
    assert p.attached and p.ownership.maker == "external" and p.ownership.cluster == "pk-users"
    caps = p.capabilities
    assert not caps.ephemeral and caps.apply_allowed and caps.has(CONTROL_PLANE_EXEC) and caps.has(ETCD)
    assert not caps.has(ETCD_RESTORE) and "--kready-allow-etcd-restore" in caps.why_not(ETCD_RESTORE)
    assert caps.audit_log == "/var/log/audit.log"
    assert p.control_plane().node == "pk-users-control-plane"
    assert p.notes == ["attached to kind cluster pk-users (--cluster-name; someone else (kind cluster pk-users)); "
                       "it is not deleted at the end"]
    p.prepare(api=None)  # no profile manifests on a cluster the run did not make (api unused)
    p.destroy()
    assert node.clusters == ["pk-users"] and not access.kubeconfig.exists()
    assert all(c[1:3] != ["network", "rm"] for c in node.calls)


def test_attach_uses_pytest_kinds_kubeconfig_and_kind(tmp_path):
    from pytest_kready.providers.pytest_kind import PytestKindCluster

    node = FakeNode()
    node.clusters = ["pytest-kind"]
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("x")
    pk = PytestKindCluster("pytest-kind", "pytest-kind's kind_cluster fixture", kubeconfig, "/opt/kind")
    p = kind_provider(tmp_path, node, settings_kw={"allow_etcd_restore": True}, pytest_kind=pk)
    assert p.create().kubeconfig == kubeconfig
    assert {c[0] for c in node.kind_calls()} == {"/opt/kind"}
    assert p.capabilities.has(ETCD_RESTORE) and not p.capabilities.has(AUDIT_LOG)


def test_attach_refuses_a_live_runs_cluster_and_a_missing_one(tmp_path):
    from pytest_kready.providers.pytest_kind import PytestKindCluster

    node = FakeNode()
    node.clusters = ["kready-other"]
    Ownership.this_process(ownership.RUN, "kind", "kready-other", run_id="other").replace(ready=True).write(
        tmp_path / "state" / "kready-other" / "owner.json")
    with pytest.raises(errors.ProviderError, match="belongs to the pytest run other"):
        kind_provider(tmp_path, node, pytest_kind=PytestKindCluster("kready-other", "--cluster-name")).create()
    with pytest.raises(errors.ProviderError, match="--cluster-name names kind cluster nope, which does not exist"):
        kind_provider(tmp_path, node, pytest_kind=PytestKindCluster("nope", "--cluster-name")).create()
    assert node.clusters == ["kready-other"]


def test_attach_to_a_kept_kready_cluster_uses_its_record(tmp_path):
    from pytest_kready.providers.pytest_kind import PytestKindCluster

    node = FakeNode()
    node.clusters = ["kready-kept"]
    kept = Ownership.this_process(ownership.RUN, "kind", "kready-kept", run_id="kept").replace(
        ready=True, kept=True, pid=_dead_pid())
    kept.write(tmp_path / "state" / "kready-kept" / "owner.json")
    p = kind_provider(tmp_path, node, pytest_kind=PytestKindCluster("kready-kept", "--cluster-name"))
    p.create()
    assert p.ownership == kept and "kept by the pytest run kept" in p.capabilities.why_not(ETCD_RESTORE)
    p.destroy()
    assert node.clusters == ["kready-kept"] and (tmp_path / "state" / "kready-kept" / "owner.json").exists()


class _Opts:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _FakeConfig:
    def __init__(self, args, **options):
        self.option = _Opts(**options)
        self.invocation_params = _Opts(args=args)
        self.pluginmanager = _Opts(has_plugin=lambda name: name == "pytest-kind")

    def getoption(self, name, default=None):
        return getattr(self.option, name, default)


def test_pytest_kind_is_given_this_machines_kind_and_kubectl(tmp_path):
    from pytest_kready.providers import pytest_kind

    bins = local_bins(tmp_path)
    (bins / "kubectl").write_text("")
    config = _FakeConfig([], kind_bin=None, kind_kubectl_bin=None, cluster_name="pytest-kind")
    s = settings(tmp_path, local_bin_dir=bins)
    filled = pytest_kind.fill_binaries(config, s, which=lambda n: "/usr/bin/kind" if n == "kind" else None)
    assert filled == ["--kind-bin=/usr/bin/kind", f"--kind-kubectl-bin={bins / 'kubectl'}"]
    assert (config.option.kind_bin, config.option.kind_kubectl_bin) == ("/usr/bin/kind", str(bins / "kubectl"))
    given = _FakeConfig([], kind_bin="/mine/kind", kind_kubectl_bin="/mine/kubectl")
    assert pytest_kind.fill_binaries(given, s, which=lambda n: "/usr/bin/" + n) == []
    assert given.option.kind_bin == "/mine/kind"
    local = _FakeConfig([], kind_bin=None, kind_kubectl_bin=None)
    assert pytest_kind.fill_binaries(local, settings(tmp_path, provider="local"), which=lambda n: n) == []


def test_pytest_kind_cluster_name_counts_only_when_given():
    from pytest_kready.providers import pytest_kind

    assert not pytest_kind.cluster_name_given(_FakeConfig([], cluster_name="pytest-kind"))
    assert pytest_kind.cluster_name_given(_FakeConfig(["--cluster-name=pytest-kind"], cluster_name="pytest-kind"))
    assert pytest_kind.cluster_name_given(_FakeConfig([], cluster_name="mine"))  # from addopts
