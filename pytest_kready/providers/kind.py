"""The kind provider: an ephemeral cluster made by the ``kind`` CLI (driven directly, argument lists only), and
control-plane access by ``docker exec`` (or ``podman exec``) into the ``<name>-control-plane`` node container,
whose layout is kubeadm's: etcd certificates under /etc/kubernetes/pki/etcd, static pod manifests in
/etc/kubernetes/manifests, etcd data in /var/lib/etcd.

Why not pytest-kind's ``KindCluster``: it reuses an existing cluster of the same name (and its ``delete`` would
then delete a cluster the run did not create), downloads kind when no path is given (nothing may be fetched at
fixture time), writes ``./.pytest-kind`` into the working directory, loops without a deadline until the
kubeconfig exists and runs ``kind`` without timeouts. See docs/safety.md.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import yaml

from .. import client, errors, labels, ownership
from ..access import ClusterAccess
from ..cache import cache_dir
from ..errors import ProviderError
from ..etcd import ETCD_RESTORE_FLAGS, EtcdEndpoint
from ..ownership import Ownership
from ..profiles import load_profile
from ..resources import kind_config
from ..waits import WaitTimeout, wait_for
from .base import AUDIT_LOG, Capabilities
from .engines import container_engine

PROFILE_DIR_PLACEHOLDER = "__KREADY_PROFILE_DIR__"
NODE_CONF_DIR = "/etc/kubernetes/kready"  # where the profile's API server files are mounted on the node
NODE_LOG_DIR = "/var/log/kubernetes"  # the API server's audit log directory (a hostPath on the node)
MANIFESTS = "/etc/kubernetes/manifests"
STASH = "/etc/kubernetes/kready-stash"  # outside the manifests dir: the kubelet stops what is moved here
PKI_ETCD = "/etc/kubernetes/pki/etcd"
ETCD_DATA = "/var/lib/etcd"
ETCDUTL = "/usr/local/bin/kready-etcdutl"
CREATE_TIMEOUT = 600.0
INSTALL_KIND = ("kind is not installed: install it (https://kind.sigs.k8s.io/docs/user/quick-start/#installation), "
                "or use --kready-provider=local")
NO_ENGINE = "kind needs a running container engine: start docker (or podman), or use --kready-provider=local"


class Runner(Protocol):
    def __call__(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess: ...


def run_argv(argv: list[str], *, input: bytes | None = None, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` (no shell), capturing output; a timeout gives exit status 124, a missing program 127."""
    try:
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or b"", (e.stderr or b"") + f"\ntimed out after {timeout:g}s".encode())
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, b"", f"{argv[0]}: not found".encode())


