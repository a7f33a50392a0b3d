"""Host hygiene of a local cluster: what it needs from the host before it starts, and everything it leaves on the
host — processes, cgroups, mounts, the network namespace, the veth pair, guard routes, container log links, CNI
results and directories — found and removed whether the run that made them ended cleanly or was killed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import NotRootError, ProviderError
from . import netns, runtime
from .layout import NOT_ROOT, Layout
from .processes import Processes, terminate

K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
EXTRA_BINARIES = ("etcd", "etcdctl", "etcdutl")
HOST_TOOLS = ("nsenter", "ip", "iptables", "iptables-restore")
CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINER_LOGS = Path("/var/log/containers")
CNI_RESULTS = Path("/var/lib/cni/results")
# containerd 1.6 keeps shim sockets and ctr's fifos under this fixed directory whatever its state setting.
CONTAINERD_FIXED_RUN = Path("/run/containerd")
CREATED_RUN_CONTAINERD = ".created-run-containerd"  # marker: we made CONTAINERD_FIXED_RUN, so we may remove it


def check_host(bin_dir: Path) -> None:
    """Root, the binaries directory and the host tools: one line saying what is missing and how to fix it."""
    if os.geteuid() != 0:
        raise NotRootError(NOT_ROOT)
    missing = [b for b in (*K8S_BINARIES, *EXTRA_BINARIES) if not (bin_dir / b).is_file()]
    if missing:
        raise ProviderError(
            f"local provider: {bin_dir} lacks {', '.join(missing)}; point --kready-local-bin-dir (or KREADY_LOCAL_BIN_DIR) "
            "at a Kubernetes server release's bin directory, or build one with tools/build-local-binaries.sh"
        )
    tools = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if tools:
        raise ProviderError(
            f"local provider: {', '.join(tools)} not found; install them (Debian: apt-get install iptables ipset "
            "conntrack util-linux iproute2)"
        )
    rt = runtime.find(bin_dir)
    gone = rt.missing()
    if gone:
        fix = ("rerun tools/build-local-binaries.sh, which installs containerd, runc and the CNI plugins there"
               if rt.bundled else
               "build the binaries with tools/build-local-binaries.sh (it installs containerd 2, runc and the CNI "
               "plugins beside them), or install the host's (Debian: apt-get install containerd runc "
               "containernetworking-plugins)")
        raise ProviderError(f"local provider: {', '.join(gone)} not found in {bin_dir if rt.bundled else 'PATH'}; {fix}")


class Host:
    """What one local cluster (one ``Layout``) makes on this host, and how it is removed again."""

    def __init__(self, layout: Layout, procs: Processes):
        self.layout = layout
        self.procs = procs

    # --- before the start ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """The shared parents of state and run directories, and this cluster's cgroups."""
        lay = self.layout
        for d in (lay.base.parent, lay.run.parent):
            d.mkdir(parents=True, exist_ok=True)
        if not CONTAINERD_FIXED_RUN.exists():
            (lay.base.parent / CREATED_RUN_CONTAINERD).touch()

    def make_cgroups(self) -> None:
        for controller in self.cgroup_controllers():
            (controller / self.layout.cgroup_root.lstrip("/")).mkdir(exist_ok=True)

    # --- after the stop ------------------------------------------------------------------------------------------
    def clean(self) -> None:
        """Remove everything of this cluster from the host (its named components already stopped or not). The pods'
        processes are killed outright (SIGKILL: the cluster and its volumes go; a container's PID 1 that ignores
        SIGTERM would only make the teardown wait), then containerd, its shims and etcd get SIGTERM."""
        self.kill_cgroup_tasks(grace=0)
        self.procs.sweep(timeout=5)
        self.kill_cgroup_tasks(grace=0)
        self.procs.sweep(timeout=5)
        self.unmount_all()
        netns.teardown(self.layout)
        self.remove_cgroups()
        self.remove_container_log_links()
        self.remove_cni_cache()
        for d in (self.layout.base, self.layout.run):
            shutil.rmtree(d, ignore_errors=True)
        self.remove_host_dirs()

    def remove_host_dirs(self) -> None:
        """The parents of our state and run directories when no other cluster uses them, and containerd's fixed
        run directory when it did not exist before us and is empty of anything but empty directories."""
        marker = self.layout.base.parent / CREATED_RUN_CONTAINERD
        if marker.exists() and CONTAINERD_FIXED_RUN.is_dir():
            for d in sorted(CONTAINERD_FIXED_RUN.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if d.is_dir() and not d.is_symlink():
                    try:
                        d.rmdir()
                    except OSError:
                        pass
            try:
                CONTAINERD_FIXED_RUN.rmdir()
            except OSError:
                pass
        for parent in (self.layout.base.parent, self.layout.run.parent):
            if parent.is_dir() and not any(p for p in parent.iterdir() if p.name != CREATED_RUN_CONTAINERD):
                marker_here = parent / CREATED_RUN_CONTAINERD
                if not CONTAINERD_FIXED_RUN.exists():
                    marker_here.unlink(missing_ok=True)
                try:
                    parent.rmdir()
                except OSError:
                    pass

    # --- what is there ---------------------------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """What of this cluster is on the host: processes, mounts, namespace, interfaces, routes, cgroups,
        directories. Empty after ``clean()``."""
        found = netns.leftovers(self.layout)
        markers = (str(self.layout.base) + "/", str(self.layout.run) + "/")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if any(m in cmd for m in markers):
                    found.append(f"process {entry.name}: {cmd[:80]}")
        found += [f"mount {m}" for m in self.our_mounts()]
        found += [f"cgroup {c}" for c in self.our_cgroups()]
        found += [f"directory {d}" for d in (self.layout.base, self.layout.run) if d.exists()]
        # the shared parents count when no other cluster lives there
        found += [f"directory {d}" for d in (self.layout.base.parent, self.layout.run.parent)
                  if d.is_dir() and not any(p.name != CREATED_RUN_CONTAINERD for p in d.iterdir())]
        return found

    # --- cgroups ---------------------------------------------------------------------------------------------
    @staticmethod
    def cgroup_controllers() -> list[Path]:
        if not CGROUP_FS.exists():
            return []
        return [p for p in CGROUP_FS.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]

    def our_cgroups(self) -> list[Path]:
        name = self.layout.cgroup_root.lstrip("/")
        return [c / name for c in self.cgroup_controllers() if (c / name).exists()]

    def kill_cgroup_tasks(self, *, grace: float = 5) -> None:
        pids: set[int] = set()
        for root in self.our_cgroups():
            for dirpath, _dirs, files in os.walk(root):
                if "cgroup.procs" in files:
                    try:
                        pids.update(int(x) for x in Path(dirpath, "cgroup.procs").read_text().split())
                    except (OSError, ValueError):
                        continue
        if pids:
            terminate(sorted(pids), timeout=grace)

    def remove_cgroups(self) -> None:
        for root in self.our_cgroups():
            for dirpath, _dirs, _files in os.walk(root, topdown=False):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    # --- mounts, links, caches -------------------------------------------------------------------------------
    def our_mounts(self) -> list[str]:
        roots = (str(self.layout.base), str(self.layout.run))
        prefixes = tuple(r + "/" for r in roots)
        mounts = []
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            point = line.split()[4].replace("\\040", " ")
            if point in roots or point.startswith(prefixes):
                mounts.append(point)
        return mounts

    def unmount_all(self) -> None:
        for _ in range(3):
            mounts = self.our_mounts()
            if not mounts:
                return
            for point in sorted(mounts, key=lambda p: p.count("/"), reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)

    def remove_container_log_links(self) -> None:
        if not CONTAINER_LOGS.is_dir():
            return
        target = str(self.layout.path("pod-logs"))
        for link in CONTAINER_LOGS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(target):
                link.unlink(missing_ok=True)

    def remove_cni_cache(self) -> None:
        if CNI_RESULTS.is_dir():
            for f in CNI_RESULTS.glob(f"{self.layout.cni_network}-*"):
                f.unlink(missing_ok=True)
