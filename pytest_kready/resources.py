"""Where the shipped files are, from a source tree, an editable install or an installed wheel alike: one path
helper for the suites, the kind configs, and the profiles (``importlib.resources``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_dir(package: str) -> Path:
    # every package here is a plain directory on disk (wheel, editable install or checkout), never a zip
    return Path(str(resources.files(package))).resolve()


def suites_dir() -> Path:
    """The shipped suites (``suites/`` at the top of the repository, ``pytest_kready/suites`` in the wheel)."""
    return _package_dir("pytest_kready.suites")


def kind_configs_dir() -> Path:
    """The kind configs of the reference profiles (``kind-configs/``, ``pytest_kready/kind_configs`` in the wheel)."""
    return _package_dir("pytest_kready.kind_configs")


def kind_config(profile: str) -> Path:
    return kind_configs_dir() / f"{profile}.yaml"


def profiles_dir() -> Path:
    return _package_dir("pytest_kready.profiles")


def profile_file(profile: str, *parts: str) -> Path:
    """A file of a reference profile, e.g. ``profile_file("hardened", "namespace", "serviceaccount.yaml")``."""
    return profiles_dir().joinpath(profile, *parts)

