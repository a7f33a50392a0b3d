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


# --- applying: what is labelled ours, what is waited for (an in-memory API) ------------------------------------

from pytest_kready import applying, labels  # noqa: E402
from pytest_kready.client import Resource  # noqa: E402

KINDS = {"Namespace": ("v1", "namespaces", False), "ConfigMap": ("v1", "configmaps", True),
         "Service": ("v1", "services", True), "Deployment": ("apps/v1", "deployments", True),
         "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
         "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions", False),
         "Widget": ("example.com/v1", "widgets", True)}


class MemoryApi:
    """Enough of KreadyApiClient for applying: discovery, GET, server-side apply (PATCH); a namespace's default
    ServiceAccount and a Deployment's status appear as the test says."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.patches: list[str] = []
        self.served_groups = {"v1", "apps/v1", "networking.k8s.io/v1", "apiextensions.k8s.io/v1"}
        self.deployment_status = {"availableReplicas": 1, "updatedReplicas": 1, "replicas": 1,
                                  "observedGeneration": 1, "conditions": [{"type": "Available", "status": "True"}]}

    def forget_discovery(self):
        pass

    def resource(self, api_version, kind):
        if kind not in KINDS:
            raise errors.APINotFound(f"the server does not serve kind {kind}", status=404)
        version, plural, namespaced = KINDS[kind]
        if api_version not in self.served_groups:
            raise errors.APINotFound(f"{api_version} not served", status=404)
        return Resource(api_version, kind, plural, namespaced)

    def raw(self, method, path, *, query=None, body=None, content_type=None, timeout=30):
        if method == "PATCH":
            self.patches.append(path)
            obj = json_copy(body)
            obj["metadata"].setdefault("generation", 1)
            if obj["kind"] == "Deployment":
                obj["status"] = dict(self.deployment_status)
            if obj["kind"] == "CustomResourceDefinition":
                obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
                self.served_groups.add(f"{obj['spec']['group']}/v1")
            self.objects[path] = obj
            if obj["kind"] == "Namespace":
                self.objects[f"/api/v1/namespaces/{obj['metadata']['name']}/serviceaccounts/default"] = {}
            return obj
        if method == "GET":
            if path.endswith("/pods"):
                return {"items": []}
            if path not in self.objects:
                raise errors.APINotFound("not found", status=404)
            return self.objects[path]
        raise AssertionError((method, path))


def json_copy(obj):
    import json

    return json.loads(json.dumps(obj))


def test_apply_labels_only_what_it_creates_and_keeps_others_labels(tmp_path):
    team = team_dir(tmp_path)
    api = MemoryApi()
    user_cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop",
                                                                     "labels": {"team": "shop"}}}
    api.objects["/api/v1/namespaces/shop/configmaps/cfg"] = user_cm
    other_run = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "labels": {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.RUN_ID: "other-run"},
        "annotations": {labels.CREATED_AT: "1"}}}
    api.objects["/api/v1/namespaces/shop/services/web"] = other_run
    same_run_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.RUN_ID: "run1"}}}  # another xdist worker's apply
    api.objects["/api/v1/namespaces/shop"] = same_run_ns
    done = applying.apply_paths(api, [team], "run1", timeout=5)
    by_path = {p: api.objects[p]["metadata"].get("labels") or {} for p in api.patches}
    ours = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.RUN_ID: "run1", applying.APPLIED_LABEL: "true"}
    assert by_path["/api/v1/namespaces/shop"] == ours
    assert by_path["/apis/apps/v1/namespaces/shop/deployments/web"] == ours
    assert by_path["/api/v1/namespaces/shop/configmaps/cfg"] == {}  # the manifest's labels only: never ours
    assert by_path["/api/v1/namespaces/shop/services/web"] == {labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                                                               labels.RUN_ID: "other-run"}
    assert {str(r) for r in done.updated} == {"ConfigMap shop/cfg", "Service shop/web"}
    assert "Namespace shop" in {str(r) for r in done.created}
    # CRD before the custom resource, the custom resource last
    assert api.patches.index("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com") < \
        api.patches.index("/apis/example.com/v1/namespaces/shop/widgets/w") == len(api.patches) - 1


def test_a_deployment_past_its_progress_deadline_stops_at_once_naming_it(tmp_path):
    team = team_dir(tmp_path)
    api = MemoryApi()
    api.deployment_status = {"availableReplicas": 0, "updatedReplicas": 1, "replicas": 1, "observedGeneration": 1,
                             "conditions": [{"type": "Progressing", "status": "False",
                                             "reason": "ProgressDeadlineExceeded",
                                             "message": 'ReplicaSet "web-1" has timed out progressing.'}]}
    with pytest.raises(errors.ProviderError) as e:
        applying.apply_paths(api, [team], "run1", timeout=60)
    assert str(e.value) == ('--kready-apply: Deployment shop/web will not become available: 0/1 available, 1/1 '
                            'updated; ProgressDeadlineExceeded: ReplicaSet "web-1" has timed out progressing.')


def test_a_deployment_that_does_not_become_available_in_time_is_one_line(tmp_path, monkeypatch):
    team = team_dir(tmp_path)
    api = MemoryApi()
    api.deployment_status = {"availableReplicas": 0, "updatedReplicas": 1, "replicas": 1, "observedGeneration": 1}
    monkeypatch.setattr(applying, "POLL_INTERVAL", 0.05)
    with pytest.raises(errors.ProviderError) as e:
        applying.apply_paths(api, [team], "run1", timeout=0.3)
    assert str(e.value) == ("--kready-apply: Deployment shop/web did not become available within the deadline: "
                            "0/1 available, 1/1 updated")


def test_a_kind_the_cluster_does_not_serve_is_one_line(tmp_path):
    d = tmp_path / "d"
    write(d / "w.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\n")
    with pytest.raises(errors.ConfigError, match=r"w\.yaml: the cluster does not serve Widget in example\.com/v1"):
        applying.apply_paths(MemoryApi(), [d], "run1", timeout=5)


def test_secrets_in_the_applied_manifests_are_known_secrets(tmp_path):
    from pytest_kready.findings import forget_secrets, redact_text

    forget_secrets()
    d = tmp_path / "d"
    write(d / "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\n"
          "stringData: {password: Sup3r-S3cret-99}\n")
    with pytest.raises(errors.ConfigError):  # MemoryApi does not know Secrets: what matters is what was learnt
        applying.apply_paths(MemoryApi(), [d], "run1", timeout=5)
    assert redact_text("the password is Sup3r-S3cret-99") == "the password is <redacted>"
    forget_secrets()
