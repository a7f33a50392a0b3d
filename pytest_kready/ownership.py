"""Who made a cluster, so that a later run knows what it may do with it.

Every cluster the plugin makes or is given has one ``Ownership`` record. A provider that makes a cluster writes
it as a small JSON file beside the cluster's state before the cluster exists, so that even a run killed half-way
leaves it behind: local — ``owner.json`` in the slot's state directory (``/var/lib/kready-local/<name>/``);
kind — ``$KREADY_CACHE/kind/<cluster>/owner.json``. A cluster the plugin is only given (a kubeconfig, a
pytest-kind cluster) gets an in-memory record with maker ``external`` and nothing is written::

    {"format": 1, "maker": "run", "provider": "local", "cluster": "kready4",
     "pid": 4242, "pid_start": 51234567, "boot_id": "6f1c0e7a-…", "run_id": "12030626-a1b2c3",
     "command": "pytest --kready --kready-provider=local", "created_at": 1764743187.2, "ready": true, "kept": false}

``maker``:

* ``run`` — a ``pytest --kready`` run (``run_id``, ``pid``) made it and deletes it at its end;
* ``manual`` — started by hand (``kready-local up``): the user's until ``kready-local down``;
* ``harness`` — made by code calling ``LocalCluster.up()`` directly (the project's own test harness, tools):
  the maker's while that process lives;
* ``external`` — made by someone else (a pytest-kind cluster, a kubeconfig): never deleted.

``pid_start`` is the maker's start time (``/proc/<pid>/stat`` field 22, clock ticks after boot) and ``boot_id``
the kernel's boot id, so a PID reused by another process, or a record from before a reboot, is never mistaken
for a live maker. ``ready`` turns true once the cluster serves; ``kept`` once the run that made it kept it
(``--kready-keep``), which hands it to the user like ``kready-local up`` would.

A record is **stale** — the next run tears its cluster down (or rebuilds it) — when it was written before the last
boot, or its maker was a run or the harness whose process is gone (and it was not kept), or it was being started
by hand and ``kready-local up`` died before it was ready. A run never touches a cluster whose record is not stale:
it attaches to one started by hand, by the harness or kept (not ephemeral: no etcd restore unless asked), and
refuses one that another live run owns or that is still being started. A cluster without a record (started by an
older version) is treated as started by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

RUN, MANUAL, HARNESS, EXTERNAL = "run", "manual", "harness", "external"
MAKERS = (RUN, MANUAL, HARNESS, EXTERNAL)
FORMAT = 1
FILE_NAME = "owner.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped: gone for our purposes
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


@dataclasses.dataclass(frozen=True)
class Ownership:
    maker: str
    provider: str
    cluster: str
    pid: int | None = None
    pid_start: int | None = None
    boot_id: str | None = None
    run_id: str | None = None
    command: str = ""
    created_at: float = 0.0
    ready: bool = False
    kept: bool = False

    def __post_init__(self):
        if self.maker not in MAKERS:
            raise ValueError(f"unknown cluster maker {self.maker!r}; one of {', '.join(MAKERS)}")

    # --- making records ------------------------------------------------------------------------------------
    @classmethod
    def this_process(cls, maker: str, provider: str, cluster: str, *, run_id: str | None = None) -> Ownership:
        """A record naming this process (PID, start time, boot) as the maker."""
        pid = os.getpid()
        return cls(maker=maker, provider=provider, cluster=cluster, pid=pid, pid_start=process_start(pid),
                   boot_id=boot_id(), run_id=run_id, command=shlex.join(sys.argv)[:300], created_at=time.time())

    @classmethod
    def external(cls, provider: str, cluster: str) -> Ownership:
        return cls(maker=EXTERNAL, provider=provider, cluster=cluster, ready=True)

    def replace(self, **changes) -> Ownership:
        return dataclasses.replace(self, **changes)

    # --- judging them ------------------------------------------------------------------------------------------
    def maker_alive(self) -> bool:
        """The process that wrote the record still runs (same PID, same start time, same boot)."""
        if self.pid is None or self.pid_start is None:
            return False
        if self.boot_id and self.boot_id != boot_id():
            return False
        return process_start(self.pid) == self.pid_start

    def is_mine(self) -> bool:
        """Written by this very process."""
        return self.pid == os.getpid() and self.maker_alive()

    def stale(self) -> bool:
        """Its maker is gone and nobody took the cluster over: the next run may tear it down."""
        if self.maker == EXTERNAL:
            return False
        if self.boot_id and self.boot_id != boot_id():
            return True  # written before the last boot: nothing of that cluster runs any more
        if self.maker == MANUAL or self.kept:
            return not self.ready and not self.maker_alive()  # `kready-local up` died half-way
        return not self.maker_alive()

    def starting(self) -> bool:
        """Its maker is still bringing the cluster up."""
        return not self.ready and self.maker_alive()

    def owned_by_live_run(self) -> bool:
        """A live ``pytest --kready`` run made the cluster and deletes it at its end: another run keeps off it."""
        return self.maker == RUN and not self.kept and self.maker_alive()

    def held_by_live_process(self) -> bool:
        """A live run or harness process made the cluster and still uses it: nobody else may restart it."""
        return self.maker in (RUN, HARNESS) and not self.kept and self.maker_alive()

    def describe(self) -> str:
        """Who made the cluster, for messages: 'the pytest run 12030626-a1b2c3 (pid 4242)', 'kready-local up', ..."""
        pid = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        if self.maker == RUN:
            made = f"the pytest run {self.run_id or '?'} ({pid})"
            return made + (", kept with --kready-keep" if self.kept else "")
        if self.maker == MANUAL:
            return "kready-local up" if self.ready else f"kready-local up ({pid})"
        if self.maker == HARNESS:
            return f"the project's test harness ({pid})"
        return f"someone else ({self.provider} cluster {self.cluster})"

    # --- the file ----------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)}, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Ownership:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an ownership record of format 1")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def write(self, path: Path) -> Path:
        """Write atomically (a killed writer leaves the old record or the new one, never half of one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, path)
        return path


def read(path: Path) -> Ownership | None:
    """The record at ``path``; None when there is none (or it is not one: treated as unknown, never as stale)."""
    try:
        return Ownership.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None
