"""The exit status a CI gate reads (docs/reports.md, "Exit status").

0  nothing the gate counts: no failing finding (at or above ``--kready-min-severity``) that is not waived, no
   inconclusive one unless ``--kready-fail-on=fail``, no expired waiver, no other failed test.
1  the gate failed: a counted finding, an expired waiver, or a test that failed outside the checks' findings.
2  interrupted: the cluster could not be made or reached (the run stopped before its checks), or Ctrl-C.
3  internal error of pytest or a plugin.
4  usage error: bad options, a malformed waivers or compare file, a kubeconfig or permission problem.
5  no tests were collected.

``--kready-fail-on`` and ``--kready-min-severity`` decide the exit status only; the reports keep every category.
"""

from __future__ import annotations

from typing import Any

FAIL_ON = ("fail", "inconclusive")
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
MIN_SEVERITIES = ("low", "medium", "high", "critical")
RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}


def counted(f: dict[str, Any], *, fail_on: str = "inconclusive", min_severity: str = "info") -> bool:
    """Whether finding ``f`` (v1 record) fails the gate."""
    gating = ("fail", "inconclusive") if fail_on == "inconclusive" else ("fail",)
    return f["verdict"] in gating and RANK.get(f.get("severity") or "medium", 2) >= RANK[min_severity]


def decide(findings: list[dict], waivers: list[dict], *, pytest_status: int, fail_on: str = "inconclusive",
           min_severity: str = "info", other_failures: list[str] = ()) -> dict[str, Any]:
    """The gate record (summary.gate of the JSON): ``exit_status``, ``failed`` and one line per reason.
    ``pytest_status``: what pytest would exit with; 2-5 stand (the run did not get to judge), 0 and 1 are decided
    here. ``other_failures``: node ids of failed tests that recorded no failing or inconclusive finding."""
    hits = [f for f in findings if counted(f, fail_on=fail_on, min_severity=min_severity)]
    expired = [w for w in waivers if w.get("status") == "expired"]
    reasons: list[str] = []
    if hits:
        fails = sum(f["verdict"] == "fail" for f in hits)
        unsure = len(hits) - fails
        what = " and ".join(p for p in (f"{fails} failing" if fails else "",
                                        f"{unsure} inconclusive" if unsure else "") if p)
        floor = f" at or above {min_severity}" if min_severity != "info" else ""
        reasons.append(f"{what} finding(s){floor} not waived")
    for w in expired:
        scope = "/".join(p for p in (w.get("namespace"), w.get("object")) if p) or "everywhere"
        reasons.append(f"waiver expired on {w['expires']}: {w['check']} in {scope} (owner {w['owner']}, "
                       f"{w['source']}); renew or remove it")
    if other_failures:
        reasons.append(f"{len(other_failures)} test(s) failed without a finding: " + ", ".join(other_failures[:3])
                       + (" ..." if len(other_failures) > 3 else ""))
    if pytest_status not in (0, 1):
        status = pytest_status
    else:
        status = 1 if reasons else 0
    return {"fail_on": fail_on, "min_severity": min_severity, "exit_status": int(status), "failed": status != 0,
            "reasons": reasons}
