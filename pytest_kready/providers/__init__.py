"""Cluster providers: ``select_provider(settings)`` names and builds the one this run uses.

Default (no ``--kready-provider``): kind when kind (on PATH or built by tools/build-kind-images.sh), a container
engine that answers (docker or podman) and a usable node image (present locally: ``kready/node:<version>`` or
``kindest/node:<version>``; nothing is pulled to find out) are all there; else ``local`` when its binaries are
found, with one line in the run's output saying why not kind; else a one-line error saying what to install. An
existing cluster is used only when named (``--kready-provider=kubeconfig``, ``--kready-kubeconfig``,
``--kready-context``). Nothing here talks to a cluster. The kind and local providers (which import the kubernetes
client) are imported only when chosen: ``providers.base`` is imported whenever the session module is, in runs
without ``--kready`` too.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

from ..errors import ProviderError
from .base import Provider
from .engines import container_engine
from .kind_host import kind_unusable_reason
from .kubeconfig import KubeconfigProvider, resolve_kubeconfig

NOTHING_FOUND = (
    "no cluster provider available: install kind and docker or podman (https://kind.sigs.k8s.io), or build the "
    "local binaries (tools/build-local-binaries.sh; or set KREADY_LOCAL_BIN_DIR), or name an existing cluster "
    "with --kready-kubeconfig"
)


def local_binaries_present(settings) -> bool:
    return (settings.local_bin_dir / "kube-apiserver").is_file()


def choose_provider(settings, *, which: Callable[[str], str | None] = shutil.which,
                    kind_reason: Callable[..., str | None] = kind_unusable_reason) -> tuple[str, str | None]:
    """(the provider this run uses, one line saying why when it was chosen by default and is not kind); raise
    ``ProviderError`` (one line) when none is available."""
    if settings.provider:
        return settings.provider, None
    why_not_kind = kind_reason(which, engine_finder=container_engine)
    if why_not_kind is None:
        return "kind", None
    if local_binaries_present(settings):
        return "local", f"provider local (chosen by default): not kind, because {why_not_kind}"
    raise ProviderError(f"{NOTHING_FOUND} (kind: {why_not_kind})")


def resolve_provider_name(settings, *, which: Callable[[str], str | None] = shutil.which,
                          kind_reason: Callable[..., str | None] = kind_unusable_reason) -> str:
    """The provider this run uses; raise ``ProviderError`` (one line) when none is available."""
    return choose_provider(settings, which=which, kind_reason=kind_reason)[0]


def select_provider(settings, *, pytest_kind=None) -> Provider:
    """The run's provider. ``pytest_kind``: the session's pytest-kind cluster (providers.pytest_kind.target), which
    the kind provider attaches to instead of making one."""
    name, why = choose_provider(settings)
    if name == "kind":
        from .kind import KindProvider  # imports the kubernetes client: only once chosen

        return KindProvider(settings, pytest_kind=pytest_kind)
    if name == "kubeconfig":
        return KubeconfigProvider(settings)
    if name == "local":
        from .local import LocalProvider  # imports the kubernetes client: only once chosen

        provider = LocalProvider(settings)
        if why:
            provider.notes.insert(0, why)
        return provider
    raise ProviderError(f"unknown provider {name!r}; choose kind, kubeconfig or local")


def resolve_named_cluster(settings):
    """An existing cluster named by ``--kready-kubeconfig``/``--kready-context``: find its kubeconfig file and
    context now (files only, no cluster contact), so that a wrong name stops the run before anything else happens.
    Returns the settings with both filled in; raises ``ConfigError`` (one line) otherwise."""
    if settings.provider != "kubeconfig":
        return settings
    path, context = resolve_kubeconfig(settings.kubeconfig, settings.context)
    return dataclasses.replace(settings, kubeconfig=path, context=context)
