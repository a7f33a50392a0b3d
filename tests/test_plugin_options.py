"""Options, ini twins, precedence, usage errors, markers, collection of the shipped suites, and the plugin doing
nothing without --kready."""

from __future__ import annotations

import json

import pytest

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready.settings import DEFAULT_IMAGE

SHOW = """
import json
from pytest_kready.session import session_of

def test_show(pytestconfig):
    s = session_of(pytestconfig).settings
    print("SETTINGS=" + json.dumps({
        "provider": s.provider, "mode": s.mode, "keep": s.keep, "profile": s.profile, "image": s.image,
        "namespaces": s.namespaces, "local_bin_dir": str(s.local_bin_dir), "sweep_grace": s.sweep_grace,
        "kubeconfig": str(s.kubeconfig) if s.kubeconfig else None, "context": s.context,
        "json": str(s.json_path) if s.json_path else None, "apply": [str(p) for p in s.apply],
        "allow_etcd_restore": s.allow_etcd_restore, "sources": s.sources}))
"""


def settings_of(pytester, *args) -> dict:
    pytester.makepyfile(test_show=SHOW)
    result = pytester.runpytest(str(pytester.path / "test_show.py"), "-s", "-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    line = next(l for l in result.outlines if l.startswith("SETTINGS=") or "SETTINGS=" in l)
    return json.loads(line.split("SETTINGS=", 1)[1])


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "one",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u"}},
                     {"name": "two", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    return path


def test_defaults(pytester, monkeypatch):
    monkeypatch.delenv("KREADY_LOCAL_BIN_DIR", raising=False)
    monkeypatch.setenv("KREADY_CACHE", "/cache")
    s = settings_of(pytester, "--kready")
    assert s["provider"] is None and s["mode"] == "standard" and s["keep"] == "none"
    assert s["profile"] == "baseline" and s["image"] == DEFAULT_IMAGE == "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
    assert s["namespaces"] is None and s["sweep_grace"] == 600
    assert s["local_bin_dir"] == "/cache/local/k8s-v1.36.2/bin"


def test_cli_beats_ini_beats_env(pytester, monkeypatch):
    pytester.makeini("""
        [pytest]
        kready_mode = disruptive
        kready_keep = failed
        kready_local_bin_dir = bins
        kready_namespaces = a,b
        kready_sweep_grace = 1h
        kready_profile = hardened
    """)
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", "/from/env")
    s = settings_of(pytester, "--kready", "--kready-keep=all", "--kready-namespaces=c")
    assert s["keep"] == "all" and s["sources"]["keep"] == "cli"
    assert s["namespaces"] == ["c"]
    assert s["mode"] == "disruptive" and s["sources"]["mode"] == "ini"
    assert s["local_bin_dir"] == str(pytester.path / "bins")  # ini paths are relative to the ini file
    assert s["sweep_grace"] == 3600 and s["profile"] == "hardened"
    s = settings_of(pytester, "--kready", "--kready-local-bin-dir=/from/cli")
    assert s["local_bin_dir"] == "/from/cli"


def test_allow_etcd_restore_flag_and_ini_twin(pytester):
    assert settings_of(pytester, "--kready")["allow_etcd_restore"] is False
    s = settings_of(pytester, "--kready", "--kready-allow-etcd-restore")
    assert s["allow_etcd_restore"] is True and s["sources"]["allow-etcd-restore"] == "cli"
    pytester.makeini("[pytest]\nkready_allow_etcd_restore = true\n")
    s = settings_of(pytester, "--kready")
    assert s["allow_etcd_restore"] is True and s["sources"]["allow-etcd-restore"] == "ini"
    pytester.makeini("[pytest]\nkready_allow_etcd_restore = perhaps\n")
    assert usage_error(pytester, "--kready") == ("ERROR: kready_allow_etcd_restore = 'perhaps' is not a boolean; "
                                                 "use true or false")


def test_env_used_when_neither_cli_nor_ini(pytester, monkeypatch):
    monkeypatch.setenv("KREADY_LOCAL_BIN_DIR", "/from/env")
    s = settings_of(pytester, "--kready")
    assert s["local_bin_dir"] == "/from/env" and s["sources"]["local-bin-dir"] == "env"


def test_ini_can_enable_the_plugin(pytester):
    pytester.makeini("[pytest]\nkready = true\nkready_keep = all\n")
    assert settings_of(pytester)["keep"] == "all"


def test_existing_cluster_only_when_named_and_readonly_by_default(pytester, kubeconfig):
    s = settings_of(pytester, "--kready", f"--kready-kubeconfig={kubeconfig}")
    assert s["provider"] == "kubeconfig" and s["mode"] == "readonly" and s["context"] == "one"
    s = settings_of(pytester, "--kready", f"--kready-kubeconfig={kubeconfig}", "--kready-context=two",
                    "--kready-mode=disruptive")
    assert s["context"] == "two" and s["mode"] == "disruptive"


def test_kubeconfig_from_env_when_only_context_named(pytester, kubeconfig, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    s = settings_of(pytester, "--kready", "--kready-context=two")
    assert s["provider"] == "kubeconfig" and s["kubeconfig"] == str(kubeconfig)


def usage_error(pytester, *args) -> str:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    errors = [l for l in result.errlines if l.strip()]
    assert len(errors) == 1, errors
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return errors[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--kready-kubeconfig=/nonexistent"], "ERROR: kubeconfig /nonexistent not found; pass --kready-kubeconfig=PATH"),
    (["--kready-mode=fast"], "ERROR: --kready-mode=fast: unknown value; choose one of readonly, standard, disruptive"),
    (["--kready-provider=eks"], "ERROR: --kready-provider=eks: unknown value; choose one of kind, kubeconfig, local"),
    (["--kready-keep=some"], "ERROR: --kready-keep=some: unknown value"),
    (["--kready-profile=x"], "ERROR: --kready-profile=x: unknown value"),
    (["--kready-sweep-grace=soon"], "ERROR: --kready-sweep-grace=soon: not a duration"),
    (["--kready-namespaces=Bad_Name"], "ERROR: --kready-namespaces: 'Bad_Name' is not a valid namespace name"),
    (["--kready-apply=/no/such.yaml"], "ERROR: --kready-apply=/no/such.yaml: no such file"),
    (["--kready-cluster-config=/no/kind.yaml"], "ERROR: --kready-cluster-config=/no/kind.yaml: no such file"),
    (["--kready-provider=kind", "--kready-context=x"], "ERROR: --kready-context names an existing cluster; it cannot"),
])
def test_usage_errors_are_one_line(pytester, args, message):
    assert usage_error(pytester, "--kready", *args).startswith(message)


def test_broken_kubeconfig_and_unknown_context(pytester, kubeconfig, tmp_path):
    assert "context 'three' is not in kubeconfig" in usage_error(
        pytester, "--kready", f"--kready-kubeconfig={kubeconfig}", "--kready-context=three")
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n")
    assert "is not valid YAML" in usage_error(pytester, "--kready", f"--kready-kubeconfig={broken}")
    nocurrent = tmp_path / "nocurrent"
    nocurrent.write_text(json.dumps({"contexts": [{"name": "a", "context": {"cluster": "c"}}],
                                     "clusters": [{"name": "c", "cluster": {}}]}))
    assert "has no current-context; pass --kready-context=NAME (contexts: a)" in usage_error(
        pytester, "--kready", f"--kready-kubeconfig={nocurrent}")


def test_apply_and_disruptive_refused_on_existing_cluster(pytester, kubeconfig, tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    assert "applies only to clusters the plugin creates" in usage_error(
        pytester, "--kready", f"--kready-kubeconfig={kubeconfig}", f"--kready-apply={manifest}")
    pytester.makeini("[pytest]\nkready_mode = disruptive\n")
    assert "must be asked for on the command line" in usage_error(
        pytester, "--kready", f"--kready-kubeconfig={kubeconfig}")


def test_markers_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.kready_mode(mode):*", "@pytest.mark.kready_needs(capability, ...):*",
                                 "@pytest.mark.kready_needs_permission(verb, resource*", "@pytest.mark.kready_check(id):*"])


def test_bad_marker_arguments_are_usage_errors(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.kready_mode("reckless")
        def test_x():
            pass
    """)
    result = pytester.runpytest(str(pytester.path), "--kready", "-p", "no:cacheprovider")
    assert result.ret == 4
    assert any("kready_mode takes one of readonly, standard, disruptive" in l for l in result.errlines)


def test_inactive_without_kready(pytester):
    pytester.makepyfile("""
        import sys

        def test_nothing_loaded(request):
            assert "kubernetes" not in sys.modules
            assert "pytest_kready.client" not in sys.modules
            assert request.config.pluginmanager.get_plugin("kready-fixtures") is None
    """)
    result = pytester.runpytest_subprocess(str(pytester.path), "-p", "no:cacheprovider",
                                           "--kready-mode=nonsense")  # options unused: not validated
    result.assert_outcomes(passed=1)
    assert "kready:" not in result.stdout.str()
    result = pytester.runpytest_subprocess(str(pytester.path), "--fixtures")
    assert "kready_cluster" not in result.stdout.str()


def test_kready_collects_shipped_suites_without_a_cluster(pytester, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no kind, no docker: collection must not care
    result = pytester.runpytest_subprocess("--kready", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_*.py::test_*"])
    assert "kready: shipped suites from" not in result.stdout.str()  # -q: no header
    header = pytester.runpytest_subprocess("--kready", "--collect-only", "-p", "no:cacheprovider")
    header.stdout.fnmatch_lines(["kready: provider=auto mode=standard profile=baseline keep=none run-id=*",
                                 "kready: shipped suites from */suites"])


def test_kready_with_explicit_paths_runs_only_those(pytester):
    pytester.makepyfile("def test_mine():\n    pass\n")
    result = pytester.runpytest(str(pytester.path), "--kready", "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["test_kready_with_explicit_paths_runs_only_those.py::test_mine"])
    assert "suites" not in result.stdout.str()


def test_fixtures_without_cluster_do_not_contact_one(pytester):
    pytester.makepyfile("""
        def test_finding(kready_finding):
            kready_finding.passed("ok")
    """)
    result = pytester.runpytest(str(pytester.path), "--kready", "--kready-provider=kind", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
