"""The wait for .ci/run's background builds (root conftest.py): a test marked ``ci_build`` waits for its build's
exit status, fails with the build log's end when the build failed or did not end in time, and runs after the
others; outside .ci/run nothing waits."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for_ci_build

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_to_wait_for_outside_ci(monkeypatch):
    monkeypatch.delenv("KREADY_CI_BUILDS", raising=False)
    t0 = time.monotonic()
    wait_for_ci_build("kind", deadline_s=30)
    assert time.monotonic() - t0 < 1


def test_waits_until_the_build_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CI_BUILDS", str(tmp_path))
    (tmp_path / "kind.log").write_text("building\n")
    done = threading.Timer(2.5, lambda: (tmp_path / "kind.rc").write_text("0 131\n"))
    done.start()
    t0 = time.monotonic()
    wait_for_ci_build("kind", deadline_s=30)
    assert 2.0 < time.monotonic() - t0 < 10


def test_a_failed_build_fails_the_test_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CI_BUILDS", str(tmp_path))
    (tmp_path / "upgrade.log").write_text("".join(f"line {i}\n" for i in range(100)) + "go: module refused\n")
    (tmp_path / "upgrade.rc").write_text("1 42\n")
    with pytest.raises(pytest.fail.Exception) as e:
        wait_for_ci_build("upgrade", deadline_s=30)
    msg = str(e.value)
    assert "background build 'upgrade' failed (exit 1)" in msg and "go: module refused" in msg
    assert "line 99" in msg and "line 50" not in msg  # the log's end, not all of it


def test_a_build_that_does_not_end_fails_at_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setenv("KREADY_CI_BUILDS", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="did not end within 1 s"):
        wait_for_ci_build("kind", deadline_s=1)


def test_tests_that_need_a_background_build_run_last_before_the_teardown_check():
    out = subprocess.run([sys.executable, "-m", "pytest", "tests", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    ids = [line for line in out.splitlines() if "::" in line]
    waits = [i for i, nid in enumerate(ids) if "test_kind.py" in nid or "test_upgrade_rehearsal.py" in nid]
    teardown = [i for i, nid in enumerate(ids) if "test_zz_teardown.py" in nid]
    assert waits and teardown, out[-2000:]
    others = [i for i in range(len(ids)) if i not in waits and i not in teardown]
    assert max(others) < min(waits) and max(waits) < min(teardown)
