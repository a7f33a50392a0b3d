"""The HTML report (pytest_kready/reports/html.py): rendering from fixed finding dicts (scorecard, grids, finding
blocks, waivers, compare, Environment rows, escaping), and the pytest-html wiring in a run with and without
``--self-contained-html``, opened in headless Chromium (every test row drawn, inconclusive ones included)."""

from __future__ import annotations

import base64
import datetime
import html as htmllib
import json
import re
import xml.etree.ElementTree as ET

import pytest

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready.reports import html as h

from browser import dump_dom, parse

TODAY = datetime.date(2026, 12, 3)


def tree(fragment: str) -> ET.Element:
    """The fragment parsed as XML: the renderer's output is well-formed (and so unambiguous to a browser)."""
    return ET.fromstring(f"<root>{fragment}</root>")


def cls(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def text(el: ET.Element) -> str:
    return "".join(el.itertext())


def finding(check_id: str, verdict: str, **fields) -> dict:
    return {"check_id": check_id, "verdict": verdict, "severity": fields.pop("severity", "high"),
            "summary": fields.pop("summary", f"{check_id} is {verdict}"), **fields}


CELLS = [  # as pytest_kready.reachability.engine.Result.cell_evidence gives them
    {"from": "fresh", "to": "shop/probe:8080/TCP (10.244.0.7)", "observed": "connects", "expected": "blocked",
     "seen": ["connected", "connected", "connected"]},
    {"from": "fresh", "to": "shop/svc web:80/TCP (10.96.0.9)", "observed": "blocked", "expected": "blocked",
     "seen": ["timeout", "timeout", "timeout"], "alive": "Ready: in 3 of 3 counted round(s)"},
    {"from": "shop", "to": "fresh/probe:8080/TCP (10.244.0.8)", "observed": "unknown", "expected": "connects",
     "seen": ["refused", "connected"], "why_unknown": "the answers kept changing"},
]
NETWORK = finding("network.default-deny", "fail", namespace="shop", scope="namespace", target_key="shop",
                  area="network", evidence={"grid": "(+ connects, - blocked)\nexpected ...", "cells": CELLS,
                                            "policies": [{"name": "allow-web", "spec": {"podSelector": {},
                                                                                         "policyTypes": ["Ingress"]}}],
                                            "kubectl": ["kubectl exec -n kr-net-fresh-1 probe -- /agnhost connect "
                                                        "10.244.0.7:8080 --timeout=2s"],
                                            "sampling": "5 round(s) in 20.1s", "writes": ["Namespace kr-net-fresh-1"]},
                  repro="kubectl exec -n kr-net-fresh-1 probe -- /agnhost connect 10.244.0.7:8080 --timeout=2s",
                  remediation="Give the namespace a default-deny NetworkPolicy (podSelector: {}, policyTypes: "
                              "[Ingress, Egress]).",
                  references=["https://kubernetes.io/docs/concepts/services-networking/network-policies/"],
                  nodeid="suites/test_network.py::test_default_deny")
POD_SECURITY_FIX = ("Enforce the restricted Pod Security profile on namespace shop:\n"
                    "kubectl label --overwrite namespace shop pod-security.kubernetes.io/enforce=restricted\n"
                    "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n"
                    "    pod-security.kubernetes.io/enforce: restricted\n"
                    "# cluster-wide default: an AdmissionConfiguration for the PodSecurity plugin")
WAIVER = {"check": "pod-security.*", "namespace": "legacy", "object": None, "reason": "vendor chart, fixed in Q1",
          "owner": "team-legacy", "expires": "2027-01-31", "source": "waivers.yaml:2", "status": "in-force",
          "used": 1}
FINDINGS = [
    finding("pod-security.privileged", "pass", namespace="shop", target_key="shop"),
    finding("pod-security.privileged", "fail", namespace="web", target_key="web", remediation=POD_SECURITY_FIX),
    finding("pod-security.host-path", "fail", namespace="web", target_key="web"),
    finding("pod-security.host-path", "waived", namespace="legacy", target_key="legacy", waiver=WAIVER,
            original_verdict="fail"),
    NETWORK,
    finding("network.dns", "inconclusive", namespace="shop", target_key="shop", summary="the DNS probe gave no answer"),
    finding("rbac.anonymous", "not-applicable", scope="cluster", target_key="cluster"),
    finding("etcd.encryption-at-rest", "fail", scope="cluster", target_key="cluster", run_namespace="kr-x-1"),
    finding("mycompany.custom", "pass", target_namespace="ops"),  # a user's own check, before v1 (no area field)
]


def scorecard(fragment: str) -> dict[str, dict[str, int]]:
    table = next(t for t in tree(fragment).iter("table") if t.get("id") == "kready-scorecard")
    out = {}
    for row in table.find("tbody"):
        out[row.get("data-area")] = {td.get("data-verdict"): int(text(td)) for td in row.iter("td")
                                     if td.get("data-verdict")}
    return out


def test_scorecard_counts_every_verdict_per_area():
    got = scorecard(h.scorecard_html(FINDINGS))
    zero = dict.fromkeys(h.VERDICTS, 0)
    assert got == {
        "pod security": {**zero, "pass": 1, "fail": 2, "waived": 1},
        "RBAC": {**zero, "not-applicable": 1},
        "network": {**zero, "fail": 1, "inconclusive": 1},
        "control plane": {**zero, "fail": 1},
        "other": {**zero, "pass": 1},
        "all areas": {**zero, "pass": 2, "fail": 4, "inconclusive": 1, "not-applicable": 1, "waived": 1},
    }
    assert list(got)[:5] == ["pod security", "RBAC", "network", "control plane", "other"]  # the areas' order
    page = tree(h.scorecard_html(FINDINGS))
    fails = [td for td in page.iter("td") if td.get("data-verdict") == "fail" and text(td) != "0"]
    assert fails and all("kr-fail" in cls(td) for td in fails)  # coloured by verdict; zeros are not
    assert "not in this run: admission, resilience, upgrade" in text(page)


def test_grids_draw_expected_observed_and_differences():
    page = tree(h.grids(CELLS))
    tables = {t.get("class").split()[-1]: t for t in page.iter("table")}
    assert set(tables) == {"kr-grid-expected", "kr-grid-observed", "kr-grid-diff"}

    def cells(table):
        heads = [th.get("title") for th in table.find("thead").iter("th")][1:]
        out = {}
        for row in table.find("tbody"):
            src = text(row.find("th"))
            for col, td in zip(heads, row.findall("td")):
                out[(src, col)] = cls(td) - {"kr-cell"}
        return out

    p, s = "shop/probe:8080/TCP (10.244.0.7)", "shop/svc web:80/TCP (10.96.0.9)"
    back = "fresh/probe:8080/TCP (10.244.0.8)"
    assert cells(tables["kr-grid-expected"]) == {("fresh", p): {"kr-blocked"}, ("fresh", s): {"kr-blocked"},
                                                 ("fresh", back): {"kr-notprobed"}, ("shop", p): {"kr-notprobed"},
                                                 ("shop", s): {"kr-notprobed"}, ("shop", back): {"kr-connects"}}
    assert cells(tables["kr-grid-observed"])[("fresh", p)] == {"kr-connects"}
    assert cells(tables["kr-grid-observed"])[("shop", back)] == {"kr-unknown"}
    diff = cells(tables["kr-grid-diff"])
    assert diff[("fresh", p)] == {"kr-differs"} and diff[("fresh", s)] == {"kr-agree"}
    assert diff[("shop", back)] == {"kr-differs"}
    assert "differences (2 of 3)" in text(page)
    # column labels drop the address (kept in the title); each cell says what the rounds saw
    assert [text(th) for th in tables["kr-grid-observed"].find("thead").iter("th")][1:] == [
        "shop/probe:8080/TCP", "shop/svc web:80/TCP", "fresh/probe:8080/TCP"]
    titles = [td.get("title") for td in tables["kr-grid-observed"].iter("td")]
    assert any("rounds: refused, connected" in t and "the answers kept changing" in t for t in titles)


def test_observed_only_without_expectations():
    cells = [{k: v for k, v in c.items() if k != "expected"} for c in CELLS]
    page = tree(h.grids(cells))
    assert [t.get("class").split()[-1] for t in page.iter("table")] == ["kr-grid-observed"]


def test_a_finding_is_laid_out_for_reading():
    block = tree(h.finding_html(NETWORK))
    root = block.find("div")
    assert {"kr-finding", "kr-v-fail"} <= cls(root) and root.get("data-check") == "network.default-deny"
    head = text(next(d for d in root.iter("div") if "kr-head" in cls(d)))
    assert "fail" in head and "network.default-deny" in head and "namespace shop" in head and "high" in head
    assert block.find(".//table[@class='kr-grid kr-grid-diff']") is not None  # the grids, drawn
    dts = [text(dt) for dt in block.iter("dt")]
    assert dts == ["grid", "cells (3)", "policies", "kubectl", "sampling", "writes"]  # every field, in order
    pres = {p.get("class"): text(p) for p in block.iter("pre") if p.get("class")}
    assert pres["kr-yaml"] == "- name: allow-web\n  spec:\n    podSelector: {}\n    policyTypes:\n    - Ingress"
    cmds = [text(p) for p in block.iter("pre") if p.get("class") == "kr-cmd"]
    assert cmds == [NETWORK["evidence"]["kubectl"][0], NETWORK["repro"]]  # evidence commands, then Reproduce
    assert [text(x) for x in block.iter("h4")] == ["Evidence", "Reproduce", "Remediation", "References"]
    link = next(a for a in block.iter("a"))
    assert link.get("href") == NETWORK["references"][0]
    # the finding stays available as JSON, collapsed
    details = next(d for d in block.iter("details") if d.get("class") == "kr-json")
    assert json.loads(text(details.find("pre"))) == NETWORK


def test_remediation_splits_prose_commands_and_yaml():
    page = tree(h.remediation_html(POD_SECURITY_FIX))
    parts = [(el.tag, el.get("class"), text(el)) for el in page]
    assert parts[0] == ("p", "kr-remedy", "Enforce the restricted Pod Security profile on namespace shop:")
    assert parts[1][:2] == ("pre", "kr-cmd") and parts[1][2].startswith("kubectl label --overwrite namespace shop")
    assert parts[2][:2] == ("pre", "kr-yaml") and parts[2][2].startswith("apiVersion: v1\nkind: Namespace")
    assert "# cluster-wide default" in parts[2][2] and len(parts) == 3


def test_text_is_escaped_and_nothing_external():
    evil = finding("rbac.wildcards", "fail", summary='<script>alert("x")</script>', target_key="cluster",
                   evidence={"<b>key</b>": "<img src=x onerror=alert(1)>", "rules": [{"verbs": ["*"]}]},
                   remediation="<iframe src='https://evil.example'></iframe>")
    for fragment in (h.finding_html(evil), h.summary_html({"findings": [evil]}, TODAY)):
        page = tree(fragment)  # well-formed: nothing the text contained became markup
        assert not [el for el in page.iter() if el.tag in ("script", "img", "iframe", "b", "link")]
        assert '<script>alert("x")</script>' in text(page)
        assert not re.search(r"(src|href)=\"(https?:)?//|@import|url\(", fragment.replace(
            'href="https://', "HREF"))  # links to read (references) only, no resource is loaded


def test_waivers_in_force_with_expiry():
    waivers = [dict(WAIVER),
               dict(WAIVER, check="images.mutable-tag", namespace="shop", object="Deployment/web",
                    expires="2026-12-20"),
               dict(WAIVER, check="network.egress", expires="2026-11-30", status="expired", used=0),
               dict(WAIVER, check="rbac.*", namespace=None, used=0)]
    page = tree(h.waivers_html(waivers, TODAY))
    rows = [[text(td) for td in tr.findall("td")] + [tr.get("data-status")] for tr in page.iter("tr")
            if tr.get("data-status")]
    assert [(r[0].split()[0], r[-1]) for r in rows] == [
        ("pod-security.*", "in force"), ("images.mutable-tag", "expiring"), ("network.egress", "expired"),
        ("rbac.*", "unused")]
    assert rows[0][1:6] == ["legacy", "any", "vendor chart, fixed in Q1", "team-legacy", "2027-01-31 (59 days left)"]
    assert rows[1][2] == "Deployment/web" and rows[1][5] == "2026-12-20 (17 days left)"
    assert rows[2][5] == "2026-11-30"  # expired: no days left
    assert "waivers.yaml:2" in rows[0][0]
    assert "none" in text(tree(h.waivers_html([], TODAY)))


def test_the_summary_has_run_scorecard_problems_waivers_and_compare():
    compare = {"previous": {"path": "before.json", "run_id": "12021200-abcdef", "profile": "baseline"},
               "new_failures": [{"check_id": "network.egress", "target_key": "shop", "before": "pass",
                                 "after": "fail", "summary": "a new pod in shop reaches 172.30.0.2:26410"}],
               "fixed": [{"check_id": "pod-security.privileged", "target_key": "web", "before": "fail",
                          "after": "pass"}],
               "still_failing": [], "to_inconclusive": [{"check_id": "network.dns", "target_key": "shop",
                                                         "before": "pass", "after": "inconclusive"}],
               "from_inconclusive": [], "checks_added": ["etcd.encryption-at-rest"], "checks_gone": [],
               "targets_added": [], "targets_gone": [], "changed": []}
    run = {"provider": "local", "server_version": "v1.36.2", "profile": "hardened", "mode": "standard",
           "run_id": "12030720-fd096e", "plugin_version": "0.1.0", "duration_s": 61.2}
    page = tree(h.summary_html({"findings": FINDINGS, "run": run, "waivers": [WAIVER], "compare": compare}, TODAY))
    fields = {s.get("data-field"): text(s) for s in page.iter("span") if s.get("data-field")}
    assert fields["provider"] == "provider: local" and fields["server_version"] == "server: v1.36.2"
    assert fields["profile"] == "profile: hardened" and fields["run_id"] == "run id: 12030720-fd096e"
    assert fields["duration_s"] == "duration: 61s"
    assert page.find(".//table[@id='kready-scorecard']") is not None
    problems = page.find(".//table[@id='kready-problems']")
    rows = [(tr.get("data-verdict"), tr.get("data-check"), [text(td) for td in tr.findall("td")]) for tr in
            problems.find("tbody")]
    assert [(v, c) for v, c, _ in rows] == [("fail", "pod-security.host-path"), ("fail", "pod-security.privileged"),
                                            ("fail", "network.default-deny"), ("fail", "etcd.encryption-at-rest"),
                                            ("inconclusive", "network.dns")]  # fails first, areas in order
    assert rows[2][2][3] == "shop" and rows[3][2][3] == "cluster"  # targets
    assert page.find(".//table[@id='kready-waivers']") is not None
    comp = page.find(".//div[@id='kready-compare']")
    assert "since run 12021200-abcdef, profile baseline, from before.json" in text(comp)
    assert "1 new failures; 1 fixed; 0 still failing; 1 moved to inconclusive; 1 checks added" in text(comp)
    changes = {t.get("data-change"): [text(tr) for tr in t.iter("tr")] for t in comp.iter("table")}
    assert set(changes) == {"new_failures", "fixed", "to_inconclusive", "checks_added"}
    assert "network.egress" in changes["new_failures"][0] and "pass → fail" in changes["new_failures"][0]
    assert changes["checks_added"] == ["etcd.encryption-at-rest"]


def test_a_long_change_list_is_collapsed_after_ten():
    fixed = [{"check_id": f"pod-security.c{i}", "target_key": "web", "before": "fail", "after": "pass"}
             for i in range(12)]
    comp = tree(h.compare_html({"fixed": fixed, "new_failures": []}))
    table = next(t for t in comp.iter("table") if t.get("data-change") == "fixed")
    direct = table.find("tbody").findall("tr")
    assert [text(tr.find("td")) for tr in direct[:10]] == [f"pod-security.c{i}" for i in range(10)]
    details = direct[10].find("td/details")
    assert text(details.find("summary")) == "2 more"
    assert [text(tr.find("td")) for tr in details.iter("tr")] == ["pod-security.c10", "pod-security.c11"]
    assert "0 new failures; 12 fixed" in text(comp)


def test_waivers_come_from_the_findings_without_a_list():
    page = tree(h.summary_html({"findings": FINDINGS}, TODAY))
    rows = [tr for tr in page.iter("tr") if tr.get("data-status")]
    assert len(rows) == 1 and "pod-security.*" in text(rows[0]) and rows[0].get("data-status") == "in force"
    block = tree(h.finding_html(FINDINGS[3]))
    assert "Waived by pod-security.* (namespace legacy): vendor chart" in text(block)
    assert "expires 2027-01-31 (the finding was fail)" in text(block)


def test_a_finding_before_v1_gets_its_area_and_target():
    old = {"check_id": "network.egress", "verdict": "fail", "target_namespace": "shop", "summary": "reaches out",
           "evidence": {}, "severity": "high", "references": [], "nodeid": "x::y", "recorded_at": 1.0}
    record = h.v1_record(old)
    assert record["area"] == "network" and record["target_key"] == "shop"
    assert "namespace shop" in text(tree(h.finding_html(record)))
    assert h.target_text({"check_id": "x", "target_namespace": "ops"}) == "namespace ops"
    assert h.target_text({"object": {"kind": "Deployment", "namespace": "shop", "name": "web"},
                          "namespace": "shop", "target_key": "shop/Deployment/web"}) == "Deployment shop/web"


def test_environment_rows_are_escaped():
    env = h.environment({"provider": "local", "server_version": "v1.36.2", "profile": "baseline",
                         "mode": "standard", "run_id": "r<1>", "plugin_version": "0.1.0", "started_at": "x"})
    assert env == {"Kubernetes provider": "local", "Kubernetes server version": "v1.36.2",
                   "kready profile": "baseline", "kready mode": "standard", "kready run id": "r&lt;1&gt;",
                   "pytest-kready version": "0.1.0"}


# --- the pytest-html wiring, in a run ------------------------------------------------------------------------------

CHECKS = '''
import pytest

@pytest.mark.kready_check("network.default-deny")
def test_grid(kready_finding):
    cells = %r
    kready_finding.failed("shop has no default deny", target_namespace="shop", severity="high",
                          evidence={"cells": cells, "grid": "text grid",
                                    "secret": {"kind": "Secret", "data": {"k": "c2VjcmV0LXZhbHVl"}}},
                          repro="kubectl exec -n x probe -- /agnhost connect 10.244.0.7:8080")

@pytest.mark.kready_check("network.dns")
def test_inconclusive(kready_finding):
    kready_finding.inconclusive("the DNS probe gave no answer", target_namespace="shop")

@pytest.mark.kready_check("pod-security.privileged")
def test_pass(kready_finding):
    kready_finding.passed("refused", target_namespace="shop")

@pytest.mark.kready_check("rbac.anonymous")
def test_na(kready_finding):
    kready_finding.not_applicable("no anonymous auth")
''' % (CELLS,)


def blob(page: str) -> dict:
    return json.loads(htmllib.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))


