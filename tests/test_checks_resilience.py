"""Unit tests of the resilience checks' logic (no cluster): load measurement and verdicts, the reference
workload, label selectors, PodDisruptionBudget and probe judgements, StorageClass selection, etcd snapshot
commands, and the options they add (--kready-rollout-target, --kready-rollout-path, --kready-storage-classes)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready import errors
from pytest_kready.checks import disruption as dis
from pytest_kready.checks import etcd as etcd
from pytest_kready import kube
from pytest_kready import load
from pytest_kready.checks import rollout as rollout
from pytest_kready.checks import storage as storage
from pytest_kready.findings import Verdict
from pytest_kready.providers.base import EtcdEndpoint
from pytest_kready.resources import suites_dir

# --- load ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output, expected", [
    ("HTTP/1.0 200 OK\r\nDate: x\r\nContent-Length: 9\r\n\r\nweb-abc-1", (True, 200, None, "web-abc-1")),
    ("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", (True, 302, None, "")),
    ("HTTP/1.0 503 Service Unavailable\r\n\r\nshutting down", (False, 503, "HTTP 503", "shutting down")),
    ("nc: can't connect to remote host (10.96.0.9): Connection refused\n", (False, None, "connection refused", None)),
    ("Terminated\n", (False, None, f"no answer within {load.REQUEST_TIMEOUT}s", None)),
    ("", (False, None, "connection closed without an answer (reset or empty)", None)),
    ("garbage", (False, None, "garbage", None)),
])
def test_classify(output, expected):
    assert load.classify(output) == expected


def test_http_command_sends_exactly_the_request_whatever_the_path(tmp_path):
    """Run the client's shell line here with a fake nc: printf arguments are never a format, values are quoted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nc").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat > {tmp_path}/request\n"
                                "printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello'\n")
    (bin_dir / "nc").chmod(0o755)
    path = "/a%s%d?x=1&y=$(touch pwned)`id`"
    line = load.http_command("10.96.0.7", 8080, path)
    proc = subprocess.run(["sh", "-c", line], capture_output=True, cwd=tmp_path,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=30)
    assert proc.stdout == b"HTTP/1.0 200 OK\r\n\r\nhello"
    assert (tmp_path / "request").read_bytes() == (
        f"GET {path} HTTP/1.0\r\nHost: 10.96.0.7\r\nUser-Agent: pytest-kready\r\nConnection: close\r\n\r\n").encode()
    assert (tmp_path / "args").read_text().split() == ["-w", "5", "10.96.0.7", "8080"]
    assert not (tmp_path / "pwned").exists()
    assert load.classify(proc.stdout.decode())[:2] == (True, 200)


def test_percentile_nearest_rank():
    assert kube.percentile([], 50) is None
    assert kube.percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (kube.percentile(values, 50), kube.percentile(values, 99), kube.percentile(values, 100)) == (50, 99, 100)


