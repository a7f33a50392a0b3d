"""pytest side of the upgrade rehearsal (``--kready-upgrade-rehearsal``; the engine is pytest_kready.rehearsal).

Registered by the plugin only with that option. Every check is collected twice, as pytest-repeat does it: an extra
parameter ``kready_phase`` (``before`` / ``after``, the last part of the test id, so findings keep them apart in
their ``variant``); the items run in the order *every check before*, ``upgrade.rehearsal`` (marker
``kready_rehearsal``: the in-place upgrade under load), *every check after*. Module-scoped fixtures are set up again
for the second phase, so nothing made before the upgrade is reused after it. The verdicts that changed between
the phases go into the findings JSON (``rehearsal``) and the terminal summary.
"""

from __future__ import annotations

import pytest

from .rehearsal import PHASES, verdict_changes

REHEARSAL_MARKER = "kready_rehearsal"


@pytest.fixture
def kready_phase(request) -> str:
    """``before`` or ``after`` the in-place upgrade (only under --kready-upgrade-rehearsal)."""
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("kready_check") is None:
        return
    if metafunc.definition.get_closest_marker(REHEARSAL_MARKER) is not None:
        return
    metafunc.fixturenames.append("kready_phase")
    metafunc.parametrize("kready_phase", PHASES, indirect=True, ids=PHASES)


def phase_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("kready_phase") if callspec is not None else None


def order(items: list[pytest.Item]) -> list[pytest.Item]:
    """Every item of phase ``before`` (and items without a phase), then the rehearsal, then phase ``after``; the
    collection order kept within each part."""
    rank = {"before": 0, None: 0, "after": 2}

    def key(pair):
        i, item = pair
        part = 1 if item.get_closest_marker(REHEARSAL_MARKER) is not None else rank.get(phase_of(item), 0)
        return part, i

    return [item for _, item in sorted(enumerate(items), key=key)]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = order(items)


def changes_section(findings: list[dict], versions: tuple[str, str]) -> dict:
    """The findings JSON's ``rehearsal`` section."""
    old, new = versions
    return {"from": old, "to": new, "verdict_changes": verdict_changes(findings)}


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("kready-findings")
    doc = reporter.document() if reporter is not None else None
    section = (doc or {}).get("rehearsal")
    if not section:
        return
    changes = section["verdict_changes"]
    terminalreporter.write_sep("-", f"kready upgrade rehearsal {section['from']} -> {section['to']}: "
                               f"{len(changes)} verdict(s) changed")
    for c in changes:
        where = " ".join(x for x in (c["target_key"], c["variant"] or "") if x)
        terminalreporter.line(f"  {c['check_id']} {where}: {c['before'] or 'missing'} -> {c['after'] or 'missing'}")
