"""Waits with deadlines (tenacity), never bare sleeps. A wait that runs out raises ``WaitTimeout`` carrying the
last observed state, so a failure says what was seen, not just that time passed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from . import timings

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition was not met before its deadline; ``last`` is the last value or error observed."""

    def __init__(self, message: str, last: Any = None):
        super().__init__(message)
        self.last = last


class WaitCancelled(WaitTimeout):
    """The run is ending: a wait in a background thread (``early``) was interrupted."""


_thread = threading.local()


def cancel_on(event: threading.Event | None) -> None:
    """Waits in the calling thread end with ``WaitCancelled`` once ``event`` is set (None: never)."""
    _thread.cancel = event


def _sleep(seconds: float) -> None:
    event = getattr(_thread, "cancel", None)
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise WaitCancelled("the run is ending")


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    max_interval: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    describe: Callable[[Any], str] = repr,
) -> T:
    """Call ``condition`` until it returns something truthy and return that; give up after ``timeout`` seconds.

    Exceptions of the types in ``retry_on`` count as "not yet" (the last one is reported); others propagate.
    ``interval`` is the first pause; with ``max_interval`` pauses grow exponentially up to it.
    """
    wait = (tenacity.wait_exponential(multiplier=interval, min=interval, max=max_interval)
            if max_interval else tenacity.wait_fixed(interval))
    retry = tenacity.retry_if_not_result(bool)
    if retry_on:
        retry = retry | tenacity.retry_if_exception_type(retry_on)
    retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(timeout), wait=wait, retry=retry, reraise=False,
                                 sleep=_sleep)
    try:
        with timings.phase("wait", what=what):  # polling time, per what (--kready-timings)
            return retrying(condition)
    except tenacity.RetryError as e:
        attempt = e.last_attempt
        if attempt.failed:
            last: Any = attempt.exception()
            shown = f"{type(last).__name__}: {last}"
        else:
            last = attempt.result()
            shown = describe(last)
        raise WaitTimeout(f"{what}: not reached within {timeout:g}s; last observed: {shown}", last) from None
