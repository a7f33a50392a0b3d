"""Images of the local cluster: imported into containerd from tarballs, never pulled.

No registry is reachable from the local cluster, so every image its pods use is built by
``tools/build-local-binaries.sh`` as an OCI image layout tarball beside the binaries (as a Kubernetes
server release ships ``kube-apiserver.tar`` beside ``kube-apiserver``) and listed in ``images.json``
there (``{"<full image name>": "<file>.tar", ...}``). :func:`import_images` loads them into
containerd's ``k8s.io`` namespace, where the CRI plugin (and so the kubelet) finds them under their
upstream names, unpacked for the overlayfs snapshotter the CRI plugin uses.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import subprocess
import tarfile
from pathlib import Path

from ..errors import ProviderError

log = logging.getLogger(__name__)

IMAGES_JSON = "images.json"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_TIMEOUT = 300.0
IMPORT_WORKERS = 3


class ImageImportError(ProviderError):
    """An image tarball could not be read or imported."""


def image_tarballs(bin_dir: Path) -> dict[str, Path]:
    """Image name → tarball, from ``images.json`` in ``bin_dir`` or else from every ``*.tar`` there."""
    bin_dir = Path(bin_dir)
    listing = bin_dir / IMAGES_JSON
    if listing.is_file():
        try:
            data = json.loads(listing.read_text())
        except (OSError, ValueError) as e:
            raise ImageImportError(f"cannot read {listing}: {e}; rerun tools/build-local-binaries.sh") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ImageImportError(f"{listing} is not a JSON object of image name → tar file; rerun tools/build-local-binaries.sh")
        out = {}
        for name, file in sorted(data.items()):
            path = bin_dir / file
            if not path.is_file():
                raise ImageImportError(f"{listing} lists {name} in {file}, which is missing; rerun tools/build-local-binaries.sh")
            out[name] = path
        return out
    out = {}
    for path in sorted(bin_dir.glob("*.tar")):
        for name in tarball_images(path):
            out.setdefault(name, path)
    return out


def tarball_images(tarball: Path) -> dict[str, str]:
    """Image name → manifest digest of every named image in an OCI layout tarball's index.json."""
    try:
        with tarfile.open(tarball, "r") as tar:
            member = tar.extractfile("index.json")
            if member is None:
                raise KeyError("index.json")
            index = json.load(member)
    except (OSError, KeyError, ValueError, tarfile.TarError) as e:
        raise ImageImportError(f"{tarball} is not an OCI image layout tarball ({e}); rerun tools/build-local-binaries.sh") from None
    out = {}
    for desc in index.get("manifests", []):
        ann = desc.get("annotations") or {}
        name = ann.get(ANNOTATION_CONTAINERD_NAME) or ann.get(ANNOTATION_REF_NAME)
        if name and desc.get("digest"):
            out[name] = desc["digest"]
    return out


def _ctr(ctr: str, address: str, namespace: str, *args: str) -> list[str]:
    return [ctr, "--address", address, "--namespace", namespace, *args]


def _run(cmd: list[str], timeout: float, what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ImageImportError(f"{cmd[0]} not found: install containerd (apt-get install containerd)") from None
    except subprocess.TimeoutExpired:
        raise ImageImportError(f"{what} took longer than {timeout:.0f}s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ImageImportError(f"{what} failed (exit {proc.returncode}): {detail[-1] if detail else ''}")
    return proc.stdout


def list_images(*, ctr: str = "ctr", address: str, namespace: str = "k8s.io", timeout: float = 60.0) -> dict[str, str]:
    """Image name → manifest digest of the images in containerd's ``namespace``.

    Includes the ``sha256:<config digest>`` references the CRI plugin adds for image ids.
    """
    out = _run(_ctr(ctr, address, namespace, "images", "ls"), timeout, "listing containerd images")
    images = {}
    for line in out.splitlines()[1:]:  # REF TYPE DIGEST SIZE PLATFORMS LABELS
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("sha256:"):
            images[fields[0]] = fields[2]
    return images


def import_images(
    bin_dir: Path,
    *,
    ctr: str = "ctr",
    address: str,
    namespace: str = "k8s.io",
    snapshotter: str = "overlayfs",
    platform: str = "linux/amd64",
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """Import the images of ``bin_dir`` into containerd at ``address``; return their names.

    Each tarball is imported with ``ctr images import --platform <platform> --snapshotter <snapshotter>``,
    which stores it under the name in its index.json and unpacks it for that snapshotter (the one
    the CRI plugin is configured with), so pods with ``imagePullPolicy: Never``/``IfNotPresent`` start
    without a pull. A tarball whose images are all present with the same manifest digest is skipped.
    ``timeout`` bounds each ctr call.
    """
    by_file: dict[Path, dict[str, str]] = {}
    for name, path in image_tarballs(Path(bin_dir)).items():
        if path not in by_file:
            by_file[path] = tarball_images(path)
        if name not in by_file[path]:
            raise ImageImportError(f"{path} does not hold {name}; rerun tools/build-local-binaries.sh")
    present = list_images(ctr=ctr, address=address, namespace=namespace, timeout=timeout)
    names: list[str] = []
    todo = []
    for path, images in by_file.items():
        if images and all(present.get(n) == d for n, d in images.items()):
            log.debug("images %s already in containerd", ", ".join(images))
        else:
            todo.append((path, images))
        names.extend(images)

    def one(path: Path, images: dict[str, str]) -> None:
        log.info("importing %s (%s)", path.name, ", ".join(images))
        _run(_ctr(ctr, address, namespace, "images", "import", "--platform", platform, "--snapshotter", snapshotter,
                  str(path)), timeout, f"importing {path.name}")

    if todo:  # several ctr imports at once: each spends much of its time waiting on containerd
        with concurrent.futures.ThreadPoolExecutor(min(IMPORT_WORKERS, len(todo))) as pool:
            for future in [pool.submit(one, path, images) for path, images in todo]:
                future.result()
    if names:
        present = list_images(ctr=ctr, address=address, namespace=namespace, timeout=timeout)
        missing = [n for n in names if n not in present]
        if missing:
            raise ImageImportError(f"containerd does not list {', '.join(missing)} after import")
    return names
