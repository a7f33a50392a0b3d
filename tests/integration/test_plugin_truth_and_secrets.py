"""Plugin-core truth and safety on the real local cluster (slot 0, baseline; shared: attached to, left running):

* secrets stay secret: a namespace with a Secret and a Deployment carrying credentials in its env, in its probe's
  ``httpHeaders`` and in its exec probe's command; the shipped suites that touch them (``probes.separate`` reads the
  probes, ``rbac.default-sa-secrets`` mints ServiceAccount tokens) and a team check that reads the Secret and the
  Deployment, prints and logs what it read and then crashes, run with ``-l`` and every report; no output (terminal,
  JSON, JUnit, HTML with its extras decoded, log file) holds any of the values, plain or base64, nor a token;
* the same run's crashing check (after recording a pass) is inconclusive in the terminal, JSON, JUnit and HTML;
* readonly mode lets TokenRequest and access reviews through and nothing else, matched by exact path: a POST to a
  custom resource collection whose plural is ``token`` is refused and creates nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from conftest import BIN_DIR, SLOTS
from pytest_kready import errors
from pytest_kready import client as kclient
from pytest_kready.resources import suites_dir

from .kube import AGNHOST, until

pytestmark = [pytest.mark.integration, pytest.mark.local_profile("baseline")]

SUITES = suites_dir()
PASSWORD = "Pa55-" + uuid.uuid4().hex[:12]
API_TOKEN = "tok-" + uuid.uuid4().hex
API_KEY = "key-" + uuid.uuid4().hex[:16]
BASIC = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")

TEAM_CHECK = """
import base64, logging, pytest

NS = {ns!r}

@pytest.mark.kready_check("team.reads-credentials")
def test_team_reads_credentials_then_crashes(kready_cluster, kready_finding):
    api = kready_cluster.api_client()
    secret = api.raw("GET", f"/api/v1/namespaces/{{NS}}/secrets/db-creds")
    web = api.raw("GET", f"/apis/apps/v1/namespaces/{{NS}}/deployments/web")
    password = base64.b64decode(secret["data"]["password"]).decode()
    container = web["spec"]["template"]["spec"]["containers"][0]
    print("read", password, secret["data"]["token"])
    logging.getLogger("team").warning("the password is %s", password)
    kready_finding.passed("read the credentials", target_namespace=NS, evidence={{"secret": secret, "web": web}})
    raise RuntimeError(f"crashed holding {{password}} and {{container['readinessProbe']}} {{container['env']}}")
"""


def leaked_values() -> list[str]:
    plain = [PASSWORD, API_TOKEN, API_KEY, BASIC, f"admin:{PASSWORD}"]
    return plain + [base64.b64encode(v.encode()).decode() for v in plain]


def workload(ns: str) -> tuple[dict, dict]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds", "namespace": ns},
              "stringData": {"password": PASSWORD, "token": API_TOKEN}}
    container = {
        "name": "web", "image": AGNHOST, "imagePullPolicy": "IfNotPresent", "args": ["netexec", "--http-port=8080"],
        "ports": [{"containerPort": 8080}],
        "env": [{"name": "DB_PASSWORD", "value": PASSWORD}, {"name": "API_TOKEN", "value": API_TOKEN},
                {"name": "LOG_LEVEL", "value": "debug"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "httpHeaders": [
            {"name": "Authorization", "value": f"Basic {BASIC}"}, {"name": "X-Api-Key", "value": API_KEY}]}},
        # an exec liveness probe with credentials on its command line (never run: an hour's initial delay)
        "livenessProbe": {"initialDelaySeconds": 3600, "exec": {"command": [
            "sh", "-c", f"curl -sf -H 'X-Api-Key: {API_KEY}' -u admin:{PASSWORD} http://localhost:8080/ "
                        f"--oauth2-bearer {API_TOKEN} --password={PASSWORD}"]}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}}}
    return secret, deployment


def unescape(text: str) -> str:
    import html as htmllib

    return htmllib.unescape(text)


def html_report(path: Path) -> str:
    """pytest-html's page and its data with every extra decoded (self-contained extras are base64 data URIs)."""
    import html as htmllib

    page = path.read_text()
    blob = json.loads(htmllib.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    decoded = []
    for rows in blob["tests"].values():
        for row in rows:
            for extra in row.get("extras", []):
                content = extra.get("content", "")
                if ";base64," in content:
                    decoded.append(base64.b64decode(content.split(";base64,", 1)[1]).decode("utf-8", "replace"))
    return page + "\n" + json.dumps(blob) + "\n" + "\n".join(decoded)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory, _cluster_manager):
    """One run of the plugin over a namespace full of credentials: (outputs by name, parsed JSON, work dir)."""
    cluster = _cluster_manager.ensure("baseline")
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    ns = f"leak-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "kready-tests"}}})
    work = tmp_path_factory.mktemp("leak")
    try:
        secret, deployment = workload(ns)
        core.create_namespaced_secret(ns, secret)
        apps.create_namespaced_deployment(ns, deployment)
        (work / "test_team.py").write_text(TEAM_CHECK.format(ns=ns))
        (work / "pytest.ini").write_text("[pytest]\n")
        out, xml, html, log = (work / "f.json", work / "junit.xml", work / "report.html", work / "run.log")
        env = {**os.environ, "KREADY_LOCAL_SLOT": str(SLOTS["baseline"]), "KREADY_LOCAL_BIN_DIR": str(BIN_DIR)}
        argv = [sys.executable, "-m", "pytest", str(SUITES / "test_disruption.py"), str(SUITES / "test_rbac.py"),
                "test_team.py", "-k", "probes_separate or cannot_read_secrets or team_reads",
                "--kready", "--kready-provider=local", "--kready-profile=baseline", f"--kready-namespaces={ns}",
                "-l", "-rA", "-p", "no:cacheprovider", f"--rootdir={work}", f"--kready-json={out}",
                f"--junitxml={xml}", "-o", "junit_logging=all", f"--html={html}", "--self-contained-html",
                "--log-cli-level=WARNING", f"--log-file={log}"]
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        (work / "terminal.txt").write_text(proc.stdout + proc.stderr)
        outputs = {"terminal": proc.stdout + proc.stderr, "json": out.read_text(), "junit": unescape(xml.read_text()),
                   "html": html_report(html), "log file": log.read_text()}
        yield outputs, json.loads(out.read_text()), ns, xml
    finally:
        core.delete_namespace(ns)


