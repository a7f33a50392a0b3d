"""The kubernetes client, built from a ``ClusterAccess``: retries 429, 5xx and connection resets with tenacity
backoff, turns every ``ApiException`` into our typed errors (``raise from_api_exception(e) from e``), and in
readonly mode refuses any write that is not a server-side dry-run or an access/token review.

Also the few generic object operations the plugin itself needs (discovery, server-side apply, create), done over
the same client so they share its retries, typing and readonly guard. Imported lazily (only once a cluster is
used): importing it imports the kubernetes client.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import tenacity
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from . import errors, findings
from .access import ClusterAccess
from .settings import READONLY

FIELD_MANAGER = "pytest-kready"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUS_IDEMPOTENT = frozenset({429, 500, 502, 503, 504})
RETRY_STATUS_OTHER = frozenset({429, 503})  # POST/PATCH: only when the server surely did not act
# The only POSTs readonly mode lets through, matched against the whole path (after the server's own path
# prefix): access and token reviews, and TokenRequest — a ServiceAccount token is minted (short-lived, returned
# in the answer), no object is stored. Nothing else ending in /token or .../reviews passes.
_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
READONLY_ALLOWED_POSTS = tuple(re.compile(p) for p in (
    rf"/api/v1/namespaces/{_NAME}/serviceaccounts/{_NAME}/token",
    r"/apis/authorization\.k8s\.io/(v1|v1beta1)/(selfsubjectaccessreviews|selfsubjectrulesreviews|"
    r"subjectaccessreviews)",
    rf"/apis/authorization\.k8s\.io/(v1|v1beta1)/namespaces/{_NAME}/localsubjectaccessreviews",
    r"/apis/authentication\.k8s\.io/(v1|v1beta1|v1alpha1)/(selfsubjectreviews|tokenreviews)",
))
# answers whose content can hold secret values (Secrets, minted tokens, pod templates with env values and probe
# headers): harvested for redaction (findings.harvest). Not watches, logs, exec or other streams.
_HARVEST_PATH = re.compile(r"/(secrets|serviceaccounts/[^/]+/token|pods|deployments|statefulsets|daemonsets|"
                           r"replicasets|jobs|cronjobs|replicationcontrollers|podtemplates)(/[^/]+)?/?$")
CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError)


class _RetryableStatus(Exception):
    def __init__(self, error: errors.APIError):
        super().__init__(str(error))
        self.error = error


class KreadyApiClient(k8s.ApiClient):
    """``kubernetes.client.ApiClient`` with retries, typed errors and the readonly guard."""

    def __init__(self, configuration: k8s.Configuration, *, mode: str = "standard", retry_deadline: float = 60.0,
                 retry_attempts: int = 6):
        super().__init__(configuration=configuration)
        self.mode = mode
        self.retry_deadline = retry_deadline
        self.retry_attempts = retry_attempts
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}
        self._discovery_lock = threading.Lock()

    # --- readonly guard ------------------------------------------------------------------------------
    def _guard(self, method: str, url: str) -> None:
        if self.mode != READONLY or method.upper() in ("GET", "HEAD", "OPTIONS"):
            return
        parts = urlsplit(url)
        if "All" in parse_qs(parts.query).get("dryRun", []):
            return
        if method.upper() == "POST" and readonly_allowed_post(parts.path, self.configuration.host):
            return
        raise errors.ReadOnlyViolation(
            f"readonly mode refused {method.upper()} {parts.path}: only server-side dry-run writes are allowed "
            "(pass dry_run='All', or run with --kready-mode=standard)")

    # --- transport: retries --------------------------------------------------------------------------
    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        self._guard(method, url)
        retry_status = RETRY_STATUS_IDEMPOTENT if method.upper() in IDEMPOTENT else RETRY_STATUS_OTHER
        parent = super()

        def once():
            try:
                response = parent.call_api(method, url, header_params=header_params, body=body,
                                           post_params=post_params, _request_timeout=_request_timeout)
            except ApiException as e:  # the REST layer raises some statuses itself (429/503 with Retry-After)
                typed = errors.from_api_exception(e)
                if typed.status in retry_status:
                    raise _RetryableStatus(typed) from e
                raise typed from e
            if response.status in retry_status:
                response.read()
                text = response.data.decode("utf-8", "replace") if response.data else None
                exc = ApiException(http_resp=response, body=text, data=None)
                raise _RetryableStatus(errors.from_api_exception(exc)) from exc
            _harvest_secrets(method, url, response)
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry_attempts) | tenacity.stop_after_delay(self.retry_deadline),
            wait=tenacity.wait_exponential(multiplier=0.5, max=8) + tenacity.wait_random(0, 0.5),
            retry=tenacity.retry_if_exception_type((_RetryableStatus, *CONNECTION_ERRORS)),
            reraise=True,
        )
        try:
            return retrying(once)
        except _RetryableStatus as e:
            raise e.error from e.__cause__
        except CONNECTION_ERRORS as e:
            raise errors.ClusterUnreachable(
                f"cannot reach the API server at {self.configuration.host}: {_short(e)}; check that the cluster is "
                "running and that the kubeconfig names it") from e

    # --- typed errors ----------------------------------------------------------------------------------
    def _call_with_legacy_options(self, *args, **kwargs):
        try:
            return super()._call_with_legacy_options(*args, **kwargs)
        except ApiException as e:
            raise errors.from_api_exception(e) from e

    # --- generic requests ------------------------------------------------------------------------------
    def raw(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
            content_type: str | None = None, timeout: float | None = 30) -> Any:
        """One request to ``path`` (e.g. ``/api/v1/namespaces``); returns the decoded JSON body."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        request = self.param_serialize(method=method, resource_path=path, query_params=params or None,
                                       header_params=headers, body=body, auth_settings=["BearerToken"])
        return self._call_with_legacy_options(request, {"2XX": "object"}, None, True, timeout, True)

    # --- discovery -------------------------------------------------------------------------------------
    def forget_discovery(self) -> None:
        """Ask the server again which kinds it serves (after CRDs were added)."""
        with self._discovery_lock:
            self._discovery.clear()

    def resource(self, api_version: str, kind: str) -> Resource:
        with self._discovery_lock:
            kinds = self._discovery.get(api_version)
            if kinds is None:
                base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                listing = self.raw("GET", base)
                kinds = {r["kind"]: (r["name"], bool(r.get("namespaced")))
                         for r in listing.get("resources", []) if "/" not in r["name"]}
                self._discovery[api_version] = kinds
        if kind not in kinds:
            raise errors.APINotFound(f"the server does not serve kind {kind} in {api_version}", status=404)
        plural, namespaced = kinds[kind]
        return Resource(api_version, kind, plural, namespaced)


