"""The report building blocks in memory: placement and target keys, waivers (parse, match, expiry), compare, the
exit-status gate, the terminal summary's width, SARIF against the vendored 2.1.0 schema, JUnit per target."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest
from reports_validation import junit_cases, properties, valid_findings, valid_sarif

from pytest_kready.findings import CheckResult, Finding, Verdict
from pytest_kready.reports import compare, gate, junit, model, sarif, summary, waivers

RUN = "12030648-a1b2c3"


def rec(check_id, verdict, ns=None, *, evidence=None, severity="medium", nodeid=None, summary_="", **fields):
    f = Finding(check_id=check_id, verdict=verdict, summary=summary_ or f"{check_id} {verdict}", target_namespace=ns,
                severity=severity, evidence=evidence or {}, nodeid=nodeid or f"suites/test_x.py::test_{check_id}",
                **fields)
    return model.finding_record(f.to_dict())


def doc_of(findings, *, waiver_list=(), cmp=None, status=0):
    run = model.run_header({"run_id": RUN, "mode": "standard", "profile": "baseline", "provider": "local",
                            "server_version": "v1.36.2"}, started=1_700_000_000, finished=1_700_000_042.5,
                           selected={f["check_id"] for f in findings})
    g = gate.decide(findings, list(waiver_list), pytest_status=status)
    return model.document(run, findings, waivers=list(waiver_list), compare=cmp, gate=g)


# --- placement ------------------------------------------------------------------------------------------------

def test_cluster_checks_are_filed_under_the_cluster_not_their_throwaway_namespace():
    f = rec("etcd.encryption-at-rest", "fail", f"kr-secrets-are-encrypted-in-etcd-{RUN}-1")
    assert (f["scope"], f["namespace"], f["object"], f["target_key"]) == ("cluster", None, None, "cluster")
    assert f["run_namespace"] == f"kr-secrets-are-encrypted-in-etcd-{RUN}-1"
    assert rec("audit.logging", "fail")["target_key"] == "cluster"
    # a cluster check in the run's fresh namespace is still about the cluster
    assert rec("rbac.anonymous", "pass", f"kr-defaults-{RUN}-gw1-2")["target_key"] == "cluster"
    # ... but its per-namespace result in a user namespace stays with that namespace
    assert rec("rbac.anonymous", "pass", "shop")["target_key"] == "shop"
    for check in model.CLUSTER_CHECKS:
        assert rec(check, "fail", f"kr-x-{RUN}-3")["scope"] == "cluster", check
    assert rec("upgrade.something-new", "fail", f"kr-x-{RUN}-3")["scope"] == "cluster"


def test_namespace_and_new_namespace_keys():
    f = rec("pod-security.privileged", "fail", "shop")
    assert (f["scope"], f["namespace"], f["target_key"], f["area"]) == ("namespace", "shop", "shop", "pod security")
    fresh = rec("pod-security.privileged", "fail", f"kr-defaults-{RUN}-2")
    assert (fresh["scope"], fresh["namespace"], fresh["target_key"]) == ("namespace", None, "(new-namespace)")
    # another throw-away namespace of the run is never a key: the finding is about the cluster
    assert rec("disruption.pdb-eviction", "pass", f"kr-pdb-{RUN}-3")["target_key"] == "cluster"
    assert rec("team.own", "pass", f"kr-mine-{RUN}-9")["target_key"] == "cluster"


def test_objects_from_evidence_and_from_the_check_module():
    sc = rec("storage.pvc-reclaim", "fail", f"kr-pvc-standard-{RUN}-4", evidence={"storage_class": "standard"})
    assert sc["scope"] == "object" and sc["object"] == {"kind": "StorageClass", "namespace": None, "name": "standard"}
    assert sc["target_key"] == "StorageClass/standard"
    web = rec("disruption.pdb", "fail", "shop", evidence={"workload": "Deployment/web"})
    assert web["object"] == {"kind": "Deployment", "namespace": "shop", "name": "web"}
    assert web["target_key"] == "shop/Deployment/web" and web["namespace"] == "shop"
    target = rec("rollout.zero-downtime-target", "pass", "shop", evidence={"workload": "Deployment shop/api"})
    assert target["target_key"] == "shop/Deployment/api"
    own = rec("disruption.pdb-eviction", "pass", f"kr-pdb-{RUN}-3", evidence={"workload": "Deployment/guarded"})
    assert own["target_key"] == "cluster"  # a reference workload the check made: not an object of yours
    hook = rec("upgrade.webhooks", "fail", evidence={"type": "ValidatingWebhookConfiguration",
                                                     "configuration": "policy", "webhook": "pods.policy.io"})
    assert hook["target_key"] == "ValidatingWebhookConfiguration/policy#pods.policy.io"
    # a check module may say it itself (CheckResult.scope / .object), which wins
    seen = {}
    CheckResult(Verdict.FAIL, "x", target_namespace="shop", object={"kind": "Secret", "namespace": "shop",
                                                                     "name": "db"}).record(
        lambda *a, **kw: seen.update(kw))
    assert seen["object"]["name"] == "db" and "scope" not in seen
    assert rec("images.registry", "fail", "shop", scope="cluster")["target_key"] == "cluster"
    assert rec("images.registry", "fail", "shop",
               object={"kind": "Pod", "namespace": "shop", "name": "p"})["target_key"] == "shop/Pod/p"


def test_records_are_valid_v1_and_never_keyed_by_run_names():
    findings = [rec("etcd.encryption-at-rest", "fail", f"kr-secrets-{RUN}-1"),
                rec("pod-security.privileged", "fail", f"kr-defaults-{RUN}-2", nodeid="s.py::t[privileged]"),
                rec("storage.pvc-reclaim", "pass", f"kr-pvc-{RUN}-4", evidence={"storage_class": "fast"})]
    doc = valid_findings(doc_of(findings))
    assert doc["findings"][1]["variant"] == "privileged"
    assert doc["run"]["duration_s"] == 42.5 and doc["run"]["started_at"].endswith("Z")
    assert doc["summary"]["verdicts"]["fail"] == 2 and doc["summary"]["areas"]["control plane"]["fail"] == 1
    bad = json.loads(json.dumps(doc))
    bad["findings"][0]["target_key"] = f"kr-secrets-{RUN}-1"
    assert any("target_key" in p for p in __import__("pytest_kready.reports.schema", fromlist=["x"]).errors(bad))


# --- waivers ----------------------------------------------------------------------------------------------------

def write(tmp_path, text, name="waivers.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_waivers_parse_match_and_expire(tmp_path):
    p = write(tmp_path, """\
        waivers:
        - check: images.mutable-tag        # a check id; globs allowed
          namespace: shop
          object: Deployment/web
          reason: vendor image, pinned by digest in Q1
          owner: team-shop
          expires: 2027-01-31
        - check: pod-security.*
          reason: legacy node agent
          owner: platform
          expires: 2020-01-01
        """)
    ws = waivers.load(p)
    assert [w.source for w in ws] == ["waivers.yaml:2", "waivers.yaml:8"]
    today = dt.date(2026, 12, 3)
    web = rec("images.mutable-tag", "fail", "shop", object={"kind": "Deployment", "namespace": "shop", "name": "web"})
    other = rec("images.mutable-tag", "fail", "shop", object={"kind": "Deployment", "namespace": "shop", "name": "db"})
    assert waivers.find(ws, web, today=today) is ws[0]
    assert waivers.find(ws, other, today=today) is None
    assert waivers.find(ws, {**web, "verdict": "pass"}, today=today) is None  # only failures are waived
    # the expired glob waiver waives nothing
    assert waivers.find(ws, rec("pod-security.privileged", "fail", "shop"), today=today) is None
    assert ws[0].expired(dt.date(2027, 1, 31)) is False and ws[0].expired(dt.date(2027, 2, 1)) is True
    listing = waivers.listing(ws, [{**web, "verdict": "waived", "waiver": ws[0].record(today=today)}], today=today)
    assert [(w["status"], w["used"]) for w in listing] == [("in-force", 1), ("expired", 0)]


@pytest.mark.parametrize("text, message", [
    ("waivers:\n- check: x\n  reason: r\n  owner: o\n", "waiver 1 (line 2): missing expires"),
    ("waivers:\n- check: x\n  reason: r\n  owner: o\n  expires: soon\n", "'soon' is not a date"),
    ("waivers:\n- check: x\n  reason: r\n  owner: o\n  expires: 2027-01-01\n  team: a\n", "unknown field 'team'"),
    ("waivers:\n- check: x\n  reason: r\n  owner: o\n  expires: 2027-01-01\n  object: web\n", "write Kind/name"),
    ("waivers: [check: x\n", "not YAML at line"),
    ("- check: x\n", "one key, 'waivers'"),
    ("", "the file is empty"),
])
def test_a_malformed_waivers_file_is_one_line(tmp_path, text, message):
    with pytest.raises(waivers.WaiverError) as e:
        waivers.load(write(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("--kready-waivers=")


# --- compare ------------------------------------------------------------------------------------------------------

def test_compare_lists_what_changed():
    before = doc_of([rec("etcd.encryption-at-rest", "fail", f"kr-a-{RUN}-1"),
                     rec("pod-security.privileged", "fail", "shop"),
                     rec("rbac.token-automount", "fail", "shop"),
                     rec("network.dns", "inconclusive", "shop"),
                     rec("audit.logging", "pass"),
                     rec("images.registry", "pass", "shop")])
    other_run = "12040101-ffffff"
    after = [rec("etcd.encryption-at-rest", "pass", f"kr-b-{other_run}-7"),  # another run's throw-away name
             rec("pod-security.privileged", "fail", "shop"),
             rec("rbac.token-automount", "fail", "shop"), rec("rbac.token-automount", "fail", "team-b"),
             rec("network.dns", "pass", "shop"),
             rec("audit.logging", "inconclusive"),
             rec("upgrade.drain", "pass", evidence={"node": "n1"})]
    cmp = compare.compare(before, after, {"run_id": other_run}, previous_path="before.json")
    keys = {name: [(e["check_id"], e["target_key"]) for e in cmp[name]] for name in cmp
            if isinstance(cmp[name], list) and not name.startswith("checks_")}
    assert keys["fixed"] == [("etcd.encryption-at-rest", "cluster")]
    assert keys["still_failing"] == [("pod-security.privileged", "shop"), ("rbac.token-automount", "shop")]
    assert keys["new_failures"] == [("rbac.token-automount", "team-b")]
    assert keys["to_inconclusive"] == [("audit.logging", "cluster")]
    assert keys["from_inconclusive"] == [("network.dns", "shop")]
    assert cmp["checks_added"] == ["upgrade.drain"] and cmp["checks_gone"] == ["images.registry"]
    assert keys["targets_added"] == [("rbac.token-automount", "team-b")]
    valid_findings({**doc_of(after), "compare": cmp})
    text = "\n".join(compare.lines(cmp))
    assert "1 new failure(s), 1 fixed, 2 still failing" in text and "fixed: etcd.encryption-at-rest cluster" in text
    assert text.splitlines()[-1] == "previous run 12030648-a1b2c3 (baseline): before.json"


def test_compare_reads_a_findings_file_of_before_v1(tmp_path):
    old = {"run_id": "x", "mode": "standard", "profile": "baseline", "summary": {"fail": 1},
           "findings": [{"check_id": "etcd.encryption-at-rest", "verdict": "fail", "severity": "high",
                         "target_namespace": f"kr-secrets-are-encrypted-in-etcd-{RUN}-1", "summary": "plain",
                         "evidence": {}, "references": [], "nodeid": "a::b", "recorded_at": 1.0}]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    prev = compare.load_previous(tmp_path / "old.json")
    cmp = compare.compare(prev, [rec("etcd.encryption-at-rest", "pass", f"kr-s-{RUN}-1")], {})
    assert [(e["target_key"], e["before"], e["after"]) for e in cmp["fixed"]] == [("cluster", "fail", "pass")]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(compare.CompareError, match="no 'findings' list"):
        compare.load_previous(tmp_path / "bad.json")


# --- gate ---------------------------------------------------------------------------------------------------------

def test_gate_exit_status():
    fail_low = rec("images.registry", "fail", "shop", severity="low")
    unsure = rec("network.dns", "inconclusive", "shop")
    waived = {**rec("rbac.wildcards", "fail"), "verdict": "waived"}
    assert gate.decide([waived], [], pytest_status=0)["exit_status"] == 0
    assert gate.decide([unsure], [], pytest_status=1)["exit_status"] == 1
    assert gate.decide([unsure], [], pytest_status=1, fail_on="fail")["exit_status"] == 0
    assert gate.decide([fail_low], [], pytest_status=1, min_severity="medium")["exit_status"] == 0
    assert gate.decide([fail_low], [], pytest_status=1, min_severity="low")["exit_status"] == 1
    expired = {"check": "x.*", "namespace": None, "object": None, "reason": "r", "owner": "o",
               "expires": "2020-01-01", "source": "w.yaml:2", "status": "expired", "used": 0}
    g = gate.decide([], [expired], pytest_status=0)
    assert g["exit_status"] == 1 and "waiver expired on 2020-01-01: x.* in everywhere (owner o, w.yaml:2)" in g["reasons"][0]
    assert gate.decide([], [], pytest_status=1, other_failures=["t.py::x"])["exit_status"] == 1
    assert gate.decide([unsure], [], pytest_status=2)["exit_status"] == 2  # stopped before its checks: stays


# --- summary ------------------------------------------------------------------------------------------------------

def test_summary_fits_80_columns_and_lists_areas_and_problems():
    long = "x" * 300
    findings = [rec("pod-security.privileged", "fail", "shop", summary_=long),
                rec("etcd.encryption-at-rest", "inconclusive", f"kr-s-{RUN}-1"), rec("rbac.wildcards", "pass")]
    sections = summary.render(doc_of(findings, status=1), [("SARIF", "/tmp/" + "d" * 90 + "/k.sarif")], 80)
    lines = [text for _, ls in sections for text, _ in ls]
    titles = [t for t, _ in sections]
    assert titles[:2] == ["kready: findings by area", "kready: failing and inconclusive"]
    assert all(len(l) <= 80 for l in lines if not l.startswith("  /tmp/")), [l for l in lines if len(l) > 80]
    area_rows = [text.split()[0] for text, _ in sections[0][1][1:-1]]
    assert area_rows == ["pod", "RBAC", "admission", "network", "resilience", "control"]
    assert any(l.startswith("FAIL pod-security.privileged shop: xxx") and l.endswith("...") for l in lines)
    assert any(l.startswith("INCONCLUSIVE etcd.encryption-at-rest cluster:") for l in lines)
    assert "  /tmp/" + "d" * 90 + "/k.sarif" in lines  # a path is never cut


# --- SARIF --------------------------------------------------------------------------------------------------------

def test_sarif_is_valid_and_places_results(tmp_path):
    manifests = tmp_path / "deploy"
    manifests.mkdir()
    (manifests / "shop.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: shop
        spec: {}
        """))
    web = rec("disruption.pdb", "fail", "shop", evidence={"workload": "Deployment/web"}, severity="high",
              remediation="Create a PodDisruptionBudget", references=("https://kubernetes.io/docs/pdb",))
    ns = rec("pod-security.privileged", "inconclusive", "shop", severity="high")
    cl = rec("etcd.encryption-at-rest", "fail", f"kr-s-{RUN}-1", severity="high")
    gone = rec("disruption.pdb", "fail", "other", evidence={"workload": "StatefulSet/db"})
    waived_w = {"check": "rbac.*", "namespace": None, "object": None, "reason": "accepted", "owner": "sec",
                "expires": "2030-01-01", "source": "w.yaml:2", "status": "in-force", "used": 1}
    waived = {**rec("rbac.wildcards", "fail"), "verdict": "waived", "original_verdict": "fail", "waiver": waived_w}
    ok = rec("rbac.anonymous", "pass")
    doc = valid_findings(doc_of([web, ns, cl, gone, waived, ok], waiver_list=[waived_w], status=1))
    log = valid_sarif(sarif.build(doc, apply_paths=[manifests], base=tmp_path, docs={"disruption.pdb": "Each "
                      "replicated workload has a PodDisruptionBudget. More words."}))
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {"disruption.pdb", "pod-security.privileged", "etcd.encryption-at-rest", "rbac.wildcards",
                          "rbac.anonymous"}
    pdb = rules["disruption.pdb"]
    assert pdb["name"] == "DisruptionPdb" and pdb["defaultConfiguration"]["level"] == "error"
    assert pdb["properties"]["security-severity"] == "8.0" and "PodDisruptionBudget" in pdb["help"]["text"]
    assert pdb["shortDescription"]["text"].startswith("disruption.pdb (resilience): Each replicated")
    results = {(r["ruleId"], r["properties"]["target_key"]): r for r in run["results"]}
    assert len(run["results"]) == 5  # fail, inconclusive, fail, fail, waived (suppressed); the pass is not a result
    loc = results[("disruption.pdb", "shop/Deployment/web")]["locations"][0]
    assert loc["physicalLocation"] == {"artifactLocation": {"uri": "deploy/shop.yaml", "uriBaseId": "%SRCROOT%"},
                                       "region": {"startLine": 5}}
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "shop/Deployment/web"
    ns_loc = results[("pod-security.privileged", "shop")]["locations"][0]["physicalLocation"]
    assert ns_loc["artifactLocation"]["uri"] == "deploy/shop.yaml" and ns_loc["region"]["startLine"] == 1
    assert results[("pod-security.privileged", "shop")]["level"] == "warning"  # inconclusive: never an error
    assert results[("etcd.encryption-at-rest", "cluster")]["locations"][0]["physicalLocation"] == \
        {"artifactLocation": {"uri": "cluster"}}
    assert results[("disruption.pdb", "other/StatefulSet/db")]["locations"][0]["physicalLocation"][
        "artifactLocation"]["uri"] == "cluster/other/StatefulSet/db"
    sup = results[("rbac.wildcards", "cluster")]["suppressions"][0]
    assert sup["status"] == "accepted" and "accepted (owner sec, until 2030-01-01" in sup["justification"]
    assert run["properties"]["waivers"] == [waived_w]


