"""Findings: verdicts decide outcomes (inconclusive is never a pass), JSON report, pytest-html extras, the
pytest_kready_finding hook, and redaction of Secret values."""

from __future__ import annotations

import base64
import json

import pytest

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready.findings import REDACTED, Finding, Verdict, redact

CHECKS = """
import pytest

@pytest.mark.kready_check("net-deny")
def test_fails_with_all_mismatches(kready_finding):
    kready_finding.passed("a->b denied", target_namespace="a")
    kready_finding.failed("a->c allowed", target_namespace="c", severity="high",
                          repro="kubectl exec -n a p -- agnhost connect c:80", remediation="add a deny policy")
    kready_finding.failed("a->d allowed", target_namespace="d")

@pytest.mark.kready_check("probe")
def test_inconclusive_stops(kready_finding):
    kready_finding.inconclusive("probe pod never became ready")
    raise AssertionError("not reached")

@pytest.mark.kready_check("recorded-inconclusive")
def test_recorded_inconclusive(kready_finding):
    kready_finding(Verdict.INCONCLUSIVE, "could not list pods")

@pytest.mark.kready_check("na")
def test_not_applicable(kready_finding):
    kready_finding.not_applicable("no NetworkPolicy API on this cluster")

@pytest.mark.kready_check("na-recorded")
def test_all_recorded_not_applicable(kready_finding):
    kready_finding("not-applicable", "no ingress controller", target_namespace="a")

@pytest.mark.kready_check("ok")
def test_passes(kready_finding):
    kready_finding.passed("fine", evidence={"secret": {"kind": "Secret", "data": {"k": "c2VjcmV0"}}})

@pytest.mark.kready_check("implicit")
def test_implicit_pass():
    pass

def test_plain_failure():
    assert 1 == 2
""".replace("Verdict.INCONCLUSIVE", '"inconclusive"')


def run_checks(pytester, *args):
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.runpytest(str(pytester.path), "--kready", "-p", "no:cacheprovider", "-rs", *args)


def test_verdicts_decide_outcomes(pytester):
    result = run_checks(pytester)
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert outcomes == {"failed": 2, "inconclusive": 2, "skipped": 2, "passed": 2}
    result.stdout.fnmatch_lines_random([
        "*FAIL net-deny [[]c]: a->c allowed*", "*FAIL net-deny [[]d]: a->d allowed*",
        "*not-applicable: no NetworkPolicy API on this cluster*", "*not-applicable: no ingress controller*",
        "*kready: inconclusive (counted as failures)*",
        "*test_inconclusive_stops: INCONCLUSIVE: probe pod never became ready*",
        "*test_recorded_inconclusive: INCONCLUSIVE: could not list pods*",
    ])
    assert "a->b denied" not in "\n".join(l for l in result.outlines if l.startswith("FAIL"))


def test_junit_reports_inconclusive_as_failure(pytester):
    xml = pytester.path / "junit.xml"
    run_checks(pytester, f"--junitxml={xml}")
    text = xml.read_text()
    # one testcase per check x target: net-deny fails in c and d (a passes), 2 inconclusive, the plain failure
    assert 'failures="5"' in text and "INCONCLUSIVE: probe pod never became ready" in text


def test_json_report(pytester):
    out = pytester.path / "out" / "findings.json"
    result = run_checks(pytester, f"--kready-json={out}")
    result.stdout.fnmatch_lines(["kready: 9 findings (JSON) written to*"])
    doc = json.loads(out.read_text())
    assert doc["run"]["mode"] == "standard" and doc["run"]["run_id"]  # the v1 shape: docs/reports.md
    assert doc["summary"]["verdicts"] == {"pass": 3, "fail": 2, "inconclusive": 2, "not-applicable": 2, "waived": 0}
    by_check = {}
    for f in doc["findings"]:
        by_check.setdefault(f["check_id"], []).append(f)
    high = next(f for f in by_check["net-deny"] if f["target_namespace"] == "c")
    assert high["verdict"] == "fail" and high["severity"] == "high"
    assert high["repro"].startswith("kubectl exec") and high["remediation"] == "add a deny policy"
    assert high["nodeid"].endswith("test_checks.py::test_fails_with_all_mismatches")
    assert by_check["implicit"][0]["verdict"] == "pass"
    assert not any("test_plain_failure" in f["nodeid"] for f in doc["findings"])  # no kready_check: no finding
    assert by_check["ok"][0]["evidence"]["secret"]["data"] == {"k": REDACTED}
    assert "c2VjcmV0" not in out.read_text()


