"""The kind provider: a cluster made by the ``kind`` CLI (driven directly, argument lists only) and deleted at the
end of the run, and control-plane access by ``docker exec`` (or ``podman exec``) into the ``<name>-control-plane``
node container, whose layout is kubeadm's: etcd certificates under /etc/kubernetes/pki/etcd, static pod manifests
in /etc/kubernetes/manifests, etcd data in /var/lib/etcd.

Making the cluster (``KindProvider.create``):

* kind: on PATH, else the one tools/build-kind-images.sh built (``$KREADY_CACHE/kind/bin/kind``);
* the config: ``kind-configs/<profile>.yaml`` (``--kready-cluster-config``: the user's file, read, never written)
  copied into the run's state directory ``$KREADY_CACHE/kind/kready-<run>/``, plus what this host needs and
  nothing else: when the node image's kindnetd is kready's placeholder (kindnetd cannot be built offline; the
  node image has a ptp/host-local CNI config instead), ``networking.disableDefaultCNI: true`` is added — found by
  looking inside the image (``NodeImage``), not assumed from its name, and said in one line of the run's output;
* the node image: ``kready/node:<version>`` or ``kindest/node:<version>`` when present locally (passed with
  ``--image``; nothing is pulled to find out), unless the config names its nodes' images; with none present kind
  uses its own default image (which it pulls);
* the ownership record (pytest_kready.ownership: maker ``run``, run id, PID) is written before ``kind create``
  runs, so a run killed at any point leaves a cluster the next run recognises as stale; the next run with the kind
  provider deletes ``kready-*`` clusters whose run is gone (not kept, not a live run's: those are left alone);
* at the end (also after Ctrl-C or SIGTERM: the session's shielded finish) ``kind delete cluster``, then kind's
  shared ``kind`` docker network when no container is attached to it and no kind cluster is left (kind leaves it
  behind). Creates and that clean-up take a lock (``$KREADY_CACHE/kind/.lock``) so that two runs side by side
  never remove the network under each other. Before each ``kind delete cluster`` (up to 3 tries) freezer cgroups
  left frozen under the nodes are thawed (``pytest_kready.providers.freezer``: on cgroup v1 a frozen pod container
  keeps its node from dying, and ``docker rm -f`` fails).

Attaching instead (``pytest_kready.providers.pytest_kind``): when the session has a pytest-kind cluster (its
``kind_cluster`` fixture, or ``--cluster-name``), the run attaches to it: ownership ``external`` (or the record
of a kept ``kready-*`` cluster), never deleted, not ephemeral (the etcd restore drill only with
``--kready-allow-etcd-restore``), no profile manifests applied; the audit log is found in the node's
kube-apiserver manifest.

Why not pytest-kind's ``KindCluster`` for our own clusters: it reuses an existing cluster of the same name (and its
``delete`` would then delete a cluster the run did not create), downloads kind when no path is given (nothing may
be fetched at fixture time), writes ``./.pytest-kind`` into the working directory, loops without a deadline until
the kubeconfig exists and runs ``kind`` without timeouts. See docs/safety.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
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
from .base import AUDIT_LOG, EPHEMERAL, ETCD_RESTORE, Capabilities
from .engines import container_engine
from .freezer import thaw_container
from .kind_host import engine_env, find_kind, local_image_id, node_image_candidates
from .pytest_kind import PytestKindCluster

PROFILE_DIR_PLACEHOLDER = "__KREADY_PROFILE_DIR__"
NODE_CONF_DIR = "/etc/kubernetes/kready"  # where the profile's API server files are mounted on the node
NODE_LOG_DIR = "/var/log/kubernetes"  # the API server's audit log directory (a hostPath on the node)
MANIFESTS = "/etc/kubernetes/manifests"
STASH = "/etc/kubernetes/kready-stash"  # outside the manifests dir: the kubelet stops what is moved here
PKI_ETCD = "/etc/kubernetes/pki/etcd"
ETCD_DATA = "/var/lib/etcd"
ETCDUTL = "/usr/local/bin/kready-etcdutl"
CLUSTER_PREFIX = "kready-"
KIND_NETWORK = "kind"  # the docker network kind creates and never removes
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"  # on every node container kind makes: the cluster's name
PLACEHOLDER_LABEL = "io.kready.placeholder"  # tools/build-kind-images.sh's label on its kindnetd placeholder
CREATE_TIMEOUT = 600.0
INSTALL_KIND = ("kind is not installed: install it (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) "
                "or build it with tools/build-kind-images.sh, or use --kready-provider=local")
NO_ENGINE = "kind needs a running container engine: start docker (or podman), or use --kready-provider=local"


class Runner(Protocol):
    def __call__(self, argv: list[str], *, input: bytes | None = None, timeout: float = 60,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess: ...


def run_argv(argv: list[str], *, input: bytes | None = None, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` (no shell), capturing output; a timeout gives exit status 124, a missing program 127."""
    try:
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env, check=False)
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
    return Capabilities(ephemeral=True, control_plane_exec=True, etcd=True, etcd_restore=True, audit_log=audit,
                        apply_allowed=True, reasons=reasons)


