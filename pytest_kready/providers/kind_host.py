"""What this host offers the kind provider, found without creating anything and without pulling: the kind binary,
a container engine that answers, and a usable node image. Used by the default-provider choice
(``providers.resolve_provider_name``) and by ``KindProvider``. Imports nothing heavy (no kubernetes client).

A node image is *usable* when it is present in the engine's local image store; nothing is ever pulled to find
out. The images looked for, in order: ``kready/node:<version>`` (built by tools/build-kind-images.sh from the
project's Kubernetes binaries, offline) and ``kindest/node:<version>`` (kind's own, when someone put it there),
``<version>`` being the project's Kubernetes version (pytest_kready.local.bins.K8S_VERSION).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..cache import cache_dir
from ..local.bins import K8S_VERSION
from .engines import container_engine

NODE_IMAGE_REPOS = ("kready/node", "kindest/node")


def built_kind() -> Path:
    """tools/build-kind-images.sh's kind binary (``$KREADY_CACHE/kind/bin/kind``)."""
    return cache_dir() / "kind" / "bin" / "kind"


def find_kind(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """``kind`` on PATH, else the one tools/build-kind-images.sh built, else None."""
    found = which("kind")
    if found:
        return found
    built = built_kind()
    return str(built) if built.is_file() and os.access(built, os.X_OK) else None


def node_image_candidates(version: str | None = None) -> list[str]:
    version = version or K8S_VERSION
    return [f"{repo}:{version}" for repo in NODE_IMAGE_REPOS]


def engine_env(engine: str | None) -> dict[str, str] | None:
    """The environment kind needs for ``engine`` (podman: KIND_EXPERIMENTAL_PROVIDER)."""
    if engine == "podman":
        return {**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"}
    return None


def _run(argv: list[str], *, timeout: float = 60, env=None, input=None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or b"", (e.stderr or b"") + b"\ntimed out")
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, b"", f"{argv[0]}: not found".encode())


def local_image_id(engine: str, image: str, *, runner=_run) -> str | None:
    """The image's ID when ``image`` is in the engine's local store (``<engine> image inspect``; never pulls)."""
    proc = runner([engine, "image", "inspect", "--format", "{{.Id}}", image], timeout=60)
    out = (proc.stdout or b"").decode().strip()
    return out.splitlines()[0] if proc.returncode == 0 and out else None


def usable_node_image(engine: str, *, runner=_run, version: str | None = None) -> tuple[str, str] | None:
    """(name, id) of the first node image present locally, or None."""
    for image in node_image_candidates(version):
        image_id = local_image_id(engine, image, runner=runner)
        if image_id:
            return image, image_id
    return None


def kind_unusable_reason(which: Callable[[str], str | None] = shutil.which, *, runner=_run,
                         engine_finder=container_engine) -> str | None:
    """Why the kind provider cannot run here (one line), or None when kind, an engine and a node image are there."""
    if not find_kind(which):
        return "kind is not installed (tools/build-kind-images.sh builds it)"
    engine = engine_finder(which)
    if not engine:
        return "no container engine answers (docker info, podman info)"
    if usable_node_image(engine, runner=runner) is None:
        return (f"no kind node image on this machine ({' or '.join(node_image_candidates())}; "
                "tools/build-kind-images.sh builds one; none is pulled to find out)")
    return None
