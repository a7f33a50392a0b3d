"""Unit tests of the upgrade gate (no cluster): the option and the suite's deselection, the shipped tables and their
generator, the judgements of upgrade.removed-apis (metric, audit log, CRD versions), upgrade.crd-stored-versions,
upgrade.drain (what a drain evicts, budgets), upgrade.webhooks (requests built from rules, call failures) and
upgrade.version-skew on recorded Node objects and component versions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready.checks import upgrade as up
from pytest_kready.findings import Verdict
from pytest_kready.local.bins import K8S_VERSION
from pytest_kready.resources import suites_dir

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "tools" / "gen_removed_apis.py"
SUITE = suites_dir() / "test_upgrade.py"
UPGRADE_TESTS = 6  # the checks of the upgrade suite (besides the rehearsal's upgrade step)

# --- the option ----------------------------------------------------------------------------------------------

SHOW = """
from pytest_kready.session import session_of

def test_show(pytestconfig):
    print("UPGRADE_TO=" + repr(session_of(pytestconfig).settings.upgrade_to))
"""


def _show(pytester, *args):
    """A test printing the resolved setting, given as the only path (no path would run the shipped suites)."""
    pytester.makepyfile(test_show=SHOW)
    return pytester.runpytest(str(pytester.path / "test_show.py"), "-s", "-p", "no:cacheprovider", "--kready", *args)


@pytest.mark.parametrize("value, expected", [("1.37", "'1.37'"), ("v1.37", "'1.37'"), (" 1.040 ", "'1.40'")])
def test_upgrade_to_takes_a_minor_version(pytester, value, expected):
    result = _show(pytester, f"--kready-upgrade-to={value}")
    assert result.ret == 0, result.stdout.str()
    assert f"UPGRADE_TO={expected}" in result.stdout.str()


def test_upgrade_to_has_an_ini_twin_and_defaults_to_none(pytester):
    assert "UPGRADE_TO=None" in _show(pytester).stdout.str()
    pytester.makeini("[pytest]\nkready_upgrade_to = v1.38\n")
    assert "UPGRADE_TO='1.38'" in _show(pytester).stdout.str()


@pytest.mark.parametrize("value", ["1.37.2", "v1.37.0", "37", "1", "latest", "1.x", "2.0"])
def test_upgrade_to_refuses_anything_but_a_minor_version_in_one_line(pytester, value):
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest(str(pytester.path / "test_show.py"), "-p", "no:cacheprovider", "--kready",
                                f"--kready-upgrade-to={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert errors == [f"ERROR: --kready-upgrade-to={value}: give the Kubernetes minor version you upgrade to, e.g. "
                      "1.37 (not a patch version)"]


def test_without_the_option_the_upgrade_suite_is_deselected(pytester):
    """No cluster is needed to see it: collection alone deselects (and selects) the suite."""
    pytester.makeini("[pytest]\n")
    without = pytester.runpytest("-p", "no:cacheprovider", "--kready", "--collect-only", "-q", str(SUITE))
    assert f"no tests collected ({UPGRADE_TESTS + 1} deselected)" in without.stdout.str()
    with_it = pytester.runpytest("-p", "no:cacheprovider", "--kready", "--kready-upgrade-to=1.37", "--collect-only",
                                 "-q", str(SUITE))
    # the rehearsal's in-place upgrade only with --kready-upgrade-rehearsal
    assert f"{UPGRADE_TESTS}/{UPGRADE_TESTS + 1} tests collected (1 deselected)" in with_it.stdout.str()
    assert "test_upgrade_rehearsal" not in with_it.stdout.str()
    # the other suites are not touched by the deselection
    other = pytester.runpytest("-p", "no:cacheprovider", "--kready", "--collect-only", "-q",
                               str(suites_dir() / "test_disruption.py"))
    assert "deselected" not in other.stdout.str() and "3 tests collected" in other.stdout.str()


def test_every_upgrade_check_carries_the_marker_and_a_check_id():
    import ast

    tree = ast.parse(SUITE.read_text())
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    ids = [d.args[0].value for t in tests for d in t.decorator_list
           if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "kready_check"]
    assert sorted(ids) == sorted([up.REMOVED_APIS_CHECK, up.CRD_CHECK, up.DRAIN_CHECK, up.WEBHOOKS_CHECK,
                                  up.SKEW_CHECK, up.BACKUP_CHECK, up.REHEARSAL_CHECK])
    assert len(tests) == UPGRADE_TESTS + 1
    assert "pytestmark = pytest.mark.kready_upgrade" in SUITE.read_text()


# --- the shipped tables --------------------------------------------------------------------------------------


def test_removed_api_table_names_its_sources_and_matches_the_pinned_modules():
    doc = yaml.safe_load((up.DATA_DIR / "removed-apis.yaml").read_text())
    assert up.DEPRECATION_GUIDE in doc["sources"]
    assert doc["pinned_modules"] == "v0." + K8S_VERSION.removeprefix("v1.")  # v1.36.2 → v0.36.2
    entry = up.table_entry("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas")
    assert entry["removed"] == "1.32" and entry["replacement"] == "flowcontrol.apiserver.k8s.io/v1"
    assert up.table_entry("autoscaling", "v2beta2", "horizontalpodautoscalers")["source"] == up.DEPRECATION_GUIDE
    assert up.table_entry("policy", "v1beta1", "pods", "eviction")["removed"] == "1.25"
    assert up.table_entry("extensions", "v1beta1", "ingresses", "status")["removed"] == "1.22"  # a subresource
    assert up.table_entry("", "v1", "endpoints") is None
    # every removal the guide lists up to v1.32 is in the table
    for gv, resource, removed in (("batch/v1beta1", "cronjobs", "1.25"), ("policy/v1beta1", "podsecuritypolicies",
                                                                         "1.25"),
                                  ("apiextensions.k8s.io/v1beta1", "customresourcedefinitions", "1.22"),
                                  ("apiregistration.k8s.io/v1beta1", "apiservices", "1.22"),
                                  ("storage.k8s.io/v1beta1", "csistoragecapacities", "1.27"),
                                  ("flowcontrol.apiserver.k8s.io/v1beta2", "flowschemas", "1.29"),
                                  ("extensions/v1beta1", "deployments", "1.16")):
        group, version = gv.rsplit("/", 1)
        assert up.table_entry(group, version, resource)["removed"] == removed, gv


def test_the_removed_api_table_is_what_the_modules_in_the_go_module_cache_give():
    """Re-runs tools/gen_removed_apis.py against the pinned staging modules in the Go module cache (CI has them:
    the Kubernetes build downloads them before the tests run)."""
    proc = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, check=False)
    assert proc.returncode != 2, f"the pinned staging modules are not in the Go module cache: {proc.stderr.strip()}"
    assert proc.returncode == 0, f"{proc.stderr.strip()}\n{proc.stdout[-4000:]}"


def test_the_generator_reads_lifecycle_files(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_removed_apis", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    pkg = tmp_path / "k8s.io" / "api@v0.99.0" / "things" / "v1beta1"
    pkg.mkdir(parents=True)
    (pkg / "register.go").write_text('package v1beta1\nconst GroupName = "things.example.io"\n')
    (pkg / "zz_generated.prerelease-lifecycle.go").write_text(
        'func (in *Widget) APILifecycleDeprecated() (major, minor int) {\n\treturn 1, 95\n}\n'
        'func (in *Widget) APILifecycleRemoved() (major, minor int) {\n\treturn 1, 98\n}\n'
        'func (in *Widget) APILifecycleReplacement() schema.GroupVersionKind {\n\treturn schema.GroupVersionKind'
        '{Group: "things.example.io", Version: "v1", Kind: "Widget"}\n}\n'
        'func (in *WidgetList) APILifecycleRemoved() (major, minor int) {\n\treturn 1, 98\n}\n'
        'func (in *Policy) APILifecycleRemoved() (major, minor int) {\n\treturn 1, 99\n}\n')
    entries = gen.lifecycle_entries(tmp_path / "k8s.io" / "api@v0.99.0", "k8s.io/api@v0.99.0")
    assert [(e["kind"], e["resource"], e["removed"], e["replacement"]) for e in entries] == [
        ("Policy", "policies", "1.99", None), ("Widget", "widgets", "1.98", "things.example.io/v1")]
    (pkg / "zz_generated.prerelease-lifecycle.go").write_text(
        'func (in *Widget) APILifecycleRemoved() (major, minor int) {\n\treturn removedIn()\n}\n')
    with pytest.raises(gen.LifecycleError):
        gen.lifecycle_entries(tmp_path / "k8s.io" / "api@v0.99.0", "k8s.io/api@v0.99.0")


def test_release_table_names_its_sources_and_holds_the_pinned_and_next_minor():
    table = up.release_table()
    assert table["sources"]["skew_policy"] == up.SKEW_POLICY
    assert table["sources"]["releases"].startswith(up.RELEASES)
    pinned = up.show_minor(up.minor_of(K8S_VERSION))
    nxt = f"1.{up.minor_of(K8S_VERSION)[1] + 1}"
    for minor in (pinned, nxt):
        entry = table["releases"][minor]
        released, eol = dt.date.fromisoformat(entry["released"]), dt.date.fromisoformat(entry["end_of_life"])
        assert released < eol, minor
    assert table["skew_policy"]["kubelet_older"] == 3 and table["skew_policy"]["minors_per_upgrade"] == 1


# --- upgrade.removed-apis ------------------------------------------------------------------------------------

METRICS = """# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="",removed_release="",resource="endpoints",subresource="",version="v1"} 1
apiserver_requested_deprecated_apis{group="networking.k8s.io",removed_release="1.37",resource="servicecidrs",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="resource.k8s.io",removed_release="1.38",resource="resourceclaims",subresource="status",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="widgets.example.com",removed_release="",resource="widgets",subresource="",version="v1beta1"} 1
apiserver_requested_deprecated_apis{group="gone.example.com",removed_release="",resource="things",subresource="",version="v1alpha1"} 1
apiserver_requested_deprecated_apisx{group="x"} 1
process_start_time_seconds 1.7647e+09
"""


def test_deprecated_series_are_read_from_prometheus_text():
    series = up.deprecated_series(METRICS)
    assert len(series) == 5
    assert series[1] == {"group": "networking.k8s.io", "version": "v1beta1", "resource": "servicecidrs",
                         "subresource": "", "removed_release": "1.37"}
    assert up.metric_declared(METRICS, up.DEPRECATED_METRIC) and not up.metric_declared(METRICS, "nope")
    assert up.api_server_started(METRICS) == 1.7647e9
    assert up.samples('m{a="x\\"y",b="z"} 2\n', "m") == [({"a": 'x"y', "b": "z"}, 2.0)]


def _keys(text=METRICS):
    return {up.series_key(s): {"removed_release": s["removed_release"]} for s in up.deprecated_series(text)}


CRDS = {("widgets.example.com", "widgets"): {"name": "widgets.widgets.example.com", "versions": {
    "v1": {"served": True, "deprecated": False, "storage": True},
    "v1beta1": {"served": True, "deprecated": True, "storage": False}}}}


def test_removed_by_the_target_fails_and_what_it_keeps_does_not():
    problems, kept = up.judge_requested(_keys(), CRDS, (1, 37))
    assert [(p["api"], p["why"]) for p in problems] == [
        ("networking.k8s.io/v1beta1 servicecidrs", "removed in 1.37"),
        ("widgets.example.com/v1beta1 widgets", "deprecated version of a CustomResourceDefinition (removal release "
                                                "not declared: its owner may stop serving it at any upgrade)")]
    assert problems[0]["source_of_removal"] == "API server"
    assert problems[1]["crd"] == "widgets.widgets.example.com" and problems[1]["replacement"] == "v1"
    assert {p["api"]: p["why"] for p in kept} == {
        "v1 endpoints": "deprecated, no removal planned",
        "gone.example.com/v1alpha1 things": "a CustomResourceDefinition that no longer exists (stale series)",
        "resource.k8s.io/v1beta1 resourceclaims/status": "removed in 1.38, after the target"}
    # one minor earlier nothing built-in is removed yet
    problems, _ = up.judge_requested(_keys(), CRDS, (1, 36))
    assert [p["api"] for p in problems] == ["widgets.example.com/v1beta1 widgets"]


def test_custom_resource_versions_cannot_be_judged_without_the_crds():
    _, kept = up.judge_requested(_keys(), None, (1, 37))
    assert {p["api"] for p in kept if p["why"] == up.UNJUDGED} == {"widgets.example.com/v1beta1 widgets",
                                                                   "gone.example.com/v1alpha1 things"}


def test_a_series_without_removed_release_is_looked_up_in_the_table():
    keys = {("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", ""): {"removed_release": ""}}
    problems, _ = up.judge_requested(keys, {}, (1, 37))
    assert problems[0]["removed_release"] == "1.32" and problems[0]["source_of_removal"] == "shipped table"
    assert problems[0]["replacement"] == "flowcontrol.apiserver.k8s.io/v1"


AUDIT = [
    json.dumps({"stage": "ResponseComplete", "annotations": {"k8s.io/deprecated": "true",
                                                             "k8s.io/removed-release": "1.37"},
                "objectRef": {"apiGroup": "networking.k8s.io", "apiVersion": "v1beta1", "resource": "servicecidrs"},
                "user": {"username": "system:serviceaccount:net:ipam"}, "userAgent": "ipam/1.2",
                "requestReceivedTimestamp": "2026-12-01T10:00:00.000000Z"}),
    json.dumps({"stage": "ResponseComplete", "annotations": {"k8s.io/deprecated": "true",
                                                             "k8s.io/removed-release": "1.37"},
                "objectRef": {"apiGroup": "networking.k8s.io", "apiVersion": "v1beta1", "resource": "servicecidrs"},
                "user": {"username": "system:serviceaccount:net:ipam"}, "userAgent": "ipam/1.2",
                "requestReceivedTimestamp": "2026-12-02T10:00:00.000000Z"}),
    json.dumps({"stage": "RequestReceived", "annotations": {"k8s.io/deprecated": "true"},
                "objectRef": {"apiGroup": "x", "apiVersion": "v1", "resource": "y"}}),
    "not json",
]


def test_the_audit_log_names_the_clients():
    found = up.summarise_audit(AUDIT)
    key = ("networking.k8s.io", "v1beta1", "servicecidrs", "")
    assert list(found) == [key]
    assert found[key]["requests"] == 2 and found[key]["last_seen"] == "2026-12-02T10:00:00.000000Z"
    problems, _ = up.judge_requested(found, {}, (1, 37))
    assert problems[0]["clients"] == [{"user": "system:serviceaccount:net:ipam", "user_agent": "ipam/1.2",
                                       "requests": 2}]


class FakeRun:
    def __init__(self, rc, out=b"", err=b""):
        self.returncode, self.stdout, self.stderr = rc, out, err


class FakeControlPlane:
    def __init__(self, proc):
        self.proc, self.argv = proc, None

    def run(self, argv, *, input=None, timeout=60):
        self.argv = argv
        return self.proc


def test_audit_log_is_searched_for_the_deprecated_annotation():
    cp = FakeControlPlane(FakeRun(0, "\n".join(AUDIT).encode()))
    found, err = up.audit_deprecated(cp, "/var/log/audit.log")
    assert err is None and cp.argv == ["grep", "-F", '"k8s.io/deprecated":"true"', "/var/log/audit.log"]
    assert sum(v["requests"] for v in found.values()) == 2
    assert up.audit_deprecated(FakeControlPlane(FakeRun(1)), "/x") == ({}, None)  # no match
    assert up.audit_deprecated(FakeControlPlane(FakeRun(2, err=b"grep: /x: Permission denied")), "/x") == (
        {}, "grep: /x: Permission denied")


def test_control_crd_has_a_deprecated_served_version_and_the_run_labels():
    crd = up.control_crd("12030649-fe032c", "ra")
    assert crd["metadata"]["name"] == "upgradeprobes.ra-12030649-fe032c.upgrade.kready.dev"
    assert crd["metadata"]["labels"]["kready.dev/run-id"] == "12030649-fe032c"
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert versions["v1beta1"]["deprecated"] and versions["v1beta1"]["served"] and versions["v1"]["storage"]
    stored = up.control_crd("r", "sv", storage="v1beta1")
    assert [v["name"] for v in stored["spec"]["versions"] if v["storage"]] == ["v1beta1"]


# --- upgrade.crd-stored-versions -----------------------------------------------------------------------------


def _crd(stored, versions):
    return {"metadata": {"name": "gadgets.example.com"}, "spec": {"versions": versions},
            "status": {"storedVersions": stored}}


def test_stored_versions_that_are_unserved_or_deprecated_are_problems():
    judged = up.judge_crd(_crd(["v1alpha1", "v1"], [{"name": "v1alpha1", "served": False, "storage": False},
                                                    {"name": "v1", "served": True, "storage": True}]))
    assert judged["problems"] == ["v1alpha1 is stored but no longer served"] and judged["storage"] == "v1"
    judged = up.judge_crd(_crd(["v1beta1"], [{"name": "v1beta1", "served": True, "storage": True,
                                               "deprecated": True}]))
    assert judged["problems"] == ["v1beta1 is stored and deprecated"]
    judged = up.judge_crd(_crd(["v1beta1", "v1"], [{"name": "v1beta1", "served": True, "storage": False},
                                                   {"name": "v1", "served": True, "storage": True}]))
    assert judged["problems"] == [] and judged["migrate"] == ["v1beta1 is stored besides the storage version v1"]
    assert up.judge_crd(_crd(["v1"], [{"name": "v1", "served": True, "storage": True}]))["problems"] == []


# --- upgrade.drain --------------------------------------------------------------------------------------------


def _pod(name, *, owner=None, phase="Running", mirror=False, ns="shop"):
    meta = {"name": name, "namespace": ns, "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def test_what_a_drain_evicts():
    assert up.drain_skip_reason(_pod("a", owner=("ReplicaSet", "web-1"))) is None
    assert up.drain_skip_reason(_pod("a")) is None  # a bare pod is evicted (with --force)
    assert up.drain_skip_reason(_pod("a", owner=("DaemonSet", "ds"))) == "DaemonSet pod"
    assert up.drain_skip_reason(_pod("a", mirror=True)) == "mirror pod"
    assert up.drain_skip_reason(_pod("a", phase="Succeeded")) == "finished pod"


class FakeDrainApi:
    """Nodes, pods, budgets and workloads for ``drain``; evictions answer from ``answers`` (pod → status)."""

    def __init__(self, pods, pdbs, answers, *, nodes=("n1",), replicas=1):
        self.pods, self.pdbs, self.answers, self.replicas = pods, pdbs, answers, replicas
        self.nodes = [{"metadata": {"name": n}, "spec": {},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for n in nodes]
        self.evicted = []

    def raw(self, method, path, *, query=None, body=None, **kw):
        from pytest_kready import errors

        if method == "POST" and path.endswith("/eviction"):
            assert query == {"dryRun": "All"} and body["deleteOptions"] == {"dryRun": ["All"]}
            pod = path.split("/")[-2]
            self.evicted.append(pod)
            status = self.answers.get(pod, 201)
            if status == 201:
                return {}
            message = {429: "Cannot evict pod as it would violate the pod's disruption budget.",
                       500: "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
                            "not support."}.get(status, "forbidden")
            raise errors.api_error_class(status)(message, status=status)
        if path == "/api/v1/nodes":
            return {"items": self.nodes}
        if path == "/api/v1/pods":
            return {"items": self.pods}
        if path == "/apis/policy/v1/poddisruptionbudgets":
            return {"items": self.pdbs}
        if "/replicasets/" in path:
            return {"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}]},
                    "spec": {"replicas": self.replicas}}
        if "/deployments/" in path:
            return {"spec": {"replicas": self.replicas}}
        raise AssertionError(path)


def _pdb(name, allowed, **spec):
    return {"metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}}


def test_a_budget_refusing_the_eviction_stalls_the_drain_and_is_named():
    pods = [_pod("web-1", owner=("ReplicaSet", "web-abc")), _pod("web-2", owner=("ReplicaSet", "web-abc")),
            _pod("ds-1", owner=("DaemonSet", "agent"))]
    api = FakeDrainApi(pods, [_pdb("web", 0, maxUnavailable=0)], {"web-1": 429, "web-2": 429}, nodes=("n1", "n2"),
                       replicas=2)
    result, other = up.drain(api, api, None)
    assert result.verdict is Verdict.FAIL
    assert (other.verdict, other.summary) == (Verdict.PASS, "node n2: no pod a drain would evict")
    assert "draining node n1 would stall: pod shop/web-1 (PodDisruptionBudget shop/web allows 0 disruption(s) " \
           "(2/2 healthy))" in result.summary
    assert api.evicted == ["web-1", "web-2"]  # never the DaemonSet pod
    assert result.evidence["not_evicted"] == {"DaemonSet pod": 1}
    assert result.evidence["stalls"][0]["budgets"][0]["maxUnavailable"] == 0
    assert "kubectl create --raw" in result.evidence["stalls"][0]["repro"]


def test_more_than_one_budget_stalls_too_and_an_unknown_answer_is_inconclusive():
    pods = [_pod("web-1", owner=("ReplicaSet", "web-abc"))]
    api = FakeDrainApi(pods, [_pdb("a", 1), _pdb("b", 1)], {"web-1": 500}, nodes=("n1", "n2"), replicas=3)
    result = up.drain(api, api, None)[0]
    assert result.verdict is Verdict.FAIL and "more than one PodDisruptionBudget" in result.summary
    api = FakeDrainApi(pods, [], {"web-1": 403}, nodes=("n1", "n2"), replicas=3)
    result = up.drain(api, api, None)[0]
    assert result.verdict is Verdict.INCONCLUSIVE and "HTTP 403" in result.summary


def test_single_replica_workloads_without_a_budget_are_downtime_not_a_failure():
    pods = [_pod("web-1", owner=("ReplicaSet", "web-abc")), _pod("job-1", owner=("Job", "nightly")),
            _pod("bare")]
    api = FakeDrainApi(pods, [], {}, nodes=("n1", "n2"), replicas=1)
    result = up.drain(api, api, None)[0]
    assert result.verdict is Verdict.PASS
    assert result.evidence["downtime_while_draining"] == [
        {"workload": "Deployment shop/web", "replicas": 1, "pods_on_node": 1, "severity": "low"}]
    assert result.evidence["unmanaged_pods"] == ["shop/bare"]
    assert "go down while it drains (severity low): Deployment shop/web" in result.summary


def test_on_a_single_node_a_budget_allowing_fewer_than_its_pods_stalls():
    pods = [_pod("web-1", owner=("ReplicaSet", "web-abc")), _pod("web-2", owner=("ReplicaSet", "web-abc"))]
    api = FakeDrainApi(pods, [_pdb("web", 1, maxUnavailable=1)], {}, nodes=("n1",), replicas=2)
    [result] = up.drain(api, api, None)
    assert result.verdict is Verdict.FAIL
    assert "no other schedulable node can take replacements" in result.summary


def test_drain_scope_by_namespace():
    pods = [_pod("web-1", owner=("ReplicaSet", "web-abc")), _pod("other", ns="kr-x-1")]
    api = FakeDrainApi(pods, [], {"web-1": 429, "other": 429}, nodes=("n1", "n2"), replicas=2)
    up.drain(api, api, {"shop"})
    assert api.evicted == ["web-1"]
    api.evicted.clear()
    up.drain(api, api, None, exclude=lambda ns: ns == "shop")
    assert api.evicted == ["other"]


# --- upgrade.webhooks -----------------------------------------------------------------------------------------


def test_labels_matching_a_selector():
    assert up.labels_matching(None) == {}
    sel = {"matchLabels": {"team": "a"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]}, {"key": "x", "operator": "Exists"},
        {"key": "skip", "operator": "DoesNotExist"}, {"key": "env", "operator": "NotIn", "values": ["prod"]}]}
    assert up.labels_matching(sel) == {"team": "a", "tier": "web", "x": "kready"}
    assert up.labels_matching({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "a", "operator": "In", "values": ["2"]}]}) is None


def test_requests_are_built_from_the_webhook_rules():
    hook = {"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods", "pods/status"], "scope": "Namespaced"}]}
    assert up.rule_candidates(hook, {}) == [("CREATE", "", "pods", "Namespaced")]
    wildcard = {"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}
    first = up.rule_candidates(wildcard, {})
    assert first[0] == ("CREATE", "", "configmaps", "Namespaced") and ("UPDATE", "", "configmaps", "Namespaced") in first
    crd = {("example.com", "widgets"): {"scope": "Cluster", "kind": "Widget", "version": "v1"}}
    custom = {"rules": [{"operations": ["UPDATE"], "apiGroups": ["example.com"], "apiVersions": ["*"],
                         "resources": ["widgets"]}]}
    assert up.rule_candidates(custom, crd) == [("UPDATE", "example.com", "widgets", "Cluster")]
    cluster_only = {"rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["configmaps", "namespaces"], "scope": "Cluster"}]}
    assert up.rule_candidates(cluster_only, {}) == [("CREATE", "", "namespaces", "Cluster")]
    assert up.rule_candidates({"rules": [{"operations": ["DELETE"], "apiGroups": [""], "resources": ["pods"]}]},
                              {}) == []


@pytest.mark.parametrize("group, resource", [
    ("", "configmaps"), ("", "pods"), ("apps", "deployments"), ("batch", "cronjobs"), ("", "namespaces"),
    ("rbac.authorization.k8s.io", "rolebindings"), ("policy", "poddisruptionbudgets")])
def test_probe_objects_carry_the_labels_and_no_secret_data(group, resource):
    obj = up._template(group, resource, "kready-upgrade-probe-x", None if resource == "namespaces" else "shop",
                       {"team": "a"}, "registry.k8s.io/e2e-test-images/agnhost:2.63.0")
    assert obj["metadata"]["labels"] == {"team": "a"} and obj["metadata"]["name"] == "kready-upgrade-probe-x"
    assert obj["apiVersion"].endswith("v1") and obj["kind"]
    assert up._template("example.com", "widgets", "x", "shop", {}, "img") is None


def test_kube_system_interception_is_called_out():
    ks = {"kubernetes.io/metadata.name": "kube-system"}
    assert up.intercepts_kube_system({"rules": [{"scope": "*"}]}, ks)
    assert not up.intercepts_kube_system({"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
        "rules": [{"scope": "*"}]}, ks)
    assert not up.intercepts_kube_system({"rules": [{"scope": "Cluster"}]}, ks)


@pytest.mark.parametrize("message, expected", [
    ('Internal error occurred: failed calling webhook "w.example.com": failed to call webhook: Post '
     '"https://svc.ns.svc:443/v?timeout=5s": no endpoints available for service "svc"',
     "no ready endpoints behind its Service"),
    ('failed calling webhook "w.example.com": failed to call webhook: Post "https://svc.ns.svc:443/v?timeout=5s": '
     'dial tcp 10.96.1.2:443: connect: network is unreachable', "unreachable (network is unreachable)"),
    ('failed calling webhook "w.example.com": failed to call webhook: Post "https://x/v?timeout=10s": context '
     'deadline exceeded', "timed out (timeoutSeconds 10)"),
    ('failed calling webhook "w.example.com": failed to call webhook: Post "https://x/v?timeout=10s": service '
     '"svc" not found', "its Service does not exist"),
    ('failed calling webhook "w.example.com": failed to call webhook: Post "https://x/v?timeout=10s": tls: failed '
     'to verify certificate: x509: certificate signed by unknown authority', "TLS/certificate error"),
    ('admission webhook "w.example.com" denied the request: no', None),
    ('failed calling webhook "other.example.com": context deadline exceeded', None),
])
def test_call_failures_are_classified(message, expected):
    assert up.classify_call(message, "w.example.com", 0.05, 10) == expected


def test_webhook_calls_are_counted_from_the_histogram():
    text = ('apiserver_admission_webhook_admission_duration_seconds_count{name="w",operation="CREATE",rejected="false",'
            'type="validating"} 3\n'
            'apiserver_admission_webhook_admission_duration_seconds_count{name="w",operation="UPDATE",rejected="true",'
            'type="validating"} 1\n'
            'apiserver_admission_webhook_admission_duration_seconds_sum{name="w",operation="CREATE",rejected="false",'
            'type="validating"} 0.25\n')
    assert up.webhook_calls(text) == {"w": (4.0, 0.25)}


# --- upgrade.version-skew on recorded objects -----------------------------------------------------------------

TODAY = dt.date(2026, 12, 3)


def _node(name, kubelet, proxy=""):
    return {"metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": kubelet,
                                                                "kubeProxyVersion": proxy}}}


def _seen(api="v1.36.2", nodes=(("n1", "v1.36.2"),), proxy=None, kcm=None, sched=None):
    return {"apiserver": [{"instance": "answering", "version": api}],
            "kubelet": dict(nodes), "kube-proxy": dict(proxy or {}),
            "kube-controller-manager": [{"instance": "cp", "version": kcm}] if kcm else [],
            "kube-scheduler": [{"instance": "cp", "version": sched}] if sched else []}


def test_recorded_nodes_within_the_policy_pass():
    nodes = [_node("n1", "v1.36.2"), _node("n2", "v1.34.5"), _node("n3", "v1.35.1-eks-1234")]
    seen = _seen(nodes=[(n["metadata"]["name"], n["status"]["nodeInfo"]["kubeletVersion"]) for n in nodes],
                 kcm="v1.36.2", sched="v1.36.2", proxy={"n1": "v1.36.2"})
    verdict, summary, ev = up.judge_skew("1.37", seen, today=TODAY)
    assert verdict is Verdict.PASS, summary
    assert ev["problems"] == [] and ev["current"] == "1.36"
    assert "1.36 → 1.37 is within the version-skew policy" in summary and "2027-10-28" in summary


class FakeVersionApi:
    """/version, Node objects, kube-system pods and the API server identity Leases, as recorded."""

    def __init__(self, nodes, pods=(), server="v1.36.2"):
        self.nodes, self.pods, self.server = list(nodes), list(pods), server

    def raw(self, method, path, *, query=None, **kw):
        assert method == "GET", (method, path)
        return {"/version": {"gitVersion": self.server}, "/api/v1/nodes": {"items": self.nodes},
                "/api/v1/namespaces/kube-system/pods": {"items": self.pods},
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases": {"items": [{}]}}[path]


def _system_pod(component, version, node="cp"):
    label = "k8s-app" if component == "kube-proxy" else "component"
    return {"metadata": {"name": f"{component}-{node}", "labels": {label: component}},
            "spec": {"nodeName": node, "containers": [{"image": f"registry.k8s.io/{component}:{version}"}]}}


def test_recorded_node_objects_outside_the_policy_fail_the_check():
    """The whole check (upgrade.version_skew) on recorded Node objects and kube-system pods: a kubelet 4 minors
    behind the target and a kube-proxy newer than the API server fail it; the same cluster within the policy
    passes."""
    pods = [_system_pod("kube-controller-manager", "v1.36.2"), _system_pod("kube-scheduler", "v1.36.2"),
            _system_pod("kube-proxy", "v1.36.2", "n1"), _system_pod("kube-proxy", "v1.37.1", "n2")]
    nodes = [_node("n1", "v1.36.2"), _node("n2", "v1.33.4")]
    result = up.version_skew(FakeVersionApi(nodes, pods), "1.37", today=TODAY)
    assert result.verdict is Verdict.FAIL
    assert "kubelet on n2 is v1.33.4: more than 3 minors older than 1.37" in result.summary
    assert "kube-proxy on n2 is v1.37.1, newer than the API server (1.36)" in result.summary
    assert result.evidence["seen"]["kube-controller-manager"] == [{"instance": "kube-controller-manager-cp",
                                                                  "version": "v1.36.2"}]
    assert result.remediation and result.references == (up.SKEW_POLICY, up.RELEASES)
    fixed = [_node("n1", "v1.36.2"), _node("n2", "v1.34.0")]
    pods[-1] = _system_pod("kube-proxy", "v1.34.0", "n2")
    assert up.version_skew(FakeVersionApi(fixed, pods), "1.37", today=TODAY).verdict is Verdict.PASS


def test_recorded_nodes_outside_the_policy_fail():
    # a kubelet four minors behind the target, one newer than the API server
    seen = _seen(nodes=[("old", "v1.33.9"), ("new", "v1.37.0"), ("ok", "v1.36.1")])
    verdict, summary, ev = up.judge_skew("1.37", seen, today=TODAY)
    assert verdict is Verdict.FAIL
    assert "kubelet on old is v1.33.9: more than 3 minors older than 1.37; upgrade it to 1.34 or newer" in summary
    assert "kubelet on new is v1.37.0, newer than the API server (1.36)" in summary
    assert not any("ok" in p for p in ev["problems"])


@pytest.mark.parametrize("target, seen, expected", [
    ("1.38", _seen(), "1.36 → 1.38 skips minor versions: upgrade to 1.37 first"),
    ("1.35", _seen(), "older than the control plane (1.36): downgrades are not supported"),
    ("1.37", _seen(kcm="v1.35.4"), "kube-controller-manager (cp) is v1.35.4: it must be at 1.36 before"),
    ("1.37", _seen(sched="v1.37.0"), "kube-scheduler (cp) is v1.37.0, newer than the API server"),
    ("1.37", _seen(proxy={"n1": "v1.32.0"}), "kube-proxy on n1 is v1.32.0: more than 3 minors older"),
])
def test_component_versions_outside_the_policy_fail(target, seen, expected):
    verdict, summary, _ = up.judge_skew(target, seen, today=TODAY)
    assert verdict is Verdict.FAIL and expected in summary, summary


def test_support_window_from_the_release_table():
    verdict, summary, ev = up.judge_skew("1.37", _seen(), today=dt.date(2027, 11, 1))
    assert verdict is Verdict.FAIL and "1.37 reached end of life on 2027-10-28" in summary
    verdict, _, ev = up.judge_skew("1.37", _seen(), today=dt.date(2027, 9, 1))
    assert verdict is Verdict.PASS and "maintenance mode since 2027-08-28" in ev["notes"][-1]
    verdict, _, ev = up.judge_skew("1.37", _seen(), table={**up.release_table(), "releases": {}}, today=TODAY)
    assert verdict is Verdict.PASS and "not in the shipped release table" in ev["notes"][-1]


def test_unreadable_versions_are_inconclusive_and_invisible_components_said():
    verdict, summary, _ = up.judge_skew("1.37", _seen(nodes=[("n1", None)]), today=TODAY)
    assert verdict is Verdict.INCONCLUSIVE and "could not be read" in summary
    _, _, ev = up.judge_skew("1.37", _seen(), today=TODAY)
    assert "kube-proxy, kube-controller-manager, kube-scheduler" in ev["notes"][0]


@pytest.mark.parametrize("image, version", [
    ("registry.k8s.io/kube-proxy:v1.36.2", "v1.36.2"), ("localhost:5000/kube-proxy:v1.35.0-eks", "v1.35.0-eks"),
    ("registry.k8s.io/kube-proxy@sha256:abc", None), ("localhost:5000/kube-proxy", None), (None, None)])
def test_versions_from_images(image, version):
    assert up.image_version(image) == version


@pytest.mark.parametrize("text, minor", [("v1.36.2", (1, 36)), ("1.37", (1, 37)), ("v1.35.1-eks-1234", (1, 35)),
                                         ("", None), (None, None), ("latest", None)])
def test_minor_of(text, minor):
    assert up.minor_of(text) == minor


def _fake_versions(root: Path, *versions: str) -> None:
    for v in versions:
        d = root / "local" / f"k8s-{v}" / "bin"
        d.mkdir(parents=True)
        (d / "kube-apiserver").write_text("")


def test_the_rehearsal_runs_every_check_before_and_after_the_upgrade(pytester, monkeypatch, tmp_path):
    """Collection alone shows the order: every check of every suite in phase before, the upgrade, every one after."""
    _fake_versions(tmp_path, "v1.36.2", "v1.37.2")
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path))
    pytester.makeini("[pytest]\n")
    other = suites_dir() / "test_disruption.py"
    r = pytester.runpytest("-p", "no:cacheprovider", "--kready", "--kready-upgrade-rehearsal=1.36.2:1.37.2",
                           "--collect-only", "-q", str(other), str(SUITE))
    ids = [line for line in r.stdout.lines if "::" in line]
    n = UPGRADE_TESTS + 3  # the upgrade checks and test_disruption's three
    assert len(ids) == 2 * n + 1, r.stdout.str()
    assert all(i.endswith("before]") for i in ids[:n]), ids
    assert ids[n].endswith("test_upgrade.py::test_upgrade_rehearsal"), ids
    assert all(i.endswith("after]") for i in ids[n + 1:]), ids
    assert [i.replace("before]", "") for i in ids[:n]] == [i.replace("after]", "") for i in ids[n + 1:]]


@pytest.mark.parametrize("args, message", [
    (["--kready-upgrade-rehearsal=1.36.2:1.38.0"], "one minor version at a time"),
    (["--kready-upgrade-rehearsal=1.36"], "OLD:NEW"),
    (["--kready-upgrade-rehearsal=1.36.2:1.37.2", "--kready-provider=kind"], "--kready-provider=local"),
    (["--kready-upgrade-rehearsal=1.36.2:1.37.2", "--kready-mode=readonly"], "disruptive"),
    (["--kready-upgrade-rehearsal=1.36.2:1.37.2", "--kready-upgrade-to=1.38"], "different targets"),
    (["--kready-upgrade-rehearsal=1.36.2:1.37.9"], "K8S_VERSION=v1.37.9 bash tools/build-local-binaries.sh"),
])
def test_rehearsal_usage_errors_are_one_line(pytester, monkeypatch, tmp_path, args, message):
    _fake_versions(tmp_path, "v1.36.2", "v1.37.2")
    monkeypatch.setenv("KREADY_CACHE", str(tmp_path))
    pytester.makeini("[pytest]\n")
    r = pytester.runpytest("-p", "no:cacheprovider", "--kready", "--collect-only", *args, str(SUITE))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    err = [line for line in r.stderr.lines if line.strip()]
    assert any(message in line for line in err), r.stderr.str()
    assert "Traceback" not in r.stderr.str()


def test_verdict_changes_pair_the_phases():
    from pytest_kready import rehearsal

    found = [
        {"check_id": "a", "target_key": "ns/x", "variant": "root-before", "verdict": "pass"},
        {"check_id": "a", "target_key": "ns/x", "variant": "root-after", "verdict": "fail"},
        {"check_id": "b", "target_key": "cluster", "variant": "before", "verdict": "pass"},
        {"check_id": "b", "target_key": "cluster", "variant": "after", "verdict": "pass"},
        {"check_id": "c", "target_key": "cluster", "variant": "before", "verdict": "pass"},
        {"check_id": "upgrade.version-skew", "target_key": "cluster", "variant": "mid-upgrade", "verdict": "pass"},
    ]
    assert rehearsal.verdict_changes(found) == [
        {"check_id": "a", "target_key": "ns/x", "variant": "root", "before": "pass", "after": "fail"},
        {"check_id": "c", "target_key": "cluster", "variant": None, "before": "pass", "after": None},
    ]


def test_rehearsal_windows_count_losses_and_the_longest_gap():
    from pytest_kready.rehearsal import Sample, window

    s = [Sample(0.0, True), Sample(1.0, False, "ConnectionRefusedError"), Sample(1.5, False), Sample(2.5, True),
         Sample(3.0, False), Sample(9.0, True)]
    assert window(s, 0.0, 2.9) == {"requests": 4, "failed": 2, "longest_gap_s": 1.5,
                                   "errors": ["ConnectionRefusedError"]}
    assert window(s, 2.9, 4.0)["longest_gap_s"] == 1.0  # still failing at the window's end
    assert window(s, 0, 10)["longest_gap_s"] == 6.0


def test_rehearsal_load_counts_answers_and_losses_against_a_real_server():
    """ServiceLoad runs `python -m pytest_kready.rehearsal --load` (here on this host instead of the node): a real
    HTTP server answers, then stops answering; both are seen, on this process's clock."""
    import http.server
    import threading
    import time as t

    from pytest_kready.rehearsal import ServiceLoad, window

    class Hostname(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pod-1")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostname)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def start(argv):
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    with ServiceLoad(start, "127.0.0.1", port, interval=0.02) as load:
        t0 = t.monotonic()
        deadline = t0 + 30
        while not any(s.ok for s in load.samples) and t.monotonic() < deadline:
            t.sleep(0.05)
        t.sleep(0.5)
        t_stop = t.monotonic()
        server.shutdown()
        server.server_close()
        t.sleep(0.6)
        t_end = t.monotonic()
    up = window(load.samples, t0, t_stop - 0.05)
    down = window(load.samples, t_stop + 0.1, t_end)
    assert up["requests"] >= 5 and up["failed"] == 0, up
    assert down["requests"] >= 5 and down["failed"] == down["requests"], down
    assert down["errors"] == ["ConnectionRefusedError"] and down["longest_gap_s"] > 0.3
    assert load.proc.poll() is not None  # stopped at the end of the with block


def test_rehearsal_api_watch_sees_the_api_server_go_and_come_back():
    import time as t

    from pytest_kready.rehearsal import ApiWatch, window

    state = {"up": True}

    class Api:
        def raw(self, method, path, timeout=None):
            assert (method, path) == ("GET", "/readyz")
            if not state["up"]:
                raise ConnectionRefusedError("down")
            return "ok"

    with ApiWatch(lambda: Api(), interval=0.01) as watch:
        t.sleep(0.2)
        t_down = t.monotonic()
        state["up"] = False
        t.sleep(0.3)
        t_up = t.monotonic()
        state["up"] = True
        t.sleep(0.2)
        t_end = t.monotonic()
    assert window(watch.samples, 0, t_down)["failed"] == 0
    gap = window(watch.samples, t_down, t_end)
    assert gap["failed"] >= 5 and 0.2 < gap["longest_gap_s"] < 0.6 and gap["errors"] == ["ConnectionRefusedError"]
    assert window(watch.samples, t_up + 0.05, t_end)["failed"] == 0
