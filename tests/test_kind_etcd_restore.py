"""kind's etcd snapshot and restore, tested command by command against a simulated kind control-plane node.

kind nodes are kubeadm nodes: static pod manifests in /etc/kubernetes/manifests (etcd.yaml, kube-apiserver.yaml,
...), etcd certificates in /etc/kubernetes/pki/etcd, etcd data in the hostPath /var/lib/etcd mounted into the etcd
container at the same path, and neither etcdctl nor etcdutl on the node (they live in the etcd image). See
https://kubernetes.io/docs/reference/setup-tools/kubeadm/implementation-details/#constants-and-well-known-values-and-paths
and kind's node image (kubeadm init). ``FakeKindNode`` answers ``docker exec`` argv the way such a node does (a
kubelet that starts and stops static pods as their manifests come and go, crictl, coreutils, etcdctl in the etcd
container, etcdutl once copied out of it) and records every command, so these tests pin the exact commands and
the exact manifest the restore writes, until kind itself runs here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess

import pytest
import yaml

from pytest_kready import errors
from pytest_kready.checks import etcd as etcd_check
from pytest_kready.findings import Verdict
from pytest_kready.providers import kind
from pytest_kready.providers.kind import KindControlPlane

NODE = "kready-run-control-plane"
NODE_IP = "172.18.0.2"
ETCD_MANIFEST = {  # as kubeadm (kind's node image) writes it, trimmed of probes
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{NODE_IP}:2379"},
                 "labels": {"component": "etcd", "tier": "control-plane"}, "name": "etcd", "namespace": "kube-system"},
    "spec": {
        "containers": [{
            "command": [
                "etcd", f"--advertise-client-urls=https://{NODE_IP}:2379",
                "--cert-file=/etc/kubernetes/pki/etcd/server.crt", "--client-cert-auth=true",
                "--data-dir=/var/lib/etcd", "--experimental-initial-corrupt-check=true",
                f"--initial-advertise-peer-urls=https://{NODE_IP}:2380",
                f"--initial-cluster={NODE}=https://{NODE_IP}:2380", "--key-file=/etc/kubernetes/pki/etcd/server.key",
                f"--listen-client-urls=https://127.0.0.1:2379,https://{NODE_IP}:2379",
                "--listen-metrics-urls=http://127.0.0.1:2381", f"--listen-peer-urls=https://{NODE_IP}:2380",
                f"--name={NODE}", "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt", "--peer-client-cert-auth=true",
                "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
                "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt", "--snapshot-count=10000",
                "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"],
            "image": "registry.k8s.io/etcd:3.6.4-0", "imagePullPolicy": "IfNotPresent", "name": "etcd",
            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
            "volumeMounts": [{"mountPath": "/var/lib/etcd", "name": "etcd-data"},
                             {"mountPath": "/etc/kubernetes/pki/etcd", "name": "etcd-certs"}]}],
        "hostNetwork": True, "priority": 2000001000, "priorityClassName": "system-node-critical",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"hostPath": {"path": "/etc/kubernetes/pki/etcd", "type": "DirectoryOrCreate"}, "name": "etcd-certs"},
                    {"hostPath": {"path": "/var/lib/etcd", "type": "DirectoryOrCreate"}, "name": "etcd-data"}]},
    "status": {}}
APISERVER_MANIFEST = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
                      "spec": {"containers": [{"name": "kube-apiserver", "command": ["kube-apiserver"]}]}}
CERTS = ["--endpoints", "https://127.0.0.1:2379", "--cacert", "/etc/kubernetes/pki/etcd/ca.crt",
         "--cert", "/etc/kubernetes/pki/etcd/server.crt", "--key", "/etc/kubernetes/pki/etcd/server.key"]


class FakeKindNode:
    """A kind control-plane node behind ``docker exec``: files, a kubelet running the static pods whose manifests
    are in /etc/kubernetes/manifests, crictl, etcd data directories (each a dict, the key-value store) and the
    API objects etcd holds. Records the argv of every command (without ``docker exec [-i] <node>``)."""

    def __init__(self):
        self.files: dict[str, bytes] = {
            f"{kind.MANIFESTS}/etcd.yaml": yaml.safe_dump(ETCD_MANIFEST).encode(),
            f"{kind.MANIFESTS}/kube-apiserver.yaml": yaml.safe_dump(APISERVER_MANIFEST).encode(),
            f"{kind.MANIFESTS}/kube-scheduler.yaml": b"kind: Pod\n",
        }
        self.data_dirs: dict[str, dict] = {"/var/lib/etcd": {}}  # hostPath → the store
        self.commands: list[list[str]] = []
        self.stdin: dict[int, bytes] = {}
        self.fail: dict[str, tuple[int, bytes]] = {}  # argv[0] (or "crictl exec") → (status, stderr)

    # --- the kubelet: a static pod runs while its manifest is in the manifests directory -------------------
    def running(self, name: str) -> str | None:
        data = self.files.get(f"{kind.MANIFESTS}/{name}.yaml")
        return hashlib.sha1(data).hexdigest()[:13] if data is not None else None

    def etcd_store(self) -> dict | None:
        """The store of the running etcd: the data directory its manifest's hostPath names."""
        data = self.files.get(f"{kind.MANIFESTS}/etcd.yaml")
        if data is None:
            return None
        pod = yaml.safe_load(data)
        host = next(v["hostPath"]["path"] for v in pod["spec"]["volumes"] if v["name"] == "etcd-data")
        return self.data_dirs.setdefault(host, {})

    # --- docker exec -------------------------------------------------------------------------------------------
    def __call__(self, argv, *, input=None, timeout=60, env=None):
        assert argv[:2] == ["docker", "exec"], argv
        rest = argv[2:]
        if rest[0] == "-i":
            rest = rest[1:]
            assert input is not None
        assert rest[0] == NODE, rest
        cmd = rest[1:]
        self.commands.append(cmd)
        if input is not None:
            self.stdin[len(self.commands) - 1] = input
        key = "crictl exec" if cmd[:2] == ["crictl", "exec"] else cmd[0]
        if key in self.fail:
            status, err = self.fail[key]
            return subprocess.CompletedProcess(argv, status, b"", err)
        out = self.execute(cmd, input)
        if isinstance(out, subprocess.CompletedProcess):
            return out
        return subprocess.CompletedProcess(argv, 0, out or b"", b"")

    def execute(self, cmd: list[str], input: bytes | None):
        def err(text: str, status: int = 1):
            return subprocess.CompletedProcess(cmd, status, b"", text.encode())

        if cmd[:2] == ["crictl", "ps"]:
            name = cmd[cmd.index("--name") + 1].strip("^$")
            cid = self.running(name)
            return (cid + "\n").encode() if cid else b""
        if cmd[:2] == ["crictl", "inspect"]:
            assert cmd[-1] == self.running("etcd") and "{{.info.pid}}" in cmd
            return b"4242\n"
        if cmd[:2] == ["crictl", "exec"]:
            cid, tool, args = cmd[2], cmd[3], cmd[4:]
            if cid != self.running("etcd"):
                return err("container not running")
            assert tool == "etcdctl" and args[:8] == CERTS, args
            op = args[8:]
            if op == ["endpoint", "health"]:
                return b"https://127.0.0.1:2379 is healthy\n"
            if op[:2] == ["snapshot", "save"]:
                assert op[2].startswith("/var/lib/etcd/"), "inside the container the data dir is at /var/lib/etcd"
                host_dir = next(h for h, s in self.data_dirs.items() if s is self.etcd_store())
                self.files[host_dir + "/" + op[2].rsplit("/", 1)[1]] = json.dumps(self.etcd_store()).encode()
                return b"Snapshot saved\n"
            return err(f"unexpected etcdctl {op}")
        if cmd[0] == "cp":
            assert cmd[1:] == ["/proc/4242/root/usr/local/bin/etcdutl", kind.ETCDUTL], cmd
            self.files[kind.ETCDUTL] = b"ELF"
            return b""
        if cmd[:2] == ["mkdir", "-p"]:
            return b""
        if cmd[0] == "mv":
            if cmd[1] not in self.files:
                return err(f"mv: cannot stat '{cmd[1]}'")
            self.files[cmd[2]] = self.files.pop(cmd[1])
            return b""
        if cmd[0] == "cat":
            return self.files[cmd[1]] if cmd[1] in self.files else err(f"cat: {cmd[1]}: No such file")
        if cmd[0] == "tee":
            self.files[cmd[1]] = input
            return input
        if cmd[0] == "rm":
            assert cmd[1] == "-f"
            for p in cmd[2:]:
                self.files.pop(p, None)
            return b""
        if cmd[0] == kind.ETCDUTL:
            assert kind.ETCDUTL in self.files, "etcdutl copied out of the etcd container first"
            assert self.running("etcd") is None and self.running("kube-apiserver") is None, "restore with etcd stopped"
            assert cmd[1:3] == ["snapshot", "restore"]
            snapshot, opts = cmd[3], dict(zip(cmd[4::2], cmd[5::2]))
            new = opts["--data-dir"]
            if new in self.data_dirs:
                return err(f"data-dir {new} exists")
            self.data_dirs[new] = json.loads(self.files[snapshot])
            return b""
        return err(f"{cmd[0]}: not found", 127)