def readonly_allowed_post(path: str, host: str = "") -> bool:
    """True for the POSTs readonly mode allows (exact paths, see ``READONLY_ALLOWED_POSTS``)."""
    prefix = urlsplit(host).path.rstrip("/") if host else ""
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix):]
    return any(p.fullmatch(path) for p in READONLY_ALLOWED_POSTS)


def _harvest_secrets(method: str, url: str, response) -> None:
    """Learn the secret values in an answer (Secrets, TokenRequests, credential env/header values of workloads)
    so every output can blank them. Only whole JSON answers on those paths; never a stream."""
    parts = urlsplit(url)
    if not _HARVEST_PATH.search(parts.path) or not 200 <= getattr(response, "status", 0) < 300:
        return
    query = parse_qs(parts.query)
    if query.get("watch", ["false"])[0] in ("true", "1") or query.get("follow", ["false"])[0] in ("true", "1"):
        return
    read = getattr(response, "read", None)
    headers = getattr(response, "headers", None) or {}
    if read is None or "json" not in str(headers.get("Content-Type", headers.get("content-type", ""))):
        return
    try:
        data = read()
        decoded = json.loads(data) if data else None
        findings.harvest(decoded)
        response.kready_decoded = (data, decoded)  # send() answers with it rather than decode the body again
    except (ValueError, TypeError, UnicodeDecodeError):
        pass


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return text[:200]


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def list_path(self) -> str:
        """The collection across all namespaces (or the cluster-scoped collection)."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/{self.plural}"

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.kind} is namespaced: give a namespace")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def new_api_client(access: ClusterAccess, *, mode: str = "standard", retry_deadline: float = 60.0,
                   retry_attempts: int = 6) -> KreadyApiClient:
    """A client for ``access``; a broken kubeconfig raises ``ConfigError`` (one line)."""
    try:
        loaded = k8s_config.new_client_from_config(config_file=str(access.kubeconfig), context=access.context,
                                                   persist_config=False)
    except (k8s_config.ConfigException, OSError, ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise errors.ConfigError(f"kubeconfig {access.kubeconfig} cannot be used ({first}); fix it or pass another "
                                 "--kready-kubeconfig") from None
    configuration = loaded.configuration
    loaded.close()
    _register_credentials(configuration)
    return KreadyApiClient(configuration, mode=mode, retry_deadline=retry_deadline, retry_attempts=retry_attempts)


def _register_credentials(cfg: k8s.Configuration) -> None:
    """The kubeconfig's token and password are secret in every output too."""
    for value in (cfg.api_key or {}).values():
        findings.register_secret(str(value).removeprefix("Bearer ").removeprefix("bearer "))
    if getattr(cfg, "password", None):
        findings.register_secret(cfg.password)


