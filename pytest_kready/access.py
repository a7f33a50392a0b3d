"""How to reach a cluster's API: plain data shared by the providers (which make it), the client (which connects
with it), the session and the checks. Imports nothing of the plugin, so any module may import it."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ClusterAccess:
    """How to reach a cluster's API: a kubeconfig file and the context to use in it."""

    kubeconfig: Path
    context: str | None = None