class FakeClock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        self.now += 0.5
        return self.now


@pytest.fixture
def node():
    return FakeKindNode()


@pytest.fixture
def control_plane(node):
    return KindControlPlane("docker", NODE, runner=node, clock=FakeClock())


def test_restore_runs_exactly_these_commands_on_the_node(node, control_plane):
    node.data_dirs["/var/lib/etcd"].update({"a": 1})
    node.files["/var/lib/etcd/snap.db"] = json.dumps({"a": 1}).encode()
    control_plane.restore_etcd("/var/lib/etcd/snap.db")
    etcd_id = node.running("etcd")
    new_dir = control_plane.etcd.data_dir
    assert new_dir.startswith("/var/lib/etcd-restore-") and new_dir != "/var/lib/etcd"
    old_id = hashlib.sha1(yaml.safe_dump(ETCD_MANIFEST).encode()).hexdigest()[:13]
    stash, manifests = kind.STASH, kind.MANIFESTS
    assert node.commands == [
        ["crictl", "ps", "--name", "^etcd$", "-q"],
        ["crictl", "inspect", "--output", "go-template", "--template", "{{.info.pid}}", old_id],
        ["cp", "/proc/4242/root/usr/local/bin/etcdutl", "/usr/local/bin/kready-etcdutl"],
        ["mkdir", "-p", stash],
        ["mv", f"{manifests}/kube-apiserver.yaml", f"{stash}/kube-apiserver.yaml"],
        ["mv", f"{manifests}/etcd.yaml", f"{stash}/etcd.yaml"],
        ["crictl", "ps", "--name", "^etcd$", "-q"],
        ["crictl", "ps", "--name", "^kube-apiserver$", "-q"],
        ["cat", f"{stash}/etcd.yaml"],
        ["/usr/local/bin/kready-etcdutl", "snapshot", "restore", "/var/lib/etcd/snap.db", "--data-dir", new_dir,
         "--name", NODE, "--initial-cluster", f"{NODE}=https://{NODE_IP}:2380",
         "--initial-advertise-peer-urls", f"https://{NODE_IP}:2380", "--bump-revision", "1000000000", "--mark-compacted"],
        ["tee", f"{stash}/etcd.yaml"],
        ["mv", f"{stash}/etcd.yaml", f"{manifests}/etcd.yaml"],
        ["crictl", "ps", "--name", "^etcd$", "-q"],
        ["crictl", "exec", etcd_id, "etcdctl", *CERTS, "endpoint", "health"],
        ["mv", f"{stash}/kube-apiserver.yaml", f"{manifests}/kube-apiserver.yaml"],
    ]
    # the manifest etcd comes back with: only the data hostPath differs; the container still sees /var/lib/etcd
    written = yaml.safe_load(node.files[f"{manifests}/etcd.yaml"])
    expected = copy.deepcopy(ETCD_MANIFEST)
    expected["spec"]["volumes"][1]["hostPath"]["path"] = new_dir
    assert written == expected
    assert "--data-dir=/var/lib/etcd" in written["spec"]["containers"][0]["command"]
    assert node.etcd_store() == {"a": 1}, "etcd runs on the restored data"
    assert node.running("kube-apiserver") and node.files[f"{manifests}/kube-scheduler.yaml"]
    assert not [p for p in node.files if p.startswith(stash + "/")], "nothing left in the stash"


