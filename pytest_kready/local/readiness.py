"""Waiting for a local cluster's pieces: deadlines, and one-line errors naming what was awaited and the last
thing seen."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

from .. import waits
from ..errors import ProviderError

# Every probe here is a request to this host (a health endpoint, a file, the local API server): cheap. A poll at
# most every 0.25 s: with the 1 s of before, what became ready at 0.8 s was seen at 1.5 s (etcd's start in
# bench_local_cluster.py came out 0.76 or 1.57 s), and the API server's readiness up to 1 s late.
FIRST_INTERVAL, MAX_INTERVAL = 0.05, 0.25


def wait_for(what: str, probe, *, timeout: float, diagnose=None):
    """Call ``probe`` until it returns a truthy value or ``timeout`` passes (``waits.wait_for``: the run's one
    wait, cancellable and timed); then raise ProviderError naming ``what`` and, via ``diagnose()``, the last thing
    seen."""
    try:
        return waits.wait_for(probe, timeout=timeout, what=f"local cluster: {what}", interval=FIRST_INTERVAL,
                              max_interval=MAX_INTERVAL)
    except waits.WaitCancelled:
        raise
    except waits.WaitTimeout as err:
        detail = diagnose() if diagnose else ""
        raise ProviderError(f"local cluster: {what} not ready after {timeout:.0f}s{': ' + detail if detail else ''}") from err


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def https_ok(url: str, cafile: Path) -> bool:
    """``url`` answers 200 over TLS verified with ``cafile`` (False when the CA file is missing too)."""
    try:
        ctx = ssl.create_default_context(cafile=str(cafile))
    except OSError:
        return False
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
