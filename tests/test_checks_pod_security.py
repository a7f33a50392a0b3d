"""Unit tests of the pod-security controls (no cluster): the controls come from the Pod Security Admission policy
registry of the pinned Kubernetes version (the committed data file and its generator, tools/gen_psa_controls.py),
every control in force there has an attack pod, the probe- and lifecycle-host attack pods, and the CheckResults
the suite records."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_kready import attempts, client
from pytest_kready.checks import pod_security as ps
from pytest_kready.findings import CheckResult, Verdict

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "tools" / "gen_psa_controls.py"
DOCS = ROOT / "docs" / "checks-pod-security.md"
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
PSA_MESSAGE = ('pods "x" is forbidden: violates PodSecurity "restricted:latest": probe or lifecycle host (container '
               '"probe" uses probe or lifecycle host "169.254.169.254")')


def _generator():
    """tools/gen_psa_controls.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_psa_controls", GENERATOR)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _generator()


# --- the data is the registry of the pinned version -----------------------------------------------------------


def test_the_committed_controls_are_those_of_the_pinned_kubernetes_version():
    reg = ps.REGISTRY
    assert reg.kubernetes_version == ps.PINNED_K8S_VERSION, (
        f"{ps.registry_file().name} is for {reg.kubernetes_version}, the pinned version is {ps.PINNED_K8S_VERSION}: "
        "run tools/gen_psa_controls.py")
    assert reg.module == "k8s.io/pod-security-admission"
    assert reg.module_version == gen.module_version(ps.PINNED_K8S_VERSION)
    assert ps.registry_file() == gen.data_file(ps.PINNED_K8S_VERSION)
    build = (ROOT / "tools" / "build-local-binaries.sh").read_text()
    assert f"K8S_VERSION=${{K8S_VERSION:-{ps.PINNED_K8S_VERSION}}}" in build  # the version the build downloads
    assert len(reg.applicable) >= 19  # what v1.36 registers: the list never shrinks silently
    assert {c.level for c in reg.checks} == {"baseline", "restricted"}


def test_the_committed_controls_are_what_the_module_in_the_go_module_cache_gives():
    """Re-runs the generator against k8s.io/pod-security-admission of the pinned version in the Go module cache
    (CI has it: the Kubernetes build downloads it before the tests run)."""
    proc = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, check=False)
    assert proc.returncode != 2, (
        "k8s.io/pod-security-admission of the pinned Kubernetes version is not in the Go module cache, so the "
        f"committed controls cannot be compared with it: run tools/build-local-binaries.sh (or "
        f"`tools/gen_psa_controls.py --download`) first. {proc.stderr.strip()}")
    assert proc.returncode == 0, f"{proc.stderr.strip()}\n{proc.stdout[-4000:]}"


def test_every_registry_check_in_force_has_an_attack_pod():
    gaps = ps.uncovered(ps.REGISTRY, ps.ATTACKS)
    assert not gaps, ("checks of the Pod Security Admission registry of Kubernetes "
                      f"{ps.REGISTRY.kubernetes_version} no attack pod covers: "
                      + ", ".join(f"{c.id} ({c.level}, since {c.applies_from})" for c in gaps)
                      + " — add an attack pod naming it in psa=(...) and its Standards name to PSA_CONTROL_NAMES")


def test_every_registry_check_has_its_standards_name():
    unnamed = [c.id for c in ps.REGISTRY.applicable if c.id not in ps.PSA_CONTROL_NAMES]
    assert not unnamed, f"registry checks without a Pod Security Standards name in PSA_CONTROL_NAMES: {unnamed}"


def test_attacks_name_only_registry_checks_of_their_own_level():
    assert ps.unknown(ps.REGISTRY, ps.ATTACKS) == {}, "attack pods naming checks the registry does not have"
    for a in ps.ATTACKS:
        assert a.psa, f"{a.name} names no registry check"
        assert a.level in {ps.REGISTRY.level_of(i) for i in a.psa}, a.name


