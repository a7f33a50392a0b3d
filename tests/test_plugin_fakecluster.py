"""The plugin end to end against a small fake Kubernetes API server (plain HTTP, in a thread): namespaces,
ServiceAccount tokens, access reviews and discovery, enough to exercise fixtures, cleanup, sweeping, keep
policies, readonly safety, preflight and the client's retries and typed errors without a real cluster."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_kready import errors, labels

USER_TOKEN = "user-token-abcdef"


class FakeApi:
    """State and behaviour of the fake API server."""

    def __init__(self):
        self.namespaces: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict, str]] = []  # method, path, query, authorization
        self.denied: set[tuple[str, str]] = set()  # (verb, resource) refused by access reviews
        self.fail: list[tuple[str, str, int]] = []  # (method, path, status) answered once each, in order
        self.unauthorized = False
        self.tokens: dict[str, str] = {}
        self.objects: dict[str, dict] = {}  # path → object answered to GET (Secrets, Deployments, ...)
        self.lock = threading.Lock()

    def add_namespace(self, name: str, labels_: dict | None = None, annotations: dict | None = None) -> dict:
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "uid": str(uuid.uuid4()), "labels": dict(labels_ or {}),
                            "annotations": dict(annotations or {}),
                            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
        self.namespaces[name] = obj
        return obj

    def managed(self) -> list[str]:
        return sorted(n for n, o in self.namespaces.items()
                      if o["metadata"]["labels"].get(labels.MANAGED_BY) == labels.MANAGED_BY_VALUE)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, q, a in self.requests
                if m != "GET" and not p.endswith(("selfsubjectaccessreviews", "/token"))]


def _selects(selector: str, obj_labels: dict) -> bool:
    for term in filter(None, (selector or "").split(",")):
        k, _, v = term.partition("=")
        if obj_labels.get(k) != v:
            return False
    return True


def _handler(api: FakeApi):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str):
            self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                              "reason": reason, "code": code})

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}") if n else {}

        def _handle(self, method: str):
            parts = urlsplit(self.path)
            path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else {}
            with api.lock:
                api.requests.append((method, path, query, self.headers.get("Authorization", "")))
                for i, (m, p, code) in enumerate(api.fail):
                    if m == method and p == path:
                        del api.fail[i]
                        return self._status(code, "Injected", f"injected {code}")
                if api.unauthorized:
                    return self._status(401, "Unauthorized", "Unauthorized")
                return self._route(method, path, query, body)

        def _route(self, method, path, query, body):
            if path == "/version":
                return self._send(200, {"gitVersion": "v1.36.2-fake"})
            if path == "/api/v1" and method == "GET":
                return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    {"name": "namespaces", "kind": "Namespace", "namespaced": False},
                    {"name": "serviceaccounts", "kind": "ServiceAccount", "namespaced": True},
                    {"name": "serviceaccounts/token", "kind": "TokenRequest", "namespaced": True},
                    {"name": "persistentvolumes", "kind": "PersistentVolume", "namespaced": False}]})
            if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" and method == "POST":
                attrs = body["spec"]["resourceAttributes"]
                allowed = (attrs["verb"], attrs["resource"]) not in api.denied
                return self._send(201, {**body, "status": {"allowed": allowed}})
            if method == "GET" and path in api.objects:
                return self._send(200, api.objects[path])
            if path == "/api/v1/persistentvolumes":
                return self._send(200, {"kind": "PersistentVolumeList", "items": []})
            if path == "/api/v1/namespaces":
                if method == "GET":
                    items = [o for o in api.namespaces.values()
                             if _selects(query.get("labelSelector", ""), o["metadata"]["labels"])]
                    return self._send(200, {"kind": "NamespaceList", "items": items})
                if method == "POST":
                    name = body["metadata"]["name"]
                    if name in api.namespaces:
                        return self._status(409, "AlreadyExists", f"namespaces \"{name}\" already exists")
                    if query.get("dryRun") == "All":
                        return self._send(201, body)
                    obj = api.add_namespace(name, body["metadata"].get("labels"), body["metadata"].get("annotations"))
                    return self._send(201, obj)
            m = re.fullmatch(r"/api/v1/namespaces/([^/]+)(/serviceaccounts/([^/]+)(/token)?)?", path)
            if m:
                name = m.group(1)
                obj = api.namespaces.get(name)
                if obj is None:
                    return self._status(404, "NotFound", f"namespaces \"{name}\" not found")
                if m.group(4):
                    token = f"eyJhbGciOiJSUzI1NiJ9.{name}-{m.group(3)}-{uuid.uuid4().hex[:8]}.signature"
                    api.tokens[token] = f"system:serviceaccount:{name}:{m.group(3)}"
                    return self._send(201, {"kind": "TokenRequest", "status": {"token": token}})
                if m.group(2):
                    return self._send(200, {"kind": "ServiceAccount", "metadata": {"name": m.group(3), "namespace": name}})
                if method == "GET":
                    return self._send(200, obj)
                if method == "DELETE":
                    uid = ((body or {}).get("preconditions") or {}).get("uid")
                    if uid and uid != obj["metadata"]["uid"]:
                        return self._status(409, "Conflict", "Precondition failed: UID in precondition")
                    del api.namespaces[name]
                    return self._send(200, {"kind": "Status", "status": "Success"})
                if method == "PATCH":
                    meta = body.get("metadata") or {}
                    if meta.get("uid") and meta["uid"] != obj["metadata"]["uid"]:
                        return self._status(409, "Conflict", "Precondition failed")
                    obj["metadata"]["annotations"].update(meta.get("annotations") or {})
                    return self._send(200, obj)
            return self._status(404, "NotFound", f"the server could not find the requested resource {path}")

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_PATCH(self):
            self._handle("PATCH")

        def do_PUT(self):
            self._handle("PUT")

    return Handler


def write_kubeconfig(path: Path, server: str, token: str = USER_TOKEN) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
        "users": [{"name": "me", "user": {"token": token}}],
    }))
    return path


@pytest.fixture
def fake(tmp_path):
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    api.kubeconfig = write_kubeconfig(tmp_path / "fake-kubeconfig", api.url)
    yield api
    server.shutdown()
    server.server_close()


def run(pytester, fake, *args):
    return pytester.runpytest(str(pytester.path), "--kready", f"--kready-kubeconfig={fake.kubeconfig}",
                              "-p", "no:cacheprovider", *args)


# --- fixtures, cleanup, keep ------------------------------------------------------------------------


NS_TESTS = """
import pytest

