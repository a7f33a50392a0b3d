"""The plugin as users get it: the wheel built, installed with its dependencies into a clean virtualenv
(``installed_wheel`` in conftest.py), and pytest run in an empty directory. Slow (marker ``packaging``)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(argv, cwd, env=None, timeout=600):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _source_files(folder: str, pattern: str) -> set[str]:
    return {p.name for p in (ROOT / folder).glob(pattern)}


@pytest.mark.packaging
def test_wheel_ships_every_suite_and_kind_config_from_the_top_level_folders(installed_wheel):
    names = set(zipfile.ZipFile(installed_wheel["wheel"]).namelist())
    suites = _source_files("suites", "*.py")
    configs = _source_files("kind-configs", "*.yaml")
    assert {"test_network.py", "__init__.py"} <= suites and {"baseline.yaml", "hardened.yaml"} <= configs
    shipped_suites = {n.rsplit("/", 1)[1] for n in names if n.startswith("pytest_kready/suites/") and n.endswith(".py")}
    shipped_configs = {n.rsplit("/", 1)[1] for n in names
                       if n.startswith("pytest_kready/kind_configs/") and n.endswith(".yaml")}
    assert shipped_suites == suites
    assert shipped_configs == configs
    # the other data the plugin reads at run time
    for pattern, prefix in (("pytest_kready/profiles/*/*.yaml", "pytest_kready/profiles/"),
                            ("pytest_kready/profiles/*/*/*.yaml", "pytest_kready/profiles/"),
                            ("pytest_kready/local/addons/*.yaml", "pytest_kready/local/addons/"),
                            ("pytest_kready/manifests/*/*.yaml", "pytest_kready/manifests/"),
                            ("pytest_kready/checks/data/*", "pytest_kready/checks/data/"),
                            ("pytest_kready/reports/*.json", "pytest_kready/reports/")):
        for path in ROOT.glob(pattern):
            assert str(path.relative_to(ROOT)) in names, f"{path.relative_to(ROOT)} is not in the wheel"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kready = pytest_kready.plugin" in zipfile.ZipFile(installed_wheel["wheel"]).read(entry).decode()


@pytest.mark.packaging
def test_every_package_directory_is_in_the_wheel(installed_wheel):
    names = set(zipfile.ZipFile(installed_wheel["wheel"]).namelist())
    for init in (ROOT / "pytest_kready").rglob("__init__.py"):
        assert str(init.relative_to(ROOT)) in names, f"{init.parent} is not listed in pyproject's packages"


def _collected(result) -> list[str]:
    """``file::test[param]`` of every collected item, whatever directory the file was collected from."""
    return sorted(line.rsplit("/", 1)[-1] for line in result.stdout.splitlines() if "::test_" in line)


@pytest.mark.packaging
def test_installed_plugin_collects_the_same_suites_as_the_checkout(installed_wheel):
    where = _run([installed_wheel["py"], "-c", "import pytest_kready.resources as r; print(r.suites_dir())"],
                 cwd=installed_wheel["cwd"], env=installed_wheel["env"])
    assert "/venv/" in where.stdout and where.stdout.strip().endswith("pytest_kready/suites"), where.stdout + where.stderr
    argv = ["-m", "pytest", "--kready", "--collect-only", "-q", "-p", "no:cacheprovider"]
    from_wheel = _run([installed_wheel["py"], *argv], cwd=installed_wheel["cwd"], env=installed_wheel["env"])
    assert from_wheel.returncode == 0, from_wheel.stdout + from_wheel.stderr
    import sys

    from_checkout = _run([sys.executable, *argv], cwd=ROOT)  # the root conftest.py is loaded here
    assert from_checkout.returncode == 0, from_checkout.stdout + from_checkout.stderr
    assert "suites/test_" in from_checkout.stdout
    assert _collected(from_wheel) == _collected(from_checkout) != []


@pytest.mark.packaging
def test_installed_plugin_missing_kubeconfig_is_one_line(installed_wheel):
    result = _run([installed_wheel["py"], "-m", "pytest", "--kready", "--kready-kubeconfig=/nonexistent",
                   "-p", "no:cacheprovider"], cwd=installed_wheel["cwd"], env=installed_wheel["env"])
    assert result.returncode == 4
    lines = [l for l in (result.stdout + result.stderr).splitlines() if l.strip()]
    assert lines == ["ERROR: kubeconfig /nonexistent not found; pass --kready-kubeconfig=PATH to an existing "
                     "kubeconfig file"]