def test_the_controls_are_derived_from_the_registry():
    assert ps.PSS_CONTROLS == ps.pss_controls(ps.REGISTRY)
    assert "Host Probes / Lifecycle Hooks" in ps.PSS_CONTROLS["baseline"]
    covered = {cover for a in ps.ATTACKS for cover in a.covers}
    for level, controls in ps.PSS_CONTROLS.items():
        for control in controls:
            assert (level, control) in covered, f"{level} control {control} has no attack pod"


def _with(registry: ps.PsaRegistry, *checks: ps.PsaCheck) -> ps.PsaRegistry:
    return ps.PsaRegistry(registry.module, registry.module_version, registry.kubernetes_version,
                          registry.policy_version, registry.checks + checks)


def test_a_new_control_in_the_registry_is_a_gap_not_silence():
    new = ps.PsaCheck("hostUsersFoo", "baseline", "v1.36", True, ("spec.foo",))
    grown = _with(ps.REGISTRY, new)
    assert ps.uncovered(grown, ps.ATTACKS) == [new]
    assert "hostUsersFoo" in ps.pss_controls(grown)["baseline"]  # shown by its ID: a docs row without attack pods
    # one that is experimental or not yet in force at the pinned version is not required
    later = ps.PsaCheck("notYet", "restricted", None, False)
    assert ps.uncovered(_with(ps.REGISTRY, later), ps.ATTACKS) == []
    assert "notYet" not in ps.pss_controls(_with(ps.REGISTRY, later))["restricted"]


def test_the_missing_probe_host_control_would_have_been_caught():
    """The attack list of before (no probe-host attack) against the v1.36 registry: the gap is reported."""
    before = [a for a in ps.ATTACKS if a.check_id != "pod-security.probe-host"]
    assert [c.id for c in ps.uncovered(ps.REGISTRY, before)] == ["hostProbesAndHostLifecycle"]


# --- attack pods set the fields their checks restrict ---------------------------------------------------------


def _leaves(path: tuple, value) -> list[tuple[str, object]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(path + (k,), v)]
    if isinstance(value, list) and value:
        return [leaf for v in value for leaf in _leaves(path + (0,), v)]
    return [(_field(path), value)]


