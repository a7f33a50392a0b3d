"""The reports through the plugin (pytester, no cluster): waivers turn failures into expected failures, an
expired waiver fails the run naming it, a malformed file is a one-line usage error; --kready-fail-on and
--kready-min-severity decide the exit status only; the JSON and SARIF files validate against their schemas; JUnit
has one testcase per check x target; the terminal summary is plain text within 80 columns when not a TTY;
--kready-compare shows what changed."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from reports_validation import junit_cases, properties, valid_findings, valid_sarif

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)

CHECKS = """
import pytest

@pytest.mark.kready_check("images.mutable-tag")
def test_mutable_tag(kready_finding):
    kready_finding.failed("latest admitted", target_namespace="shop", severity="high",
                          object={"kind": "Deployment", "namespace": "shop", "name": "web"})
    kready_finding.failed("latest admitted", target_namespace="team-b", severity="high")
    kready_finding.passed("refused", target_namespace="team-c")

@pytest.mark.kready_check("etcd.encryption-at-rest")
def test_etcd(kready_finding):
    kready_finding.failed("plaintext", target_namespace="kr-secrets-are-encrypted-in-etcd-12030648-a1b2c3-1",
                          severity="high")

@pytest.mark.kready_check("network.dns")
def test_dns(kready_finding):
    kready_finding.inconclusive("no probe pod", target_namespace="shop")

@pytest.mark.kready_check("resources.limits")
def test_low(kready_finding):
    kready_finding.failed("no default limits", target_namespace="shop", severity="low")

@pytest.mark.kready_check("rbac.wildcards")
def test_passes(kready_finding):
    kready_finding.passed("no wildcard roles")