def test_a_failed_restore_puts_the_node_back_as_it_was(node, control_plane):
    node.files["/var/lib/etcd/snap.db"] = b"{}"
    node.fail[kind.ETCDUTL] = (2, b"snapshot file has wrong hash")
    before = dict(node.files)
    with pytest.raises(errors.ProviderError, match="wrong hash"):
        control_plane.restore_etcd("/var/lib/etcd/snap.db")
    after = {p: d for p, d in node.files.items() if p != kind.ETCDUTL}
    assert after == before, "the manifests are back, unchanged"
    assert node.running("etcd") and node.running("kube-apiserver")
    assert control_plane.etcd.data_dir == "/var/lib/etcd"
    moved_back = [c for c in node.commands if c[0] == "mv"][-2:]
    assert moved_back == [["mv", f"{kind.STASH}/etcd.yaml", f"{kind.MANIFESTS}/etcd.yaml"],
                          ["mv", f"{kind.STASH}/kube-apiserver.yaml", f"{kind.MANIFESTS}/kube-apiserver.yaml"]]


def test_not_kinds_layout_is_refused_before_anything_is_restored(node, control_plane):
    odd = copy.deepcopy(ETCD_MANIFEST)
    odd["spec"]["volumes"][1]["hostPath"]["path"] = "/data/etcd"
    node.files[f"{kind.MANIFESTS}/etcd.yaml"] = yaml.safe_dump(odd).encode()
    node.files["/var/lib/etcd/snap.db"] = b"{}"
    with pytest.raises(errors.ProviderError, match="no hostPath volume for /var/lib/etcd"):
        control_plane.restore_etcd("/var/lib/etcd/snap.db")
    assert node.running("etcd") and node.running("kube-apiserver")