def _field(path: tuple) -> str:
    return "".join("[*]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _touched(attack: ps.Attack) -> list[tuple[str, object]]:
    out = []
    for op in attack.ops:
        out += _leaves(op.path, op.value) if op.action == "set" else [(_field(op.path), None)]
    return out


def _related(a: str, b: str) -> bool:
    short, long_ = sorted((a, b), key=len)
    return long_ == short or long_.startswith((short + ".", short + "["))


@pytest.mark.parametrize("attack", ps.ATTACKS, ids=lambda a: a.name)
def test_an_attack_touches_a_field_each_of_its_registry_checks_restricts(attack):
    for check_id in attack.psa:
        fields = ps.REGISTRY.get(check_id).restricted_fields
        assert fields, f"{check_id}: the registry data lists no restricted fields"
        touched = [f for f, _ in _touched(attack)]
        assert any(_related(t, f) for t in touched for f in fields), (attack.name, check_id, touched)


PROBE_HOST = [a for a in ps.ATTACKS if a.check_id == "pod-security.probe-host"]


def test_probe_host_attacks_cover_every_field_of_the_registry_check():
    fields = set(ps.REGISTRY.get("hostProbesAndHostLifecycle").restricted_fields)
    in_containers = {f for f in fields if f.startswith("spec.containers[*].")}
    assert len(in_containers) == 10  # 3 probes x (httpGet, tcpSocket) + 2 hooks x (httpGet, tcpSocket)
    hosts = {f: v for a in PROBE_HOST for f, v in _touched(a) if f.endswith(".host")}
    assert in_containers <= set(hosts), sorted(in_containers - set(hosts))
    assert any(f in fields for f in hosts if f.startswith("spec.initContainers[*].")), "no init container attack"
    assert all(isinstance(v, str) and v for v in hosts.values())
    # one field per attack pod: a policy refusing one field cannot hide a gap in another
    for a in PROBE_HOST:
        assert len([f for f, _ in _touched(a) if f.endswith(".host")]) == 1, a.name


@pytest.mark.parametrize("attack", PROBE_HOST, ids=lambda a: a.name)
def test_a_probe_host_attack_pod_is_valid_for_the_api(attack):
    filled = ps.attacks_for_image(IMAGE)[attack.name]
    pod = filled.build(attempts.compliant_pod(IMAGE))
    containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
    assert all(c["image"] == IMAGE for c in containers)
    for c in pod["spec"].get("initContainers", []):
        assert c["restartPolicy"] == "Always"  # only a sidecar may carry probes and hooks
    handlers = [h for c in containers for h in
                [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
                + list((c.get("lifecycle") or {}).values()) if h]
    assert len(handlers) == 1
    (kind, action), = handlers[0].items()
    assert action["host"] and 0 < action["port"] < 65536
    if kind == "httpGet":
        assert action["path"].startswith("/")  # the API requires a path
    assert attack.level == "baseline" and attack.severity in ("medium", "low")
    assert filled.still_present(pod)


def test_a_probe_host_attack_admitted_fails_and_refused_by_pod_security_admission_passes():
    attack = ps.ATTACKS_BY_NAME["livenessProbe-httpGet-host"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    ok = attempts.Attempt(attempts.ACCEPTED, 201, namespace="ns")
    assert ps.judge_attack(attack, ok, attempts.Attempt(attempts.ACCEPTED, 201, obj=pod, namespace="ns"))[0] \
        is Verdict.FAIL
    refused = attempts.classify(client.Response(403, {"kind": "Status", "message": PSA_MESSAGE, "code": 403}),
                                namespace="ns")
    verdict, why = ps.judge_attack(attack, ok, refused)
    assert verdict is Verdict.PASS and "Pod Security Admission (restricted:latest)" in why
    # a mutating policy clearing the host neutralises the attack
    cleared = copy.deepcopy(pod)
    cleared["spec"]["containers"][0]["livenessProbe"]["httpGet"].pop("host")
    assert not attack.still_present(cleared)


# --- the results the suite records ----------------------------------------------------------------------------


def test_attack_result_carries_request_answer_repro_remediation_and_references():
    attack = ps.ATTACKS_BY_NAME["preStop-httpGet-host"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    ok = attempts.Attempt(attempts.ACCEPTED, 201, namespace="team-a")
    admitted = attempts.Attempt(attempts.ACCEPTED, 201, obj=pod, namespace="team-a")
    r = ps.attack_result(attack, pod, "team-a", ok, admitted)
    assert isinstance(r, CheckResult) and r.verdict is Verdict.FAIL and r.target_namespace == "team-a"
    assert r.severity == attack.severity and r.references == attack.references
    assert r.request["path"] == "/api/v1/namespaces/team-a/pods" and r.request["query"] == {"dryRun": "All"}
    assert r.response["outcome"] == "accepted"
    assert r.repro.endswith("kubectl create --dry-run=server -n team-a -f -") and "169.254.169.254" in r.repro
    assert "pod-security.kubernetes.io/enforce: restricted" in r.remediation
    assert r.evidence["psa_checks"] == ["hostProbesAndHostLifecycle"] and r.evidence["changes"]
    assert r.evidence["positive_control"]["outcome"] == "accepted" and r.evidence["cross_check"] is None
    refused = attempts.Attempt(attempts.REFUSED, 403, message=PSA_MESSAGE,
                               refused_by="Pod Security Admission (restricted:latest)", namespace="team-a")
    passed = ps.attack_result(attack, pod, "team-a", ok, refused)
    assert passed.verdict is Verdict.PASS and passed.remediation is None


def test_attack_result_without_a_positive_control_is_inconclusive_not_a_crash():
    attack = ps.ATTACKS_BY_NAME["hostPID"]
    pod = attack.build(attempts.compliant_pod(IMAGE))
    refused = attempts.Attempt(attempts.REFUSED, 403, message="x", refused_by="LimitRange", namespace="ns")
    r = ps.attack_result(attack, pod, "ns", None, refused)
    assert r.verdict is Verdict.INCONCLUSIVE and r.evidence["positive_control"] is None


def test_compliant_result_passes_only_when_admitted_and_the_real_create_agrees():
    pod = attempts.compliant_pod(IMAGE)
    ok = attempts.Attempt(attempts.ACCEPTED, 201, namespace="ns")
    r = ps.compliant_result(pod, "ns", ok)
    assert r.verdict is Verdict.PASS and r.remediation is None and r.severity == "info"
    assert r.response["outcome"] == "accepted" and r.repro.endswith("-n ns -f -")
    real_refused = attempts.Attempt(attempts.REFUSED, 403, message="no", refused_by="LimitRange", dry_run=False,
                                    namespace="scratch")
    cross = attempts.CrossCheck("scratch", ok, real_refused)
    r = ps.compliant_result(pod, "ns", ok, cross)
    assert r.verdict is Verdict.INCONCLUSIVE and "scratch" in r.summary and r.evidence["cross_check"]
    refused = attempts.Attempt(attempts.REFUSED, 403, message="no", refused_by="LimitRange", namespace="ns")
    r = ps.compliant_result(pod, "ns", refused)
    assert r.verdict is Verdict.INCONCLUSIVE and r.remediation
    assert ps.compliant_result(pod, "ns", None).verdict is Verdict.INCONCLUSIVE


# --- docs ------------------------------------------------------------------------------------------------------


def test_docs_registry_table_matches_the_registry_and_the_attacks():
    rows = set()
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("baseline", "restricted"):
            rows.add((cells[0], cells[1].strip("`"), cells[2], cells[3].strip("`"),
                      ", ".join(c.strip(" `") for c in cells[4].split(","))))
    assert rows == set(ps.registry_table())
    assert f"k8s.io/pod-security-admission {ps.REGISTRY.module_version}" in DOCS.read_text()


# --- the generator ---------------------------------------------------------------------------------------------

HEADER = 'package policy\n\nimport "k8s.io/pod-security-admission/api"\n\n'


def _policy_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "policy"
    d.mkdir()
    (d / "checks.go").write_text(HEADER + "func addCheck(f func() Check) {}\n")
    (d / "check_x_test.go").write_text(HEADER + "func init() { addCheck(Nope) }\n")  # tests are not the registry
    for name, text in files.items():
        (d / name).write_text(HEADER + text)
    return d


CHECK_A = '''/*
Doc.

**Restricted Fields:**

spec.containers[*].a   // a comment
* spec.initContainers[*].a

**Allowed Values:** undefined
*/

const checkAID CheckID = "a_baseline"

func init() {
	addCheck(CheckA)
}

// CheckA { braces in comments } ID: "wrong"
func CheckA() Check {
	return Check{
		ID:    checkAID,
		Level: api.LevelBaseline,
		Versions: []VersionedCheck{
			{
				MinimumVersion: api.MajorMinorVersion(1, 0),
				CheckPod:       func() {},
			},
			{
				MinimumVersion: api.MajorMinorVersion(1, 40),
				CheckPod:       withOptions(a1_40),
			},
		},
	}
}
'''
CHECK_B = '''/*
Restricted Fields:
spec.b

Allowed Values: false
*/
func init() {
	addCheck(CheckB)
	addCheck(CheckLater)
}
func CheckB() Check {
	return Check{
		ID: "b_restricted", Level: api.LevelRestricted,
		Versions: []VersionedCheck{
			{MinimumVersion: api.MajorMinorVersion(1, 22), CheckPod: b, OverrideCheckIDs: []CheckID{checkAID}},
		},
	}
}
func CheckLater() Check {
	return Check{ID: "later", Level: api.LevelBaseline,
		Versions: []VersionedCheck{{MinimumVersion: api.MajorMinorVersion(1, 37), CheckPod: l}}}
}
'''
CHECK_EXPERIMENTAL = '''func init() { addCheck(CheckE) }
func CheckE() Check {
	return Check{ID: "experimental", Level: api.LevelRestricted, Versions: []VersionedCheck{{CheckPod: e}}}
}
'''


def test_generator_reads_ids_levels_versions_overrides_and_fields(tmp_path):
    d = _policy_dir(tmp_path, {"check_a.go": CHECK_A, "check_b.go": CHECK_B, "check_e.go": CHECK_EXPERIMENTAL})
    doc = gen.document(d, "v1.36.2")
    assert doc["module_version"] == "v0.36.2" and doc["policy_version"] == "v1.36"
    checks = {c["id"]: c for c in doc["checks"]}
    assert list(checks) == ["a_baseline", "later", "b_restricted", "experimental"]  # baseline first, then by ID
    a = checks["a_baseline"]
    assert (a["level"], a["applies_from"], a["applies_to_pinned_version"], a["revision_at_pinned_version"]) == \
        ("baseline", "v1.0", True, "v1.0")
    assert [r["minimum_version"] for r in a["revisions"]] == ["v1.0", "v1.40"]
    assert a["restricted_fields"] == ["spec.containers[*].a", "spec.initContainers[*].a"]
    b = checks["b_restricted"]
    assert b["overrides_at_pinned_version"] == ["a_baseline"] and b["restricted_fields"] == ["spec.b"]
    assert checks["later"]["applies_to_pinned_version"] is False and checks["later"]["applies_from"] == "v1.37"
    e = checks["experimental"]
    assert e["experimental"] is True and e["applies_to_pinned_version"] is False
    reg = ps.parse_registry(json.loads(gen.render(doc)))
    assert [c.id for c in reg.applicable] == ["a_baseline", "b_restricted"]


@pytest.mark.parametrize("files,message", [
    ({"check_a.go": "func CheckA() Check { return Check{} }\n"}, "registers no check"),
    ({"check_a.go": "func init() { addCheck(CheckA) }\n"}, "no func CheckA() Check"),
    ({"check_a.go": CHECK_A.replace("api.LevelBaseline", "api.LevelPrivileged")}, "neither baseline nor restricted"),
    ({"check_a.go": CHECK_A.replace("ID:    checkAID", "ID:    unknownConst")}, "not a string constant"),
    ({"check_a.go": CHECK_A, "check_b.go": CHECK_A.replace("CheckA", "CheckA2")}, "registered twice"),
    ({"check_a.go": CHECK_A.replace("api.MajorMinorVersion(1, 40)", "api.LatestVersion()")}, "cannot read"),
])
def test_generator_refuses_a_registry_it_does_not_understand(tmp_path, files, message):
    with pytest.raises(gen.RegistryError, match=re.escape(message)):
        gen.document(_policy_dir(tmp_path, files), "v1.36.2")


def test_generator_check_mode_reports_a_stale_file(tmp_path):
    d = _policy_dir(tmp_path, {"check_a.go": CHECK_A})
    out = tmp_path / "controls.json"
    args = ["--policy-dir", str(d), "--kubernetes-version", "v1.36.2", "--output", str(out)]
    assert gen.main(args + ["--check"]) == 1  # missing
    assert gen.main(args) == 0 and json.loads(out.read_text())["checks"][0]["id"] == "a_baseline"
    assert gen.main(args + ["--check"]) == 0
    (d / "check_b.go").write_text(HEADER + CHECK_B)  # a new check in the registry
    assert gen.main(args + ["--check"]) == 1


def test_each_namespace_answers_in_order_side_by_side():
    import threading
    import time

    from pytest_kready.attempts import each_namespace

    names = [f"ns-{i}" for i in range(8)]
    threads = set()

    def slow(ns):
        threads.add(threading.get_ident())
        time.sleep(0.3)
        return ns.upper()

    t0 = time.monotonic()
    assert each_namespace(slow, names) == [n.upper() for n in names]
    assert time.monotonic() - t0 < 1.2 and len(threads) > 1  # 8 × 0.3 s one after another would be 2.4 s
    assert each_namespace(slow, names[:1]) == ["NS-0"]


def test_each_namespace_raises_what_the_loop_would():
    from pytest_kready.attempts import each_namespace

    def boom(ns):
        if ns == "b":
            raise RuntimeError("b broke")
        return ns

    with pytest.raises(RuntimeError, match="b broke"):
        each_namespace(boom, ["a", "b", "c"])


# --- dry-runs begun ahead (PodProbe.ahead / tried) --------------------------------------------------------------


class _Settings:
    image = IMAGE
    namespaces = ["a", "b", "c"]


class _Cluster:
    mode = "readonly"
    settings = _Settings()

    def target_namespaces(self):
        return ["a", "b", "c"]


def _recording_attempts(monkeypatch, *, delay=0.0, fail_in=None):
    import threading
    import time

    calls, lock = [], threading.Lock()

    def fake(cluster, obj, namespace, *, dry_run=True, api=None):
        time.sleep(delay)
        with lock:
            calls.append((obj["metadata"]["name"], namespace))
        if namespace == fail_in:
            raise client.errors.ClusterUnreachable("cannot reach the API server")
        return attempts.Attempt(attempts.ACCEPTED, 201, obj=obj, namespace=namespace)

    monkeypatch.setattr(attempts, "attempt_create", fake)
    return calls


def test_dry_runs_begun_ahead_are_taken_by_their_test_in_target_order(monkeypatch):
    calls = _recording_attempts(monkeypatch)
    probe = attempts.PodProbe(_Cluster(), scratch_prefix="x")
    pods = {name: attempts.compliant_pod(IMAGE, f"kready-{name}") for name in ("one", "two")}
    probe.ahead(pods)
    pod, tried = probe.tried("two", lambda: pytest.fail("built again although begun ahead"))
    assert pod is pods["two"]
    assert [(ns, control.accepted, attempt.obj["metadata"]["name"]) for ns, control, attempt in tried] == [
        ("a", True, "kready-two"), ("b", True, "kready-two"), ("c", True, "kready-two")]
    probe.tried("one", lambda: pytest.fail("built again although begun ahead"))
    probe.close(failed=False)
    # the controls once per namespace, each pod once per namespace: nothing asked twice
    assert sorted(ns for n, ns in calls if n.startswith("kready-compliant")) == ["a", "b", "c"]
    assert len(calls) == 3 + 2 * 3 and len({c for c in calls if not c[0].startswith("kready-compliant")}) == 6
    # a key not begun ahead is built and tried when its test asks (the controls are not asked again)
    pod, tried = probe.tried("three", lambda: attempts.compliant_pod(IMAGE, "kready-three"))
    assert pod["metadata"]["name"] == "kready-three" and [ns for ns, _, _ in tried] == ["a", "b", "c"]
    assert len(calls) == 9 + 3


def test_a_request_begun_ahead_raises_in_the_test_that_takes_it(monkeypatch):
    _recording_attempts(monkeypatch, fail_in="b")
    probe = attempts.PodProbe(_Cluster(), scratch_prefix="x")
    probe.ahead({"one": attempts.compliant_pod(IMAGE, "kready-one")})
    with pytest.raises(client.errors.ClusterUnreachable):
        probe.tried("one", dict)
    probe.close(failed=True)


def test_closing_the_probe_cancels_the_dry_runs_no_test_took(monkeypatch):
    calls = _recording_attempts(monkeypatch, delay=0.05)
    probe = attempts.PodProbe(_Cluster(), scratch_prefix="x")
    probe.ahead({f"p{i}": attempts.compliant_pod(IMAGE, f"kready-p{i}") for i in range(40)})
    probe.close(failed=True)  # e.g. Ctrl-C after the first test: what has not begun is never sent
    sent = len(calls)
    assert sent < 3 + 40 * 3
    import time

    time.sleep(0.3)
    assert len(calls) == sent  # and nothing is sent after close returned


def test_selected_params_are_those_of_the_tests_the_run_selected(pytester):
    pytester.makepyfile(test_sel="""
        import pytest
        from pytest_kready import attempts

        @pytest.fixture(scope="module")
        def ahead(request):
            return attempts.selected_params(request, "name")

        @pytest.mark.parametrize("name", ["a", "b", "c", "d"])
        def test_one(name, ahead):
            assert ahead == ["b", "d"]

        @pytest.mark.parametrize("other", ["b"])
        def test_other(other):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "b or d")
    result.assert_outcomes(passed=3)