"""


def today(days: int = 0) -> str:
    return (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=days)).isoformat()


def run(pytester, *args, checks=CHECKS):
    pytester.makepyfile(test_checks=checks)
    return pytester.runpytest(str(pytester.path), "--kready", "-p", "no:cacheprovider", "-rxs", *args)


def waivers_file(pytester, *entries: str):
    path = pytester.path / "waivers.yaml"
    path.write_text("waivers:\n" + "".join(entries))
    return path


def waiver(check, *, namespace=None, obj=None, expires=None, reason="accepted", owner="team-a"):
    lines = [f"- check: {check}\n"]
    if namespace:
        lines.append(f"  namespace: {namespace}\n")
    if obj:
        lines.append(f"  object: {obj}\n")
    lines.append(f"  reason: {reason}\n  owner: {owner}\n  expires: {expires or today(30)}\n")
    return "".join(lines)


def by_check(doc):
    out = {}
    for f in doc["findings"]:
        out.setdefault(f["check_id"], []).append(f)
    return out


def test_without_waivers_every_failure_and_inconclusive_fails_the_run(pytester):
    out, sarif_path, xml = pytester.path / "f.json", pytester.path / "k.sarif", pytester.path / "j.xml"
    result = run(pytester, f"--kready-json={out}", f"--kready-sarif={sarif_path}", f"--junitxml={xml}")
    assert result.ret == 1
    doc = valid_findings(out)
    checks = by_check(doc)
    etcd = checks["etcd.encryption-at-rest"][0]
    assert (etcd["scope"], etcd["target_key"], etcd["namespace"]) == ("cluster", "cluster", None)
    web = next(f for f in checks["images.mutable-tag"] if f["object"])
    assert web["target_key"] == "shop/Deployment/web" and web["scope"] == "object"
    assert doc["summary"]["gate"]["exit_status"] == 1 and doc["waivers"] == [] and doc["compare"] is None
    assert doc["run"]["selected_checks"] == sorted(["images.mutable-tag", "etcd.encryption-at-rest", "network.dns",
                                                    "resources.limits", "rbac.wildcards"])
    log = valid_sarif(sarif_path)
    results = log["runs"][0]["results"]
    assert sorted((r["ruleId"], r["properties"]["target_key"]) for r in results) == [
        ("etcd.encryption-at-rest", "cluster"), ("images.mutable-tag", "shop/Deployment/web"),
        ("images.mutable-tag", "team-b"), ("network.dns", "shop"), ("resources.limits", "shop")]
    cases = junit_cases(xml)
    assert {n for n in cases if n.startswith("test_mutable_tag")} == {
        "test_mutable_tag[shop/Deployment/web]", "test_mutable_tag[team-b]", "test_mutable_tag[team-c]"}
    assert properties(cases["test_mutable_tag[team-c]"])["verdict"] == "pass"
    assert properties(cases["test_etcd"]) | {} == {"check_id": "etcd.encryption-at-rest", "severity": "high",
                                                    "verdict": "fail", "target": "cluster", "scope": "cluster",
                                                    "area": "control plane", "findings": "1"}
    # the failure line names the target key, not the throw-away namespace
    result.stdout.fnmatch_lines(["FAIL etcd.encryption-at-rest [[]cluster]: plaintext"])


def test_terminal_summary_is_plain_and_fits_80_columns(pytester):
    result = run(pytester, "--kready-json=f.json")
    text = result.stdout.str()
    assert "\x1b[" not in text  # no colour when not a TTY
    start = result.outlines.index(next(l for l in result.outlines if "kready: findings by area" in l))
    ours = result.outlines[start:]
    paths = [l for l in ours if l.startswith(f"  {pytester.path}")]  # a long path has its line, never cut
    assert all(len(l) <= 80 for l in ours if l not in paths), [l for l in ours if len(l) > 80]
    for area in ("pod security", "RBAC", "admission", "network", "resilience", "control plane"):
        assert any(l.startswith(area) for l in ours), area
    result.stdout.fnmatch_lines([
        "*kready: findings by area*", "area * pass * fail * inconcl * n/a * waived",
        "*kready: failing and inconclusive*", "FAIL etcd.encryption-at-rest cluster: plaintext",
        "*kready: reports*", "kready: 7 findings (JSON) written to*", "*f.json",
        "kready: exit status 1 (fail-on=inconclusive, min-severity=info)",
    ])


def test_waived_failures_are_expected_failures_and_exit_zero(pytester):
    w = waivers_file(pytester,
                     waiver("images.*", reason="vendor image, pinned by digest in Q1", owner="team-shop"),
                     waiver("etcd.encryption-at-rest", reason="managed etcd, encrypted by the provider"),
                     waiver("network.dns", namespace="shop", reason="no DNS in shop by design"),
                     waiver("resources.limits", namespace="shop"),
                     waiver("rbac.wildcards", reason="never needed"))
    out, xml, sarif_path = pytester.path / "f.json", pytester.path / "j.xml", pytester.path / "k.sarif"
    result = run(pytester, f"--kready-waivers={w}", f"--kready-json={out}", f"--junitxml={xml}",
                 f"--kready-sarif={sarif_path}")
    assert result.ret == 0, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("xfailed") == 4 and outcomes.get("passed") == 1 and "failed" not in outcomes, outcomes
    result.stdout.fnmatch_lines(["XFAIL test_checks.py::test_mutable_tag - waived: images.* in everywhere "
                                 "(team-shop, until *): vendor image, pinned by digest in Q1"])
    doc = valid_findings(out)
    checks = by_check(doc)
    tags = checks["images.mutable-tag"]
    assert sorted(f["verdict"] for f in tags) == ["pass", "waived", "waived"]  # never turned into pass
    waived = next(f for f in tags if f["verdict"] == "waived")
    assert waived["original_verdict"] == "fail" and waived["waiver"]["owner"] == "team-shop"
    assert checks["network.dns"][0]["verdict"] == "waived" and checks["network.dns"][0]["original_verdict"] == \
        "inconclusive"
    listing = {w["check"]: w for w in doc["waivers"]}
    assert listing["images.*"]["used"] == 2 and listing["rbac.wildcards"]["used"] == 0  # unused: it passed
    assert all(w["status"] == "in-force" for w in doc["waivers"])
    assert doc["summary"]["verdicts"]["waived"] == 5 and doc["summary"]["gate"]["exit_status"] == 0
    result.stdout.fnmatch_lines(["*kready: waivers*", "waived 2 finding(s): images.* in everywhere until * (team-shop)*",
                                 "unused: rbac.wildcards in everywhere (waivers.yaml:*): matched nothing"])
    skipped = junit_cases(xml)["test_mutable_tag[team-b]"].find("skipped")
    assert skipped.get("type") == "pytest.xfail" and "vendor image, pinned by digest in Q1" in skipped.get("message")
    log = valid_sarif(sarif_path)
    assert all(r.get("suppressions") for r in log["runs"][0]["results"])  # every result reported is waived
    assert [w["check"] for w in log["runs"][0]["properties"]["waivers"]] == [w["check"] for w in doc["waivers"]]


def test_a_scoped_waiver_leaves_other_targets_failing(pytester):
    w = waivers_file(pytester, waiver("images.mutable-tag", namespace="shop", obj="Deployment/web"))
    out = pytester.path / "f.json"
    result = run(pytester, f"--kready-waivers={w}", f"--kready-json={out}", "-k", "mutable")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAIL images.mutable-tag [[]team-b]: latest admitted"])
    assert "[shop/Deployment/web]" not in result.stdout.str().split("short test summary")[0].split("FAILURES")[1]
    doc = valid_findings(out)
    assert sorted((f["target_key"], f["verdict"]) for f in doc["findings"]) == [
        ("shop/Deployment/web", "waived"), ("team-b", "fail"), ("team-c", "pass")]


def test_an_expired_waiver_fails_the_run_naming_it(pytester):
    w = waivers_file(pytester, waiver("rbac.wildcards", expires=today(-1), owner="team-old", reason="old"),
                     waiver("images.*"), waiver("etcd.*"), waiver("network.*"), waiver("resources.*"))
    out = pytester.path / "f.json"
    result = run(pytester, f"--kready-waivers={w}", f"--kready-json={out}")
    assert result.ret == 1, result.stdout.str()
    assert result.parseoutcomes().get("failed") is None  # every finding is waived or passes ...
    text = " ".join(" ".join(result.outlines).split())
    assert text.count("waiver expired on") == 1, text
    assert f"waiver expired on {today(-1)}: rbac.wildcards in everywhere (owner team-old, waivers.yaml:2); renew " \
        "or remove it" in text, text
    doc = valid_findings(out)
    assert doc["waivers"][0]["status"] == "expired" and doc["summary"]["gate"]["exit_status"] == 1


def test_an_expired_waiver_does_not_waive(pytester):
    w = waivers_file(pytester, waiver("etcd.*", expires=today(-3)))
    out = pytester.path / "f.json"
    result = run(pytester, f"--kready-waivers={w}", f"--kready-json={out}", "-k", "etcd")
    assert result.ret == 1
    assert by_check(valid_findings(out))["etcd.encryption-at-rest"][0]["verdict"] == "fail"
    result.stdout.fnmatch_lines([f"EXPIRED on {today(-3)}: etcd.* in everywhere (team-a, waivers.yaml:2)",
                                 "*waiver expired on*"])


@pytest.mark.parametrize("text, message", [
    ("waivers:\n- check: x\n", "waiver 1 (line 2): missing reason, owner, expires"),
    ("waivers: {a: 1", "not YAML"),
])
def test_a_malformed_waivers_file_is_a_one_line_usage_error(pytester, text, message):
    path = pytester.path / "w.yaml"
    path.write_text(text)
    result = run(pytester, f"--kready-waivers={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [l for l in result.errlines if l.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0] and "--kready-waivers=" in errors[0], result.errlines
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("args, message", [
    (["--kready-fail-on=sometimes"], "--kready-fail-on=sometimes: unknown value; choose one of fail, inconclusive"),
    (["--kready-min-severity=urgent"], "--kready-min-severity=urgent: unknown value; choose one of low, medium"),
    (["--kready-waivers=missing.yaml"], "--kready-waivers="),
    (["--kready-compare=missing.json"], "--kready-compare="),
])
def test_bad_report_options_are_one_line_usage_errors(pytester, args, message):
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [l for l in result.errlines if l.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.errlines


def test_fail_on_and_min_severity_decide_the_exit_status_only(pytester):
    out = pytester.path / "f.json"
    # only the inconclusive DNS check and the low-severity limits check
    result = run(pytester, f"--kready-json={out}", "-k", "dns or low", "--kready-fail-on=fail",
                 "--kready-min-severity=medium")
    assert result.ret == 0, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("inconclusive") == 1 and outcomes.get("failed") == 1  # the categories stay as they are
    doc = valid_findings(out)
    assert doc["summary"]["verdicts"]["inconclusive"] == 1 and doc["summary"]["verdicts"]["fail"] == 1
    assert doc["summary"]["gate"] == {"fail_on": "fail", "min_severity": "medium", "exit_status": 0,
                                      "failed": False, "reasons": []}
    assert run(pytester, "-k", "dns or low", "--kready-fail-on=fail").ret == 1  # the low failure counts again
    assert run(pytester, "-k", "dns or low", "--kready-min-severity=medium").ret == 1  # inconclusive counts
    assert run(pytester, "-k", "dns", "--kready-fail-on=fail").ret == 0
    # a test failing outside the findings still fails the run, whatever the gate ignores
    plain = CHECKS + "\ndef test_plain():\n    assert False\n"
    assert run(pytester, "-k", "dns or plain", "--kready-fail-on=fail", checks=plain).ret == 1


def test_ini_twins(pytester):
    w = waivers_file(pytester, waiver("network.dns"))
    pytester.makeini(f"[pytest]\nkready_waivers = {w.name}\nkready_fail_on = fail\nkready_min_severity = high\n"
                     "kready_sarif = out/k.sarif\n")
    result = run(pytester, "-k", "dns or low")
    assert result.ret == 0, result.stdout.str()
    assert valid_sarif(pytester.path / "out" / "k.sarif")["runs"][0]["results"]
    assert result.parseoutcomes().get("xfailed") == 1


def test_compare_shows_what_changed(pytester):
    before = pytester.path / "before.json"
    assert run(pytester, f"--kready-json={before}").ret == 1
    fixed = CHECKS.replace('kready_finding.failed("plaintext"', 'kready_finding.passed("encrypted"').replace(
        'kready_finding.passed("refused", target_namespace="team-c")',
        'kready_finding.failed("latest admitted", target_namespace="team-c")')
    after = pytester.path / "after.json"
    result = run(pytester, f"--kready-compare={before}", f"--kready-json={after}", checks=fixed)
    doc = valid_findings(after)
    cmp = doc["compare"]
    assert [(e["check_id"], e["target_key"]) for e in cmp["fixed"]] == [("etcd.encryption-at-rest", "cluster")]
    assert [(e["check_id"], e["target_key"]) for e in cmp["new_failures"]] == [("images.mutable-tag", "team-c")]
    assert len(cmp["still_failing"]) == 3 and cmp["previous"]["path"] == str(before)
    result.stdout.fnmatch_lines(["*kready: compared with the previous run*",
                                 "1 new failure(s), 1 fixed, 3 still failing, 0 to and 0 from inconclusive",
                                 "  new failure: images.mutable-tag team-c (pass -> fail)",
                                 "  fixed: etcd.encryption-at-rest cluster (fail -> pass)",
                                 f"previous run * (baseline): {before}"])
    json.loads(before.read_text())  # the earlier file is read, never rewritten


def test_a_crash_is_never_waived(pytester):
    checks = """
import pytest

@pytest.mark.kready_check("network.dns")
def test_crashes(kready_finding):
    kready_finding.failed("no DNS", target_namespace="shop")
    {}["missing"]
"""
    w = waivers_file(pytester, waiver("network.*"))
    out = pytester.path / "f.json"
    result = run(pytester, f"--kready-waivers={w}", f"--kready-json={out}", checks=checks)
    assert result.ret == 1
    assert result.parseoutcomes().get("inconclusive") == 1 and "xfailed" not in result.parseoutcomes()
    doc = valid_findings(out)
    assert {f["verdict"] for f in doc["findings"]} == {"inconclusive"}
    assert all(f["waiver"] is None for f in doc["findings"]) and doc["waivers"][0]["used"] == 0
