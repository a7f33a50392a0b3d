"""Public fixtures of pytest-kready (registered by plugin.py):

``kready_cluster`` (session) · ``kready_namespace`` (function; factory, and ``kready_ns`` the plain form) ·
``kready_as_serviceaccount`` (function; factory) · ``kready_finding`` (function) · ``kready_settings`` (session)
· ``kready_reachability`` (function; factory, from pytest_kready/reachability).

Markers are honoured by the autouse ``_kready_gate``: ``kready_mode(mode)`` (the least mode a check needs),
``kready_needs(capability)`` and ``kready_needs_permission(verb, resource, group="", namespace=None,
subresource=None)``; a check whose need is not met is reported not-applicable with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import errors
from .findings import REPORTS_KEY, SECRETS_KEY, FindingRecorder
from .session import Cluster, KreadySession, session_of
from .settings import READONLY, Settings

EXIT_CONFIG = 4  # the run's setup is wrong (options, kubeconfig, permissions)
EXIT_CLUSTER = 2  # the cluster could not be made or reached: the run was stopped before its checks


def _session(config: pytest.Config) -> KreadySession:
    ks = session_of(config)
    if ks is None:
        pytest.skip("pytest-kready checks run only with --kready")
    return ks


def _exit_for(e: errors.KreadyError) -> None:
    code = EXIT_CONFIG if isinstance(e, errors.ConfigError) else EXIT_CLUSTER
    pytest.exit(f"kready: {e}", returncode=code)


def _failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(REPORTS_KEY, {}).values())


@pytest.fixture(scope="session")
def kready_settings(pytestconfig: pytest.Config) -> Settings:
    return _session(pytestconfig).settings


@pytest.fixture(scope="session")
def kready_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The cluster under test, made (kind, local) or attached (kubeconfig) on first use; destroyed or cleaned at
    the end of the session unless --kready-keep says otherwise. Problems end the run with one line."""
    ks = _session(request.config)
    request.addfinalizer(lambda: ks.finish(failed=request.session.testsfailed > 0))
    try:
        if ks.cluster is None and ks.settings.provider in (None, "kind"):
            from .providers.pytest_kind import target

            ks.pytest_kind = target(request)  # the session's pytest-kind cluster: attached to, not made again
        cluster = ks.start(early=lambda c: start_early(request.session.items, ks, c))
    except errors.KreadyError as e:
        _exit_for(e)
    yield cluster


class NamespaceFactory:
    """``kready_namespace(labels=..., annotations=..., name_prefix=...)`` → the name of a fresh namespace carrying
    the run's labels; ``kready_namespace.name`` is one default namespace for the test. Deletes only what it made
    (``Cluster.scratch_namespace`` and ``Cluster.release``)."""

    def __init__(self, cluster: Cluster, item: pytest.Item):
        self.cluster = cluster
        self.item = item
        self.created: list[str] = []
        self._default: str | None = None

    def __call__(self, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 name_prefix: str | None = None) -> str:
        if self.cluster.mode == READONLY:
            FindingRecorder(self.item).not_applicable(
                "creates a throw-away namespace; this run is readonly (use --kready-mode=standard)")
        name = self.cluster.scratch_namespace(name_prefix or self.item.name.split("[")[0].removeprefix("test_"),
                                              labels=labels, annotations=annotations)
        self.created.append(name)
        return name

    def adopt(self, name: str) -> str:
        """A namespace of this run made for the test beforehand (an early start): released with the test's own."""
        if name not in self.created:
            self.created.append(name)
        return name

    @property
    def name(self) -> str:
        if self._default is None:
            self._default = self()
        return self._default

    def teardown(self, *, failed: bool) -> None:
        from .cleanup import Ref

        self.cluster.release([Ref("v1", "Namespace", name) for name in self.created], failed=failed)


@pytest.fixture
def kready_namespace(request: pytest.FixtureRequest, kready_cluster: Cluster) -> Iterator[NamespaceFactory]:
    factory = NamespaceFactory(kready_cluster, request.node)
    yield factory
    factory.teardown(failed=_failed(request.node))


@pytest.fixture
def kready_ns(kready_namespace: NamespaceFactory) -> str:
    """The plain form: the name of one fresh namespace for this test."""
    return kready_namespace.name


