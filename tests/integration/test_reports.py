"""Reports from real runs on the local clusters (issue 12): the same subset of the shipped suites on the baseline
cluster (slot 0) and on the hardened one (slot 1), with a team manifest applied (``--kready-apply``: a Namespace
and a Deployment of 2 replicas without a PodDisruptionBudget) and checked (``--kready-namespaces``).

Asserted on what the runs wrote: the findings JSON validates against the shipped v1 schema and files cluster-level
checks under ``cluster`` (not the throw-away namespace they ran in); SARIF validates against the vendored SARIF
2.1.0 schema and points the Deployment's finding at the manifest file and line it came from; JUnit has one
testcase per check x target with its properties; a waiver turns the Deployment's failure into ``waived`` (exit 0,
xfailed, JUnit skipped); an expired waiver fails the run naming it; the hardened run compared with the baseline run
lists etcd encryption and audit logging as fixed and the Deployment's missing budget as still failing. Slots 0
and 1 are shared: the runs attach to them and leave them running; what they apply is removed at their end."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from reports_validation import junit_cases, properties, valid_findings, valid_sarif

from conftest import BIN_DIR, SLOTS
from pytest_kready.resources import suites_dir

from .kube import AGNHOST

pytestmark = pytest.mark.integration

SUITES = suites_dir()
SUBSET = (str(SUITES / "test_control_plane_secrets.py"), str(SUITES / "test_rbac.py"),
          str(SUITES / "test_disruption.py") + "::test_pdb_coverage",
          str(SUITES / "test_pod_security.py") + "::test_attack_pod_is_refused[privileged]")
NAMESPACE = f"rpt-{uuid.uuid4().hex[:6]}"


def team_manifest(namespace: str) -> str:
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
# two replicas and no PodDisruptionBudget: disruption.pdb fails on this object
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      securityContext: {{runAsNonRoot: true, runAsUser: 65534, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
      - name: web
        image: {AGNHOST}
        imagePullPolicy: IfNotPresent
        args: [netexec, --http-port=8080]
        readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 2}}
        livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 10}}
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 200m, memory: 64Mi}}}}
        securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}, readOnlyRootFilesystem: true}}
"""


class Run:
    def __init__(self, workdir: Path, proc: subprocess.CompletedProcess):
        self.dir = workdir
        self.ret = proc.returncode
        self.text = proc.stdout + proc.stderr
        self.lines = self.text.splitlines()

    def path(self, name: str) -> Path:
        return self.dir / name


def kready_run(workdir: Path, profile: str, *args: str, timeout: float = 900) -> Run:
    """``pytest --kready`` on the shared local cluster of ``profile``, from ``workdir`` (the team manifest is
    there, under deploy/), the subset of the shipped suites, and ``args``."""
    env = {**os.environ, "KREADY_LOCAL_SLOT": str(SLOTS[profile]), "KREADY_LOCAL_BIN_DIR": str(BIN_DIR),
           "COLUMNS": "80"}
    env.pop("PYTEST_ADDOPTS", None)
    argv = [sys.executable, "-m", "pytest", "--kready", "--kready-provider=local", f"--kready-profile={profile}",
            "--kready-apply=deploy", f"--kready-namespaces={NAMESPACE}", "-p", "no:cacheprovider",
            f"--rootdir={workdir}", "-rx", *args]
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    return Run(workdir, proc)


def workdir(tmp_path_factory, name: str) -> Path:
    d = tmp_path_factory.mktemp(name)
    (d / "deploy").mkdir()
    (d / "deploy" / "shop.yaml").write_text(team_manifest(NAMESPACE))
    (d / "pytest.ini").write_text("[pytest]\n")
    return d


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, _cluster_manager) -> Run:
    _cluster_manager.ensure("baseline")
    d = workdir(tmp_path_factory, "baseline")
    return kready_run(d, "baseline", *SUBSET, "--kready-json=findings.json", "--kready-sarif=out/kready.sarif",
                      "--junitxml=junit.xml")


@pytest.fixture(scope="module")
def hardened(tmp_path_factory, _cluster_manager, baseline) -> Run:
    _cluster_manager.ensure("hardened")
    d = workdir(tmp_path_factory, "hardened")
    return kready_run(d, "hardened", *SUBSET, "--kready-json=findings.json",
                      f"--kready-compare={baseline.path('findings.json')}", "--kready-sarif=kready.sarif")


def by_key(doc: dict) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for f in doc["findings"]:
        out.setdefault((f["check_id"], f["target_key"]), []).append(f)
    return out


def verdicts(doc: dict, check_id: str, key: str) -> set[str]:
    return {f["verdict"] for f in by_key(doc).get((check_id, key), [])}