class FakeProxy:
    """An API client whose pod proxy answers with the given outputs (or raises)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def raw(self, method, path, *, query=None, timeout=None, **kw):
        self.calls.append((method, path, query))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_load_client_request_kinds():
    proxy = FakeProxy([json.dumps({"output": "HTTP/1.0 200 OK\r\n\r\nweb-1-a"}),
                       {"output": "nc: can't connect to remote host: Connection refused\n"},
                       errors.APIError("cmd failed", status=417, body={"output": "HTTP/1.0 500 oops\r\n\r\n"}),
                       errors.APIServerError("proxy error", status=503),
                       errors.ClusterUnreachable("gone")])
    client = load.LoadClient(proxy, "ns1")
    ok, refused, five, proxy_down, unreachable = (client.request("10.0.0.1", 80, "/") for _ in range(5))
    assert proxy.calls[0][1] == "/api/v1/namespaces/ns1/pods/kready-load-client:8080/proxy/shell"
    assert "nc -w 5 10.0.0.1 80" in proxy.calls[0][2]["cmd"]
    assert (ok.ok, ok.status, ok.body) == (True, 200, "web-1-a")
    assert (refused.ok, refused.error, refused.driver_error) == (False, "connection refused", None)
    assert (five.ok, five.status, five.error) == (False, 500, "HTTP 500")
    assert proxy_down.driver_error and not proxy_down.ok and proxy_down.error is None
    assert unreachable.driver_error.startswith("ClusterUnreachable")


def _samples(n, *, fail_at=(), driver_at=(), body=lambda i: None, step=0.05):
    out = []
    for i in range(n):
        if i in driver_at:
            out.append(load.Sample(i * step, 0.01, False, driver_error="APIServerError: 503"))
        elif i in fail_at:
            out.append(load.Sample(i * step, 0.02, False, error="connection refused"))
        else:
            out.append(load.Sample(i * step, 0.010 + (i % 10) / 1000, True, status=200, body=body(i)))
    return out


def test_summarize_counts_and_percentiles():
    stats = load.summarize(_samples(100, fail_at={10, 11}, driver_at={50}))
    assert stats["requests"] == 99 and stats["failed"] == 2 and stats["driver_errors"] == 1
    assert stats["failure_kinds"] == {"connection refused": 2}
    assert stats["first_failures"][0] == {"t_s": 0.5, "error": "connection refused", "status": None}
    assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"] <= stats["latency_ms"]["max"]
    assert stats["rate_rps"] == pytest.approx(100 / 4.95, rel=0.01)


def _measurement(samples, **kw):
    defaults = dict(t_rollout=1.0, t_done=4.0, old_hash="aaa", new_hash="bbb")
    return rollout.Measurement(samples=samples, **{**defaults, **kw})


def _web(i):
    return f"web-{'aaa' if i < 50 else 'bbb'}-x{i % 3}"


def test_judge_rollout_verdicts():
    ok = rollout.judge(_measurement(_samples(100, body=_web)), workload="w", check_reference=True)
    assert ok.verdict is Verdict.PASS and "0 failed requests" in ok.summary
    assert ok.evidence["served_by_revision"] == {"old": 50, "new": 50, "other": 0}
    assert ok.evidence["rollout_seconds"] == 3.0 and ok.references

    bad = rollout.judge(_measurement(_samples(100, fail_at={30, 31, 32}, body=_web)), workload="w",
                        check_reference=True)
    assert bad.verdict is Verdict.FAIL and "3 of 100 requests failed" in bad.summary
    assert "3 connection refused" in bad.summary and bad.remediation

    few = rollout.judge(_measurement(_samples(10, body=_web), t_done=0.3), workload="w", check_reference=True)
    assert few.verdict is Verdict.INCONCLUSIVE and "too little load" in few.summary

    driver = rollout.judge(_measurement(_samples(100, driver_at=set(range(0, 100, 5)), body=_web)), workload="w",
                           check_reference=True)
    assert driver.verdict is Verdict.INCONCLUSIVE and "API server proxy" in driver.summary

    short = rollout.judge(_measurement(_samples(100, body=_web), t_done=99.0), workload="w", check_reference=True)
    assert short.verdict is Verdict.INCONCLUSIVE and "span" in short.summary

    blind = rollout.judge(_measurement(_samples(100, body=lambda i: "web-aaa-x")), workload="w",
                          check_reference=True)
    assert blind.verdict is Verdict.INCONCLUSIVE and "both revisions" in blind.summary
    # a user's workload answers anything: no revision check there
    user = rollout.judge(_measurement(_samples(100)), workload="w", check_reference=False)
    assert user.verdict is Verdict.PASS

    stuck = rollout.judge(_measurement(_samples(100, body=_web), t_done=None, error="not reached"), workload="w",
                          check_reference=True)
    assert stuck.verdict is Verdict.INCONCLUSIVE and "did not complete" in stuck.summary


def test_reference_workload_safe_and_unsafe():
    dep, svc = rollout.reference_workload("run1", "img:1")
    shape = rollout.workload_shape(dep)
    assert shape["replicas"] == 3
    assert shape["readinessProbe"] == {"httpGet": {"path": "/readyz", "port": 8080}}
    assert shape["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080}}
    assert shape["preStop"] == {"exec": {"command": ["/bin/sleep", "5"]}}
    assert shape["terminationGracePeriodSeconds"] == 20 > rollout.PRESTOP_SECONDS + rollout.DRAIN_SECONDS
    assert shape["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}
    script = dep["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "--delay-shutdown=3" in script and script.startswith("sleep 2;")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["metadata"]["labels"]["kready.dev/run-id"] == "run1"
    unsafe = rollout.workload_shape(rollout.reference_workload("run1", "img:1", safe=False)[0])
    assert unsafe["readinessProbe"] is None and unsafe["livenessProbe"] is None and unsafe["preStop"] is None
    assert unsafe["strategy"] == shape["strategy"] and unsafe["terminationGracePeriodSeconds"] == 20
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]} and c["resources"]["limits"]


def test_served_by_maps_pod_names_to_revisions():
    samples = [load.Sample(0, 0.01, True, body=b) for b in ("web-aaa-1", "web-bbb-2", "web-ccc-3", "other-aaa-1")]
    samples.append(load.Sample(0, 0.01, False, error="x", body="web-aaa-1"))
    assert rollout.served_by(samples, "web", "aaa", "bbb") == {"old": 1, "new": 1, "other": 2}


def test_pick_service_prefers_http_ports_of_selecting_services():
    pods = {"app": "shop", "tier": "web"}
    services = [
        {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "selector": {"app": "shop"},
                                                    "ports": [{"port": 80}]}},
        {"metadata": {"name": "other"}, "spec": {"clusterIP": "10.0.0.2", "selector": {"app": "cart"},
                                                 "ports": [{"port": 80}]}},
        {"metadata": {"name": "manual"}, "spec": {"clusterIP": "10.0.0.3", "ports": [{"port": 80}]}},
        {"metadata": {"name": "shop"}, "spec": {"clusterIP": "10.0.0.4", "selector": {"app": "shop"}, "ports": [
            {"name": "metrics", "port": 9090}, {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "http", "port": 8080}]}},
    ]
    svc, port = rollout.pick_service(services, pods)
    assert svc["metadata"]["name"] == "shop" and port["port"] == 8080
    assert rollout.pick_service(services[:3], pods) is None


def test_rollout_state_done_only_when_every_pod_is_current():
    class Api:
        def __init__(self, pods):
            self.pods = pods

        def raw(self, method, path, query=None, **kw):
            if path.endswith("/deployments/web"):
                return {"metadata": {"generation": 2, "annotations": {rollout.REVISION_ANNOTATION: "2"}},
                        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
                        "status": {"observedGeneration": 2, "updatedReplicas": 3, "readyReplicas": 3,
                                   "availableReplicas": 3}}
            if path.endswith("/replicasets"):
                assert query == {"labelSelector": "app=web"}
                owner = [{"kind": "Deployment", "name": "web"}]
                return {"items": [{"metadata": {"ownerReferences": owner, "labels": {"pod-template-hash": h},
                                                "annotations": {rollout.REVISION_ANNOTATION: r}}}
                                  for h, r in (("old", "1"), ("new", "2"))]}
            return {"items": [{"metadata": {"labels": {"pod-template-hash": h}}} for h in self.pods]}

    terminating = rollout.rollout_state(Api(["new", "new", "new", "old"]), "ns", "web")
    assert terminating["current_hash"] == "new" and terminating["pods"] == {"new": 3, "old": 1}
    assert not terminating["done"]
    assert rollout.rollout_state(Api(["new", "new", "new"]), "ns", "web")["done"]


# --- selectors, budgets, probes --------------------------------------------------------------------------


def test_selector_matches():
    labels = {"app": "web", "tier": "front"}
    assert kube.selector_matches({}, labels) and not kube.selector_matches(None, labels)
    assert kube.selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not kube.selector_matches({"matchLabels": {"app": "db"}}, labels)
    exprs = [{"key": "tier", "operator": "In", "values": ["front", "back"]},
             {"key": "canary", "operator": "DoesNotExist"}, {"key": "app", "operator": "Exists"},
             {"key": "app", "operator": "NotIn", "values": ["db"]}]
    assert kube.selector_matches({"matchExpressions": exprs}, labels)
    assert not kube.selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn",
                                                           "values": ["front"]}]}, labels)
    assert kube.selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": exprs[:2]}) == \
        "a=1,b=2,tier in (front,back),!canary"


class FakeEvictions:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def raw(self, method, path, *, body=None, query=None, **kw):
        self.calls.append((method, path, body, query))
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"kind": "Status", "status": "Success"}


def _deploy(name="web", replicas=3, labels=None):
    labels = labels or {"app": name}
    return {"metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                                                 "template": {"metadata": {"labels": labels}}}}


def _pdb(name="web", allowed=1, healthy=3, desired=2, expected=3, selector=None, generation=1, observed=1):
    return {"metadata": {"name": name, "generation": generation},
            "spec": {"maxUnavailable": 1, "selector": selector or {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
                       "expectedPods": expected, "observedGeneration": observed}}


def _pods(n=3, labels=None):
    return [{"metadata": {"name": f"web-{i}", "labels": labels or {"app": "web"}},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}} for i in range(n)]


REFUSED = errors.APITooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", status=429)


@pytest.mark.parametrize("pdbs, answer, verdict, words", [
    ([], None, Verdict.FAIL, "has no PodDisruptionBudget"),
    ([_pdb("a"), _pdb("b", selector={})], None, Verdict.FAIL, "selected by 2 PodDisruptionBudgets"),
    ([_pdb(desired=0, allowed=3)], None, Verdict.FAIL, "lets every pod go at once"),
    ([_pdb(generation=2, observed=1)], None, Verdict.INCONCLUSIVE, "no current status"),
    ([_pdb(allowed=0)], REFUSED, Verdict.PASS, "refused (429)"),
    ([_pdb(allowed=0)], "accept", Verdict.FAIL, "accepted evicting pod web-0"),
    ([_pdb(allowed=0)], errors.APIServerError("boom", status=500), Verdict.INCONCLUSIVE, "not the budget's 429"),
    ([_pdb(allowed=1)], "accept", Verdict.PASS, "allows 1 disruption(s)"),
    ([_pdb(allowed=1)], REFUSED, Verdict.INCONCLUSIVE, "was refused"),
    ([_pdb(name="other", selector={"matchLabels": {"app": "db"}})], None, Verdict.FAIL, "has no PodDisruptionBudget"),
])
def test_pdb_judgement(pdbs, answer, verdict, words):
    evict = FakeEvictions(answer)
    result = dis._check_workload_pdb(evict, "ns1", "Deployment", _deploy(), pdbs, _pods())
    assert result.verdict is verdict, result.summary
    assert words in result.summary
    assert result.target_namespace == "ns1" and result.references
    if evict.calls:
        method, path, body, query = evict.calls[0]
        assert (method, path, query) == ("POST", "/api/v1/namespaces/ns1/pods/web-0/eviction", {"dryRun": "All"})
        assert body["deleteOptions"] == {"dryRun": ["All"]} and "dryRun=All" in result.repro
    if verdict is Verdict.FAIL and "no PodDisruptionBudget" in words:
        assert "kind: PodDisruptionBudget" in result.remediation and "app: \"web\"" in result.remediation


def test_pdb_blocks_drain_noted():
    result = dis._check_workload_pdb(FakeEvictions(REFUSED), "ns1", "Deployment", _deploy(),
                                     [_pdb(allowed=0, healthy=3, desired=3)], _pods())
    assert result.verdict is Verdict.PASS and result.evidence["blocks_drain"] is True
    assert "node drains will wait" in result.summary


def test_pdb_without_ready_pod_is_inconclusive():
    pods = _pods()
    for p in pods:
        p["status"]["conditions"][0]["status"] = "False"
    result = dis._check_workload_pdb(FakeEvictions(None), "ns1", "Deployment", _deploy(), [_pdb()], pods)
    assert result.verdict is Verdict.INCONCLUSIVE


def _workload(containers, labels=None):
    return {"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": labels or {"app": "web"}},
                                                               "spec": {"containers": containers}}}}


def test_probe_judgements():
    http = {"name": "http", "containerPort": 8080}
    healthz_num = {"httpGet": {"path": "/healthz", "port": 8080}}
    healthz_named = {"httpGet": {"path": "/healthz/", "port": "http", "scheme": "HTTP"}}
    readyz = {"httpGet": {"path": "/readyz", "port": 8080}}
    same = dis.judge_probes("ns", "Deployment", _workload([{"name": "c", "ports": [http],
                                                             "readinessProbe": healthz_named,
                                                             "livenessProbe": healthz_num}]), [])
    assert same.verdict is Verdict.FAIL and "same check (httpGet http://<pod>:8080/healthz)" in same.summary
    good = dis.judge_probes("ns", "Deployment", _workload([{"name": "c", "ports": [http], "readinessProbe": readyz,
                                                            "livenessProbe": healthz_num}]), [])
    assert good.verdict is Verdict.PASS and good.evidence["containers"][0]["readiness"].endswith("/readyz")
    no_liveness = dis.judge_probes("ns", "Deployment", _workload([{"name": "c", "ports": [http],
                                                                   "readinessProbe": readyz}]), [])
    assert no_liveness.verdict is Verdict.PASS
    missing = dis.judge_probes("ns", "StatefulSet", _workload([{"name": "c", "ports": [http]}]), [])
    assert missing.verdict is Verdict.FAIL and "no readinessProbe" in missing.summary and missing.remediation
    tcp_same = dis.judge_probes("ns", "Deployment", _workload([{"name": "c", "ports": [http],
                                                                "readinessProbe": {"tcpSocket": {"port": "http"}},
                                                                "livenessProbe": {"tcpSocket": {"port": 8080}}}]), [])
    assert tcp_same.verdict is Verdict.FAIL
    exec_diff = dis.judge_probes("ns", "Deployment", _workload([{"name": "c", "ports": [http],
                                                                 "readinessProbe": {"exec": {"command": ["ready"]}},
                                                                 "livenessProbe": {"exec": {"command": ["alive"]}}}]),
                                 [])
    assert exec_diff.verdict is Verdict.PASS
    worker = _workload([{"name": "c"}])
    assert dis.judge_probes("ns", "Deployment", worker, []) is None, "no port, no Service: not serving"
    service = {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
    selected = dis.judge_probes("ns", "Deployment", worker, [service])
    assert selected.verdict is Verdict.FAIL and selected.evidence["selected_by_services"] == ["web"]
    sidecar = _workload([{"name": "app", "ports": [http], "readinessProbe": readyz}, {"name": "log-shipper"}])
    assert dis.judge_probes("ns", "Deployment", sidecar, []).verdict is Verdict.PASS


# --- storage ----------------------------------------------------------------------------------------------


def test_storage_classes_to_check():
    class Api:
        def raw(self, method, path, query=None, **kw):
            assert path == "/apis/storage.k8s.io/v1/storageclasses"
            return {"items": [
                {"metadata": {"name": "standard", "annotations": {storage.DEFAULT_ANNOTATIONS[0]: "true"}}},
                {"metadata": {"name": "old", "annotations": {storage.DEFAULT_ANNOTATIONS[1]: "true"}}},
                {"metadata": {"name": "fast"}}, {"metadata": {"name": "slow", "annotations": {
                    storage.DEFAULT_ANNOTATIONS[0]: "false"}}}]}

    names, missing, by_name = storage.classes_to_check(Api(), ("fast", "standard", "nope"))
    assert names == ["standard", "old", "fast"] and missing == ["nope"] and set(by_name) == {"standard", "old",
                                                                                           "fast", "slow"}


def test_storage_objects():
    pvc = storage._pvc("run1", "data-2", "standard", volume="pv-1", access_modes=["ReadWriteOncePod"])
    assert pvc["spec"] == {"storageClassName": "standard", "accessModes": ["ReadWriteOncePod"],
                           "resources": {"requests": {"storage": "16Mi"}}, "volumeName": "pv-1"}
    pod = storage._pod("run1", "writer", "img:1", "data-1", "echo x")
    assert pod["spec"]["securityContext"]["fsGroup"] == 65534 and pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-1"}}]
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pytest-kready"


def test_storage_throwaway_copy_keeps_provisioning_fields_not_the_default_annotation():
    sc = {"metadata": {"name": "fast", "labels": {"team": "x"}, "annotations": {storage.DEFAULT_ANNOTATIONS[0]: "true"},
                       "uid": "u", "resourceVersion": "9"},
          "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}, "reclaimPolicy": "Retain",
          "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True, "mountOptions": ["noatime"],
          "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]}]}
    copy = storage.throwaway_copy(sc, "kr-sc-fast-r1-1")
    assert copy == {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": "kr-sc-fast-r1-1", "annotations": {storage.COPY_OF: "fast"}},
                    "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}, "reclaimPolicy": "Retain",
                    "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True,
                    "mountOptions": ["noatime"], "allowedTopologies": sc["allowedTopologies"]}
    copy["parameters"]["type"] = "io2"
    assert sc["parameters"] == {"type": "gp3"}, "a copy, not the original's dicts"
    # the API's default reclaim policy, made explicit
    assert storage.throwaway_copy({"metadata": {"name": "s"}, "provisioner": "p"}, "c")["reclaimPolicy"] == "Delete"


def _claim(uid="claim-uid", created="2025-01-01T10:00:00Z"):
    return {"metadata": {"name": "data-1", "namespace": "ns", "uid": uid, "creationTimestamp": created},
            "spec": {"volumeName": "pv-1"}}


def _volume(*, by="rancher.io/local-path", cls="kr-sc-standard-r1-1", ref=None, created="2025-01-01T10:00:05Z"):
    ann = {storage.PROVISIONED_BY: by} if by else {}
    return {"metadata": {"name": "pv-1", "uid": "pv-uid", "annotations": ann, "creationTimestamp": created},
            "spec": {"storageClassName": cls, "persistentVolumeReclaimPolicy": "Retain",
                     "claimRef": {"namespace": "ns", "name": "data-1", "uid": "claim-uid"} if ref is None else ref},
            "status": {"phase": "Bound"}}


@pytest.mark.parametrize("pv, why", [
    (_volume(), None),
    (None, "no volume"),
    (_volume(by=None), "annotation pv.kubernetes.io/provisioned-by is None"),
    (_volume(by="other.io/x"), "'other.io/x', not the class's provisioner"),
    (_volume(cls="standard"), "storageClassName is 'standard'"),
    (_volume(ref={"namespace": "ns", "name": "data-1"}), "claimRef"),
    (_volume(ref={"namespace": "ns", "name": "data-1", "uid": "other"}), "claimRef"),
    (_volume(ref={"namespace": "other", "name": "data-1", "uid": "claim-uid"}), "claimRef"),
    (_volume(created="2025-01-01T09:59:59Z"), "before the claim"),
])
def test_storage_own_volume_is_verified(pv, why):
    got = storage.not_own_volume(pv, _claim(), "kr-sc-standard-r1-1", "rancher.io/local-path")
    assert got is None if why is None else why in got


class _StorageApi:
    """Enough of the API for check_reclaim: the claim binds ``volume`` (a pre-made one in the tests below) and the
    writer pod succeeds. Records every write."""

    def __init__(self, volume: dict):
        self.objects = {"/api/v1/persistentvolumes/pv-1": volume}
        self.writes: list[tuple[str, str]] = []

    def resource(self, api_version, kind):
        from pytest_kready.client import Resource

        plural = {"PersistentVolumeClaim": "persistentvolumeclaims", "Pod": "pods"}[kind]
        return Resource(api_version, kind, plural, True)

    def raw(self, method, path, body=None, query=None, **kw):
        if method == "GET":
            if path not in self.objects:
                raise errors.APINotFound("not found", status=404)
            return self.objects[path]
        self.writes.append((method, path))
        if method == "POST":
            name = body["metadata"]["name"]
            if body["kind"] == "PersistentVolumeClaim":
                body["metadata"].update(uid="claim-uid", creationTimestamp="2025-01-01T10:00:00Z")
                body["spec"]["volumeName"] = "pv-1"
            else:
                body["status"] = {"phase": "Succeeded"}
            self.objects[f"{path}/{name}"] = body
            return body
        if method == "DELETE":
            self.objects.pop(path, None)
        return {}


def test_storage_a_premade_volume_bound_to_the_claim_is_never_touched():
    premade = _volume(by=None, cls="kr-sc-standard-r1-1", created="2024-06-01T00:00:00Z")
    api = _StorageApi(premade)
    sc = {"metadata": {"name": "standard"}, "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain"}
    result = storage.check_reclaim(api, "ns", "r1", "img:1", "standard", sc, claim_class="kr-sc-standard-r1-1",
                                   timeout=5)
    assert result.verdict is Verdict.INCONCLUSIVE and "StorageClass standard" in result.summary
    assert "not touched" in result.summary and storage.PROVISIONED_BY in result.summary
    assert not [w for w in api.writes if "/persistentvolumes/" in w[1]], api.writes
    assert "left untouched" in result.evidence["cleanup_volume"] or "no volume" in result.evidence["cleanup_volume"]
    assert ("DELETE", "/api/v1/namespaces/ns/persistentvolumeclaims/data-1") in api.writes


def test_storage_class_without_a_provisioner_is_inconclusive_and_creates_nothing():
    class Cluster:
        def __getattr__(self, name):
            raise AssertionError(f"cluster.{name} used")

    result = storage.check_class(Cluster(), "ns", "local", {"metadata": {"name": "local"},
                                                              "provisioner": "kubernetes.io/no-provisioner"})
    assert result.verdict is Verdict.INCONCLUSIVE and "StorageClass local has no dynamic provisioner" in result.summary


def test_storage_class_copy_is_labelled_tracked_and_released(monkeypatch):
    from pytest_kready.cleanup import Ref

    calls = []

    class Cluster:
        run_id = "r1"
        settings = type("S", (), {"image": "img:1"})()

        def namespace_name(self, prefix):
            return f"kr-{prefix}-r1-1"

        def track(self, ref):
            calls.append(("track", ref))
            return ref

        def create(self, obj):
            calls.append(("create", obj["metadata"]["name"]))
            return {**obj, "metadata": {**obj["metadata"], "labels": {"kready.dev/run-id": "r1"}}}

        def api_client(self):
            return "api"

        def release(self, refs, failed):
            calls.append(("release", refs, failed))

    def fake_reclaim(api, namespace, run_id, image, storage_class, sc, *, claim_class, timeout):
        calls.append(("reclaim", storage_class, claim_class))
        from pytest_kready.findings import CheckResult

        return CheckResult(Verdict.FAIL, f"StorageClass {storage_class} has reclaim policy Delete",
                           evidence={"storage_class": storage_class})

    monkeypatch.setattr(storage, "check_reclaim", fake_reclaim)
    sc = {"metadata": {"name": "standard"}, "provisioner": "p", "reclaimPolicy": "Delete",
          "volumeBindingMode": "WaitForFirstConsumer"}
    result = storage.check_class(Cluster(), "ns", "standard", sc)
    ref = Ref("storage.k8s.io/v1", "StorageClass", "kr-sc-standard-r1-1")
    assert calls == [("track", ref), ("create", "kr-sc-standard-r1-1"),
                     ("reclaim", "standard", "kr-sc-standard-r1-1"), ("release", [ref], True)]
    assert result.evidence["storage_class"] == "standard"
    assert result.evidence["copy"] == {"name": "kr-sc-standard-r1-1", "labels": {"kready.dev/run-id": "r1"},
                                       "provisioner": "p", "reclaimPolicy": "Delete",
                                       "volumeBindingMode": "WaitForFirstConsumer"}

    def crash(*a, **kw):
        raise RuntimeError("boom")

    calls.clear()
    monkeypatch.setattr(storage, "check_reclaim", crash)
    with pytest.raises(RuntimeError):
        storage.check_class(Cluster(), "ns", "standard", sc)
    assert calls[-1] == ("release", [ref], True), "the copy is released even when the check crashes"


# --- etcd --------------------------------------------------------------------------------------------------


def test_snapshot_on_the_local_provider_runs_etcdctl_on_the_host():
    class LocalLike:
        etcd = EtcdEndpoint("https://127.0.0.1:2379", "/pki/ca.crt", "/pki/c.crt", "/pki/c.key",
                            "/var/lib/kready-local/kready3/etcd/restored-17")

        def __init__(self):
            self.calls = []

        def run(self, argv, *, input=None, timeout=60):
            self.calls.append((argv, timeout))
            return subprocess.CompletedProcess(argv, 0, b"", b"")

    cp = LocalLike()
    save, restore = etcd.snapshot_paths(cp, "s.db")
    assert save == restore == "/var/lib/kready-local/kready3/etcd/s.db", "beside the data directory, not in it"
    etcd.save_snapshot(cp, save)
    assert cp.calls == [(["etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/pki/ca.crt",
                          "--cert=/pki/c.crt", "--key=/pki/c.key", "snapshot", "save", save], 120)]


# --- options ---------------------------------------------------------------------------------------------

SHOW = """
import json
from pytest_kready.session import session_of