@pytest.fixture
def kready_as_serviceaccount(request: pytest.FixtureRequest, kready_cluster: Cluster):
    """``kready_as_serviceaccount(namespace, name="default", audiences=None)`` → an ApiClient authenticated only by
    a real token for that ServiceAccount (TokenRequest API, 10 minutes), not by impersonation."""
    from .client import client_for_token
    from .waits import wait_for

    clients = []
    api = kready_cluster.api_client()

    def as_serviceaccount(namespace: str, name: str = "default", *, audiences: list[str] | None = None):
        spec: dict = {"expirationSeconds": 600}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        answer = wait_for(lambda: api.raw("POST", path, body=body), timeout=30, interval=0.5,
                          retry_on=(errors.APINotFound,), what=f"token for ServiceAccount {namespace}/{name}")
        token = answer["status"]["token"]
        request.node.stash.setdefault(SECRETS_KEY, set()).add(token)
        sa_client = client_for_token(api, token, mode=kready_cluster.mode)
        clients.append(sa_client)
        return sa_client

    yield as_serviceaccount
    for c in clients:
        c.close()


@pytest.fixture
def kready_finding(request: pytest.FixtureRequest) -> FindingRecorder:
    """Record findings: ``kready_finding("fail", "summary", target_namespace=..., evidence={...}, ...)``, or
    ``.passed`` / ``.failed`` / ``.inconclusive`` (stops the test) / ``.not_applicable`` (skips it)."""
    return FindingRecorder(request.node)


# ------------------------------------------------------------------------------------------------------
# kready_reachability: RESERVED for the network work (probes between pods with expected/observed truth
# tables). Add the fixture here, built on kready_cluster and kready_namespace.
# ------------------------------------------------------------------------------------------------------
from .reachability.fixture import kready_reachability  # noqa: E402 - defined in pytest_kready/reachability


def gate_reason(item: pytest.Item, ks: KreadySession, cluster: Cluster | None = None) -> str | None:
    """Why ``item`` is not-applicable before it runs (its ``kready_mode``, ``kready_needs`` and
    ``kready_needs_permission`` markers), or None. ``cluster`` is needed only for needs and permissions."""
    mode_marker = item.get_closest_marker("kready_mode")
    if mode_marker:
        needed = mode_marker.args[0]
        if not ks.settings.allows(needed):
            return f"needs --kready-mode={needed} (this run is {ks.settings.mode})"
    needs = list(item.iter_markers("kready_needs"))
    perms = list(item.iter_markers("kready_needs_permission"))
    if not (needs or perms) or cluster is None:
        return None
    for marker in needs:
        for capability in marker.args:
            if not cluster.capabilities.has(capability):
                return cluster.capabilities.why_not(capability)
    if perms:
        from .preflight import Permission, not_applicable_reason

        missing = cluster.reviewer.missing([Permission.from_marker(m) for m in perms])
        if missing:
            return not_applicable_reason(missing)
    return None


def start_early(items: list[pytest.Item], ks: KreadySession, cluster: Cluster) -> None:
    """Begin the early starts (``kready_early`` markers, pytest_kready.early) of the selected tests that will
    run: once per key, in the order of the tests."""
    if ks.settings.mode == READONLY or os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a worker's items are all collected ones, not the ones it will run: each test does its own work
    for item in items:
        for marker in item.iter_markers("kready_early"):
            key, start = marker.kwargs.get("key"), marker.kwargs.get("start")
            if not key or not callable(start) or cluster.early.started(key):
                continue
            try:
                reason = gate_reason(item, ks, cluster)
            except errors.KreadyError:
                continue  # the test's own gate says it
            if reason is None:
                cluster.early.start(key, start, cluster)


@pytest.fixture(autouse=True)
def _kready_gate(request: pytest.FixtureRequest) -> None:
    """Not-applicable before the test runs when its mode, capability or permission needs are not met."""
    item = request.node
    if not (item.get_closest_marker("kready_mode") or item.get_closest_marker("kready_needs")
            or item.get_closest_marker("kready_needs_permission")):
        return
    ks = _session(request.config)
    needs_cluster = item.get_closest_marker("kready_needs") or item.get_closest_marker("kready_needs_permission")
    reason = gate_reason(item, ks)
    if reason is None and needs_cluster:
        reason = gate_reason(item, ks, request.getfixturevalue("kready_cluster"))
    if reason is not None:
        FindingRecorder(item).not_applicable(reason)


__all__ = ["kready_cluster", "kready_namespace", "kready_ns", "kready_as_serviceaccount", "kready_finding",
           "kready_settings", "kready_reachability", "NamespaceFactory"]
