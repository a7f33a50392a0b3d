"""pytest_kready.early: checks' slow preparation begun in the background (no cluster needed)."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_kready import early, timings, waits
from pytest_kready.early import run_order


def test_a_start_is_taken_once_and_a_key_starts_once():
    starts = early.EarlyStarts()
    calls = []
    assert starts.start("net", lambda c: calls.append(c) or f"audit of {c}", "cluster")
    assert not starts.start("net", lambda c: calls.append(c), "cluster")  # once per key
    assert starts.started("net") and not starts.started("other")
    assert starts.take("net") == "audit of cluster" and calls == ["cluster"]
    with pytest.raises(early.NotStarted):
        starts.take("net")  # taken already: the test does the work itself
    with pytest.raises(early.NotStarted):
        starts.take("never")
    assert starts.close() == []


def test_an_exception_of_the_start_is_raised_where_it_is_taken():
    starts = early.EarlyStarts()

    def broken(_):
        raise RuntimeError("create deployments: forbidden")

    starts.start("rollout", broken, None)
    with pytest.raises(RuntimeError, match="forbidden"):
        starts.take("rollout")
    assert starts.close() == []


def test_close_interrupts_waits_in_the_background_and_closes_what_nobody_took():
    starts = early.EarlyStarts()
    began = threading.Event()
    seen: list[BaseException] = []

    class Audit:
        closed = None

        def close(self, *, failed):
            Audit.closed = failed

    def waits_long(_):
        began.set()
        try:
            waits.wait_for(lambda: False, timeout=300, interval=0.5, what="pods ready")
        except BaseException as e:  # noqa: BLE001 - what the thread saw
            seen.append(e)
            raise

    starts.start("audit", lambda _: Audit(), None)
    starts.start("slow", waits_long, None)
    assert began.wait(10)
    starts.idle(timeout=0.5)  # gives up at its deadline: "slow" still waits
    t = time.monotonic()
    assert starts.close(failed=True) == []
    assert time.monotonic() - t < 5, "close() must not wait out a 300 s wait"
    assert seen and isinstance(seen[0], waits.WaitCancelled)
    assert Audit.closed is True  # not taken: closed at the end, with the run's failed flag
    assert not starts.start("late", lambda _: 1, None)  # nothing starts after close


def test_waits_outside_early_threads_are_not_cancellable():
    waits.cancel_on(None)
    assert waits.wait_for(lambda: 7, timeout=1, what="x") == 7


def test_idle_waits_for_every_start():
    starts = early.EarlyStarts()
    done = []
    starts.start("a", lambda _: time.sleep(0.3) or done.append("a"), None)
    starts.start("b", lambda _: done.append("b"), None)
    starts.idle(timeout=10)
    assert sorted(done) == ["a", "b"]
    starts.close()


def test_records_made_in_the_background_carry_the_key():
    recorder = timings.Recorder()
    timings._active.append(recorder)
    try:
        starts = early.EarlyStarts()
        starts.start("storage", lambda _: waits.wait_for(lambda: True, timeout=1, what="claim bound"), None)
        starts.take("storage")
        starts.close()
    finally:
        timings._active.remove(recorder)
    records = recorder.drain()
    wait = next(r for r in records if r["name"] == "wait")
    assert wait["early"] == "storage" and wait["what"] == "claim bound"
    assert any(r["name"] == "early" and r["key"] == "storage" for r in records)
    assert any(r["name"] == "early.take" for r in records)


class _Item:
    def __init__(self, name, needs=(), early=False):
        self.name, self.needs, self.early = name, needs, early

    def iter_markers(self, name):
        if name == "kready_needs" and self.needs:
            return [pytest.mark.kready_needs(*self.needs).mark]
        if name == "kready_early" and self.early:
            return [pytest.mark.kready_early(key=self.name, start=len).mark]
        return []


def test_checks_taking_an_early_start_run_late_and_the_etcd_restore_last():
    items = [_Item("admission"), _Item("etcd", ("control-plane-exec", "etcd", "etcd-restore")),
             _Item("network", early=True), _Item("audit", ("audit-log",)), _Item("rollout", early=True),
             _Item("rbac")]
    assert [i.name for i in run_order(items)] == ["admission", "audit", "rbac", "network", "rollout", "etcd"]


def test_take_or_gives_the_early_result_or_does_the_work_once():
    starts = early.EarlyStarts(workers=1)
    try:
        starts.start("x", lambda: "early")
        assert starts.take_or("x", lambda: "here") == ("early", True)
        assert starts.take_or("x", lambda: "here") == ("here", False)  # taken already: the test does it
        assert starts.take_or("never-started", lambda: "here") == ("here", False)
        starts.start("bad", lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):  # an early start's error is the test's, not a fallback
            starts.take_or("bad", lambda: "here")
    finally:
        starts.close()
