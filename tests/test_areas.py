"""Every check id the shipped suites declare belongs to an area of the reports (pytest_kready/areas.py)."""

from __future__ import annotations

import re

from pytest_kready.areas import AREAS, ORDER, area_of
from pytest_kready.resources import suites_dir


def shipped_check_ids() -> set[str]:
    ids: set[str] = set()
    for suite in suites_dir().glob("test_*.py"):
        ids |= set(re.findall(r'kready_check\("([a-z0-9.-]+)"\)', suite.read_text()))
    from pytest_kready.checks import pod_security

    ids |= {a.check_id for a in pod_security.ATTACKS} | {pod_security.COMPLIANT_CHECK}
    return ids


def test_every_shipped_check_id_has_an_area():
    ids = shipped_check_ids()
    assert len(ids) > 30
    missing = sorted(i for i in ids if i.split(".", 1)[0] not in AREAS)
    assert missing == [], f"check ids without an area in pytest_kready/areas.py: {missing}"


def test_areas_are_ordered_and_unknown_prefixes_are_other():
    assert set(AREAS.values()) <= set(ORDER)
    assert area_of("team.my-check") == "other"
    assert area_of("pod-security.root") == "pod security"