@pytest.mark.local_profile("baseline")
def test_baseline_json_is_v1_and_files_cluster_checks_under_the_cluster(baseline):
    assert baseline.ret == 1, baseline.text  # the baseline cluster fails checks: a verdict, not a stop
    doc = valid_findings(baseline.path("findings.json"))
    run = doc["run"]
    assert (run["provider"], run["profile"], run["mode"]) == ("local", "baseline", "standard")
    assert run["server_version"].startswith("v1.") and run["duration_s"] > 0 and run["started_at"] < run["finished_at"]
    assert {"etcd.encryption-at-rest", "audit.logging", "disruption.pdb", "pod-security.privileged",
            "rbac.token-automount", "rbac.anonymous"} <= set(run["selected_checks"])
    etcd = by_key(doc)[("etcd.encryption-at-rest", "cluster")]
    assert [(f["verdict"], f["scope"], f["namespace"]) for f in etcd] == [("fail", "cluster", None)], etcd
    assert etcd[0]["run_namespace"].startswith("kr-") and run["run_id"] in etcd[0]["run_namespace"]
    assert not any(run["run_id"] in f["target_key"] for f in doc["findings"])  # throw-away names are never keys
    pdb = by_key(doc)[("disruption.pdb", f"{NAMESPACE}/Deployment/web")]
    assert [(f["verdict"], f["scope"], f["object"]) for f in pdb] == [
        ("fail", "object", {"kind": "Deployment", "namespace": NAMESPACE, "name": "web"})], pdb
    assert verdicts(doc, "pod-security.privileged", NAMESPACE) == {"fail"}
    assert doc["summary"]["areas"]["control plane"]["fail"] >= 2
    assert doc["summary"]["gate"]["exit_status"] == 1 and doc["waivers"] == [] and doc["compare"] is None
    # the terminal summary: areas, each failing check x target, where the reports went, the exit status
    text = baseline.text
    for line in ("kready: findings by area", f"FAIL disruption.pdb {NAMESPACE}/Deployment/web:",
                 "FAIL etcd.encryption-at-rest cluster:", "kready: exit status 1 (fail-on=inconclusive"):
        assert line in text, line
    assert "FAIL etcd.encryption-at-rest [cluster]:" in text  # the failure text names the target key too
    assert "\x1b[" not in text
    start = next(i for i, l in enumerate(baseline.lines) if "kready: findings by area" in l)
    end = next(i for i, l in enumerate(baseline.lines) if l.startswith("kready: exit status"))
    ours = [l for l in baseline.lines[start:end + 1] if not l.startswith("  /")]  # a long path has its own line
    assert all(len(l) <= 80 for l in ours), [l for l in ours if len(l) > 80]


@pytest.mark.local_profile("baseline")
def test_baseline_sarif_points_at_the_manifest_line(baseline):
    log = valid_sarif(baseline.path("out/kready.sarif"))
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["etcd.encryption-at-rest"]["properties"]["security-severity"] == "8.0"
    assert rules["etcd.encryption-at-rest"]["defaultConfiguration"]["level"] == "error"
    results = {(r["ruleId"], r["properties"]["target_key"]): r for r in run["results"]}
    doc = valid_findings(baseline.path("findings.json"))
    failing = {(f["check_id"], f["target_key"]) for f in doc["findings"] if f["verdict"] in ("fail", "inconclusive")}
    assert set(results) == failing  # one result per failing or inconclusive finding (one each here)
    manifest = (baseline.dir / "deploy" / "shop.yaml").read_text().splitlines()
    deployment_line = manifest.index("kind: Deployment")  # the document starts one line above (apiVersion)
    pdb = results[("disruption.pdb", f"{NAMESPACE}/Deployment/web")]["locations"][0]
    assert pdb["physicalLocation"] == {"artifactLocation": {"uri": "deploy/shop.yaml", "uriBaseId": "%SRCROOT%"},
                                       "region": {"startLine": deployment_line}}
    assert pdb["logicalLocations"][0]["fullyQualifiedName"] == f"{NAMESPACE}/Deployment/web"
    ns = results[("pod-security.privileged", NAMESPACE)]["locations"][0]
    assert ns["physicalLocation"]["region"]["startLine"] == 1  # the Namespace's document
    etcd = results[("etcd.encryption-at-rest", "cluster")]["locations"][0]
    assert etcd["physicalLocation"] == {"artifactLocation": {"uri": "cluster"}}


@pytest.mark.local_profile("baseline")
def test_baseline_junit_has_one_testcase_per_check_and_target(baseline):
    cases = junit_cases(baseline.path("junit.xml"))
    anonymous = {n for n in cases if n.startswith("test_anonymous_requests_list_nothing")}
    assert anonymous == {"test_anonymous_requests_list_nothing[cluster]",
                         f"test_anonymous_requests_list_nothing[{NAMESPACE}]"}, sorted(cases)
    props = properties(cases[f"test_anonymous_requests_list_nothing[{NAMESPACE}]"])
    assert (props["check_id"], props["target"], props["scope"], props["verdict"], props["severity"]) == (
        "rbac.anonymous", NAMESPACE, "namespace", "pass", "critical"), props
    etcd = cases["test_secrets_are_encrypted_in_etcd"]
    assert properties(etcd)["target"] == "cluster" and properties(etcd)["verdict"] == "fail"
    assert etcd.find("failure").get("message").startswith("FAIL etcd.encryption-at-rest [cluster]:")
    assert "kready_finding" not in baseline.path("junit.xml").read_text()  # the raw dumps are replaced


