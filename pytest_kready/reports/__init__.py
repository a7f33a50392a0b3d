"""Reports of a run: what people read and what CI gates on (issue 12).

Every report is built from one list of finding records and one run header, the *v1 shapes* below; the JSON file
(``--kready-json``) is exactly that document, validated against ``findings-v1.schema.json`` (shipped in this
package; ``pytest_kready.reports.schema``). The HTML report (``html.py``), SARIF (``sarif.py``), JUnit
(``junit.py``), the terminal summary (``summary.py``), waivers (``waivers.py``), compare (``compare.py``) and the
exit status (``gate.py``) all read these shapes; ``model.py`` makes them; ``reporter.py`` is the pytest plugin
object that turns findings into outcomes and writes the reports.

The document (``--kready-json``)::

    {"schema": "pytest-kready/findings/v1",
     "run": RUN, "summary": SUMMARY, "findings": [FINDING, ...], "waivers": [WAIVER, ...],
     "compare": COMPARE or null}

RUN (the run header)::

    plugin_version, provider, profile, mode, server_version, run_id,
    started_at, finished_at (ISO 8601 UTC, "2026-12-03T06:48:13Z"), duration_s (float),
    selected_checks (sorted list of the check ids of the collected checks), context (kubeconfig context or null)

FINDING (one per check x target; a check may record several for one target, e.g. per variant)::

    check_id, area (pytest_kready.areas.area_of),
    verdict: pass | fail | inconclusive | not-applicable | waived,
    severity: critical | high | medium | low | info,
    scope: cluster | namespace | object,
    namespace: the user namespace (null for cluster-level findings and for the run's fresh namespace),
    object: {kind, namespace (null for cluster-scoped kinds), name} or null,
    target_key: stable across runs: "cluster", the user namespace ("shop"), "(new-namespace)" for the fresh
                namespace showing a new namespace's defaults, or the object reference ("shop/Deployment/web",
                "StorageClass/standard"); throw-away namespace names of the run are never keys,
    summary, evidence (object), repro (kubectl command or null), remediation (text/YAML or null),
    references (list of CIS / NSA / PSS ids or URLs),
    waiver: the WAIVER that waived it, or null (verdict is then "waived", original_verdict fail|inconclusive),
    nodeid, recorded_at (ISO 8601 UTC),
    and also: variant (the test's parameter id or null), run_namespace (the throw-away namespace it ran in, or
    null), original_verdict (null unless waived), target_namespace (the raw namespace the check named), request,
    response.

SUMMARY::

    verdicts: {pass, fail, inconclusive, not-applicable, waived: counts},
    areas: {area: {pass, fail, inconclusive, not-applicable, waived}} (areas in pytest_kready.areas.ORDER order),
    gate: {fail_on, min_severity, exit_status, failed (bool), reasons: [one line each]}

WAIVER (every waiver of --kready-waivers, each listed once in the document's "waivers")::

    check, namespace (or null), object ("Kind/name" or null), reason, owner, expires ("YYYY-MM-DD"),
    source ("file:line"), status: in-force | expired, used (number of findings it waived)

COMPARE (``--kready-compare PREVIOUS.json``; null without it)::

    previous: {path, run_id, profile, provider, started_at}, current: {run_id, profile, provider, started_at},
    new_failures, fixed, still_failing, to_inconclusive, from_inconclusive, changed: [ENTRY, ...],
    checks_added, checks_gone: [check id, ...], targets_added, targets_gone: [ENTRY, ...]
    ENTRY: {check_id, target_key, variant, before (verdict or null), after (verdict or null), summary}
"""

from __future__ import annotations

SCHEMA_ID = "pytest-kready/findings/v1"
VERDICTS = ("pass", "fail", "inconclusive", "not-applicable", "waived")
SCOPES = ("cluster", "namespace", "object")
