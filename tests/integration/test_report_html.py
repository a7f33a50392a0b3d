"""The HTML report of a real run on the local baseline cluster (slot 0, standard mode): the network suite (so
reachability grids exist) and pod security, against one namespace with a workload, written with ``--html
--self-contained-html`` and opened in headless Chromium (Debian's ``chromium``): the scorecard has every area of the
run with the JSON's counts, the Environment table names the cluster, a network finding draws its grids in colour,
the waivers in force and the waived finding show, what changed since a previous run shows, every test row is
drawn, and a screenshot is written and is not blank."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pytest_kready.areas import area_of
from pytest_kready.resources import suites_dir

from browser import dump_dom, parse, png_pixels, screenshot

from .test_suite_network import AppNamespace

pytestmark = pytest.mark.integration

SUITES = [str(suites_dir() / f) for f in ("test_network.py", "test_pod_security.py")]
SERVER_VERSION = "v1.36.2"  # what tools/build-local-binaries.sh builds for the local provider
FAIL_RED, PASS_GREEN = (198, 40, 40), (46, 125, 50)  # the scorecard's fail and pass colours (html.CSS)


@pytest.fixture
def app(_cluster_manager):
    app = AppNamespace(_cluster_manager.ensure("baseline").kubeconfig, "html-app")
    app.create()
    yield app
    app.delete()


def test_html_report_of_a_real_run(pytester, monkeypatch, app):
    monkeypatch.setenv("KREADY_LOCAL_SLOT", "0")
    out, report = pytester.path / "f.json", pytester.path / "report.html"
    waivers, previous = pytester.path / "waivers.yaml", pytester.path / "previous.json"
    waivers.write_text(
        "waivers:\n"
        f"- check: pod-security.host-path\n  namespace: {app.name}\n  reason: legacy agent, replaced in Q1\n"
        "  owner: team-shop\n  expires: 2099-12-31\n"
        "- check: rbac.*\n  reason: not run here\n  owner: team-platform\n  expires: 2099-12-31\n")
    # a previous run (the findings file before v1 is read too) in which egress from the namespace was restricted
    previous.write_text(json.dumps({"run_id": "12010000-000000", "profile": "hardened", "findings": [
        {"check_id": "network.egress", "verdict": "pass", "target_namespace": app.name, "summary": "restricted"}]}))
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess(
        *SUITES, "--kready", "--kready-provider=local", "--kready-profile=baseline", "--kready-mode=standard",
        f"--kready-namespaces={app.name}", f"--kready-json={out}", f"--html={report}", "--self-contained-html",
        f"--kready-waivers={waivers}", f"--kready-compare={previous}",
        "-p", "no:cacheprovider", f"--rootdir={pytester.path}", "-q", timeout=1500)
    text = "\n".join(result.outlines[-40:] + result.errlines[-20:])
    assert out.is_file() and report.is_file(), text
    doc = json.loads(out.read_text())
    findings = doc["findings"]
    assert {f["area"] for f in findings} == {"network", "pod security"}, text
    assert not (pytester.path / "assets").exists()  # self-contained: nothing next to the page

    dom = parse(dump_dom(report))

    # the scorecard: one row per area of the run, its counts those of the findings JSON
    card = dom.find("table", id="kready-scorecard")
    rows = {tr.attrs["data-area"]: {td.attrs["data-verdict"]: int(td.text()) for td in tr.find_all("td")
                                    if td.attrs.get("data-verdict")}
            for tr in card.find_all("tr") if tr.attrs.get("data-area")}
    expected: dict[str, Counter] = {"all areas": Counter()}
    for f in findings:
        expected.setdefault(area_of(f["check_id"]), Counter())[f["verdict"]] += 1
        expected["all areas"][f["verdict"]] += 1
    assert set(rows) == {"network", "pod security", "all areas"}, rows
    for area, counts in rows.items():
        assert {v: n for v, n in counts.items() if n} == dict(expected[area]), (area, counts, expected[area])
    assert rows["pod security"]["fail"] > 0 and rows["network"]["fail"] >= 3  # baseline: no PSA, no policies

    # the Environment table: the cluster and the run
    env = {tr.find_all("td")[0].text(): tr.find_all("td")[1].text()
           for tr in dom.find("table", id="environment").find_all("tr")}
    assert env["Kubernetes provider"] == "local" and env["kready profile"] == "baseline", env
    assert env["Kubernetes server version"] == SERVER_VERSION and env["kready mode"] == "standard", env
    assert env["kready run id"] == doc["run"]["run_id"], env

    # the network finding about the app's namespace: its grids, coloured; what was expected blocked connects
    block = next(b for b in dom.find_all("div", "kr-finding") if b.attrs.get("data-check") == "network.cross-namespace"
                 and f"namespace {app.name}" in b.find("div", "kr-head").text())
    assert block.attrs["data-verdict"] == "fail"
    expected_grid, observed, diff = (block.find("table", f"kr-grid-{k}") for k in ("expected", "observed", "diff"))
    assert expected_grid.find_all("td", "kr-blocked") and observed.find_all("td", "kr-connects")
    assert diff.find_all("td", "kr-differs")
    heads = [th.text() for th in observed.find("thead").find_all("th")]
    assert any(h.startswith(f"{app.name}/svc web:8080") for h in heads), heads
    assert block.find("pre", "kr-cmd").text().startswith("kubectl exec -n kr-net-fresh-")
    assert "default-deny" in block.find("div", "kr-remediation").text()

    # the waivers in force, the waived finding and its test (drawn as an expected failure, labelled Waived)
    statuses = {tr.find_all("td")[0].text().split()[0]: (tr.attrs["data-status"], tr.find_all("td")[6].text())
                for tr in dom.find("table", id="kready-waivers").find_all("tr") if tr.attrs.get("data-status")}
    assert statuses == {"pod-security.host-path": ("in force", "1"), "rbac.*": ("unused", "0")}, statuses
    waived = [b for b in dom.find_all("div", "kr-finding") if b.attrs.get("data-verdict") == "waived"]
    assert [b.attrs["data-check"] for b in waived] == ["pod-security.host-path"]
    assert "legacy agent, replaced in Q1" in waived[0].find("div", "kr-waiver").text()
    label = [td for td in dom.find_all("td", "col-result") if td.attrs.get("data-kready-result") == "Waived"]
    assert len(label) == 1 and "xfailed" in label[0].parent.parent.classes

    # what changed since the previous run: egress from the namespace is a new failure
    changes = {t.attrs["data-change"]: [tr.text() for tr in t.find_all("tr")]
               for t in dom.find("div", id="kready-compare").find_all("table") if t.attrs.get("data-change")}
    new = changes["new_failures"]
    assert any("network.egress" in r and app.name in r and "pass → fail" in r for r in new), changes

    # every test is drawn (inconclusive ones too), and the failing ones carry their finding blocks
    drawn = {b.attrs["id"].removesuffix("::setup").removesuffix("::teardown")
             for b in dom.find_all("tbody", "results-table-row") if b.attrs.get("id")}
    assert drawn == {f["nodeid"] for f in findings}, drawn ^ {f["nodeid"] for f in findings}

    # a screenshot of the page: written, not blank (the scorecard's colours are in it)
    png = screenshot(report, pytester.path / "report.png", 1280, 2000)
    width, height, pixels = png_pixels(png, max_rows=1200)
    assert (width, height) == (1280, 2000) and png.stat().st_size > 50_000
    colours = Counter(pixels)
    assert len(colours) > 200 and colours.most_common(1)[0][1] < 0.9 * len(pixels)
    assert colours[FAIL_RED] > 100 and colours[PASS_GREEN] > 20, colours.most_common(12)