def test_hook_receives_findings(pytester):
    pytester.makeconftest("""
        seen = []

        def pytest_kready_finding(finding, item):
            seen.append((finding.check_id, finding.verdict.value, item.name))

        def pytest_sessionfinish(session):
            print("SEEN", sorted(seen))
    """)
    result = run_checks(pytester, "-s")
    result.stdout.fnmatch_lines(["*SEEN*('net-deny', 'fail', 'test_fails_with_all_mismatches')*"])


def test_html_extras(pytester):
    report = pytester.path / "report.html"
    run_checks(pytester, f"--html={report}", "--self-contained-html")
    html = report.read_text()
    assert "finding net-deny (fail)" in html and "c2VjcmV0" not in html


def test_redaction():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    evidence = {
        "secret": {"kind": "Secret", "data": {"password": base64.b64encode(b"hunter22").decode()},
                   "metadata": {"name": "db"}},
        "list": {"kind": "SecretList", "items": [{"data": {"k": "dmFsdWU="}, "metadata": {"name": "a"}}]},
        "headers": {"Authorization": "Bearer abcdefghijkl"},
        "log": f"got token {token} and Bearer qwertyuiopasdf and hunter22",
        "kubeconfig": {"users": [{"user": {"client-key-data": "LS0tLS1CRUdJTg==", "token": "plain"}}]},
        "volume": {"secret": {"secretName": "db"}},
    }
    clean = redact(evidence, {"hunter22"})
    text = json.dumps(clean)
    for leaked in ("hunter22", "aHVudGVyMjI=", token, "abcdefghijkl", "qwertyuiopasdf", "LS0tLS1CRUdJTg==",
                   "plain", "dmFsdWU="):
        assert leaked not in text
    assert clean["secret"]["data"] == {"password": REDACTED} and clean["secret"]["metadata"]["name"] == "db"
    assert clean["volume"] == {"secret": {"secretName": "db"}}  # references to Secrets stay readable


def test_redaction_of_client_models():
    from kubernetes import client as k8s

    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="s"), data={"token": "dG9w"}, string_data=None)
    clean = redact({"obj": secret})
    assert clean["obj"]["data"] == {"token": REDACTED} and clean["obj"]["metadata"]["name"] == "s"


def test_finding_validation():
    with pytest.raises(ValueError):
        Finding(check_id="x", verdict="maybe")
    with pytest.raises(ValueError):
        Finding(check_id="x", verdict=Verdict.PASS, severity="urgent")
    f = Finding(check_id="x", verdict="not-applicable", summary="why", target_namespace="ns")
    assert f.verdict is Verdict.NOT_APPLICABLE and f.line() == "NOT-APPLICABLE x [ns]: why"


# --- a crash is inconclusive, in every report ----------------------------------------------------------------

CRASHES = """
import pytest

@pytest.mark.kready_check("crash.after-pass")
def test_pass_then_crash(kready_finding):
    kready_finding.passed("namespace a is fine", target_namespace="a")
    {}["missing-key"]

@pytest.mark.kready_check("crash.assert")
def test_assertion_error(kready_finding):
    status = 500
    assert status == 200, "the probe answered 500"

@pytest.mark.kready_check("crash.keyerror")
def test_key_error():
    pod = {"metadata": {}}
    pod["status"]["phase"]

@pytest.mark.kready_check("crash.fail-then-crash")
def test_fail_then_crash(kready_finding):
    kready_finding.failed("namespace b lets everything in", target_namespace="b")
    raise RuntimeError("the exec into the probe pod broke")

@pytest.fixture
def broken_fixture():
    raise ConnectionError("the plugin's own tooling failed")

@pytest.mark.kready_check("crash.setup")
def test_setup_crash(broken_fixture, kready_finding):
    kready_finding.passed("never")

@pytest.fixture
def broken_teardown():
    yield
    raise OSError("cleanup tool failed")

@pytest.mark.kready_check("crash.teardown")
def test_teardown_crash(broken_teardown, kready_finding):
    kready_finding.passed("decided before the teardown")

def test_plain_user_assertion():
    assert 1 == 2
"""

