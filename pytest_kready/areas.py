"""The areas reports group checks by (terminal summary, HTML scorecard, SARIF rule properties): one table from a
check id's prefix (the part before the first dot) to its area. A check id whose prefix is missing here fails
tests/test_areas.py, so a new kind of check cannot silently fall out of the summaries."""

from __future__ import annotations

AREAS: dict[str, str] = {
    "pod-security": "pod security",
    "rbac": "RBAC",
    "resources": "admission",
    "images": "admission",
    "network": "network",
    "disruption": "resilience",
    "probes": "resilience",
    "rollout": "resilience",
    "storage": "resilience",
    "etcd": "control plane",
    "audit": "control plane",
    "upgrade": "upgrade",
}
ORDER = ("pod security", "RBAC", "admission", "network", "resilience", "control plane", "upgrade", "other")


def area_of(check_id: str) -> str:
    """The area of ``check_id`` (``other`` for a user's own check ids with an unknown prefix)."""
    return AREAS.get(check_id.split(".", 1)[0], "other")
