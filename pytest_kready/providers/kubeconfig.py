"""An existing cluster, named by a kubeconfig (and context). The plugin never deletes or changes what it did not
create there: ``destroy`` does nothing, and the default mode is readonly."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..access import ClusterAccess
from ..errors import ConfigError
from ..ownership import Ownership
from .base import AUDIT_LOG, CONTROL_PLANE_EXEC, EPHEMERAL, ETCD, ETCD_RESTORE, Capabilities, ControlPlane

_WHY = "kubeconfig cluster: control plane not reachable (managed or remote)"
CAPABILITIES = Capabilities(
    ephemeral=False,
    control_plane_exec=False,
    etcd=False,
    audit_log=None,
    reasons={
        EPHEMERAL: "kubeconfig cluster: an existing cluster, not one the plugin may recreate",
        CONTROL_PLANE_EXEC: _WHY,
        ETCD: _WHY,
        ETCD_RESTORE: _WHY,
        AUDIT_LOG: "kubeconfig cluster: the API server's audit log is not readable from here",
    },
)


def _candidates(path: Path | None) -> list[Path]:
    if path is not None:
        return [path]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(os.path.expanduser(p)) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _load(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"kubeconfig {path} cannot be read ({e.strerror}); check the file and its permissions")
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"kubeconfig {path} is not valid YAML{where}; fix it or pass another --kready-kubeconfig")
    if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
        raise ConfigError(f"kubeconfig {path} is not a kubeconfig (no contexts list); pass another --kready-kubeconfig")
    return data


def resolve_kubeconfig(path: Path | None, context: str | None) -> tuple[Path, str]:
    """Find the kubeconfig file and context to use, or raise ``ConfigError`` with one line saying how to fix it.

    Reads files only (no cluster contact). ``path`` None means ``$KUBECONFIG`` (first file holding the context)
    or ``~/.kube/config``.
    """
    candidates = _candidates(path)
    existing = [p for p in candidates if p.is_file()]
    if not existing:
        shown = path if path is not None else os.pathsep.join(map(str, candidates))
        raise ConfigError(f"kubeconfig {shown} not found; pass --kready-kubeconfig=PATH to an existing kubeconfig file")
    seen: list[str] = []
    for p in existing:
        data = _load(p)
        names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
        seen.extend(n for n in names if n)
        wanted = context or data.get("current-context")
        if wanted and wanted in names:
            ctx = next(c for c in data["contexts"] if c.get("name") == wanted)
            cluster = (ctx.get("context") or {}).get("cluster")
            clusters = [c.get("name") for c in data.get("clusters") or [] if isinstance(c, dict)]
            if cluster not in clusters:
                raise ConfigError(f"kubeconfig {p}: context {wanted!r} names cluster {cluster!r}, which the file does "
                                  "not define; fix the kubeconfig")
            return p, wanted
    choices = ", ".join(seen) or "none"
    if context:
        raise ConfigError(f"context {context!r} is not in kubeconfig {existing[0]} (contexts: {choices}); "
                          "pass --kready-context=NAME")
    raise ConfigError(f"kubeconfig {existing[0]} has no current-context; pass --kready-context=NAME "
                      f"(contexts: {choices})")


class KubeconfigProvider:
    """An existing cluster: attach only; never create, change or delete the cluster itself."""

    name = "kubeconfig"
    capabilities = CAPABILITIES

    def __init__(self, settings):
        self.settings = settings
        self.ownership: Ownership | None = None

    def create(self) -> ClusterAccess:
        path, context = resolve_kubeconfig(self.settings.kubeconfig, self.settings.context)
        self.ownership = Ownership.external("kubeconfig", f"{context} in {path}")  # kept in memory only
        return ClusterAccess(kubeconfig=path, context=context)

    def control_plane(self) -> ControlPlane | None:
        return None

    def destroy(self) -> None:
        """Nothing to do: the plugin did not create this cluster."""