CRASH_REASONS = {
    "crash.after-pass": "the check crashed: KeyError: 'missing-key'",
    "crash.assert": "the check crashed: AssertionError: the probe answered 500",
    "crash.keyerror": "the check crashed: KeyError: 'status'",
    "crash.fail-then-crash": "the check crashed: RuntimeError: the exec into the probe pod broke",
    "crash.setup": "the check crashed in setup: ConnectionError: the plugin's own tooling failed",
}


def test_a_crash_is_inconclusive_in_terminal_json_junit_and_html(pytester):
    pytester.makepyfile(test_crashes=CRASHES)
    out, xml, html = pytester.path / "f.json", pytester.path / "junit.xml", pytester.path / "report.html"
    result = pytester.runpytest(str(pytester.path), "--kready", "-p", "no:cacheprovider", "-rA",
                                f"--kready-json={out}", f"--junitxml={xml}", f"--html={html}",
                                "--self-contained-html")
    assert result.ret == 1
    # terminal: letter I and the inconclusive category for every crash; the plain user test keeps pytest's fail
    outcomes = result.parseoutcomes()
    assert outcomes.get("inconclusive") == 6 and outcomes.get("failed") == 1, outcomes
    assert outcomes.get("passed") == 1, outcomes  # the teardown-crash test's call phase
    text = "\n".join(result.outlines)
    for reason in CRASH_REASONS.values():
        assert f"INCONCLUSIVE: {reason}" in text, reason
    assert "INCONCLUSIVE: the check crashed in teardown: OSError: cleanup tool failed" in text
    assert "FAILED test_crashes.py::test_plain_user_assertion" in text
    assert "recorded before the crash: PASS crash.after-pass [a]: namespace a is fine" in text
    summary = [l for l in result.outlines if l.startswith(("INCONCLUSIVE ", "FAILED ", "ERROR "))]
    assert not any(l.startswith(("FAILED", "ERROR")) and "test_plain_user_assertion" not in l for l in summary), summary

    # JSON: no pass and no fail stands for a crashed check; each has its inconclusive finding with the error
    doc = json.loads(out.read_text())
    by_check: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        by_check.setdefault(f["check_id"], []).append(f)
    for check, reason in CRASH_REASONS.items():
        verdicts = {f["verdict"] for f in by_check[check]}
        assert verdicts == {"inconclusive"}, (check, by_check[check])
        assert any(f["summary"] == reason for f in by_check[check]), by_check[check]
    before = next(f for f in by_check["crash.after-pass"] if f["target_namespace"] == "a")
    assert before["evidence"]["verdict_before_crash"] == "pass"
    crash = next(f for f in by_check["crash.after-pass"] if f["summary"].startswith("the check crashed"))
    assert crash["evidence"]["error"] == "KeyError: 'missing-key'" and "test_crashes.py:" in crash["evidence"]["raised_at"]
    teardown = by_check["crash.teardown"]
    assert [f["verdict"] for f in teardown] == ["pass", "inconclusive"], teardown
    assert doc["summary"]["verdicts"]["fail"] == 0 and doc["summary"]["verdicts"]["inconclusive"] == 8, doc["summary"]

    # JUnit: every crash is a failure (or a setup/teardown error) whose message says INCONCLUSIVE and the error
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    for name, reason in (("test_pass_then_crash", CRASH_REASONS["crash.after-pass"]),
                         ("test_assertion_error", CRASH_REASONS["crash.assert"]),
                         ("test_key_error", CRASH_REASONS["crash.keyerror"]),
                         ("test_fail_then_crash", CRASH_REASONS["crash.fail-then-crash"])):
        failure = cases[name].find("failure")
        assert failure is not None and failure.get("message") == f"INCONCLUSIVE: {reason}", (name, failure.attrib)
        assert "kready: inconclusive" in failure.text and "Error" in failure.text  # and the traceback
    setup_error = cases["test_setup_crash"].find("error")
    assert setup_error is not None and CRASH_REASONS["crash.setup"] in setup_error.get("message"), setup_error.attrib

    # HTML: the extras carry the inconclusive findings with the error, never a pass for a crashed check
    tests = html_report(html)
    extras = {t: [e for phase in rows for e in phase["extras"]] for t, rows in tests.items()}
    crashed = [e for e in extras["test_crashes.py::test_pass_then_crash"]]
    assert [e["name"] for e in crashed] == ["finding crash.after-pass (inconclusive)"] * 2
    assert any(e["decoded"].get("summary") == CRASH_REASONS["crash.after-pass"] for e in crashed)
    for test, check in (("test_assertion_error", "crash.assert"), ("test_key_error", "crash.keyerror"),
                        ("test_fail_then_crash", "crash.fail-then-crash")):
        got = extras[f"test_crashes.py::{test}"]
        assert {e["decoded"]["verdict"] for e in got} == {"inconclusive"}, got
        assert any(e["decoded"]["summary"] == CRASH_REASONS[check] for e in got)
    rows = {t: [r["resultsTableRow"][0] for r in rs] for t, rs in tests.items()}
    # shown as Inconclusive, drawn as pytest-html's Failed (a row whose result is not an outcome is never drawn)
    assert rows["test_crashes.py::test_key_error"] == [
        '<td class="col-result" data-kready-result="Inconclusive" title="Inconclusive">Failed</td>']
    assert tests["test_crashes.py::test_key_error"][0]["result"] == "Failed"