@pytest.mark.local_profile("baseline")
def test_a_waiver_turns_the_failure_into_waived_and_an_expired_one_fails_the_run(tmp_path_factory,
                                                                                    _cluster_manager):
    _cluster_manager.ensure("baseline")
    today = dt.datetime.now(dt.timezone.utc).date()
    pdb_waiver = (f"- check: disruption.*\n  namespace: {NAMESPACE}\n  object: Deployment/web\n"
                  f"  reason: web tolerates a full drain (stateless, behind a CDN)\n  owner: team-shop\n"
                  f"  expires: {today + dt.timedelta(days=30)}\n")
    expired = ("- check: rbac.wildcards\n  reason: old exception\n  owner: team-old\n"
               f"  expires: {today - dt.timedelta(days=1)}\n")
    pdb = str(SUITES / "test_disruption.py") + "::test_pdb_coverage"

    d = workdir(tmp_path_factory, "waived")
    (d / "waivers.yaml").write_text("waivers:\n" + pdb_waiver)
    run = kready_run(d, "baseline", pdb, "--kready-waivers=waivers.yaml", "--kready-json=findings.json",
                     "--junitxml=junit.xml", "--kready-sarif=kready.sarif")
    assert run.ret == 0, run.text
    assert "XFAIL" in run.text and "web tolerates a full drain" in run.text, run.text
    doc = valid_findings(run.path("findings.json"))
    f = by_key(doc)[("disruption.pdb", f"{NAMESPACE}/Deployment/web")][0]
    assert (f["verdict"], f["original_verdict"], f["waiver"]["owner"]) == ("waived", "fail", "team-shop")
    assert [(w["status"], w["used"]) for w in doc["waivers"]] == [("in-force", 1)]
    skipped = junit_cases(run.path("junit.xml"))["test_pdb_coverage"].find("skipped")
    assert skipped.get("type") == "pytest.xfail" and "web tolerates a full drain" in skipped.get("message")
    result = valid_sarif(run.path("kready.sarif"))["runs"][0]["results"][0]
    assert result["suppressions"][0]["status"] == "accepted"

    d = workdir(tmp_path_factory, "expired")
    (d / "waivers.yaml").write_text("waivers:\n" + pdb_waiver + expired)
    run = kready_run(d, "baseline", pdb, "--kready-waivers=waivers.yaml", "--kready-json=findings.json")
    assert run.ret == 1, run.text
    text = " ".join(run.text.split())
    assert (f"waiver expired on {today - dt.timedelta(days=1)}: rbac.wildcards in everywhere (owner team-old, "
            "waivers.yaml:8); renew or remove it") in text, run.text
    doc = valid_findings(run.path("findings.json"))
    assert verdicts(doc, "disruption.pdb", f"{NAMESPACE}/Deployment/web") == {"waived"}  # still waived
    assert [w["status"] for w in doc["waivers"]] == ["in-force", "expired"]


@pytest.mark.local_profile("hardened")
def test_compare_hardened_with_baseline_lists_the_expected_changes(baseline, hardened):
    assert hardened.ret == 1, hardened.text  # the team's Deployment still has no budget
    doc = valid_findings(hardened.path("findings.json"))
    valid_sarif(hardened.path("kready.sarif"))
    assert doc["run"]["profile"] == "hardened"
    cmp = doc["compare"]
    assert cmp["previous"]["profile"] == "baseline" and cmp["previous"]["path"] == str(baseline.path("findings.json"))
    entries = {name: {(e["check_id"], e["target_key"]) for e in cmp[name]}
               for name in ("fixed", "still_failing", "new_failures", "to_inconclusive", "from_inconclusive")}
    # the hardened profile encrypts Secrets in etcd and writes an audit log: fixed, matched on the key
    # "cluster" although each run made its own throw-away namespace
    assert {("etcd.encryption-at-rest", "cluster"), ("audit.logging", "cluster")} <= entries["fixed"], cmp
    # the team's Deployment has no PodDisruptionBudget on either cluster
    assert ("disruption.pdb", f"{NAMESPACE}/Deployment/web") in entries["still_failing"], cmp
    assert not entries["new_failures"] and not entries["to_inconclusive"], cmp
    base = valid_findings(baseline.path("findings.json"))
    assert verdicts(base, "etcd.encryption-at-rest", "cluster") == {"fail"}
    assert verdicts(doc, "etcd.encryption-at-rest", "cluster") == {"pass"}
    text = hardened.text
    assert "kready: compared with the previous run" in text
    assert "fixed: etcd.encryption-at-rest cluster (fail -> pass)" in text
    assert "fixed: audit.logging cluster (fail -> pass)" in text