# --- JUnit --------------------------------------------------------------------------------------------------------

def test_junit_one_testcase_per_check_and_target(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" '
        'skipped="0" tests="2"><testcase classname="suites.test_rbac" name="test_token" time="3.000">'
        '<properties><property name="kready_finding" value="{big}"/></properties>'
        '<failure message="FAIL ...">FAIL ...</failure><system-out>log</system-out></testcase>'
        '<testcase classname="suites.test_rbac" name="test_plain" time="1.0"/></testsuite></testsuites>')
    nodeid = "suites/test_rbac.py::test_token"
    findings = [rec("rbac.token-automount", "fail", "shop", nodeid=nodeid, severity="high"),
                rec("rbac.token-automount", "pass", "team-b", nodeid=nodeid),
                {**rec("rbac.token-automount", "fail", f"kr-defaults-{RUN}-1", nodeid=nodeid), "verdict": "waived",
                 "original_verdict": "fail", "waiver": {"reason": "new namespaces get it", "owner": "platform",
                                                        "expires": "2030-01-01", "source": "w.yaml:2"}}]
    assert junit.rewrite(xml, findings) == 3
    cases = junit_cases(xml)
    assert set(cases) == {"test_token[shop]", "test_token[team-b]", "test_token[(new-namespace)]", "test_plain"}
    shop = cases["test_token[shop]"]
    assert properties(shop) == {"check_id": "rbac.token-automount", "severity": "high", "verdict": "fail",
                                "target": "shop", "scope": "namespace", "area": "RBAC", "findings": "1"}
    assert shop.find("failure").get("message").startswith("FAIL rbac.token-automount [shop]:")
    assert shop.find("system-out").text == "log"
    assert cases["test_token[team-b]"].find("failure") is None
    skipped = cases["test_token[(new-namespace)]"].find("skipped")
    assert skipped.get("type") == "pytest.xfail" and "new namespaces get it (owner platform" in skipped.get("message")
    assert "kready_finding" not in xml.read_text()
