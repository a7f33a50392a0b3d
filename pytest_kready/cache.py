"""Where pytest-kready keeps files between runs: ``$KREADY_CACHE``, else ``~/.cache/pytest-kready``. The local
provider's binaries live under ``local/`` (see ``pytest_kready.local.bins``), the kind provider's per-cluster
state under ``kind/<cluster>/``. Imports nothing of the plugin."""

from __future__ import annotations

import os
from pathlib import Path

# the home directory as the process started: tests that change HOME (pytester) still find the real cache
HOME_CACHE = Path(os.path.expanduser("~")) / ".cache" / "pytest-kready"


def cache_dir() -> Path:
    """``$KREADY_CACHE`` or ``~/.cache/pytest-kready`` (the same place tools/build-local-binaries.sh uses)."""
    return Path(os.environ.get("KREADY_CACHE") or HOME_CACHE)