# --- the snapshot side, and the whole drill against the simulated node ------------------------------------


def test_snapshot_on_kind_runs_etcdctl_in_the_etcd_container(node, control_plane):
    save, restore = etcd_check.snapshot_paths(control_plane, "kready-snapshot-x.db")
    assert (save, restore) == ("/var/lib/etcd/kready-snapshot-x.db", "/var/lib/etcd/kready-snapshot-x.db")
    proc = etcd_check.save_snapshot(control_plane, save)
    assert proc.returncode == 0
    assert node.commands[-1] == ["crictl", "exec", node.running("etcd"), "etcdctl", *CERTS, "snapshot", "save",
                                 "/var/lib/etcd/kready-snapshot-x.db"]
    assert restore in node.files, "the node finds the snapshot in the data directory's hostPath"


def test_snapshot_paths_after_an_earlier_restore_follow_the_hostpath(node, control_plane):
    node.files["/var/lib/etcd/snap.db"] = b"{}"
    control_plane.restore_etcd("/var/lib/etcd/snap.db")
    save, restore = etcd_check.snapshot_paths(control_plane, "s.db")
    assert save == "/var/lib/etcd/s.db" and restore == f"{control_plane.etcd.data_dir}/s.db"
    assert etcd_check.save_snapshot(control_plane, save).returncode == 0
    assert restore in node.files


