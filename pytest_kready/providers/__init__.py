"""Cluster providers: ``select_provider(settings)`` names and builds the one this run uses.

Default (no ``--kready-provider``): kind when ``kind`` and a reachable container engine (docker or podman) are
present, else ``local`` when its binaries are found, else a one-line error saying what to install. An existing
cluster is used only when named (``--kready-provider=kubeconfig``, ``--kready-kubeconfig``, ``--kready-context``).
Nothing here talks to a cluster. The kind and local providers (which import the kubernetes client) are imported
only when chosen: ``providers.base`` is imported whenever the session module is, in runs without ``--kready`` too.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

from ..errors import ProviderError
from .base import Provider
from .engines import container_engine
from .kubeconfig import KubeconfigProvider, resolve_kubeconfig

NOTHING_FOUND = (
    "no cluster provider available: install kind and docker or podman (https://kind.sigs.k8s.io), or build the "
    "local binaries (tools/build-local-binaries.sh; or set KREADY_LOCAL_BIN_DIR), or name an existing cluster "
    "with --kready-kubeconfig"
)


def local_binaries_present(settings) -> bool:
    return (settings.local_bin_dir / "kube-apiserver").is_file()


def resolve_provider_name(settings, *, which: Callable[[str], str | None] = shutil.which) -> str:
    """The provider this run uses; raise ``ProviderError`` (one line) when none is available."""
    if settings.provider:
        return settings.provider
    if which("kind") and container_engine(which):
        return "kind"
    if local_binaries_present(settings):
        return "local"
    raise ProviderError(NOTHING_FOUND)


def select_provider(settings) -> Provider:
    name = resolve_provider_name(settings)
    if name == "kind":
        from .kind import KindProvider  # imports the kubernetes client: only once chosen

        return KindProvider(settings)
    if name == "kubeconfig":
        return KubeconfigProvider(settings)
    if name == "local":
        from .local import LocalProvider  # imports the kubernetes client: only once chosen

        return LocalProvider(settings)
    raise ProviderError(f"unknown provider {name!r}; choose kind, kubeconfig or local")


def resolve_named_cluster(settings):
    """An existing cluster named by ``--kready-kubeconfig``/``--kready-context``: find its kubeconfig file and
    context now (files only, no cluster contact), so that a wrong name stops the run before anything else happens.
    Returns the settings with both filled in; raises ``ConfigError`` (one line) otherwise."""
    if settings.provider != "kubeconfig":
        return settings
    path, context = resolve_kubeconfig(settings.kubeconfig, settings.context)
    return dataclasses.replace(settings, kubeconfig=path, context=context)
