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

from . import errors
from .providers.base import ClusterAccess
from .settings import READONLY

FIELD_MANAGER = "pytest-kready"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUS_IDEMPOTENT = frozenset({429, 500, 502, 503, 504})
RETRY_STATUS_OTHER = frozenset({429, 503})  # POST/PATCH: only when the server surely did not act
# writes allowed in readonly mode: reviews and token requests persist nothing
READONLY_ALLOWED_POST_SUFFIXES = (
    "/selfsubjectaccessreviews", "/selfsubjectrulesreviews", "/selfsubjectreviews", "/subjectaccessreviews",
    "/localsubjectaccessreviews", "/tokenreviews", "/token",
)
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
        if method.upper() == "POST" and parts.path.rstrip("/").endswith(READONLY_ALLOWED_POST_SUFFIXES):
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
    return KreadyApiClient(configuration, mode=mode, retry_deadline=retry_deadline, retry_attempts=retry_attempts)


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
    return KreadyApiClient(cfg, mode=mode)


def anonymous_client(base: k8s.ApiClient, *, mode: str = "standard", retry_deadline: float = 60.0,
                     retry_attempts: int = 6) -> KreadyApiClient:
    """A client for the same API server as ``base`` that sends no credentials at all."""
    return KreadyApiClient(_same_server(base), mode=mode, retry_deadline=retry_deadline, retry_attempts=retry_attempts)


# --- manifests ---------------------------------------------------------------------------------------

_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "ClusterRole": 3, "Role": 3}


def load_manifests(path: Path) -> list[dict]:
    """Objects of a (multi-document) YAML file, ``kind: List`` expanded, in apply order (namespaces first)."""
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except (OSError, yaml.YAMLError) as e:
        raise errors.ConfigError(f"manifest {path} cannot be read ({str(e).splitlines()[0]}); fix the file") from None
    objects: list[dict] = []
    for doc in docs:
        if not doc:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise errors.ConfigError(f"manifest {path} holds a document without apiVersion/kind; fix the file")
        is_list = doc["kind"].endswith("List") and isinstance(doc.get("items"), list)
        objects.extend(doc["items"] if is_list else [doc])
    return sorted(objects, key=lambda o: _ORDER.get(o.get("kind"), 9))


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
