"""LocalCluster: bring a real single-node cluster up from host processes, and take it down leaving the host as
it was.

Everything runs inside the cluster's own network namespace (see netns.py), with its state under
``Layout.base`` and ``Layout.run``. The pieces: host hygiene (host.py: what the host needs, what the cluster
leaves and its removal), certificates and kubeconfigs (pki.py), component command lines and configuration files
(components.py), processes (processes.py), images (images.py) and add-ons (addon_install.py). ``down()`` — and
every ``up()`` before it starts — removes processes, mounts, the network namespace, the veth pair, guard routes,
cgroups and directories of this cluster, whether a previous run ended cleanly or was killed.

Who started the cluster is recorded in ``owner.json`` in its state directory (``pytest_kready.ownership``), written
before anything starts; ``up()`` refuses a cluster that another live run or harness process holds.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from .. import ownership
from ..errors import ProviderError
from ..etcd import ETCD_RESTORE_FLAGS
from ..ownership import Ownership
from ..profiles import load_profile
from . import addon_install, components, netns, pki, runtime
from .host import Host, check_host
from .images import import_images
from .layout import Layout
from .processes import Processes
from .readiness import http_ok, https_ok, wait_for

COMPONENTS_IN_STOP_ORDER = ("netpol", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager",
                            "kube-apiserver")


def api_client_for(kubeconfig: Path):
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


def _warm_client_modules() -> None:
    """Import the client's generated core and apps APIs (loaded lazily, over a second of CPU) while the API server
    starts, instead of when the start waits for the node and the add-ons."""
    k8s.CoreV1Api, k8s.AppsV1Api  # noqa: B018 - the attribute access is the import


class LocalCluster:
    def __init__(self, bin_dir: Path, *, profile: str = "baseline", layout: Layout | None = None):
        self.bin = Path(bin_dir)
        self.layout = layout or Layout.from_env()
        self.profile = load_profile(profile)
        self.procs = Processes(self.layout)
        self.host = Host(self.layout, self.procs)
        self.argv = components.Argv(self.layout, self.bin)
        self.runtime = runtime.find(self.bin)
        # etcd and its tools (etcdctl, etcdutl) stay those of the directory the cluster started from: an in-place
        # upgrade (upgrade_step) restarts the Kubernetes components only, and its binaries set has no etcd
        self.etcd_bin = self.bin
        self.timings: dict[str, float] = {}
        self.images: list[str] = []

    # --- paths ---------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def pki(self) -> Path:
        return self.layout.path("pki")

    @property
    def conf(self) -> Path:
        return self.layout.path("config")

    @property
    def owner_file(self) -> Path:
        return self.layout.path(ownership.FILE_NAME)

    @property
    def audit_log(self) -> Path | None:
        return self.layout.path("logs", "kready-audit.log") if "audit-log-path" in self.profile.apiserver_args else None

    @property
    def etcd_data_dir(self) -> Path:
        pointer = self.layout.path("etcd", "current")
        if pointer.exists():
            return Path(pointer.read_text().strip())
        return self.layout.path("etcd", "data")

    # --- ownership -----------------------------------------------------------------------------------------
    def ownership(self) -> Ownership | None:
        """Who started the cluster on this slot (None: no record — nothing there, or an older version's)."""
        return ownership.read(self.owner_file)

    def mark_kept(self) -> None:
        """The run that started the cluster keeps it (--kready-keep): from now on it is the user's, as if started
        with `kready-local up`."""
        record = self.ownership()
        if record is not None:
            record.replace(kept=True).write(self.owner_file)

    def _check_not_held(self) -> None:
        record = self.ownership()
        if record is None or record.stale() or record.is_mine():
            return
        slot = self.layout.slot
        if record.starting():
            raise ProviderError(f"local cluster {self.layout.name} (slot {slot}) is being started by "
                                f"{record.describe()}; wait for it, or use another slot (KREADY_LOCAL_SLOT)")
        if record.held_by_live_process():
            raise ProviderError(f"local cluster {self.layout.name} (slot {slot}) belongs to {record.describe()}, "
                                "which is still running; use another slot (KREADY_LOCAL_SLOT)")

    # --- lifecycle -----------------------------------------------------------------------------------------
    def up(self, *, timeout: float = 120, owner: Ownership | None = None, wait_addons: bool = True) -> Path:
        """Start the cluster; return the admin kubeconfig once the node is Ready and DNS serves (``wait_addons=False``:
        once the node is Ready and NetworkPolicy enforced; then ``wait_addons()`` before anything needs DNS or
        dynamic volumes).

        ``owner`` is recorded as who started it (default: this process, as the test harness); a cluster that a
        live run or harness process holds is refused, anything else on the slot is removed first."""
        t0 = time.monotonic()
        owner = owner or Ownership.this_process(ownership.HARNESS, "local", self.layout.name)
        check_host(self.bin)
        self._check_not_held()
        self.down()  # whatever an earlier, killed run left
        self.timings["cleanup"] = time.monotonic() - t0
        try:
            t = time.monotonic()
            self._prepare(owner)
            netns.setup(self.layout)
            self.timings["prepare"] = time.monotonic() - t
            t = time.monotonic()
            self._start_runtime_and_etcd()
            # the API server starts with etcd, as kubeadm's static pods do: it retries until etcd has elected
            # itself leader (up to a second of a fresh data directory's start), and its own start-up overlaps that.
            # The images are imported, and the kubelet and kube-proxy start, while the API server starts: both
            # retry until it answers, and their own start-up (the node's registration, its runtime) overlaps the API
            # server's seconds. The controllers wait for it to be ready: started earlier, the controller manager
            # exits on the RBAC the API server has not bootstrapped yet.
            importer = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="kready-images")
            try:
                imported = importer.submit(self._import_images)
                importer.submit(_warm_client_modules)
                self.procs.start("kube-apiserver", self._apiserver_argv())
                self._start_node_components()
                self._start_netpol()  # its Python start (~1.5 s) overlaps the API server's; it lists once that serves
                self._wait_etcd(30)
                self.timings["etcd"] = time.monotonic() - t
                self._wait_apiserver(timeout)
                self.timings["apiserver"] = time.monotonic() - t
                self._start_controllers()
                imported.result()
            finally:
                importer.shutdown(wait=False)
            t = time.monotonic()
            addon_install.apply_addons(self.layout, self.kubeconfig, self.images, self.bin, self.profile,
                                       diagnose_kubelet=self._kubelet_diagnosis)
            self.timings["addons-apply"] = time.monotonic() - t
            self._wait_ready(timeout)
            if wait_addons:
                self.wait_addons(timeout)
        except BaseException:
            self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        self.layout.path("cluster.json").write_text(json.dumps({"profile": self.profile.name, "bin_dir": str(self.bin)}))
        owner.replace(ready=True).write(self.owner_file)
        return self.kubeconfig

    def running_profile(self) -> str | None:
        """The profile of a cluster of this name that is up and serving (started by an earlier `up()`), else None."""
        try:
            info = json.loads(self.layout.path("cluster.json").read_text())
        except (OSError, ValueError):
            return None
        if not (self.procs.running("kube-apiserver") and self._https_ok("/readyz")):
            return None
        return info.get("profile")

    def down(self) -> None:
        """Stop everything and remove what this cluster made on the host. Safe to call at any time."""
        # 1 s, then SIGKILL: the cluster goes, and a kube-apiserver given SIGTERM keeps draining for up to a minute
        self.procs.stop_many([n for n in COMPONENTS_IN_STOP_ORDER if self.procs.running(n)], timeout=1)
        self.host.clean()

    def leftovers(self) -> list[str]:
        """What of this cluster is still on the host: processes, mounts, namespace, interfaces, routes, cgroups,
        directories. Empty after ``down()``."""
        return self.host.leftovers()

    # --- steps -----------------------------------------------------------------------------------------------
    def _prepare(self, owner: Ownership) -> None:
        lay = self.layout
        self.host.prepare()
        for d in (lay.base, lay.run, self.pki, self.conf, lay.path("logs"), lay.path("cni", "net.d"),
                  lay.path("pod-logs"), lay.path("local-path"), lay.path("etcd")):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(lay.base, 0o700)
        owner.replace(ready=False).write(self.owner_file)  # before anything runs: a killed start is recognised
        lay.path("resolv.conf").write_text("# a local cluster resolves nothing outside cluster.local\n")
        pki.write_cluster_pki(lay, self.pki, self.conf)
        (lay.path("cni", "net.d") / "10-kready.conflist").write_text(components.cni_config(lay))
        (self.conf / "containerd.toml").write_text(components.containerd_config(lay, self.runtime))
        (self.conf / "kubelet.yaml").write_text(yaml.safe_dump(components.kubelet_config(lay, self.pki)))
        (self.conf / "kube-proxy.yaml").write_text(
            yaml.safe_dump(components.kube_proxy_config(lay, self.conf / "kube-proxy.kubeconfig"))
        )
        self.profile.write_files(self.conf)
        self.layout.path("etcd", "current").write_text(str(lay.path("etcd", "data")))
        self.host.make_cgroups()

    def _start_runtime_and_etcd(self) -> None:
        """containerd and etcd, not waited for (``_wait_etcd``)."""
        self.procs.start("containerd", [self.runtime.program("containerd"), "--config", str(self.conf / "containerd.toml")],
                         env={"PATH": self.runtime.env_path()})
        self._start_etcd_process()

    def _start_etcd_process(self) -> None:
        self.procs.start("etcd", components.Argv(self.layout, self.etcd_bin).etcd(self.etcd_data_dir))

    def _wait_etcd(self, timeout: float) -> None:
        wait_for("etcd", lambda: http_ok(f"http://{self.layout.node_ip}:2381/health"), timeout=timeout,
                 diagnose=lambda: self._died("etcd") or self.procs.log_tail("etcd", 5))

    def _apiserver_argv(self) -> list[str]:
        extra = self.profile.rendered_args(conf=str(self.conf), logdir=str(self.layout.path("logs")))
        return self.argv.apiserver(extra)

    def _wait_apiserver(self, timeout: float) -> None:
        wait_for("kube-apiserver", lambda: self._https_ok("/readyz"), timeout=timeout,
                 diagnose=lambda: self._died("kube-apiserver") or self.procs.log_tail("kube-apiserver", 5))

    def _start_controllers(self) -> None:
        c = self.conf
        self.procs.start("kube-controller-manager", self.argv.controller_manager(c / "kube-controller-manager.kubeconfig"))
        self.procs.start("kube-scheduler", self.argv.scheduler(c / "kube-scheduler.kubeconfig"))

    def _start_node_components(self) -> None:
        c = self.conf
        wait_for("containerd", lambda: self.layout.containerd_socket.exists(), timeout=30,
                 diagnose=lambda: self.procs.log_tail("containerd", 5))
        self.procs.start("kubelet", self.argv.kubelet(c / "kubelet.yaml", c / "kubelet.kubeconfig"))
        self.procs.start("kube-proxy", self.argv.kube_proxy(c / "kube-proxy.yaml"))

    def _start_netpol(self) -> None:
        """The NetworkPolicy enforcer: started with the API server, it lists every 0.25 s until that serves."""
        self.procs.start(
            "netpol",
            [sys.executable, "-m", "pytest_kready.local.netpol", "--kubeconfig", str(self.kubeconfig),
             "--pod-cidr", self.layout.pod_cidr, "--ready-file", str(self.layout.run / "netpol.ready")],
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )

    def _import_images(self) -> None:
        t = time.monotonic()
        wait_for("containerd", lambda: self.layout.containerd_socket.exists(), timeout=30,
                 diagnose=lambda: self.procs.log_tail("containerd", 5))
        self.images = import_images(self.bin, ctr=self.runtime.program("ctr"), address=str(self.layout.containerd_socket))
        self.timings["images"] = time.monotonic() - t

    def image_named(self, prefix: str) -> str:
        return addon_install.image_named(self.images, prefix, self.bin)

    def _wait_ready(self, timeout: float) -> None:
        api = api_client_for(self.kubeconfig)
        core = k8s.CoreV1Api(api)

        def node_ready():
            node = core.read_node(self.layout.node_name)
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

        t = time.monotonic()
        wait_for("node", node_ready, timeout=timeout, diagnose=self._kubelet_diagnosis)
        self.timings["node-ready"] = time.monotonic() - t
        t = time.monotonic()
        wait_for("NetworkPolicy enforcer", lambda: (self.layout.run / "netpol.ready").exists(), timeout=timeout,
                 diagnose=lambda: self.procs.log_tail("netpol", 5))
        self.timings["netpol-ready"] = time.monotonic() - t
        self._ready_at = time.monotonic()

    def wait_addons(self, timeout: float = 120) -> None:
        """Wait until CoreDNS and the volume provisioner are Ready (``addons-ready``: seconds from the node's
        readiness; ``addons-wait``: how long this call waited)."""
        api = api_client_for(self.kubeconfig)
        t = time.monotonic()
        try:
            addon_install.wait_addons_ready(k8s.AppsV1Api(api), timeout=timeout,
                                            diagnose=lambda: self.procs.log_tail("kubelet", 5))
        finally:
            api.close()
        self.timings["addons-wait"] = time.monotonic() - t
        self.timings["addons-ready"] = time.monotonic() - (getattr(self, "_ready_at", None) or t)

    # --- control plane operations ---------------------------------------------------------------------------
    def stop_component(self, name: str) -> None:
        self.procs.stop(name, timeout=15)

    def restore_etcd(self, snapshot: str, *, timeout: float = 180) -> None:
        """Stop the API server and etcd, restore ``snapshot`` into a new data directory, start both on it, and
        restart the controllers so none acts on state newer than the snapshot."""
        # SIGKILL at once: a SIGTERMed API server drains for up to a minute, and nothing it or the controllers hold
        # now survives the restore (etcd itself stops gracefully)
        self.procs.stop_many(("kube-scheduler", "kube-controller-manager", "kube-apiserver"), timeout=0)
        self.procs.stop("etcd", timeout=15)
        new_dir = self.layout.path("etcd", f"restored-{int(time.time() * 1000)}")
        proc = subprocess.run(
            [str(self.etcd_bin / "etcdutl"), "snapshot", "restore", snapshot, "--data-dir", str(new_dir),
             "--name", "kready", "--initial-cluster", "kready=http://127.0.0.1:2380",
             "--initial-advertise-peer-urls", "http://127.0.0.1:2380", *ETCD_RESTORE_FLAGS],
            capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise ProviderError(f"etcdutl snapshot restore failed: {proc.stderr.strip()[-300:]}")
        self.layout.path("etcd", "current").write_text(str(new_dir))
        # the API server starts with etcd (it retries until etcd serves), as at the cluster's start
        self._start_etcd_process()
        self.procs.start("kube-apiserver", self._apiserver_argv())
        self._wait_etcd(30)
        self._wait_apiserver(timeout)
        self._start_controllers()

    # --- in-place upgrade (the upgrade rehearsal) -------------------------------------------------------------
    # the documented order: the API server first, then the controller manager and scheduler, then the node
    UPGRADE_STEPS = (("kube-apiserver",), ("kube-controller-manager", "kube-scheduler"), ("kubelet", "kube-proxy"))

    def upgrade_step(self, names: tuple[str, ...], bin_dir: Path, *, timeout: float = 90) -> None:
        """One step of an in-place upgrade: stop ``names`` and start them from ``bin_dir`` (another Kubernetes
        version's binaries directory, see pytest_kready.local.bins), then wait until they serve: the API server's
        /readyz, the node Ready with the new kubelet version. etcd, containerd and the pods keep running. After
        the node step ``bin_dir`` is the cluster's binaries directory."""
        argv = components.Argv(self.layout, Path(bin_dir))
        c = self.conf
        command = {
            "kube-apiserver": lambda: argv.apiserver(
                self.profile.rendered_args(conf=str(c), logdir=str(self.layout.path("logs")))),
            "kube-controller-manager": lambda: argv.controller_manager(c / "kube-controller-manager.kubeconfig"),
            "kube-scheduler": lambda: argv.scheduler(c / "kube-scheduler.kubeconfig"),
            "kubelet": lambda: argv.kubelet(c / "kubelet.yaml", c / "kubelet.kubeconfig"),
            "kube-proxy": lambda: argv.kube_proxy(c / "kube-proxy.yaml"),
        }
        unknown = [n for n in names if n not in command]
        if unknown:
            raise ValueError(f"not an upgradable component: {', '.join(unknown)}")
        for name in names:
            self.procs.stop(name, timeout=15)
        for name in names:
            self.procs.start(name, command[name]())
        if "kube-apiserver" in names:
            wait_for("kube-apiserver", lambda: self._https_ok("/readyz"), timeout=timeout,
                     diagnose=lambda: self._died("kube-apiserver") or self.procs.log_tail("kube-apiserver", 5))
        if "kubelet" in names:
            version = _binary_version(Path(bin_dir) / "kubelet")
            core = k8s.CoreV1Api(api_client_for(self.kubeconfig))

            def kubelet_upgraded():
                node = core.read_node(self.layout.node_name)
                ready = any(x.type == "Ready" and x.status == "True" for x in node.status.conditions or [])
                return ready and (version is None or node.status.node_info.kubelet_version == version)

            wait_for(f"node with kubelet {version}", kubelet_upgraded, timeout=timeout, diagnose=self._kubelet_diagnosis)
        time.sleep(1)  # a component that fails on its configuration exits at once: look before saying it runs
        died = [self._died(n) for n in names if self._died(n)]
        if died:
            raise ProviderError(f"local cluster: upgrade step failed: {died[0]}")
        if "kubelet" in names:
            self.bin, self.argv = Path(bin_dir), argv
            self.layout.path("cluster.json").write_text(
                json.dumps({"profile": self.profile.name, "bin_dir": str(self.bin)}))

    # --- helpers ---------------------------------------------------------------------------------------------
    def _died(self, name: str) -> str:
        if self.procs.running(name):
            return ""
        return f"{name} exited: {self.procs.log_tail(name, 3)}"

    def _kubelet_diagnosis(self) -> str:
        return self._died("kubelet") or self.procs.log_tail("kubelet", 5)

    def _https_ok(self, path: str) -> bool:
        return https_ok(self.layout.api_url + path, self.pki / "ca.crt")


def _binary_version(path: Path) -> str | None:
    """``v1.37.2`` from ``<binary> --version`` ("Kubernetes v1.37.2"); None when it cannot be read."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.split()
    return words[1] if len(words) >= 2 and words[1].startswith("v") else None