def test_no_secret_value_or_token_reaches_any_output(leak_run):
    outputs, doc, ns, _ = leak_run
    terminal = outputs["terminal"]
    # the run saw the values and the probes, and minted tokens: what follows shows redaction, not absence
    checks = {f["check_id"] for f in doc["findings"]}
    assert {"probes.separate", "rbac.default-sa-secrets", "team.reads-credentials"} <= checks, terminal[-3000:]
    probes = [f for f in doc["findings"] if f["check_id"] == "probes.separate"]
    assert probes and probes[0]["target_namespace"] == ns and "exec sh -c curl" in json.dumps(probes[0]), probes
    for name, text in outputs.items():
        for value in leaked_values():
            assert value not in text, f"{value} leaked into the {name}"
        assert not JWT.search(text), f"a token leaked into the {name}: {JWT.search(text).group(0)[:20]}..."
    assert "<redacted>" in terminal and "<redacted>" in outputs["json"] and "<redacted>" in outputs["junit"]
    assert "secret" in terminal and "DB_PASSWORD" in terminal  # locals shown (-l), names kept
    assert "debug" in outputs["json"]  # what is not secret stays readable


def test_a_crashed_check_is_inconclusive_in_every_report(leak_run):
    outputs, doc, ns, xml = leak_run
    team = [f for f in doc["findings"] if f["check_id"] == "team.reads-credentials"]
    assert {f["verdict"] for f in team} == {"inconclusive"}, team  # the pass recorded before the crash is not kept
    crash = [f for f in team if f["summary"].startswith("the check crashed: RuntimeError: crashed holding")]
    assert len(crash) == 1, team
    assert "test_team.py::test_team_reads_credentials_then_crashes: INCONCLUSIVE: the check crashed: RuntimeError: " \
        "crashed holding" in outputs["terminal"]
    assert re.search(r"\b1 inconclusive\b", outputs["terminal"].splitlines()[-1]), outputs["terminal"][-500:]
    case = next(c for c in ET.parse(xml).getroot().iter("testcase") if c.get("name").startswith("test_team_reads"))
    failure = case.find("failure")
    assert failure is not None and failure.get("message").startswith(
        "INCONCLUSIVE: the check crashed: RuntimeError: crashed holding"), case.attrib
    assert "finding team.reads-credentials (inconclusive)" in outputs["html"]
    assert "finding team.reads-credentials (pass)" not in outputs["html"]


def test_readonly_lets_only_token_requests_and_reviews_through(local_cluster, core, ns_factory):
    """A CRD whose plural is ``token``: its collection path ends in /token like TokenRequest's, and a POST to it
    creates an object. Readonly refuses it (nothing is created); TokenRequest and an access review go through and
    nothing is stored."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    ext = k8s.ApiextensionsV1Api(api)
    group = "kready-tests.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"token.{group}", "labels": {"app.kubernetes.io/managed-by": "kready-tests"}},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "token", "singular": "tokenthing", "kind": "TokenThing"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as e:
        if e.status != 409:
            raise
    until(lambda: any(c.type == "Established" and c.status == "True" for c in
                      (ext.read_custom_resource_definition(f"token.{group}").status.conditions or [])),
          timeout=60, what="CRD established")
    ns = ns_factory("ro")
    core.create_namespaced_service_account(ns, {"metadata": {"name": "app"}})
    ro = kclient.new_api_client(kclient.ClusterAccess(Path(local_cluster.kubeconfig)), mode="readonly",
                                retry_attempts=1)
    custom = k8s.CustomObjectsApi(api)
    try:
        path = f"/apis/{group}/v1/namespaces/{ns}/token"
        until(lambda: custom.list_namespaced_custom_object(group, "v1", ns, "token") is not None, timeout=60,
              what="the token resource served")
        with pytest.raises(errors.ReadOnlyViolation, match=f"readonly mode refused POST {path}"):
            ro.raw("POST", path, body={"apiVersion": f"{group}/v1", "kind": "TokenThing",
                                       "metadata": {"name": "made-in-readonly"}})
        assert custom.list_namespaced_custom_object(group, "v1", ns, "token")["items"] == []
        # TokenRequest: a token is minted and returned, no object is stored
        secrets_before = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
        minted = ro.raw("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/app/token",
                        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                              "spec": {"expirationSeconds": 600}})
        assert minted["status"]["token"].startswith("eyJ")
        assert {s.metadata.name for s in core.list_namespaced_secret(ns).items} == secrets_before
        review = ro.raw("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                        body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                              "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": ns}}})
        assert review["status"]["allowed"] is True
        with pytest.raises(errors.ReadOnlyViolation):
            ro.raw("POST", f"/api/v1/namespaces/{ns}/configmaps",
                   body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "token"}})
        assert "token" not in {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
    finally:
        ro.close()
        ext.delete_custom_resource_definition(f"token.{group}")