def attached_capabilities(record: Ownership, *, node_running: bool, audit: str | None,
                          allow_etcd_restore: bool) -> Capabilities:
    """A kind cluster the run attached to (pytest-kind's, or a kept one): not ephemeral; the etcd restore drill
    only when asked for; control-plane access only while its node container runs."""
    made = f"kept by {record.describe()}" if record.kept else f"made by {record.describe()}"
    why = f"attached to kind cluster {record.cluster}, {made}; pass --kready-allow-etcd-restore to run the restore drill on it"
    reasons = {EPHEMERAL: why, ETCD_RESTORE: why,
               AUDIT_LOG: f"kind cluster {record.cluster}: its kube-apiserver writes no audit log"}
    if not node_running:
        no_node = f"kind cluster {record.cluster}: no running node container {record.cluster}-control-plane"
        return Capabilities(ephemeral=False, apply_allowed=True, reasons={
            **reasons, "control-plane-exec": no_node, "etcd": no_node, ETCD_RESTORE: no_node, AUDIT_LOG: no_node})
    return Capabilities(ephemeral=False, control_plane_exec=True, etcd=True, etcd_restore=allow_etcd_restore,
                        audit_log=audit, apply_allowed=True, reasons=reasons)


# --- the node image ------------------------------------------------------------------------------------------------

PROBE_SCRIPT = (
    "ls -1 /etc/cni/net.d 2>/dev/null | sed 's/^/cni-config /'; "
    "cat /etc/cni/net.d/* 2>/dev/null | grep -o '\"subnet\": *\"[^\"]*\"' | sed 's/^/cni-subnet /'; "
    "sed -n 's/^ *image: *//p' /kind/manifests/default-cni.yaml 2>/dev/null | head -n 1 | sed 's/^/default-cni /'; "
    "find /var/lib/containerd/io.containerd.content.v1.content/blobs -type f -size -16k "
    f"-exec grep -l '\"{PLACEHOLDER_LABEL}\"' {{}} + 2>/dev/null | sed 's/^/placeholder /'; "
    "echo probe-done"
)


@dataclasses.dataclass(frozen=True)
class NodeImage:
    """What a node image holds that decides the cluster config: its CNI configs present before boot, the image of
    kind's default CNI (kindnetd), and whether that image is kready's placeholder (prints why and exits)."""

    name: str
    id: str
    cni_configs: tuple[str, ...] = ()
    cni_subnets: tuple[str, ...] = ()
    default_cni: str = ""
    default_cni_placeholder: bool = False

    @classmethod
    def parse(cls, name: str, image_id: str, out: str) -> NodeImage:
        rows = [line.split(" ", 1) for line in out.splitlines() if " " in line]
        get = lambda key: tuple(v.strip() for k, v in rows if k == key)
        subnets = tuple(s.split(":", 1)[1].strip().strip('"') for s in get("cni-subnet"))
        return cls(name=name, id=image_id, cni_configs=get("cni-config"), cni_subnets=subnets,
                   default_cni=(get("default-cni") or ("",))[0], default_cni_placeholder=bool(get("placeholder")))


def probe_node_image(name: str, image_id: str, *, engine: str, runner: Runner, cache: Path) -> NodeImage:
    """Look inside the node image (a throw-away container running ``sh``, no network; cached per image ID)."""
    path = cache / f"{image_id.replace(':', '-')}.json"
    try:
        data = json.loads(path.read_text())
        return NodeImage(**{**data, "name": name, "cni_configs": tuple(data["cni_configs"]),
                            "cni_subnets": tuple(data["cni_subnets"])})
    except (OSError, ValueError, TypeError, KeyError):
        pass
    proc = runner([engine, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", name, "-c", PROBE_SCRIPT],
                  timeout=180, env=engine_env(engine))
    out = (proc.stdout or b"").decode("utf-8", "replace")
    if proc.returncode != 0 or "probe-done" not in out:
        raise ProviderError(f"could not look inside kind node image {name}: {_last_line(proc)}")
    image = NodeImage.parse(name, image_id, out)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(image)))
    os.replace(tmp, path)
    return image


