"""--kready-apply without a cluster: a directory is read recursively in a stable order, Namespaces and CRDs first
and custom resources after their CRDs, what cannot be applied is one line; the option takes a directory."""

from __future__ import annotations

import pytest

from pytest_kready import errors
from pytest_kready.client import load_manifest_sources, load_manifests


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def team_dir(root):
    team = root / "team"
    write(team / "z-service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
          "spec: {selector: {app: web}, ports: [{port: 80}]}\n")
    write(team / "apps" / "web" / "deployment.yml", "apiVersion: apps/v1\nkind: Deployment\n"
          "metadata: {name: web, namespace: shop}\nspec: {}\n")
    write(team / "apps" / "widget.yaml", "apiVersion: example.com/v1\nkind: Widget\n"
          "metadata: {name: w, namespace: shop}\n")
    write(team / "policies" / "deny.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
          "metadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n---\n"
          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\n")
    write(team / "zz" / "namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    write(team / "crds" / "widgets.json", '{"apiVersion": "apiextensions.k8s.io/v1", '
          '"kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}, '
          '"spec": {"group": "example.com"}}')
    write(team / "README.md", "not a manifest")
    write(team / ".git" / "config.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: not-mine}\n")
    write(team / ".hidden.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: hidden}\n")
    return team


def test_a_directory_is_read_recursively_in_apply_order(tmp_path):
    team = team_dir(tmp_path)
    got = [(m.obj["kind"], m.obj["metadata"]["name"], m.source.relative_to(team).as_posix())
           for m in load_manifest_sources(team)]
    assert got == [
        ("Namespace", "shop", "zz/namespace.yaml"),
        ("CustomResourceDefinition", "widgets.example.com", "crds/widgets.json"),
        ("ConfigMap", "cfg", "policies/deny.yaml"),
        # everything else in file order (paths sorted), documents in order within a file
        ("Deployment", "web", "apps/web/deployment.yml"),
        ("NetworkPolicy", "deny", "policies/deny.yaml"),
        ("Service", "web", "z-service.yaml"),
        ("Widget", "w", "apps/widget.yaml"),  # a custom resource after its CRD
    ]
    assert load_manifests(team) == [m.obj for m in load_manifest_sources(team)]  # stable: the same again


def test_a_single_file_still_works(tmp_path):
    f = write(tmp_path / "one.yaml", "apiVersion: v1\nkind: List\nitems:\n"
              "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: x}}\n"
              "- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n")
    assert [o["kind"] for o in load_manifests(f)] == ["Namespace", "ConfigMap"]


@pytest.mark.parametrize("files, message", [
    ({"kustomization.yaml": "resources: [a.yaml]\n"}, "is a kustomization; render it first"),
    ({"a.yaml": "just: text\n"}, "holds a document without apiVersion/kind"),
    ({"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"}, "without metadata.name"),
    ({"a.yaml": "apiVersion: v1\nkind: [\n"}, "cannot be read"),
    ({"notes.txt": "x"}, "holds no .yaml, .yml or .json file"),
])
def test_what_cannot_be_applied_is_one_line(tmp_path, files, message):
    d = tmp_path / "d"
    d.mkdir()
    for name, text in files.items():
        write(d / name, text)
    with pytest.raises(errors.ConfigError, match=message) as e:
        load_manifests(d)
    assert "\n" not in str(e.value)


def test_the_option_takes_a_directory(pytester, tmp_path):
    team = team_dir(tmp_path)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(str(pytester.path), "--kready", "--kready-provider=local", f"--kready-apply={team}",
                                "--kready-namespaces=shop", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stderr.str()
    missing = pytester.runpytest(str(pytester.path), "--kready", "--kready-provider=local",
                                 f"--kready-apply={tmp_path / 'nope'}",
                                 "--collect-only", "-q", "-p", "no:cacheprovider")
    assert missing.ret == 4 and "--kready-apply=" in missing.stderr.str() and "no such file or directory" in \
        missing.stderr.str()