def _last_line(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or b"").decode("utf-8", "replace").strip() or (proc.stdout or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit status {proc.returncode}"


def render_config(template: str, profile_dir: Path) -> str:
    """The kind config text with the profile files' absolute directory filled in (kind needs absolute hostPaths)."""
    if not profile_dir.is_absolute():
        raise ValueError(f"profile directory must be absolute, got {profile_dir}")
    return template.replace(PROFILE_DIR_PLACEHOLDER, str(profile_dir))


def capabilities_for(profile: str, custom_config: bool) -> Capabilities:
    audit = None
    reasons = {}
    if custom_config:
        reasons[AUDIT_LOG] = "kind cluster from --kready-cluster-config: the audit log location is not known"
    elif profile == "hardened":
        audit = f"{NODE_LOG_DIR}/kready-audit.log"
    else:
        reasons[AUDIT_LOG] = f"kind {profile} profile has no audit log (use --kready-profile=hardened)"
    # every kind cluster of the plugin is made by the run that uses it (never attached to)
    return Capabilities(ephemeral=True, control_plane_exec=True, etcd=True, etcd_restore=True, audit_log=audit,
                        apply_allowed=True, reasons=reasons)


class KindProvider:
    name = "kind"

    def __init__(self, settings, *, runner: Runner = run_argv, which: Callable[[str], str | None] = shutil.which,
                 state_root: Path | None = None):
        self.settings = settings
        self.runner = runner
        self.which = which
        self.cluster_name = f"kready-{settings.run_id}{labels.worker_suffix()}"
        self.state = (state_root or cache_dir() / "kind") / self.cluster_name
        self.kubeconfig = self.state / "kubeconfig"
        self.record_path = self.state / ownership.FILE_NAME
        self.capabilities = capabilities_for(settings.profile, settings.cluster_config is not None)
        self.ownership: Ownership | None = None
        self.notes: list[str] = []  # what the provider did besides its own cluster (stale clusters removed)
        self.engine: str | None = None
        self._kind: str | None = None
        self._created = False
        self._control_plane: KindControlPlane | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def _env(self) -> dict[str, str] | None:
        if self.engine == "podman":
            return {**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"}
        return None

    def existing_clusters(self) -> list[str]:
        proc = self.runner([self._kind, "get", "clusters"], timeout=60, env=self._env())
        if proc.returncode != 0:
            raise ProviderError(f"kind get clusters failed: {_last_line(proc)}")
        return [line.strip() for line in proc.stdout.decode().splitlines() if line.strip()]

    def write_config(self) -> Path:
        """Write the kind config for this run into the state directory (with the profile's files beside it)."""
        self.state.mkdir(parents=True, exist_ok=True)
        if self.settings.cluster_config is not None:
            template = Path(self.settings.cluster_config).read_text()
        else:
            template = kind_config(self.settings.profile).read_text()
        profile_dir = self.state / "profile"
        if PROFILE_DIR_PLACEHOLDER in template:
            load_profile(self.settings.profile).write_files(profile_dir)  # fresh encryption key per cluster
        path = self.state / "kind-config.yaml"
        path.write_text(render_config(template, profile_dir.resolve()))
        return path

    def create(self) -> ClusterAccess:
        self._kind = self.which("kind")
        if not self._kind:
            raise ProviderError(INSTALL_KIND)
        self.engine = container_engine(self.which)
        if not self.engine:
            raise ProviderError(NO_ENGINE)
        existing = self.existing_clusters()
        if self.cluster_name in existing:
            raise ProviderError(f"a kind cluster named {self.cluster_name} already exists; pytest-kready never reuses "
                                f"a cluster it did not create (delete it: kind delete cluster --name {self.cluster_name})")
        self.notes += self.remove_stale(existing)
        config = self.write_config()
        argv = [self._kind, "create", "cluster", "--name", self.cluster_name, "--config", str(config),
                "--kubeconfig", str(self.kubeconfig), "--wait", "300s"]
        # the record first: a run killed while kind works leaves a cluster the next run knows to be stale
        self.ownership = Ownership.this_process(ownership.RUN, "kind", self.cluster_name, run_id=self.settings.run_id)
        self.ownership.write(self.record_path)
        self._created = True  # from here on destroy() deletes whatever kind left
        proc = self.runner(argv, timeout=CREATE_TIMEOUT, env=self._env())
        if proc.returncode != 0:
            raise ProviderError(f"kind create cluster --name {self.cluster_name} failed: {_last_line(proc)}")
        self.ownership = self.ownership.replace(ready=True)
        self.ownership.write(self.record_path)
        return ClusterAccess(kubeconfig=self.kubeconfig, context=f"kind-{self.cluster_name}")

    def remove_stale(self, existing: list[str]) -> list[str]:
        """Delete the clusters (and state) that killed runs left: only those whose ownership record says their run
        is gone and that were not kept. A cluster without a record here is someone else's and is left alone."""
        notes: list[str] = []
        root = self.state.parent
        if not root.is_dir():
            return notes
        for state in sorted(p for p in root.iterdir() if p.is_dir() and p.name != self.cluster_name):
            record = ownership.read(state / ownership.FILE_NAME)
            if record is None or record.provider != "kind" or record.cluster != state.name or not record.stale():
                continue
            if state.name in existing:
                proc = self.runner([self._kind, "delete", "cluster", "--name", state.name, "--kubeconfig",
                                    str(state / "kubeconfig")], timeout=300, env=self._env())
                if proc.returncode != 0:
                    notes.append(f"could not delete kind cluster {state.name} left by {record.describe()}: "
                                 f"{_last_line(proc)}")
                    continue
                notes.append(f"deleted kind cluster {state.name} left by {record.describe()}, which is gone")
            shutil.rmtree(state, ignore_errors=True)
        return notes

    def prepare(self, api) -> None:
        """Apply the profile's cluster manifests (called once the API answers; the cluster is ours alone)."""
        if self.settings.cluster_config is not None or not self._created:
            return
        mark = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, "kready.dev/profile": self.settings.profile}
        for path in load_profile(self.settings.profile).cluster_manifests:
            for obj in client.load_manifests(path):
                obj = client.with_labels(obj, mark)
                try:
                    client.apply(api, obj)
                except errors.APIInvalid:
                    # an immutable field differs from kind's own object (e.g. the default StorageClass's
                    # reclaimPolicy): on this cluster, made by this run, replace it
                    res = api.resource(obj["apiVersion"], obj["kind"])
                    api.raw("DELETE", res.path(obj["metadata"]["name"], obj["metadata"].get("namespace")))
                    client.create(api, obj)

    def control_plane(self) -> KindControlPlane | None:
        if not self._created:
            return None
        if self._control_plane is None:
            self._control_plane = KindControlPlane(self.engine or "docker", f"{self.cluster_name}-control-plane",
                                                   runner=self.runner, audit_log=self.capabilities.audit_log)
        return self._control_plane

    def destroy(self) -> None:
        if not self._created:
            return
        self._created = False
        proc = self.runner([self._kind, "delete", "cluster", "--name", self.cluster_name, "--kubeconfig",
                            str(self.kubeconfig)], timeout=300, env=self._env())
        if proc.returncode != 0:
            raise ProviderError(f"kind delete cluster --name {self.cluster_name} failed: {_last_line(proc)}; "
                                f"delete it by hand")
        shutil.rmtree(self.state, ignore_errors=True)

    def describe_kept(self) -> str:
        """The cluster stays (--kready-keep): its record says so, and no later run deletes it."""
        if self.ownership is not None and self.record_path.parent.is_dir():
            self.ownership = self.ownership.replace(kept=True)
            self.ownership.write(self.record_path)
        return (f"kind cluster {self.cluster_name} kept (kubeconfig {self.kubeconfig}); delete it with: "
                f"kind delete cluster --name {self.cluster_name}")


class KindControlPlane:
    """Commands on the kind control-plane node: ``<engine> exec [-i] <node> argv...``."""

    def __init__(self, engine: str, node: str, *, runner: Runner = run_argv, audit_log: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.engine = engine
        self.node = node
        self.runner = runner
        self.audit_log = audit_log
        self.clock = clock
        self.etcd: EtcdEndpoint | None = EtcdEndpoint(
            endpoints="https://127.0.0.1:2379",
            cacert=f"{PKI_ETCD}/ca.crt",
            cert=f"{PKI_ETCD}/server.crt",
            key=f"{PKI_ETCD}/server.key",
            data_dir=ETCD_DATA,
        )

    def run(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        exec_argv = [self.engine, "exec"] + (["-i"] if input is not None else []) + [self.node, *argv]
        return self.runner(exec_argv, input=input, timeout=timeout)

    def _must(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60) -> bytes:
        proc = self.run(argv, input=input, timeout=timeout)
        if proc.returncode != 0:
            raise ProviderError(f"on {self.node}: {' '.join(argv[:3])} failed: {_last_line(proc)}")
        return proc.stdout or b""

    def read_file(self, path: str) -> bytes:
        return self._must(["cat", path])

    def write_file(self, path: str, data: bytes) -> None:
        self._must(["tee", path], input=data)

    def container_ids(self, name: str) -> list[str]:
        """IDs of running containers named exactly ``name`` (crictl on the node)."""
        proc = self.run(["crictl", "ps", "--name", f"^{name}$", "-q"], timeout=30)
        if proc.returncode != 0:
            return []
        return proc.stdout.decode().split()

    def etcdctl(self, args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess:
        """``etcdctl`` inside the running etcd container, with the client certificates."""
        ids = self.container_ids("etcd")
        if not ids:
            raise ProviderError(f"on {self.node}: no running etcd container")
        e = self.etcd
        return self.run(["crictl", "exec", ids[0], "etcdctl", "--endpoints", e.endpoints, "--cacert", e.cacert,
                         "--cert", e.cert, "--key", e.key, *args], timeout=timeout)

    def restore_etcd(self, snapshot: str, *, timeout: float = 180) -> None:
        """Stop etcd and the API server, restore ``snapshot`` into a new data dir, start etcd on it (healthy), then
        the API server. Per kind's kubeadm layout; see the module docstring."""
        deadline = self.clock() + timeout
        left = lambda: max(5.0, deadline - self.clock())  # noqa: E731

        # etcdutl ships in the etcd image, not on the node: copy it out of the running container's root fs
        ids = self.container_ids("etcd")
        if not ids:
            raise ProviderError(f"on {self.node}: no running etcd container to take etcdutl from")
        pid = self._must(["crictl", "inspect", "--output", "go-template", "--template", "{{.info.pid}}", ids[0]])
        self._must(["cp", f"/proc/{pid.decode().strip()}/root/usr/local/bin/etcdutl", ETCDUTL])

        self._must(["mkdir", "-p", STASH])
        moved: list[str] = []
        try:
            for manifest in ("kube-apiserver.yaml", "etcd.yaml"):
                self._must(["mv", f"{MANIFESTS}/{manifest}", f"{STASH}/{manifest}"])
                moved.append(manifest)
            wait_for(lambda: not self.container_ids("etcd") and not self.container_ids("kube-apiserver"),
                     timeout=left(), interval=1, what="etcd and kube-apiserver containers stopped")

            spec = yaml.safe_load(self.read_file(f"{STASH}/etcd.yaml"))
            flags = etcd_flags(spec)
            new_dir = f"{ETCD_DATA}-restore-{int(self.clock())}"
            self._must([ETCDUTL, "snapshot", "restore", snapshot, "--data-dir", new_dir,
                        "--name", flags["name"], "--initial-cluster", flags["initial-cluster"],
                        "--initial-advertise-peer-urls", flags["initial-advertise-peer-urls"], *ETCD_RESTORE_FLAGS],
                       timeout=left())
            self.write_file(f"{STASH}/etcd.yaml", yaml.safe_dump(point_data_dir(spec, flags["data-dir"], new_dir)).encode())
        finally:  # etcd back first (and serving), then the API server; on error this puts the node back as it was
            if "etcd.yaml" in moved:
                self._must(["mv", f"{STASH}/etcd.yaml", f"{MANIFESTS}/etcd.yaml"])
                self._wait_etcd_healthy(left())
            if "kube-apiserver.yaml" in moved:
                self._must(["mv", f"{STASH}/kube-apiserver.yaml", f"{MANIFESTS}/kube-apiserver.yaml"])
        self.etcd = dataclasses.replace(self.etcd, data_dir=new_dir)

    def _wait_etcd_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            try:
                return self.etcdctl(["endpoint", "health"], timeout=15).returncode == 0
            except ProviderError:
                return False

        try:
            wait_for(healthy, timeout=timeout, interval=1, max_interval=5, what="etcd serving again")
        except WaitTimeout as e:
            raise ProviderError(f"on {self.node}: {e}") from None


def etcd_flags(pod: dict) -> dict[str, str]:
    """``--flag=value`` arguments of the etcd static pod's container command."""
    container = pod["spec"]["containers"][0]
    flags: dict[str, str] = {}
    for arg in list(container.get("command") or []) + list(container.get("args") or []):
        if arg.startswith("--") and "=" in arg:
            k, v = arg[2:].split("=", 1)
            flags[k] = v
    missing = [k for k in ("name", "initial-cluster", "initial-advertise-peer-urls", "data-dir") if k not in flags]
    if missing:
        raise ProviderError(f"etcd static pod lacks --{', --'.join(missing)}; not kind's kubeadm layout")
    return flags


def point_data_dir(pod: dict, old: str, new: str) -> dict:
    """The etcd pod with the hostPath volume that held ``old`` now pointing at ``new`` (the container still sees
    it at its old mount path, so ``--data-dir`` stays as it is)."""
    pod = yaml.safe_load(yaml.safe_dump(pod))
    for volume in pod["spec"].get("volumes") or []:
        host = volume.get("hostPath") or {}
        if host.get("path", "").rstrip("/") == old.rstrip("/"):
            host["path"] = new
            return pod
    raise ProviderError(f"etcd static pod has no hostPath volume for {old}; not kind's kubeadm layout")