class FakeApi:
    """The API server of the simulated node: ConfigMaps kept in the running etcd's store; unreachable while the
    API server or etcd is stopped."""

    def __init__(self, node: FakeKindNode):
        self.node = node
        self.closed = False

    def _store(self) -> dict:
        store = self.node.etcd_store()
        if store is None or not self.node.running("kube-apiserver"):
            raise errors.ClusterUnreachable("connection refused")
        return store

    def raw(self, method, path, *, query=None, body=None, content_type=None, timeout=30):
        store = self._store()
        if path == "/readyz":
            return "ok"
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in store:
                raise errors.APIConflict("exists", status=409)
            store[key] = {**body, "metadata": {**body["metadata"], "namespace": path.split("/")[4]}}
            return store[key]
        if method == "GET":
            if path not in store:
                raise errors.APINotFound("not found", status=404)
            return store[path]
        raise AssertionError((method, path))

    def resource(self, api_version, kind_):
        from pytest_kready.client import Resource

        assert kind_ == "ConfigMap"
        return Resource("v1", "ConfigMap", "configmaps", True)

    def close(self):
        self.closed = True


def test_the_drill_on_kinds_layout_passes(node, control_plane):
    api = FakeApi(node)
    result = etcd_check.run_drill(api, lambda: FakeApi(node), control_plane, "ns1", "run1", timeout=30)
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["after_restore"] == {"marker_a": "present", "marker_b": "absent"}
    assert result.evidence["data_dir_before"] == "/var/lib/etcd"
    assert result.evidence["data_dir_after"].startswith("/var/lib/etcd-restore-")
    snapshot = result.evidence["snapshot"]
    assert snapshot.startswith("/var/lib/etcd/kready-snapshot-run1-") and snapshot not in node.files, "removed"
    assert ["rm", "-f", snapshot] == node.commands[-1]
    assert "restore_seconds" in result.evidence and result.references


def test_the_drill_fails_when_the_restore_does_not_roll_back(node, control_plane):
    class NoRestore(KindControlPlane):
        def restore_etcd(self, snapshot, *, timeout=180):
            return None

    cp = NoRestore("docker", NODE, runner=node, clock=FakeClock())
    result = etcd_check.run_drill(FakeApi(node), lambda: FakeApi(node), cp, "ns1", "run1", timeout=30)
    assert result.verdict is Verdict.FAIL
    assert "marker B" in result.summary and result.evidence["after_restore"]["marker_b"] == "present"


def test_the_drill_is_inconclusive_when_the_snapshot_tool_fails(node, control_plane):
    node.fail["crictl exec"] = (1, b"Error: context deadline exceeded")
    result = etcd_check.run_drill(FakeApi(node), lambda: FakeApi(node), control_plane, "ns1", "run1", timeout=30)
    # the plugin's own tooling failed: inconclusive, never a finding against the cluster (issue 10)
    assert result.verdict is Verdict.INCONCLUSIVE and "snapshot" in result.summary and "failed" in result.summary
    assert "context deadline exceeded" in result.summary and not result.remediation
    assert not [c for c in node.commands if c[0] == "mv"], "nothing restored without a snapshot"


def test_the_drill_is_inconclusive_when_the_restore_procedure_fails(node, control_plane):
    class BrokenRestore(KindControlPlane):
        def restore_etcd(self, snapshot, *, timeout=180):
            raise errors.ProviderError("docker exec into the control-plane node failed: exit status 126")

    cp = BrokenRestore("docker", NODE, runner=node, clock=FakeClock())
    result = etcd_check.run_drill(FakeApi(node), lambda: FakeApi(node), cp, "ns1", "run1", timeout=30)
    assert result.verdict is Verdict.INCONCLUSIVE and "exit status 126" in result.summary, result.summary
    assert not result.remediation