def test_show(pytestconfig):
    s = session_of(pytestconfig).settings
    print("SETTINGS=" + json.dumps({"rollout_target": s.rollout_target, "rollout_path": s.rollout_path,
                                    "storage_classes": s.storage_classes}))
"""


def _settings(pytester, *args):
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest(str(pytester.path / "test_show.py"), "-s", "-p", "no:cacheprovider", *args)
    return result


def test_options_default_and_set(pytester):
    result = _settings(pytester, "--kready")
    line = next(l for l in result.outlines if "SETTINGS=" in l)
    assert json.loads(line.split("SETTINGS=", 1)[1]) == {"rollout_target": None, "rollout_path": "/",
                                                         "storage_classes": []}
    result = _settings(pytester, "--kready", "--kready-rollout-target=shop/web", "--kready-rollout-path=/healthz?a=1",
                       "--kready-storage-classes=fast, standard,fast")
    line = next(l for l in result.outlines if "SETTINGS=" in l)
    assert json.loads(line.split("SETTINGS=", 1)[1]) == {"rollout_target": ["shop", "web"],
                                                         "rollout_path": "/healthz?a=1",
                                                         "storage_classes": ["fast", "standard"]}


def test_options_from_ini(pytester):
    pytester.makeini("[pytest]\nkready_rollout_target = shop/web\nkready_storage_classes = fast\n")
    result = _settings(pytester, "--kready")
    line = next(l for l in result.outlines if "SETTINGS=" in l)
    assert json.loads(line.split("SETTINGS=", 1)[1])["rollout_target"] == ["shop", "web"]


@pytest.mark.parametrize("arg, message", [
    ("--kready-rollout-target=web", "give the Deployment as NAMESPACE/NAME"),
    ("--kready-rollout-target=Shop/web", "give the Deployment as NAMESPACE/NAME"),
    ("--kready-rollout-path=healthz", "give a URL path starting with /"),
    ("--kready-rollout-path=/a b", "give a URL path starting with /"),
    ("--kready-rollout-path=/a'b", "give a URL path starting with /"),
    ("--kready-storage-classes=Fast_SSD", "'Fast_SSD' is not a valid StorageClass name"),
])
def test_bad_options_are_usage_errors(pytester, arg, message):
    result = _settings(pytester, "--kready", arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_suites_declare_their_check_ids_and_modes(pytester):
    suites = suites_dir()
    result = pytester.runpytest("--kready", "--collect-only", "-q", "-p", "no:cacheprovider",
                                *(str(suites / f) for f in ("test_rollout.py", "test_disruption.py",
                                                            "test_storage.py", "test_etcd.py")))
    assert result.ret == 0, result.stdout.str()
    names = {l.split("::")[-1] for l in result.outlines if "::" in l}
    assert names == {"test_rollout_zero_downtime", "test_rollout_zero_downtime_target", "test_pdb_coverage",
                     "test_pdb_eviction_refused", "test_probes_separate", "test_pvc_reclaim",
                     "test_etcd_snapshot_restore"}
