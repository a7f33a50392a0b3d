"""The container runtime a local cluster runs: containerd, its runc shim, runc, ctr and the CNI plugins.

tools/build-local-binaries.sh installs them into the binaries directory (containerd 2.x, runc and the CNI plugins
from their Go modules, by tools/build-node-components.sh — the same build the kind node image gets)::

    <bin>/containerd  <bin>/containerd-shim-runc-v2  <bin>/ctr  <bin>/runc  <bin>/cni/{bridge,host-local,loopback,portmap}

A binaries directory without them (a Kubernetes release's ``server/bin``, say) falls back to the host's, from
``PATH`` and ``/usr/lib/cni`` (Debian: containerd runc containernetworking-plugins). One place decides which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNTIME_BINARIES = ("containerd", "containerd-shim-runc-v2", "runc", "ctr")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
HOST_CNI_BIN = Path("/usr/lib/cni")
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Runtime:
    """Where the runtime's programs are, and whether they came with the binaries directory or from the host."""

    bin_dir: Path | None  # the binaries directory holding them; None: the host's PATH
    cni_bin: Path

    @property
    def bundled(self) -> bool:
        return self.bin_dir is not None

    def program(self, name: str) -> str:
        """The path (bundled) or name (found through PATH) to run ``name`` by."""
        return str(self.bin_dir / name) if self.bin_dir else name

    def env_path(self, base: str | None = None) -> str:
        """PATH for containerd: the bundled directory first, so containerd finds its shim and the shim finds runc."""
        base = base if base is not None else os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        return f"{self.bin_dir}{os.pathsep}{base}" if self.bin_dir else base

    def missing(self) -> list[str]:
        """What is not there, each said the way a person fixes it."""
        if self.bin_dir:
            out = [b for b in RUNTIME_BINARIES if not (self.bin_dir / b).is_file()]
        else:
            out = [b for b in RUNTIME_BINARIES if shutil.which(b) is None]
        if not (self.cni_bin / "bridge").exists():
            out.append(f"CNI plugins in {self.cni_bin}")
        return out

    def containerd_version(self, timeout: float = 10) -> tuple[int, int, int] | None:
        """containerd's version, from ``containerd --version``; None when it cannot be read."""
        try:
            out = subprocess.run([self.program("containerd"), "--version"], capture_output=True, text=True,
                                 timeout=timeout, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        # "containerd github.com/containerd/containerd/v2 v2.3.4 <sha>", Debian's "... 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
        for field in out.split():
            m = _VERSION.match(field)
            if m and "/" not in field:
                return (int(m[1]), int(m[2]), int(m[3]))
        return None


def find(bin_dir: Path) -> Runtime:
    """The bundled runtime when ``bin_dir`` holds containerd, else the host's."""
    if (bin_dir / "containerd").is_file():
        return Runtime(bin_dir=bin_dir, cni_bin=bin_dir / "cni")
    return Runtime(bin_dir=None, cni_bin=HOST_CNI_BIN)
