"""The README's "Writing your own behavioural checks" example, taken from README.md as it stands and run as a
user's own test file with ``pytest --kready`` on the real local cluster (slot 0): it must pass, record its
finding, and leave no namespace behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SLOTS

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Writing your own behavioural checks"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(pytester, monkeypatch, local_cluster, core):
    code = readme_example()
    assert "kready_cluster.scratch_namespace" in code and "CheckResult" in code
    pytester.makepyfile(test_team=code)
    monkeypatch.setenv("KREADY_LOCAL_SLOT", str(SLOTS["baseline"]))
    out = pytester.path / "findings.json"
    result = pytester.runpytest_subprocess(
        "test_team.py", "--kready", "--kready-provider=local", "--kready-mode=standard", f"--kready-json={out}",
        "-p", "no:cacheprovider", timeout=300)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    (finding,) = doc["findings"]
    assert finding["check_id"] == "team.default-sa-cannot-list-secrets"
    assert finding["verdict"] == "pass", finding
    assert finding["target_namespace"].startswith("kr-team-")
    left = [n.metadata.name for n in core.list_namespace().items if n.metadata.name == finding["target_namespace"]
            and n.status.phase != "Terminating"]
    assert left == [], "the scratch namespace outlived the session"