def html_report(path) -> dict:
    """pytest-html 4's data (its JSON blob), each extra's content decoded (self-contained: base64 data URIs; the
    finding of a finding block, pytest_kready/reports/html.py, from its JSON)."""
    import html as htmllib
    import re

    page = path.read_text()
    blob = json.loads(htmllib.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    for rows in blob["tests"].values():
        for row in rows:
            for extra in row.get("extras", []):
                content = extra.get("content", "")
                if content.startswith("data:") and ";base64," in content:
                    content = base64.b64decode(content.split(";base64,", 1)[1]).decode("utf-8", "replace")
                extra["text"] = content
                block = re.search(r'<details class="kr-json">.*?<pre>(.*?)</pre>', content, re.S)  # a finding block
                try:
                    extra["decoded"] = json.loads(htmllib.unescape(block.group(1)) if block else content)
                except ValueError:
                    extra["decoded"] = None
    return blob["tests"]


def test_found_values_that_look_like_words_are_not_blanked_everywhere():
    from pytest_kready.findings import forget_secrets, harvest, redact_text

    forget_secrets()
    harvest({"kind": "Secret", "data": {k: base64.b64encode(v.encode()).decode() for k, v in
                                        {"username": "admin", "db": "postgres", "password": "Hunter-22-x"}.items()}})
    harvest({"spec": {"containers": [{"env": [{"name": "SECRET_STORE", "value": "default"},
                                                {"name": "TOKEN_FILE", "value": "/var/run/token"},
                                                {"name": "API_KEY", "value": "k-8f3a9c2e71"}]}]}})
    text = "cluster-admin in namespace default reads /var/run/token; postgres; Hunter-22-x; k-8f3a9c2e71"
    assert redact_text(text) == ("cluster-admin in namespace default reads /var/run/token; postgres; <redacted>; "
                                 "<redacted>")
    # where such a value stands, it is still blanked
    clean = redact({"env": [{"name": "SECRET_STORE", "value": "default"}],
                    "secret": {"kind": "Secret", "data": {"username": "YWRtaW4="}}})
    assert clean == {"env": [{"name": "SECRET_STORE", "value": REDACTED}],
                     "secret": {"kind": "Secret", "data": {"username": REDACTED}}}
    forget_secrets()


def test_a_findings_identity_is_never_redacted():
    from pytest_kready.findings import forget_secrets, register_secret

    forget_secrets()
    register_secret("cluster-admin-subjects")  # a check registering something unlucky
    f = Finding(check_id="rbac.cluster-admin-subjects", verdict="fail", summary="x cluster-admin-subjects",
                nodeid="suites/test_rbac.py::test_cluster-admin-subjects")
    d = f.to_dict()
    assert d["check_id"] == "rbac.cluster-admin-subjects" and d["nodeid"].endswith("test_cluster-admin-subjects")
    assert d["summary"] == f"x {REDACTED}"
    forget_secrets()


@pytest.mark.parametrize("text, leaked", [
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("proxy-authorization=Zx81kq0plmnb", "Zx81kq0plmnb"),
    ("Cookie: session=9f8e7d6c5b", "9f8e7d6c5b"),
    ("x-api-key: 51ab90ff", "51ab90ff"),
    ("{'db_password': 'Hx9-qq1'}", "Hx9-qq1"),
    ('"apiToken": "tk-0918"', "tk-0918"),
    ("DB_PASSWORD=Qw8_zz and more", "Qw8_zz"),
    ("run --access-key AK0912zz now", "AK0912zz"),
    ("curl -u alice:pw9911 http://x", "pw9911"),
    ("fetch https://bob:pw7722@example.test/a", "pw7722"),
    ("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here", "eyJzdWIiOiJ4In0"),
])
def test_each_text_pattern_still_blanks_its_credential(text, leaked):
    """Every credential form in free text is blanked (the patterns run only where their literals are: this shows
    the prefilter never skips one that would match)."""
    from pytest_kready.findings import redact_text

    assert leaked not in redact_text(text)
    assert leaked not in redact_text(text)  # the second time from the memo


def test_a_secret_learnt_later_is_blanked_in_a_text_scrubbed_before():
    from pytest_kready.findings import forget_secrets, redact_text, register_secret

    forget_secrets()
    text = "the pod printed Zq9-later-77x in its log"
    assert redact_text(text) == text
    register_secret("Zq9-later-77x")
    assert redact_text(text) == f"the pod printed {REDACTED} in its log"
    forget_secrets()
    assert redact_text(text) == text


def test_a_finding_holding_a_secret_learnt_in_a_later_test_is_blanked_in_the_json(pytester):
    """A finding is redacted when its test ends; the JSON, written at the end, redacts again only the findings a
    value learnt since is in (the reporter keeps the others): the earlier finding holding it is blanked, the
    one that does not hold it is written as it was."""
    pytester.makepyfile(test_late="""
        import pytest
        from pytest_kready.findings import register_secret

        @pytest.mark.kready_check("early")
        def test_early(kready_finding):
            kready_finding.passed("the pod printed Qz7-late-secret-991", target_namespace="a")
            kready_finding.passed("nothing secret here", target_namespace="b")

        @pytest.mark.kready_check("late")
        def test_late(kready_finding):
            register_secret("Qz7-late-secret-991")
            register_secret("unrelated-token-Xk2")
            kready_finding.passed("learnt two values")
    """)
    out = pytester.path / "f.json"
    result = pytester.runpytest(str(pytester.path), "--kready", "-p", "no:cacheprovider", f"--kready-json={out}")
    assert result.ret == 0
    text = out.read_text()
    assert "Qz7-late-secret-991" not in text
    summaries = {f["target_namespace"]: f["summary"] for f in json.loads(text)["findings"] if f["check_id"] == "early"}
    assert summaries == {"a": f"the pod printed {REDACTED}", "b": "nothing secret here"}