def _same_server(base: k8s.ApiClient) -> k8s.Configuration:
    """A configuration for the API server of ``base`` (address and TLS trust) carrying no credentials."""
    src = base.configuration
    cfg = k8s.Configuration(host=src.host)
    cfg.ssl_ca_cert = src.ssl_ca_cert
    cfg.verify_ssl = src.verify_ssl
    cfg.tls_server_name = getattr(src, "tls_server_name", None)
    cfg.proxy = getattr(src, "proxy", None)
    return cfg


def client_for_token(base: k8s.ApiClient, token: str, *, mode: str = "standard") -> KreadyApiClient:
    """A client for the same API server as ``base``, authenticated only by the bearer ``token``."""
    cfg = _same_server(base)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    findings.register_secret(token)
    return KreadyApiClient(cfg, mode=mode)


def anonymous_client(base: k8s.ApiClient, *, mode: str = "standard", retry_deadline: float = 60.0,
                     retry_attempts: int = 6) -> KreadyApiClient:
    """A client for the same API server as ``base`` that sends no credentials at all."""
    return KreadyApiClient(_same_server(base), mode=mode, retry_deadline=retry_deadline, retry_attempts=retry_attempts)


# --- manifests ---------------------------------------------------------------------------------------

# apply order: Namespaces and CRDs before what lives in them, then identities and permissions, then configuration,
# then everything else (workloads, Services, policies); custom resources after their CRDs (see apply_rank)
_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "PriorityClass": 2, "StorageClass": 2,
          "ServiceAccount": 3, "ClusterRole": 4, "Role": 4, "ClusterRoleBinding": 5, "RoleBinding": 5,
          "ConfigMap": 6, "Secret": 6, "PersistentVolume": 6, "PersistentVolumeClaim": 7, "LimitRange": 7,
          "ResourceQuota": 7}
CRD_RANK, OTHER_RANK, CUSTOM_RANK = _ORDER["CustomResourceDefinition"], 8, 9
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class Manifest:
    """One object to apply and the file it came from."""

    obj: dict
    source: Path


