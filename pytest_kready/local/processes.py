"""Host processes of a local cluster: started in its network namespace, recorded in pid files, stopped in
reverse order, and swept by their command lines when an earlier run was killed."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tenacity import RetryError, retry_if_result, stop_after_delay, wait_exponential, Retrying

from ..ownership import process_start
from .layout import Layout
from .netns import in_netns


def _start_time(pid: int) -> str | None:
    started = process_start(pid)
    return None if started is None else str(started)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class Processes:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.pid_dir = layout.run / "pids"
        self.log_dir = layout.path("logs")
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, netns: bool = True) -> int:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root"}
        full_env.update(env or {})
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                in_netns(self.layout, argv) if netns else argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=full_env, start_new_session=True, cwd=self.layout.base,
            )
        self.children[name] = proc
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid) or ''}\n")
        return proc.pid

    def running(self, name: str) -> bool:
        proc = self.children.get(name)
        if proc is not None:
            return proc.poll() is None
        pid = self._recorded(name)
        return pid is not None and alive(pid)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _recorded(self, name: str) -> int | None:
        try:
            pid_s, _, started = (self.pid_dir / f"{name}.pid").read_text().strip().partition(" ")
            pid = int(pid_s)
        except (OSError, ValueError):
            return None
        return pid if (not started or _start_time(pid) == started) else None

    def stop(self, name: str, *, timeout: float = 10) -> None:
        pid = self.children[name].pid if name in self.children else self._recorded(name)
        if pid is not None:
            terminate([pid], timeout=timeout)
        proc = self.children.pop(name, None)
        if proc is not None:
            proc.poll()
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def stop_many(self, names, *, timeout: float = 10) -> None:
        """Stop several components at once: SIGTERM to all, one shared wait (a teardown does not need them in turn)."""
        pids = [self.children[n].pid if n in self.children else self._recorded(n) for n in names]
        terminate([p for p in pids if p is not None], timeout=timeout)
        for name in names:
            proc = self.children.pop(name, None)
            if proc is not None:
                proc.poll()
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def sweep(self, *, timeout: float = 10) -> list[int]:
        """Stop every process whose command line names this cluster's state or run directory (ours, or left by
        a killed run) — including containerd shims and the containers' processes started from our bundles."""
        markers = (str(self.layout.base) + "/", str(self.layout.run) + "/")
        me = os.getpid()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmdline for m in markers):
                pids.append(int(entry.name))
        terminate(pids, timeout=timeout)
        for proc in self.children.values():
            proc.poll()
        self.children.clear()
        return pids


def terminate(pids: list[int], *, timeout: float = 10) -> None:
    """SIGTERM, wait with a deadline, then SIGKILL what is left, and wait for it to be gone (timeout 0: SIGKILL at
    once)."""
    pids = [p for p in pids if alive(p)]
    if timeout <= 0:
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        _wait_gone(pids, 10)
        return
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    if not _wait_gone(pids, timeout):
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        _wait_gone(pids, 10)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap() -> None:
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
    except ChildProcessError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> bool:
    def remaining() -> list[int]:
        _reap()
        return [p for p in pids if alive(p)]

    try:
        Retrying(
            stop=stop_after_delay(timeout), wait=wait_exponential(multiplier=0.02, max=0.5), retry=retry_if_result(bool)
        )(remaining)
        return True
    except RetryError:
        return False
