"""pytest-kind in a pytest-kready run: attach to the session's pytest-kind cluster instead of making another.

When the session has a pytest-kind cluster — a test uses its ``kind_cluster`` fixture, or ``--cluster-name``
names one — and the run's provider is kind, ``kready_cluster`` attaches to that cluster (ownership: made by someone
else; never deleted, never swept as stale) instead of creating ``kready-<run>``. Two ways:

* the ``kind_cluster`` fixture: pytest-kind makes (or reuses) and deletes its cluster as it always does; the run
  uses the kubeconfig pytest-kind wrote and pytest-kind's kind binary;
* ``--cluster-name=NAME`` without the fixture: the kind cluster NAME must already exist (``kind get clusters``);
  its kubeconfig comes from ``kind get kubeconfig --name NAME``.

What pytest-kind does not serve here, and the plugin therefore does not use (docs/safety.md): its download of kind
and kubectl (nothing may be fetched at fixture time: ``--kind-bin`` and ``--kind-kubectl-bin`` are filled in with
the kind and kubectl this machine has when they are not given, see ``fill_binaries``), its reuse of any cluster by
name (pytest-kready's own clusters are never reused: ``KindProvider`` refuses a ``kready-<run>`` name that exists),
its ``.pytest-kind`` directory in the working directory, and its waits without deadlines.

Imports nothing heavy: plugin.py calls ``fill_binaries`` at configure time.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from .kind_host import find_kind

PLUGIN_NAME = "pytest-kind"  # pytest-kind's pytest11 entry point
FIXTURE = "kind_cluster"
DEFAULT_NAME = "pytest-kind"  # pytest-kind's --cluster-name default


@dataclasses.dataclass(frozen=True)
class PytestKindCluster:
    """The pytest-kind cluster a run attaches to."""

    name: str
    source: str  # "pytest-kind's kind_cluster fixture" or "--cluster-name"
    kubeconfig: Path | None = None  # the file pytest-kind wrote (fixture); None: ask kind for it
    kind: str | None = None  # the kind binary pytest-kind uses (--kind-bin)


def active(config) -> bool:
    return config.pluginmanager.has_plugin(PLUGIN_NAME)


def _given(config, flag: str) -> bool:
    args = [str(a) for a in config.invocation_params.args]
    return any(a == flag or a.startswith(flag + "=") for a in args)


def cluster_name_given(config) -> bool:
    """``--cluster-name`` was set (on the command line, or in addopts to a value other than the default)."""
    value = config.getoption("cluster_name", default=None)
    return bool(value) and (_given(config, "--cluster-name") or value != DEFAULT_NAME)


def find_kubectl(settings, which: Callable[[str], str | None] = shutil.which) -> str | None:
    found = which("kubectl")
    if found:
        return found
    bins = getattr(settings, "local_bin_dir", None)
    if bins and (Path(bins) / "kubectl").is_file():
        return str(Path(bins) / "kubectl")
    return None


def fill_binaries(config, settings, which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """pytest-kind downloads kind (v0.17) and kubectl when ``--kind-bin``/``--kind-kubectl-bin`` are not given:
    give it this machine's instead (only when the kready provider may be kind). Returns what was filled in."""
    if not active(config) or getattr(settings, "provider", None) not in (None, "kind"):
        return []
    filled = []
    for dest, flag, find in (("kind_bin", "--kind-bin", lambda: find_kind(which)),
                             ("kind_kubectl_bin", "--kind-kubectl-bin", lambda: find_kubectl(settings, which))):
        if getattr(config.option, dest, "absent") is None:
            path = find()
            if path:
                setattr(config.option, dest, path)
                filled.append(f"{flag}={path}")
    return filled


def session_uses_fixture(session) -> bool:
    return any(FIXTURE in getattr(item, "fixturenames", ()) for item in getattr(session, "items", ()) or ())


def target(request) -> PytestKindCluster | None:
    """The pytest-kind cluster of this session, or None. Sets up pytest-kind's ``kind_cluster`` fixture (which makes
    or reuses its cluster) when a test of the session uses it."""
    config = request.config
    if not active(config):
        return None
    if session_uses_fixture(request.session):
        kc = request.getfixturevalue(FIXTURE)
        kubeconfig = Path(kc.kubeconfig_path).resolve() if getattr(kc, "kubeconfig_path", None) else None
        kind = str(Path(kc.kind_path).resolve()) if getattr(kc, "kind_path", None) else None
        return PytestKindCluster(name=kc.name, source=f"pytest-kind's {FIXTURE} fixture", kubeconfig=kubeconfig,
                                 kind=kind)
    if cluster_name_given(config):
        kind = config.getoption("kind_bin", default=None)
        return PytestKindCluster(name=config.getoption("cluster_name"), source="--cluster-name", kind=kind or None)
    return None