def test_ok(kready_namespace):
    a = kready_namespace(labels={"team": "x"}, name_prefix="ok")
    assert a.startswith("kr-ok-")

def test_plain(kready_ns):
    assert kready_ns.startswith("kr-plain-")

def test_bad(kready_namespace):
    kready_namespace()
    assert False, "boom"
"""


def test_standard_mode_creates_labelled_namespaces_and_deletes_them_all(pytester, fake):
    pytester.makepyfile(NS_TESTS)
    result = run(pytester, fake, "--kready-mode=standard")
    result.assert_outcomes(passed=2, failed=1)
    assert fake.managed() == []  # nothing labelled left
    created = [q for m, p, q, a in fake.requests if m == "POST" and p == "/api/v1/namespaces"]
    assert len(created) == 3  # one per test; the defaults namespace only when targets are asked for


def test_namespace_labels_names_and_uid_preconditions(pytester, fake):
    pytester.makepyfile("""
        from pytest_kready import labels

        def test_labels(kready_namespace, kready_cluster):
            name = kready_namespace(labels={"team": "x"})
            obj = kready_cluster.api_client().raw("GET", f"/api/v1/namespaces/{name}")
            meta = obj["metadata"]
            assert meta["labels"]["team"] == "x"
            assert meta["labels"][labels.MANAGED_BY] == "pytest-kready"
            assert meta["labels"][labels.RUN_ID] == kready_cluster.run_id
            assert meta["annotations"][labels.CREATED_AT].isdigit()
            assert kready_cluster.run_id in name and len(name) <= 63
    """)
    result = run(pytester, fake, "--kready-mode=standard")
    result.assert_outcomes(passed=1)
    deletes = [p for m, p, q, a in fake.requests if m == "DELETE"]
    assert len(deletes) == 1 and deletes[0].startswith("/api/v1/namespaces/kr-labels-")
    assert fake.managed() == []


@pytest.mark.parametrize(("keep", "kept_prefixes"), [("none", []), ("failed", ["kr-bad-"]),
                                                    ("all", ["kr-bad-", "kr-ok-", "kr-plain-"])])
def test_keep_policies(pytester, fake, keep, kept_prefixes):
    pytester.makepyfile(NS_TESTS)
    result = run(pytester, fake, "--kready-mode=standard", f"--kready-keep={keep}")
    result.assert_outcomes(passed=2, failed=1)
    left = fake.managed()
    assert sorted(re.sub(r"-\d{8}-[0-9a-f]{6}-\d+$", "-", n) for n in left) == kept_prefixes
    for name in left:
        assert fake.namespaces[name]["metadata"]["annotations"][labels.KEPT] == "true"
    if kept_prefixes:
        result.stdout.fnmatch_lines(["kready: kept * object(s) for debugging: *kubectl delete namespace -l kready.dev/run-id=*"])


def test_readonly_is_the_default_on_a_kubeconfig_cluster_and_creates_nothing(pytester, fake):
    pytester.makepyfile("""
        import pytest
        from pytest_kready import errors

        def test_needs_namespace(kready_namespace):
            kready_namespace()

        @pytest.mark.kready_mode("readonly")
        def test_reads_and_dry_runs(kready_cluster):
            api = kready_cluster.api_client()
            assert kready_cluster.mode == "readonly"
            api.raw("POST", "/api/v1/namespaces", query={"dryRun": "All"},
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dry"}})
            with pytest.raises(errors.ReadOnlyViolation):
                api.raw("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                            "metadata": {"name": "real"}})
            assert kready_cluster.target_namespaces() == ["default", "team-a"]

        def test_unmarked_write_is_not_applicable(kready_cluster):
            kready_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    """)
    fake.add_namespace("default")
    fake.add_namespace("team-a")
    fake.add_namespace("kube-system")
    result = run(pytester, fake, "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*not-applicable: creates a throw-away namespace; this run is readonly (use --kready-mode=standard)*",
        "*not-applicable: writes to the cluster; this run is readonly*"])
    assert fake.writes() == [("POST", "/api/v1/namespaces")]  # the dry run only
    assert [q for m, p, q, a in fake.requests if m == "POST" and p == "/api/v1/namespaces"] == [{"dryRun": "All"}]
    assert set(fake.namespaces) == {"default", "team-a", "kube-system"}


def test_not_applicable_reasons(pytester, fake):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.kready_check("etcd-restore")
        @pytest.mark.kready_needs("etcd")
        def test_etcd(kready_cluster):
            raise AssertionError("must not run")

        @pytest.mark.kready_mode("disruptive")
        def test_disruptive(kready_cluster):
            raise AssertionError("must not run")

        @pytest.mark.kready_needs_permission("create", "pods", namespace="team-a")
        def test_perm(kready_cluster):
            raise AssertionError("must not run")

        @pytest.mark.kready_needs_permission("list", "namespaces")
        def test_allowed(kready_cluster):
            pass
    """)
    fake.denied.add(("create", "pods"))
    result = run(pytester, fake, "-rs", "--kready-mode=standard")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random([
        "*not-applicable: kubeconfig cluster: control plane not reachable (managed or remote)*",
        "*not-applicable: needs --kready-mode=disruptive (this run is standard)*",
        "*not-applicable: no permission to create pods (in namespace team-a)*",
    ])


def test_sweep_deletes_only_stale_labelled_objects_of_other_runs(pytester, fake):
    old = str(int(time.time()) - 3600)
    young = str(int(time.time()) - 60)
    other = labels.run_labels("01010000-aaaaaa")
    fake.add_namespace("kr-old", other, {labels.CREATED_AT: old})
    fake.add_namespace("kr-young", other, {labels.CREATED_AT: young})
    fake.add_namespace("kr-kept", other, {labels.CREATED_AT: old, labels.KEPT: "true"})
    fake.add_namespace("users-own", {"team": "x"}, {labels.CREATED_AT: old})
    fake.add_namespace("half-labelled", {labels.MANAGED_BY: labels.MANAGED_BY_VALUE}, {labels.CREATED_AT: old})
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = run(pytester, fake, "--kready-mode=standard", "--kready-sweep-grace=10m")
    result.assert_outcomes(passed=1)
    assert set(fake.namespaces) == {"kr-young", "kr-kept", "users-own", "half-labelled"}
    result.stdout.fnmatch_lines(["kready: swept 1 object(s) left by earlier runs: Namespace kr-old"])


def test_no_sweep_and_no_writes_in_readonly_mode(pytester, fake):
    fake.add_namespace("kr-old", labels.run_labels("01010000-aaaaaa"), {labels.CREATED_AT: "1"})
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    run(pytester, fake).assert_outcomes(passed=1)
    assert "kr-old" in fake.namespaces
    assert fake.writes() == []


def test_serviceaccount_client_uses_a_real_token_not_impersonation(pytester, fake):
    pytester.makepyfile("""
        def test_sa(kready_namespace, kready_as_serviceaccount):
            ns = kready_namespace()
            sa = kready_as_serviceaccount(ns, "default")
            sa.raw("GET", "/version")
            assert "Impersonate-User" not in sa.default_headers
    """)
    run(pytester, fake, "--kready-mode=standard").assert_outcomes(passed=1)
    token_reqs = [p for m, p, q, a in fake.requests if p.endswith("/serviceaccounts/default/token")]
    assert len(token_reqs) == 1
    versions = [a for m, p, q, a in fake.requests if p == "/version"]
    sa_auth = versions[-1]
    token = sa_auth.removeprefix("Bearer ")
    assert fake.tokens[token].startswith("system:serviceaccount:kr-sa-")
    assert USER_TOKEN not in sa_auth


def test_missing_run_permission_is_one_line(pytester, fake):
    fake.denied.add(("create", "namespaces"))
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = run(pytester, fake, "--kready-mode=standard")
    assert result.ret == 4
    line = [l for l in result.outlines if "no permission to create namespaces" in l]
    assert len(line) == 1 and "--kready-mode=readonly" in line[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_unknown_namespace_option_is_one_line(pytester, fake):
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = run(pytester, fake, "--kready-namespaces=nope")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*kready: --kready-namespaces: namespace nope does not exist in the cluster*"])


def test_credentials_refused_is_one_line(pytester, fake):
    fake.unauthorized = True
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = run(pytester, fake)
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*kready: the API server at * refused the kubeconfig's credentials (401 Unauthorized)*"])
    assert "Traceback" not in result.stdout.str()


def test_unreachable_api_server_is_one_line_and_nonzero(pytester, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")
    pytester.makepyfile("def test_x(kready_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess(str(pytester.path), "--kready", f"--kready-kubeconfig={kubeconfig}",
                                           "-p", "no:cacheprovider")
    assert result.ret == 2
    out = result.stdout.str() + result.stderr.str()
    assert len([l for l in out.splitlines() if "cannot reach the API server at http://127.0.0.1:1" in l]) == 1
    assert "Traceback" not in out


# --- the client: retries, typed errors, readonly guard ----------------------------------------------


@pytest.fixture
def api_client(fake):
    from pytest_kready.client import new_api_client
    from pytest_kready.providers.base import ClusterAccess

    client = new_api_client(ClusterAccess(fake.kubeconfig), mode="standard", retry_deadline=20)
    yield client
    client.close()


def test_client_retries_429_and_5xx_on_reads(fake, api_client):
    fake.fail += [("GET", "/version", 429), ("GET", "/version", 503), ("GET", "/version", 500)]
    assert api_client.raw("GET", "/version")["gitVersion"] == "v1.36.2-fake"
    assert len([p for m, p, q, a in fake.requests if p == "/version"]) == 4


def test_client_does_not_retry_500_on_create_and_types_errors(fake, api_client):
    from kubernetes.client.exceptions import ApiException

    fake.fail.append(("POST", "/api/v1/namespaces", 500))
    with pytest.raises(errors.APIServerError):
        api_client.raw("POST", "/api/v1/namespaces", body={"metadata": {"name": "a"}})
    assert len([1 for m, p, q, a in fake.requests if m == "POST"]) == 1
    with pytest.raises(errors.APINotFound) as e:
        api_client.raw("GET", "/api/v1/namespaces/none")
    assert e.value.status == 404 and isinstance(e.value.__cause__, ApiException)
    assert "not found" in str(e.value)


def test_generated_api_methods_raise_typed_errors_too(fake, api_client):
    from kubernetes import client as k8s

    fake.add_namespace("present")
    core = k8s.CoreV1Api(api_client)
    assert core.read_namespace("present").metadata.name == "present"
    with pytest.raises(errors.APINotFound):
        core.read_namespace("absent")


def test_readonly_guard(fake):
    from pytest_kready.client import new_api_client
    from pytest_kready.providers.base import ClusterAccess

    ro = new_api_client(ClusterAccess(fake.kubeconfig), mode="readonly")
    with pytest.raises(errors.ReadOnlyViolation, match="readonly mode refused POST /api/v1/namespaces"):
        ro.raw("POST", "/api/v1/namespaces", body={"metadata": {"name": "a"}})
    with pytest.raises(errors.ReadOnlyViolation):
        ro.raw("DELETE", "/api/v1/namespaces/x")
    ro.raw("POST", "/api/v1/namespaces", body={"metadata": {"name": "a"}}, query={"dryRun": "All"})
    ro.raw("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
           body={"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})
    assert fake.namespaces == {}
    ro.close()


@pytest.mark.parametrize("path, allowed", [
    ("/api/v1/namespaces/app/serviceaccounts/default/token", True),  # TokenRequest: minted, nothing stored
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", True),
    ("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", True),
    ("/apis/authorization.k8s.io/v1/subjectaccessreviews", True),
    ("/apis/authorization.k8s.io/v1/namespaces/app/localsubjectaccessreviews", True),
    ("/apis/authentication.k8s.io/v1/selfsubjectreviews", True),
    ("/apis/authentication.k8s.io/v1/tokenreviews", True),
    # ends like an allowed path, but is another resource: a write that persists
    ("/api/v1/namespaces/app/secrets/token", False),
    ("/api/v1/namespaces/app/configmaps/token", False),
    ("/api/v1/namespaces/token", False),
    ("/apis/example.com/v1/namespaces/app/widgets/w/token", False),
    ("/api/v1/namespaces/app/serviceaccounts/default/token/extra", False),
    ("/api/v1/namespaces/app/serviceaccounts/token", False),
    ("/apis/example.com/v1/selfsubjectaccessreviews", False),
    ("/apis/example.com/v1/namespaces/app/tokenreviews", False),
    ("/api/v1/namespaces/app/serviceaccounts/default/token/", False),
])
def test_readonly_guard_matches_exact_paths_not_suffixes(fake, path, allowed):
    PROBE_BODY = {"kind": "Probe", "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    from pytest_kready.client import new_api_client
    from pytest_kready.providers.base import ClusterAccess

    fake.add_namespace("app")
    ro = new_api_client(ClusterAccess(fake.kubeconfig), mode="readonly", retry_attempts=1)
    try:
        if allowed:
            try:
                ro.raw("POST", path, body=PROBE_BODY)
            except errors.APIError:
                pass  # the fake server may not serve it; what matters is that the guard let it through
            assert any(m == "POST" and p == path for m, p, q, a in fake.requests)
        else:
            with pytest.raises(errors.ReadOnlyViolation, match=f"readonly mode refused POST {path}"):
                ro.raw("POST", path, body=PROBE_BODY)
            assert not any(p == path for m, p, q, a in fake.requests)
    finally:
        ro.close()


def test_readonly_guard_knows_a_server_path_prefix():
    from pytest_kready.client import readonly_allowed_post

    host = "https://rancher.example.com/k8s/clusters/c-abc"
    assert readonly_allowed_post("/k8s/clusters/c-abc/api/v1/namespaces/a/serviceaccounts/b/token", host)
    assert not readonly_allowed_post("/k8s/clusters/c-abc/api/v1/namespaces/a/pods/token", host)


# --- interruption ---------------------------------------------------------------------------------------


def test_sigterm_runs_cleanup(pytester, fake):
    marker = pytester.path / "started"
    pytester.makepyfile(f"""
        import pathlib, time

        def test_hangs(kready_namespace):
            kready_namespace()
            pathlib.Path({str(marker)!r}).write_text("x")
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(pytester.path), "--kready",
                             f"--kready-kubeconfig={fake.kubeconfig}", "--kready-mode=standard",
                             "-p", "no:cacheprovider"], cwd=pytester.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate(timeout=30)[0].decode()
    assert len(fake.managed()) == 1
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2, out
    assert fake.managed() == [], out


# --- secrets stay secret -------------------------------------------------------------------------------------

PASSWORD = "S3cr3t-Pa55w0rd-4711"
API_TOKEN = "tok-0123456789abcdef"
API_KEY = "k3y-abcdef-123456"
BASIC = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
LEAKS = """
import base64, logging, pytest

@pytest.mark.kready_check("leak.crash")
def test_reads_then_crashes(kready_cluster, kready_finding):
    api = kready_cluster.api_client()
    secret = api.raw("GET", "/api/v1/namespaces/app/secrets/db")
    deploy = api.raw("GET", "/apis/apps/v1/namespaces/app/deployments/web")
    password = base64.b64decode(secret["data"]["password"]).decode()
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    print("stdout has", password, secret["data"]["token"])
    logging.getLogger("leaky").warning("log has %s", password)
    kready_finding.passed("read it", target_namespace="app", evidence={"deployment": deploy, "secret": secret})
    raise RuntimeError(f"boom: {password} {container['readinessProbe']} {container['livenessProbe']}")

@pytest.mark.kready_check("leak.fail")
def test_fails_quoting_the_exec_probe(kready_cluster, kready_finding):
    deploy = kready_cluster.api_client().raw("GET", "/apis/apps/v1/namespaces/app/deployments/web")
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    kready_finding.failed("liveness is exec " + " ".join(c["livenessProbe"]["exec"]["command"])
                          + " and readiness sends " + str(c["readinessProbe"]["httpGet"]["httpHeaders"]),
                          target_namespace="app")

@pytest.mark.kready_check("leak.assert")
def test_assert_with_locals(kready_cluster):
    deploy = kready_cluster.api_client().raw("GET", "/apis/apps/v1/namespaces/app/deployments/web")
    env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [], "env differs"
"""


def leak_objects(fake):
    fake.add_namespace("app")
    fake.objects["/api/v1/namespaces/app/secrets/db"] = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"},
        "data": {"password": base64.b64encode(PASSWORD.encode()).decode(),
                 "token": base64.b64encode(API_TOKEN.encode()).decode()}}
    fake.objects["/apis/apps/v1/namespaces/app/deployments/web"] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "app"},
        "spec": {"template": {"spec": {"containers": [{
            "name": "web", "image": "nginx",
            "env": [{"name": "DB_PASSWORD", "value": PASSWORD}, {"name": "API_TOKEN", "value": API_TOKEN},
                    {"name": "LOG_LEVEL", "value": "debug"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "httpHeaders": [
                {"name": "Authorization", "value": f"Basic {BASIC}"}, {"name": "X-Api-Key", "value": API_KEY}]}},
            "livenessProbe": {"exec": {"command": [
                "sh", "-c", f"curl -sf -H 'X-Api-Key: {API_KEY}' -u admin:{PASSWORD} http://localhost:8080/"]}},
        }]}}}}


def leaked_values() -> list[str]:
    values = [PASSWORD, API_TOKEN, API_KEY, BASIC, f"admin:{PASSWORD}"]
    return values + [base64.b64encode(v.encode()).decode() for v in values]


def test_no_secret_value_reaches_any_output(pytester, fake):
    leak_objects(fake)
    pytester.makepyfile(test_leaks=LEAKS)
    out, xml, html = pytester.path / "f.json", pytester.path / "junit.xml", pytester.path / "report.html"
    log = pytester.path / "run.log"
    result = run(pytester, fake, "--kready-mode=standard", "-l", "-rA", f"--kready-json={out}",
                 f"--junitxml={xml}", f"--html={html}", "--self-contained-html", "--log-cli-level=WARNING",
                 f"--log-file={log}", "-o", "junit_logging=all")
    terminal = "\n".join(result.outlines + result.errlines)
    # the run did see the values (so the test shows redaction, not absence)
    assert "<redacted>" in terminal and "leak.fail" in out.read_text()
    assert "env differs" in terminal and "boom:" in terminal
    from test_plugin_findings import html_report  # decodes pytest-html's base64 extras

    page = json.dumps(html_report(html)) + html.read_text()
    for name, text in (("terminal", terminal), ("json", out.read_text()), ("junit", xml.read_text()),
                       ("html", page), ("log file", log.read_text())):
        for value in leaked_values():
            assert value not in text, f"{value} leaked into the {name}"
    # what is not secret stays readable
    assert "LOG_LEVEL" in out.read_text() and "debug" in out.read_text()
    assert "DB_PASSWORD" in terminal
