"""Container engines kind can run on: docker, then podman, counted only when their daemon or service answers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

ENGINES = ("docker", "podman")


def engine_reachable(engine_path: str, *, timeout: float = 20) -> bool:
    """True when ``<engine> info`` answers (the daemon or podman service is up)."""
    try:
        proc = subprocess.run([engine_path, "info"], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def container_engine(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Name of the first reachable container engine (docker, then podman), or None."""
    for engine in ENGINES:
        path = which(engine)
        if path and engine_reachable(path):
            return engine
    return None
