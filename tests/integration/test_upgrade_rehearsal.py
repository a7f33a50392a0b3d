"""The upgrade rehearsal (issue 13) for real, once: ``--kready-provider=local --kready-upgrade-rehearsal=1.36.2:1.37.2``
on slot 5, with a team's manifests applied (--kready-apply) and its namespace named.

The run starts a v1.36.2 cluster, applies the manifests, runs the upgrade and RBAC suites (phase ``before``),
upgrades the cluster in place to v1.37.2 — etcd snapshot, kube-apiserver, controller-manager + scheduler, kubelet +
kube-proxy, each from the v1.37.2 binaries built with the machine's Go — with the reference workload under load
the whole time, runs the suites again (phase ``after``) and removes the cluster. What must be seen:

* ``upgrade.rehearsal`` passes with its figures: every step in order, the load answered hundreds of requests and
  lost none, the API server's own restart seen (``/readyz`` failed during the kube-apiserver step: the upgrade
  really restarted it), every workload — the team's too — Ready after;
* ``upgrade.version-skew`` judged in the mid-state (control plane v1.37.2, kubelet v1.36.2) passes, and after the
  upgrade the node runs kubelet v1.37.2;
* ``upgrade.backup`` passes in both phases: the etcd drill on a cluster the run made;
* every check has a verdict in both phases, and the JSON's ``rehearsal`` section lists the verdicts that changed;
* nothing is left on slot 5.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from pytest_kready.cache import cache_dir
from pytest_kready.local.bins import bin_dir as version_bin_dir
from pytest_kready.local.cluster import LocalCluster
from pytest_kready.local.layout import Layout
from pytest_kready.resources import suites_dir

pytestmark = [pytest.mark.integration, pytest.mark.ci_build("upgrade")]

OLD, NEW = "v1.36.2", "v1.37.2"
SLOT = "5"
SUITES = [str(suites_dir() / "test_upgrade.py"), str(suites_dir() / "test_rbac.py")]
TEAM = """\
apiVersion: v1
kind: Namespace
metadata: {name: team-rehearsal}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: team-rehearsal}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: api
        image: registry.k8s.io/e2e-test-images/agnhost:2.63.0
        imagePullPolicy: Never
        args: [netexec, --http-port=8080]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api, namespace: team-rehearsal}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: api}}
"""


def test_rehearsal_upgrades_in_place_under_load(pytester, monkeypatch):
    for version in (OLD, NEW):
        assert (version_bin_dir(version) / "kube-apiserver").is_file(), (
            f"build Kubernetes {version}: K8S_VERSION={version} bash tools/build-local-binaries.sh")
    monkeypatch.setenv("KREADY_LOCAL_SLOT", SLOT)
    monkeypatch.setenv("KREADY_CACHE", str(cache_dir()))  # pytester moves HOME: keep the real cache
    monkeypatch.delenv("KREADY_LOCAL_BIN_DIR", raising=False)
    manifest = pytester.path / "team.yaml"
    manifest.write_text(TEAM)
    out = pytester.path / f"rehearsal-{uuid.uuid4().hex[:6]}.json"
    pytester.makeini("[pytest]\n")
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess(
        *SUITES, "--kready", "--kready-provider=local", f"--kready-upgrade-rehearsal={OLD[1:]}:{NEW[1:]}",
        f"--kready-apply={manifest}", "--kready-namespaces=team-rehearsal", f"--kready-json={out}",
        "-p", "no:cacheprovider", f"--rootdir={pytester.path}", "-q", timeout=1500)
    took = time.monotonic() - t0
    text = "\n".join(result.outlines[-60:])
    assert out.is_file(), text
    doc = json.loads(out.read_text())
    findings = doc["findings"]

    rehearsal = [f for f in findings if f["check_id"] == "upgrade.rehearsal"]
    assert len(rehearsal) == 1, text
    r = rehearsal[0]
    ev = r["evidence"]
    print(f"\nrehearsal {OLD} -> {NEW}: whole run {took:.0f} s; {r['summary']}")
    for row in ev.get("steps", []):
        print(f"  {row['step']:<30} {row['seconds']:6.1f} s  lost {row['requests_lost']['failed']}/"
              f"{row['requests_lost']['requests']} (longest gap {row['requests_lost']['longest_gap_s']} s)  "
              f"API unavailable {row['api_unavailable']['failed']}/{row['api_unavailable']['requests']} polls "
              f"(longest {row['api_unavailable']['longest_gap_s']} s)")
    assert r["verdict"] == "pass", json.dumps(r, indent=1)[:3000]
    steps = [row["step"] for row in ev["steps"]]
    assert steps == ["etcd-snapshot", "kube-apiserver", "controller-manager+scheduler", "kubelet+kube-proxy"]
    assert ev["before_upgrade"]["requests"] > 10 and ev["before_upgrade"]["failed"] == 0  # the positive control
    assert ev["total"]["requests"] > 200 and ev["total"]["lost"] == 0
    api_step = ev["steps"][1]["api_unavailable"]
    assert api_step["failed"] > 0 and api_step["longest_gap_s"] > 0, "the API server was never seen down"
    assert ev["not_ready_after"] == []

    skew = {f["variant"]: f for f in findings if f["check_id"] == "upgrade.version-skew"}
    assert set(skew) == {"before", "mid-upgrade", "after"}, sorted(skew)
    assert skew["mid-upgrade"]["verdict"] == "pass", json.dumps(skew["mid-upgrade"], indent=1)[:2000]
    assert NEW in skew["mid-upgrade"]["summary"] and OLD in skew["mid-upgrade"]["summary"]
    assert NEW in json.dumps(skew["after"]["evidence"])  # the node runs the new kubelet after the upgrade

    backup = {f["variant"]: f["verdict"] for f in findings if f["check_id"] == "upgrade.backup"}
    assert backup == {"before": "pass", "after": "pass"}, backup

    phases: dict[str, set[str]] = {"before": set(), "after": set()}
    for f in findings:
        if f["variant"] in phases or (f["variant"] or "").endswith(("-before", "-after")):
            phases["before" if f["variant"].endswith("before") else "after"].add(f["check_id"])
    assert phases["before"] == phases["after"] and len(phases["before"]) >= 8, phases
    assert doc["rehearsal"]["from"] == OLD and doc["rehearsal"]["to"] == NEW
    assert isinstance(doc["rehearsal"]["verdict_changes"], list)
    assert "kready upgrade rehearsal" in result.stdout.str()
    assert LocalCluster(version_bin_dir(OLD), layout=Layout(slot=int(SLOT))).leftovers() == []