def manifest_files(path: Path) -> list[Path]:
    """``path`` itself, or every YAML/JSON file under the directory ``path``, recursively, in a stable order
    (sorted by path relative to it; hidden files and directories skipped)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = [f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in MANIFEST_SUFFIXES
             and not any(part.startswith(".") for part in f.relative_to(path).parts)]
    return sorted(files, key=lambda f: f.relative_to(path).as_posix())


def load_manifest_sources(path: Path) -> list[Manifest]:
    """Every object of a manifest file or of every YAML/JSON file under a directory (``kind: List`` expanded),
    in apply order: by kind (Namespaces, CRDs, ... see ``_ORDER``; custom resources of CRDs in the same set last),
    then in file order. Unreadable files and documents without apiVersion/kind raise ``ConfigError``."""
    manifests: list[Manifest] = []
    files = manifest_files(Path(path))
    if Path(path).is_dir() and not files:
        raise errors.ConfigError(f"--kready-apply={path}: the directory holds no .yaml, .yml or .json file")
    for file in files:
        if file.name in KUSTOMIZATION_FILES:
            raise errors.ConfigError(f"manifest {file} is a kustomization; render it first (kubectl kustomize "
                                     f"{file.parent} > manifests.yaml) and apply the result")
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise errors.ConfigError(f"manifest {file} cannot be read ({first}); fix the file") from None
        for doc in docs:
            if not doc:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise errors.ConfigError(f"manifest {file} holds a document without apiVersion/kind; fix the file")
            is_list = str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list)
            for obj in (doc["items"] if is_list else [doc]):
                if not isinstance(obj, dict) or not (obj.get("metadata") or {}).get("name"):
                    raise errors.ConfigError(f"manifest {file} holds a {obj.get('kind') if isinstance(obj, dict) else ''}"
                                             " without metadata.name; fix the file")
                manifests.append(Manifest(obj, file))
    return sort_for_apply(manifests)


def sort_for_apply(manifests: list[Manifest]) -> list[Manifest]:
    crd_groups = {(m.obj.get("spec") or {}).get("group") for m in manifests
                  if m.obj.get("kind") == "CustomResourceDefinition"}
    return sorted(manifests, key=lambda m: apply_rank(m.obj, crd_groups))  # stable: file order within a rank


def apply_rank(obj: dict, crd_groups: set | frozenset = frozenset()) -> int:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group and group in crd_groups:
        return CUSTOM_RANK
    return _ORDER.get(obj.get("kind"), OTHER_RANK)


def load_manifests(path: Path) -> list[dict]:
    """Objects of a (multi-document) YAML file, or of every YAML file under a directory, in apply order."""
    return [m.obj for m in load_manifest_sources(path)]


def with_labels(obj: dict, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    """A copy of ``obj`` carrying ``labels`` (ours win) and ``annotations``."""
    out = json.loads(json.dumps(obj))
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return out


def apply(api: KreadyApiClient, obj: dict, *, dry_run: bool = False, default_namespace: str = "default") -> dict:
    """Server-side apply ``obj`` (field manager ``pytest-kready``, forced)."""
    res = api.resource(obj["apiVersion"], obj["kind"])
    meta = obj.get("metadata") or {}
    namespace = (meta.get("namespace") or default_namespace) if res.namespaced else None
    return api.raw("PATCH", res.path(meta["name"], namespace), body=obj, content_type="application/apply-patch+yaml",
                   query={"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All" if dry_run else None})


def create(api: KreadyApiClient, obj: dict, *, dry_run: bool = False, default_namespace: str = "default") -> dict:
    """Create ``obj`` (``dry_run``: server-side dry run, everything admission would do, nothing stored)."""
    res = api.resource(obj["apiVersion"], obj["kind"])
    meta = obj.get("metadata") or {}
    namespace = (meta.get("namespace") or default_namespace) if res.namespaced else None
    return api.raw("POST", res.path(None, namespace), body=obj,
                   query={"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None})


# --- one request, any status: what a check sends when the answer itself is the evidence ----------------


@dataclasses.dataclass
class Response:
    status: int
    body: Any
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("message") or "")
        return str(self.body or "")[:500]

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "") if isinstance(self.body, dict) else ""

    def summary(self) -> dict[str, Any]:
        """What a finding shows of the response: status, reason, message, warnings (never an object's data)."""
        out: dict[str, Any] = {"status": self.status}
        if not self.ok:
            out.update(reason=self.reason, message=self.message)
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def send(api, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
         headers: dict[str, str] | None = None, timeout: float = 20, text: bool = False) -> Response:
    """One request through ``api`` (a KreadyApiClient: retries, readonly guard); any HTTP status is returned,
    not raised. Connection problems still raise (``errors.ClusterUnreachable``). ``text``: the whole body as
    text (e.g. /metrics), not decoded JSON."""
    hdrs = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    params = [(k, v) for k, v in (query or {}).items() if v is not None]
    request = api.param_serialize(method=method, resource_path=path, query_params=params or None,
                                  header_params=hdrs, body=body, auth_settings=["BearerToken"])
    try:
        resp = api.call_api(*request, _request_timeout=timeout)
    except errors.APIError as e:  # retries exhausted on 429/5xx, or raised by the REST layer
        return Response(e.status, e.body or {"message": str(e)})
    resp.read()
    raw = resp.data or b""
    warnings = [w for k, w in (resp.getheaders() or {}).items() if k.lower() == "warning"]
    if text:
        return Response(resp.status, raw.decode("utf-8", "replace"), _split_warnings(warnings))
    seen = getattr(resp, "kready_decoded", None)  # decoded already to learn the secrets in it
    if seen is not None and seen[0] is raw:
        return Response(resp.status, seen[1], _split_warnings(warnings))
    try:
        decoded: Any = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode("utf-8", "replace")[:2000]
    return Response(resp.status, decoded, _split_warnings(warnings))


def _split_warnings(values: list[str]) -> list[str]:
    out = []
    for v in values:
        # `299 - "text"` possibly several joined by commas
        out += [m.group(1) for m in re.finditer(r'299 - "((?:[^"\\]|\\.)*)"', v)] or [v]
    return out
