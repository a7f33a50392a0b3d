"""Thaw cgroup v1 freezer cgroups left frozen under a container, so the container can be killed and removed.

On a cgroup v1 host a process in a frozen freezer cgroup does not act on SIGKILL. runc freezes a container's
cgroup for a moment while it signals or updates it; when runc itself is killed in that moment (the kind node it
runs in is being killed: a run SIGKILLed, `kind delete cluster`), the cgroup stays ``FROZEN``. The node's init
then never exits, ``docker rm -f`` fails with "tried to kill container, but did not receive an exit event" and
the node container stays on the host. Writing ``THAWED`` lets the pending SIGKILL through.

Only the cgroups under the named container's own freezer cgroup are touched, and only those the kernel reports
``FROZEN`` or ``FREEZING``. The container's cgroup is the one whose name holds its full ID (docker's cgroupfs
driver: ``/docker/<id>``; systemd driver: ``docker-<id>.scope``; podman: ``libpod-<id>.scope``), found from its
init's ``/proc/PID/cgroup`` when that path names the ID, else looked for by name: after a failed kill the engine
may still report an init PID that is gone or already reused by another process. Nothing to do on cgroup v2, where
a fatal signal reaches a frozen process.
"""

from __future__ import annotations

import os
from pathlib import Path

FREEZER_ROOT = Path("/sys/fs/cgroup/freezer")
PROC = Path("/proc")
SEARCH_DEPTH = 3  # /docker/<id>, /system.slice/docker-<id>.scope, /machine.slice/libpod-<id>.scope, one more level


def freezer_cgroup(pid: int, *, proc: Path = PROC) -> str | None:
    """The freezer (cgroup v1) path of process ``pid`` relative to the hierarchy's root, or None."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return path
    return None


def _names_container(name: str, container_id: str) -> bool:
    return name == container_id or name.endswith(f"-{container_id}.scope")


def container_cgroup(container_id: str, pid: int = 0, *, root: Path = FREEZER_ROOT, proc: Path = PROC) -> Path | None:
    """The freezer cgroup directory of the container ``container_id`` (its full ID), or None."""
    if len(container_id) < 12 or not root.is_dir():
        return None
    rel = freezer_cgroup(pid, proc=proc) if pid > 0 else None
    if rel and any(_names_container(part, container_id) for part in rel.split("/")):
        top = root / rel.lstrip("/")
        while not _names_container(top.name, container_id):
            top = top.parent  # the init may sit in a child cgroup of the container's (cgroupns, systemd inside)
        if top.is_dir():
            return top
    level = [root]
    for _ in range(SEARCH_DEPTH):
        below: list[Path] = []
        for d in level:
            try:
                children = sorted(p for p in d.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                if _names_container(child.name, container_id):
                    return child
            below += children
        level = below
    return None


def thaw_tree(top: Path) -> list[Path]:
    """Write ``THAWED`` to every frozen (or freezing) cgroup at or below ``top``; returns those thawed.
    Parents first: a child of a frozen parent reads FROZEN until the parent is thawed."""
    thawed: list[Path] = []
    for dirpath, dirnames, _ in os.walk(top):
        dirnames.sort()
        state = Path(dirpath) / "freezer.state"
        try:
            if state.read_text().strip() in ("FROZEN", "FREEZING"):
                state.write_text("THAWED")
                thawed.append(Path(dirpath))
        except OSError:
            continue
    return thawed


def thaw_container(container_id: str, pid: int = 0, *, root: Path = FREEZER_ROOT, proc: Path = PROC) -> list[Path]:
    """Thaw the frozen cgroups under the freezer cgroup of container ``container_id`` (``pid``: its init as the
    engine reports it, 0 when not running). Returns the cgroups thawed; empty when there is no cgroup v1 freezer,
    no cgroup of that container, nothing frozen, or no permission."""
    top = container_cgroup(container_id, pid, root=root, proc=proc)
    return thaw_tree(top) if top is not None else []