class _Literal(str):
    pass


class _ConfigDumper(yaml.SafeDumper):
    pass


_ConfigDumper.add_representer(
    _Literal, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|"))


def _literal_blocks(value):
    if isinstance(value, dict):
        return {k: _literal_blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return _Literal(value)
    return value


def host_adjustments(text: str, image: NodeImage | None, *, source: str) -> tuple[str, list[str]]:
    """``text`` (a kind config) with what this host needs added, and one line per addition or warning. Only the
    node image's missing kindnetd needs anything: ``networking.disableDefaultCNI: true``, unless the config says
    otherwise itself. Unchanged text when nothing is needed."""
    if image is None or not image.default_cni_placeholder:
        return text, []
    doc = yaml.safe_load(text) or {}
    networking = doc.get("networking") or {}
    why = f"node image {image.name} has no kindnetd (kready's placeholder: kindnetd cannot be built offline)"
    if "disableDefaultCNI" in networking:
        if not networking["disableDefaultCNI"]:
            return text, [(f"{why}, but {source} sets networking.disableDefaultCNI: false: the kindnetd pod will "
                           "crash-loop")]
        return text, []
    if not image.cni_configs:
        raise ProviderError(f"{why} and no CNI config: its pods would get no network; rebuild it with "
                            "tools/build-kind-images.sh or use another node image")
    doc["networking"] = {**networking, "disableDefaultCNI": True}
    notes = [(f"{why}: added networking.disableDefaultCNI: true to this run's copy of {source}; pods use the "
              f"image's CNI config ({', '.join(image.cni_configs)}), which enforces no NetworkPolicy")]
    nodes = doc.get("nodes") or [{"role": "control-plane"}]
    if len(nodes) > 1:
        notes.append(f"{image.name}'s CNI config is for a single node: pods on different nodes of this "
                     f"{len(nodes)}-node cluster cannot reach each other")
    subnet = networking.get("podSubnet")
    if subnet and image.cni_subnets and subnet not in image.cni_subnets:
        notes.append(f"{source} sets networking.podSubnet {subnet}, but {image.name}'s CNI config uses "
                     f"{', '.join(image.cni_subnets)}")
    header = (f"# pytest-kready: {source}, with what this host needs added:\n"
              f"#   networking.disableDefaultCNI: true ({why})\n")
    return header + yaml.dump(_literal_blocks(doc), Dumper=_ConfigDumper, sort_keys=False), notes


@contextlib.contextmanager
def kind_lock(root: Path, *, timeout: float = CREATE_TIMEOUT) -> Iterator[None]:
    """One kind create or network clean-up of pytest-kready at a time on this machine (``root/.lock``, flock: a
    killed holder releases it)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ProviderError(f"another pytest-kready run held {root / '.lock'} for {timeout:g}s "
                                        "(creating a kind cluster); try again") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class KindProvider:
    name = "kind"

    def __init__(self, settings, *, runner: Runner = run_argv, which: Callable[[str], str | None] = shutil.which,
                 state_root: Path | None = None, pytest_kind: PytestKindCluster | None = None,
                 engine_finder: Callable = container_engine,
                 thaw: Callable[[str, int], list[Path]] = thaw_container):
        self.settings = settings
        self.thaw = thaw
        self.runner = runner
        self.which = which
        self.engine_finder = engine_finder
        self.pytest_kind = pytest_kind
        self.cluster_name = f"{CLUSTER_PREFIX}{settings.run_id}{labels.worker_suffix()}"
        self.root = state_root or cache_dir() / "kind"
        self.state = self.root / self.cluster_name
        self.kubeconfig = self.state / "kubeconfig"
        self.record_path = self.state / ownership.FILE_NAME
        self.capabilities = capabilities_for(settings.profile, settings.cluster_config is not None)
        self.ownership: Ownership | None = None
        self.notes: list[str] = []  # one line each: what the provider did or found besides making its cluster
        self.engine: str | None = None
        self.node_image: NodeImage | None = None
        self.attached = False
        self.create_seconds: float | None = None
        self._kind: str | None = None
        self._created = False
        self._attach_dir: Path | None = None
        self._control_plane: KindControlPlane | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def _env(self) -> dict[str, str] | None:
        return engine_env(self.engine)

    def existing_clusters(self) -> list[str]:
        proc = self.runner([self._kind, "get", "clusters"], timeout=60, env=self._env())
        if proc.returncode != 0:
            raise ProviderError(f"kind get clusters failed: {_last_line(proc)}")
        return [line.strip() for line in proc.stdout.decode().splitlines() if line.strip()]

    def _template(self) -> tuple[str, str]:
        """(the config text before the host's additions, where it came from)."""
        if self.settings.cluster_config is not None:
            path = Path(self.settings.cluster_config)
            return path.read_text(), f"your kind config {path}"
        path = kind_config(self.settings.profile)
        return path.read_text(), f"kind-configs/{self.settings.profile}.yaml"

    def choose_node_image(self, template: str) -> tuple[NodeImage | None, bool]:
        """(the node image the cluster boots, looked inside; whether to pass it with ``--image``). The config's own
        ``nodes[].image`` wins (looked inside when present locally); else the first usable candidate."""
        doc = yaml.safe_load(render_config(template, Path("/x"))) or {}
        named = [n.get("image") for n in doc.get("nodes") or [] if isinstance(n, dict) and n.get("image")]
        candidates, pass_image = (named[:1], False) if named else (node_image_candidates(), True)
        for name in candidates:
            image_id = local_image_id(self.engine, name, runner=self.runner)
            if image_id:
                image = probe_node_image(name, image_id, engine=self.engine, runner=self.runner,
                                         cache=self.root / "node-images")
                return image, pass_image
        if not named:
            self.notes.append(f"no kind node image on this machine ({' or '.join(candidates)}; "
                              "tools/build-kind-images.sh builds one): kind uses its default image, which it pulls")
        return None, False

    def write_config(self, image: NodeImage | None = None) -> Path:
        """Write the kind config for this run into the state directory (with the profile's files beside it): the
        profile's (or the user's) config plus what this host needs (``host_adjustments``)."""
        self.state.mkdir(parents=True, exist_ok=True)
        template, source = self._template()
        profile_dir = self.state / "profile"
        if PROFILE_DIR_PLACEHOLDER in template:
            load_profile(self.settings.profile).write_files(profile_dir)  # fresh encryption key per cluster
        text, notes = host_adjustments(render_config(template, profile_dir.resolve()), image, source=source)
        self.notes += notes
        path = self.state / "kind-config.yaml"
        path.write_text(text)
        return path

    def _find_tools(self) -> None:
        self._kind = (self.pytest_kind.kind if self.pytest_kind and self.pytest_kind.kind else None) \
            or find_kind(self.which)
        if not self._kind:
            raise ProviderError(INSTALL_KIND)
        self.engine = self.engine_finder(self.which)
        if not self.engine:
            raise ProviderError(NO_ENGINE)

    def create(self) -> ClusterAccess:
        self._find_tools()
        existing = self.existing_clusters()
        self.notes += self.remove_stale(existing)
        if self.pytest_kind is not None:
            return self._attach(self.pytest_kind, existing)
        if self.cluster_name in existing:
            raise ProviderError(f"a kind cluster named {self.cluster_name} already exists; pytest-kready never reuses "
                                f"a cluster it did not create (delete it: kind delete cluster --name {self.cluster_name})")
        template, _ = self._template()
        self.node_image, pass_image = self.choose_node_image(template)
        config = self.write_config(self.node_image)
        argv = [self._kind, "create", "cluster", "--name", self.cluster_name, "--config", str(config),
                "--kubeconfig", str(self.kubeconfig), "--wait", "300s"]
        if pass_image and self.node_image is not None:
            argv += ["--image", self.node_image.name]
        # the record first: a run killed while kind works leaves a cluster the next run knows to be stale
        self.ownership = Ownership.this_process(ownership.RUN, "kind", self.cluster_name, run_id=self.settings.run_id)
        self.ownership.write(self.record_path)
        self._created = True  # from here on destroy() deletes whatever kind left
        with kind_lock(self.root):
            t0 = time.monotonic()
            proc = self.runner(argv, timeout=CREATE_TIMEOUT, env=self._env())
            self.create_seconds = round(time.monotonic() - t0, 1)
        if proc.returncode != 0:
            raise ProviderError(f"kind create cluster --name {self.cluster_name} failed: {_last_line(proc)}")
        self.ownership = self.ownership.replace(ready=True)
        self.ownership.write(self.record_path)
        image = f" from {self.node_image.name}" if self.node_image else ""
        self.notes.append(f"kind cluster {self.cluster_name} created{image} in {self.create_seconds:g} s")
        return ClusterAccess(kubeconfig=self.kubeconfig, context=f"kind-{self.cluster_name}")

    def _attach(self, pk: PytestKindCluster, existing: list[str]) -> ClusterAccess:
        """Attach to the session's pytest-kind cluster (see pytest_kready.providers.pytest_kind)."""
        if pk.name not in existing:
            raise ProviderError(f"{pk.source} names kind cluster {pk.name}, which does not exist (kind get clusters); "
                                "create it first, or use pytest-kind's kind_cluster fixture")
        record = ownership.read(self.root / pk.name / ownership.FILE_NAME) if pk.name.startswith(CLUSTER_PREFIX) else None
        if record is not None and (record.owned_by_live_run() or record.starting()):
            raise ProviderError(f"kind cluster {pk.name} belongs to {record.describe()}, which deletes it at its end")
        self.ownership = record if record is not None else Ownership.external("kind", pk.name)
        self.cluster_name = pk.name
        self.attached = True
        self._attach_dir = self.root / f".attached-{self.settings.run_id}{labels.worker_suffix()}"
        if pk.kubeconfig is not None and pk.kubeconfig.is_file():
            kubeconfig = pk.kubeconfig
        else:
            proc = self.runner([self._kind, "get", "kubeconfig", "--name", pk.name], timeout=60, env=self._env())
            if proc.returncode != 0:
                raise ProviderError(f"kind get kubeconfig --name {pk.name} failed: {_last_line(proc)}")
            self._attach_dir.mkdir(parents=True, exist_ok=True)
            kubeconfig = self._attach_dir / "kubeconfig"
            kubeconfig.touch(0o600)
            kubeconfig.write_bytes(proc.stdout)
        node = f"{pk.name}-control-plane"
        state = self.runner([self.engine, "inspect", "--format", "{{.State.Running}}", node], timeout=60,
                            env=self._env())
        running = state.returncode == 0 and state.stdout.decode().strip() == "true"
        audit = None
        if running:
            cp = KindControlPlane(self.engine, node, runner=self.runner)
            proc = cp.run(["cat", f"{MANIFESTS}/kube-apiserver.yaml"], timeout=30)
            if proc.returncode == 0:
                audit = apiserver_flag(proc.stdout, "audit-log-path")
        self.capabilities = attached_capabilities(
            self.ownership, node_running=running, audit=audit,
            allow_etcd_restore=bool(getattr(self.settings, "allow_etcd_restore", False)))
        self.notes.append(f"attached to kind cluster {pk.name} ({pk.source}; {self.ownership.describe()}); "
                          "it is not deleted at the end")
        return ClusterAccess(kubeconfig=kubeconfig, context=f"kind-{pk.name}")

    def remove_stale(self, existing: list[str]) -> list[str]:
        """Delete the ``kready-*`` clusters (and state) that killed runs left: only those whose ownership record says
        their run is gone and that were not kept. A cluster without a record here is someone else's and is left
        alone; so is one whose run still lives (a run beside this one)."""
        notes: list[str] = []
        if not self.root.is_dir():
            return notes
        for state in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != self.cluster_name):
            if state.name.startswith(".attached-"):
                self._remove_stale_attach_dir(state)
                continue
            if not state.name.startswith(CLUSTER_PREFIX):
                continue
            record = ownership.read(state / ownership.FILE_NAME)
            if record is None or record.provider != "kind" or record.cluster != state.name:
                continue
            if not record.stale():
                if state.name not in existing and record.ready and not record.owned_by_live_run():
                    shutil.rmtree(state, ignore_errors=True)  # kept, then deleted by hand: only its state is left
                continue
            if state.name in existing:
                proc, thawed = self.delete_cluster(state.name, state / "kubeconfig")
                notes += thawed
                if proc.returncode != 0:
                    notes.append(f"could not delete kind cluster {state.name} left by {record.describe()}: "
                                 f"{_last_line(proc)}")
                    continue
                notes.append(f"deleted kind cluster {state.name} left by {record.describe()}, which is gone")
            shutil.rmtree(state, ignore_errors=True)
        return notes

    def delete_cluster(self, name: str, kubeconfig: Path, *, attempts: int = 3) -> tuple[subprocess.CompletedProcess, list[str]]:
        """``kind delete cluster``, thawing frozen freezer cgroups under the cluster's nodes before each attempt (a
        node whose pod cgroup was left frozen cannot be killed: see pytest_kready.providers.freezer). Returns the
        last attempt and a note per node thawed."""
        notes: list[str] = []
        proc = None
        for _ in range(attempts):
            for node, cgroups in self.thaw_nodes(name).items():
                notes.append(f"thawed {len(cgroups)} frozen cgroup(s) in kind node {node} so that it could be "
                             f"deleted (a container kill cut off while frozen): {', '.join(c.name for c in cgroups[:3])}")
            proc = self.runner([self._kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                               timeout=300, env=self._env())
            if proc.returncode == 0:
                break
        return proc, notes

    def thaw_nodes(self, name: str) -> dict[str, list[Path]]:
        """{node container: the cgroups thawed under it} for the kind cluster ``name``'s node containers."""
        if not self.engine:
            return {}
        ps = self.runner([self.engine, "ps", "--all", "--quiet", "--filter", f"label={KIND_CLUSTER_LABEL}={name}"],
                         timeout=60, env=self._env())
        ids = ps.stdout.decode().split() if ps.returncode == 0 else []
        if not ids:
            return {}
        inspect = self.runner([self.engine, "inspect", "--format", "{{.Name}} {{.Id}} {{.State.Pid}}", *ids],
                              timeout=60, env=self._env())
        thawed: dict[str, list[Path]] = {}
        for line in inspect.stdout.decode().splitlines() if inspect.returncode == 0 else ():
            fields = line.strip().lstrip("/").split()
            if len(fields) == 3 and fields[2].isdigit():
                cgroups = self.thaw(fields[1], int(fields[2]))
                if cgroups:
                    thawed[fields[0]] = cgroups
        return thawed

    @staticmethod
    def _remove_stale_attach_dir(path: Path) -> None:
        """An ``.attached-<run>`` directory (a kubeconfig copy) older than a day: its run is long gone."""
        try:
            if time.time() - path.stat().st_mtime > 86400:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass

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
        if not (self._created or (self.attached and self.capabilities.control_plane_exec)):
            return None
        if self._control_plane is None:
            self._control_plane = KindControlPlane(self.engine or "docker", f"{self.cluster_name}-control-plane",
                                                   runner=self.runner, audit_log=self.capabilities.audit_log)
        return self._control_plane

    def destroy(self) -> None:
        """Delete the cluster this run made (and kind's network when nothing else uses it); an attached cluster
        is left as it is. Safe to call twice."""
        if self.attached:
            if self._attach_dir is not None:
                shutil.rmtree(self._attach_dir, ignore_errors=True)
                self._attach_dir = None
            return
        if not self._created:
            return
        self._created = False
        proc, thawed = self.delete_cluster(self.cluster_name, self.kubeconfig)
        self.notes += thawed
        if proc.returncode != 0:
            raise ProviderError(f"kind delete cluster --name {self.cluster_name} failed: {_last_line(proc)}; "
                                f"delete it by hand")
        shutil.rmtree(self.state, ignore_errors=True)
        self.remove_network_if_unused()

    def remove_network_if_unused(self) -> bool:
        """Remove kind's ``kind`` docker network when no kind cluster is left and no container is attached to it
        (kind creates it and never removes it). Docker only. Returns whether it was removed."""
        if self.engine != "docker":
            return False
        with kind_lock(self.root, timeout=120):
            try:
                if self.existing_clusters():
                    return False
            except ProviderError:
                return False
            proc = self.runner([self.engine, "network", "inspect", KIND_NETWORK, "--format", "{{len .Containers}}"],
                               timeout=60)
            if proc.returncode != 0 or proc.stdout.decode().strip() != "0":
                return False
            return self.runner([self.engine, "network", "rm", KIND_NETWORK], timeout=60).returncode == 0

    def describe_kept(self) -> str:
        """The cluster stays (--kready-keep): its record says so, and no later run deletes it."""
        if self.ownership is not None and self.record_path.parent.is_dir():
            self.ownership = self.ownership.replace(kept=True)
            self.ownership.write(self.record_path)
        return (f"kind cluster {self.cluster_name} kept (kubeconfig {self.kubeconfig}); delete it with: "
                f"kind delete cluster --name {self.cluster_name}")


def apiserver_flag(manifest: bytes, flag: str) -> str | None:
    """The value of ``--flag`` in a kube-apiserver static pod manifest, or None."""
    try:
        pod = yaml.safe_load(manifest) or {}
        container = pod["spec"]["containers"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None
    for arg in list(container.get("command") or []) + list(container.get("args") or []):
        if isinstance(arg, str) and arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1]
    return None


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
        left = lambda: max(5.0, deadline - self.clock())

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