def decoded(content: str) -> str:
    if content.startswith("data:") and ";base64," in content:
        return base64.b64decode(content.split(";base64,", 1)[1]).decode()
    return content


@pytest.mark.parametrize("self_contained", [True, False], ids=["self-contained", "assets"])
def test_pytest_html_page(pytester, self_contained):
    pytester.makepyfile(test_checks=CHECKS)
    report = pytester.path / "out" / "report.html"
    args = [str(pytester.path), "--kready", "--kready-mode=readonly", "-p", "no:cacheprovider", f"--html={report}"]
    if self_contained:
        args.append("--self-contained-html")
    result = pytester.runpytest(*args)
    assert result.ret == 1, result.outlines[-20:]
    page = report.read_text()
    data = blob(page)

    # Environment: the run (no cluster was started by these tests: no server version)
    env = data["environment"]
    assert env["kready profile"] == "baseline" and env["kready mode"] == "readonly", env
    assert re.fullmatch(r"\d{8}-[0-9a-f]{6}", env["kready run id"]), env  # the provider: once a cluster is made
    assert env["pytest-kready version"] == pytest_kready_version()

    # per test: finding blocks (HTML), no JSON links; the Secret's value never appears
    extras = {t: [e for row in rows for e in row["extras"]] for t, rows in data["tests"].items()}
    grid = extras["test_checks.py::test_grid"]
    assert [e["format_type"] for e in grid] == ["html"] and h.MARK in grid[0]["content"]
    assert "kr-grid-diff" in grid[0]["content"] and "kr-differs" in grid[0]["content"]
    assert all(e["format_type"] == "html" for es in extras.values() for e in es), extras
    assert "c2VjcmV0LXZhbHVl" not in page and "secret-value" not in page
    # every row's result is one of pytest-html's outcomes (a row whose result is not is never drawn)
    results = {t: rows[0]["result"] for t, rows in data["tests"].items()}
    assert results == {"test_checks.py::test_grid": "Failed", "test_checks.py::test_inconclusive": "Failed",
                       "test_checks.py::test_pass": "Passed", "test_checks.py::test_na": "Skipped"}, results
    row = data["tests"]["test_checks.py::test_inconclusive"][0]["resultsTableRow"][0]
    assert 'data-kready-result="Inconclusive"' in row
    # the summary: the style, the scorecard at the top
    assert '<div id="kready-summary" class="kr">' in page and 'id="kready-scorecard"' in page
    prefix = page.index('class="additional-summary prefix"')
    assert prefix < page.index('id="kready-scorecard"') < page.index('class="run-count"')

    # nothing external: the page's own CSS inline or in assets/, no JSON assets for findings
    assets = sorted(p.name for p in (report.parent / "assets").glob("*")) if (report.parent / "assets").exists() else []
    assert assets == ([] if self_contained else ["style.css"]), assets
    assert not re.search(r'<(script|img|iframe)[^>]+src="https?:|<link[^>]+href="https?:|@import|url\(https?:', page)

    # in the browser: every test drawn (the inconclusive one too), the scorecard, the grid, the Environment rows
    dom = parse(dump_dom(report))
    bodies = [b for b in dom.find_all("tbody", "results-table-row") if b.attrs.get("id")]  # not the templates
    assert sorted(b.attrs["id"] for b in bodies) == sorted(results), [b.attrs for b in bodies]
    cell = next(td for b in bodies for td in b.find_all("td", "col-result") if td.attrs.get("data-kready-result"))
    assert cell.attrs["data-kready-result"] == "Inconclusive" and "failed" in cell.parent.parent.classes
    card = dom.find("table", id="kready-scorecard")
    assert {tr.attrs.get("data-area") for tr in card.find_all("tr") if tr.attrs.get("data-area")} == {
        "pod security", "RBAC", "network", "all areas"}
    assert dom.find_all("table", "kr-grid-diff") and dom.find_all("td", "kr-differs")
    env_rows = {tr.find_all("td")[0].text(): tr.find_all("td")[1].text() for tr in dom.find("table", id="environment")
                .find_all("tr")}
    assert env_rows["kready profile"] == "baseline" and env_rows["kready mode"] == "readonly"


def pytest_kready_version() -> str:
    from pytest_kready import __version__

    return __version__


def test_result_labels():
    class Report:
        when, outcome = "call", "failed"
        failed = True
        user_properties = [("kready_verdict", "inconclusive")]

    assert h.result_label(Report()) == "Inconclusive" and h.outcome_word(Report()) == "Failed"

    class Waived:
        when, outcome, failed, wasxfail = "call", "skipped", False, "waived: ..."
        user_properties = [(h.USER_PROPERTY, {"check_id": "x.y", "verdict": "waived"})]

    assert h.result_label(Waived()) == "Waived" and h.outcome_word(Waived()) == "XFailed"
    cells = ['<td class="col-result">XFailed</td>', '<td class="col-testId">t</td>']
    h.HtmlReport.pytest_html_results_table_row(None, Waived(), cells)
    assert cells[0] == '<td class="col-result" data-kready-result="Waived" title="Waived">XFailed</td>'
    # what pytest-html reads from the cell for its filters is its own outcome word
    assert re.search(r"<td.*?>(.*?)</td>", cells[0]).group(1) == "XFailed"
