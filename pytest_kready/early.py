"""Early starts: the slow preparation of a check (pods placed and Ready, a workload rolled out and available, a
volume written) begun in the background as soon as the cluster is ready, so that it overlaps the checks that run
before it. The test that needs it takes the result (``take``), or does the work itself when nothing was started.

A check declares its early start with the marker ``kready_early(key=..., start=...)``: ``start(cluster)`` is
called once per key in the run, in a background thread, when some selected test carries the marker and nothing
would make that test not-applicable (its mode, capabilities and permissions: ``fixtures.gate_reason``). Its
result (or exception) goes to the first ``take(key)``; an exception is raised there, in the test, as if the test
had done the work itself.

Safety:

* whatever ``start`` creates carries the run's labels like anything else (the session's cleanup removes it if no
  test took it); a value with ``close(failed=...)`` that no test took is closed at the end;
* ``close()`` (the session's end, also on Ctrl-C) cancels what has not begun and interrupts the waits of what
  runs (``waits.wait_for`` raises ``WaitCancelled`` in an early thread once cancelled), then joins the threads
  before the cleanup deletes anything;
* ``idle()``: a disruptive check (the etcd drill restores a snapshot: what was created after it disappears) waits
  until nothing runs in the background before it starts.

Usable without pytest: ``EarlyStarts().start("x", fn, cluster)`` and ``.take("x")`` (or ``.take_or("x", do)``:
``do()`` when nothing was started). ``run_order(items)``: the
order of the tests that take early starts.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import timings, waits

WORKERS = 4  # early starts at once (each mostly waits for the cluster)
JOIN_TIMEOUT = 30.0  # seconds close() waits for running starts after cancelling them

T = TypeVar("T")


class NotStarted(KeyError):
    """``take(key)``: no early start of that key in this run (or it was taken already): do the work in the test."""


class EarlyStarts:
    def __init__(self, workers: int = WORKERS):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kready-early",
                                                           initializer=waits.cancel_on, initargs=(None,))
        self._cancel = threading.Event()
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, key: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` in the background under ``key``, unless a start of that key exists (False then)."""
        with self._lock:
            if self._closed or key in self._futures:
                return False
            self._futures[key] = self._pool.submit(self._run, key, fn, args)
            return True

    def _run(self, key: str, fn: Callable[..., Any], args: tuple) -> Any:
        waits.cancel_on(self._cancel)
        if self._cancel.is_set():
            raise waits.WaitCancelled(f"early start {key}: the run is ending")
        with timings.tagged(early=key), timings.phase("early", key=key):
            return fn(*args)

    def started(self, key: str) -> bool:
        return key in self._futures

    def take(self, key: str, timeout: float | None = None) -> Any:
        """The result of the early start ``key`` (waiting for it), its exception raised here; ``NotStarted`` when
        none was started or it was taken already."""
        with self._lock:
            if key not in self._futures or key in self._taken:
                raise NotStarted(key)
            self._taken.add(key)
            future = self._futures[key]
        with timings.phase("early.take", key=key):
            return future.result(timeout=timeout)

    def take_or(self, key: str, do: Callable[[], T]) -> tuple[T, bool]:
        """``(result of the early start key, True)``; when none was started (under xdist, or taken already),
        ``(do(), False)``: the test does the work itself. The caller adopts what an early start made."""
        try:
            return self.take(key), True
        except NotStarted:
            return do(), False

    def idle(self, timeout: float = 300) -> None:
        """Wait (up to ``timeout``) until every early start is done; their results stay to be taken."""
        deadline = time.monotonic() + timeout
        for future in list(self._futures.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            concurrent.futures.wait([future], timeout=left)

    def close(self, *, failed: bool = False) -> list[str]:
        """Cancel and join; close the values nobody took. Returns one line per problem (never raises)."""
        with self._lock:
            self._closed = True
        self._cancel.set()
        problems: list[str] = []
        for future in self._futures.values():
            future.cancel()
        done, running = concurrent.futures.wait(list(self._futures.values()), timeout=JOIN_TIMEOUT)
        if running:
            problems.append(f"{len(running)} early start(s) still running after {JOIN_TIMEOUT:g}s at the run's end")
        for key, future in self._futures.items():
            if key in self._taken or future not in done or future.cancelled() or future.exception() is not None:
                continue
            close = getattr(future.result(), "close", None)
            if callable(close):
                try:
                    close(failed=failed)
                except Exception as e:  # noqa: BLE001 - the session's cleanup removes the rest by label
                    problems.append(f"early start {key}: could not close: {e}")
        self._pool.shutdown(wait=False, cancel_futures=True)
        return problems


def run_order(items: list) -> list:
    """The order checks run in (pytest items; the plugin applies it at collection), each group in its collected
    order: those without an early start first, so the background work (``kready_early``) has their time to get
    done; then those that take an early start; last those that restore the control plane's data
    (``kready_needs("etcd-restore")``: what was made after its snapshot disappears, the API is away meanwhile)."""
    def group(item) -> int:
        if any("etcd-restore" in m.args for m in item.iter_markers("kready_needs")):
            return 2
        return 1 if any(True for _ in item.iter_markers("kready_early")) else 0

    return [item for _, item in sorted(enumerate(items), key=lambda pair: (group(pair[1]), pair[0]))]
