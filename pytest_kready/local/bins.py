"""The one definition of where the local provider's binaries are, and of their Kubernetes version.

Each version has a directory of its own, so several can sit side by side::

    $KREADY_CACHE/local/k8s-<version>/bin      (KREADY_CACHE defaults to ~/.cache/pytest-kready)

laid out like a Kubernetes server release's ``kubernetes/server/bin`` (binaries, image tarballs, images.json);
tools/build-local-binaries.sh builds into it. ``KREADY_LOCAL_BIN_DIR`` (and ``--kready-local-bin-dir``, read by
the settings) names another directory instead. ``python -m pytest_kready.local.bins [VERSION]`` prints the
directory. Imports nothing but ``pytest_kready.cache``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ..cache import cache_dir

K8S_VERSION = "v1.36.2"  # the default version (tools/build-local-binaries.sh's K8S_VERSION default)
ENV = "KREADY_LOCAL_BIN_DIR"
_VERSION = re.compile(r"^v\d+\.\d+\.\d+([-+.][0-9A-Za-z.-]+)?$")


def versions_dir() -> Path:
    """Where the per-version directories live."""
    return cache_dir() / "local"


def release_dir(version: str | None = None) -> Path:
    """``<cache>/local/k8s-<version>`` (default version when None)."""
    version = version or K8S_VERSION
    if not _VERSION.match(version):
        raise ValueError(f"Kubernetes version {version!r}: give it as vMAJOR.MINOR.PATCH, e.g. {K8S_VERSION}")
    return versions_dir() / f"k8s-{version}"


def bin_dir(version: str | None = None) -> Path:
    """The binaries directory: for the default version ``$KREADY_LOCAL_BIN_DIR`` when set, else the cache's; for
    a named version always the cache's ``k8s-<version>/bin``."""
    if version is None and os.environ.get(ENV):
        return Path(os.path.expanduser(os.environ[ENV]))
    return release_dir(version) / "bin"


def installed_versions() -> list[str]:
    """Versions whose binaries are in the cache (a ``kube-apiserver`` is there), oldest first."""
    root = versions_dir()
    if not root.is_dir():
        return []
    found = [p.name[len("k8s-"):] for p in root.glob("k8s-v*") if (p / "bin" / "kube-apiserver").is_file()]

    def key(v: str) -> tuple:
        return tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[.+-]", v.lstrip("v"))[:3])

    return sorted(found, key=key)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m pytest_kready.local.bins [VERSION]", file=sys.stderr)
        return 2
    try:
        print(bin_dir(args[0] if args else None))
    except ValueError as e:
        print(f"pytest_kready.local.bins: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
