"""The run's state (``KreadySession``, on ``config.stash[SESSION_KEY]``) and the cluster object the
``kready_cluster`` fixture yields. The cluster is made or attached on first use, never at collection."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import errors, labels, timings
from .cleanup import Ref, SignalGuard, cleanup_run, delete_owned, mark_kept, shielded, sweep
from .access import ClusterAccess
from .providers.base import Capabilities, ControlPlane, Provider
from .settings import READONLY, Settings

SESSION_KEY = pytest.StashKey["KreadySession"]()
APPLIED_LABEL = "kready.dev/applied"  # what --kready-apply created (pytest_kready.applying): the team's, not ours
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})


def keeps(keep: str, failed: bool) -> bool:
    """The one keep decision (``--kready-keep``): ``none``, ``failed`` (keep when something failed) or ``all``."""
    return keep == "all" or (keep == "failed" and failed)


def session_of(config: pytest.Config) -> KreadySession | None:
    return config.stash.get(SESSION_KEY, None)


class Cluster:
    """What ``kready_cluster`` yields: how to reach the cluster, what it can do, and the run's settings."""

    def __init__(self, session: KreadySession, provider: Provider, access: ClusterAccess, server_version: str):
        self._session = session
        self.provider = provider
        self.provider_name: str = provider.name
        self.access = access
        self.capabilities: Capabilities = provider.capabilities
        self.control_plane: ControlPlane | None = (
            provider.control_plane() if provider.capabilities.control_plane_exec else None)
        self.settings: Settings = session.settings
        self.run_id: str = session.settings.run_id
        self.mode: str = session.settings.mode
        self.server_version = server_version
        self._api = None
        self._targets: list[str] | None = None
        self._defaults_ns: str | None = None
        self._lock = threading.RLock()
        self._reviewer = None
        self.created: list[Ref] = []  # objects this run made and has not released yet (see track/release)

    @property
    def early(self):
        """The run's early starts (pytest_kready.early): checks' preparation begun in the background."""
        return self._session.early

    # --- clients -------------------------------------------------------------------------------------
    def api_client(self, *, new: bool = False, retries: bool = True, retry_deadline: float | None = None):
        """The run's ``ApiClient`` (retries, typed errors, readonly guard). ``new=True``: a private one the caller
        closes. ``retries=False``: a private client that sends each request once (load drivers, evictions, a
        restarting API server: a failed request is data, not something to hide)."""
        from .client import new_api_client

        if not retries:
            extra = {"retry_deadline": retry_deadline} if retry_deadline is not None else {}
            return new_api_client(self.access, mode=self.mode, retry_attempts=1, **extra)
        if new:
            return new_api_client(self.access, mode=self.mode)
        with self._lock:
            if self._api is None:
                self._api = new_api_client(self.access, mode=self.mode)
            return self._api

    def no_retry_client_factory(self, *, retry_deadline: float | None = None):
        """A function returning a fresh no-retry client on each call (for threads, or after an API restart)."""
        return lambda: self.api_client(retries=False, retry_deadline=retry_deadline)

    @property
    def reviewer(self):
        from .preflight import AccessReviewer

        api = self.api_client()
        with self._lock:
            if self._reviewer is None:
                self._reviewer = AccessReviewer(api)
            return self._reviewer

    def can(self, verb: str, resource: str, group: str = "", namespace: str | None = None,
            subresource: str | None = None) -> bool:
        """SelfSubjectAccessReview (cached): may this run's identity do it?"""
        from .preflight import Permission

        return self.reviewer.can(Permission(verb, resource, group, namespace, subresource))[0]

    # --- objects ---------------------------------------------------------------------------------------
    def labels(self) -> dict[str, str]:
        return labels.run_labels(self.run_id)

    def metadata(self, **kwargs: Any) -> dict:
        """``metadata`` for an object this run creates (ownership labels + created-at annotation)."""
        return labels.object_meta(self.run_id, **kwargs)

    def create(self, obj: dict, *, dry_run: bool = False, namespace: str | None = None) -> dict:
        """Create ``obj`` labelled as this run's (cluster-scoped ones are cleaned by label at session end)."""
        from . import client

        obj = client.with_labels(obj, self.labels(), labels.created_annotation())
        if namespace:
            obj["metadata"].setdefault("namespace", namespace)
        return client.create(self.api_client(), obj, dry_run=dry_run)

    def namespace_name(self, prefix: str) -> str:
        """A fresh name ``kr-<prefix>-<run-id>-<n>`` (unique in the run, DNS-1123, at most 63 characters)."""
        return self._session.namespace_name(prefix)

    def scratch_namespace(self, prefix: str, *, labels: dict[str, str] | None = None,
                          annotations: dict[str, str] | None = None) -> str:
        """Create a throw-away namespace of this run (its labels, tracked for cleanup) and wait for its default
        ServiceAccount (pods are refused until it exists). Refused in readonly mode (``ReadOnlyViolation``).
        Release it with ``release([Ref("v1", "Namespace", name)], failed=...)`` or leave it to the session end."""
        from .cleanup import Ref

        name = self.namespace_name(prefix)
        self.api_client().raw("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": self.metadata(name=name, labels=labels, annotations=annotations)})
        self.track(Ref("v1", "Namespace", name))
        self.wait_default_serviceaccount(name)
        return name

    def wait_default_serviceaccount(self, namespace: str, timeout: float = 60) -> None:
        """Wait (with a deadline) until ``namespace`` has its default ServiceAccount."""
        from .kube import wait_default_serviceaccount

        wait_default_serviceaccount(self.api_client(), namespace, timeout)

    def track(self, ref: Ref) -> Ref:
        """Remember an object this run created (it carries the run's labels), for ``release`` and the run's end."""
        with self._lock:
            if ref not in self.created:
                self.created.append(ref)
        return ref

    def keep(self, failed: bool) -> bool:
        """The one keep decision (``--kready-keep``): none, failed (keep when ``failed``), or all."""
        return keeps(self.settings.keep, failed)

    def release(self, refs: list[Ref], *, failed: bool) -> list[Ref]:
        """Delete ``refs`` (only if they carry this run's labels), or mark them kept when ``keep(failed)``; cannot
        be cut short by Ctrl-C. Returns what was kept. Errors become session messages, never exceptions."""
        from .cleanup import delete_owned, mark_kept, shielded

        kept: list[Ref] = []
        if not refs:
            return kept
        api = self.api_client()
        keep = self.keep(failed)
        with shielded():
            for ref in refs:
                try:
                    if keep:
                        mark_kept(api, ref, self.run_id)
                        kept.append(ref)
                    else:
                        delete_owned(api, ref, self.run_id)
                except errors.APIError as e:
                    self._session.messages.append(f"could not delete {ref}: {e}")
                with self._lock:
                    if ref in self.created:
                        self.created.remove(ref)
        self._session.note_kept(kept)
        return kept

    # --- targets ---------------------------------------------------------------------------------------
    def target_namespaces(self) -> list[str]:
        """Namespaces the checks look at: ``--kready-namespaces``, or every non-system namespace (not the plugin's
        own) plus, outside readonly mode, one fresh namespace that shows what the cluster gives a new one."""
        api = self.api_client()
        with self._lock:
            if self._targets is None:
                if self.settings.namespaces is not None:
                    self._targets = list(self.settings.namespaces)
                else:
                    listing = api.raw("GET", "/api/v1/namespaces")
                    self._targets = sorted(
                        n["metadata"]["name"] for n in listing.get("items") or []
                        if not _system(n["metadata"]["name"])
                        and ((n["metadata"].get("labels") or {}).get(labels.MANAGED_BY) != labels.MANAGED_BY_VALUE
                             or (n["metadata"].get("labels") or {}).get(APPLIED_LABEL) == "true"))
        defaults = self.defaults_namespace() if self.settings.namespaces is None else None
        return self._targets + ([defaults] if defaults else [])

    def defaults_namespace(self) -> str | None:
        """A fresh namespace (only our labels) showing the cluster's defaults; None in readonly mode."""
        if self.mode == READONLY:
            return None
        api = self.api_client()
        with self._lock:
            if self._defaults_ns is None:
                from .cleanup import Ref

                name = self.namespace_name("defaults")
                api.raw("POST", "/api/v1/namespaces", body={
                    "apiVersion": "v1", "kind": "Namespace", "metadata": self.metadata(name=name)})
                self.track(Ref("v1", "Namespace", name))
                self._defaults_ns = name
            return self._defaults_ns


def _system(name: str) -> bool:
    return name in SYSTEM_NAMESPACES or name.startswith("kube-")


_NAME_OK = re.compile(r"[^a-z0-9-]+")


class KreadySession:
    """One per pytest process: settings, the (lazily started) cluster, cleanup bookkeeping, messages."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        self.guard = SignalGuard()
        self.cluster: Cluster | None = None
        self.provider: Provider | None = None
        self.kept: list[Ref] = []
        self.messages: list[str] = []
        self.meta: dict[str, Any] = {"run_id": settings.run_id, "mode": settings.mode, "profile": settings.profile,
                                     "provider": settings.provider}
        self._counter = itertools.count(1)
        self._start_error: errors.KreadyError | None = None
        self.applied = None  # applying.Applied once --kready-apply ran
        from .early import EarlyStarts

        self.early = EarlyStarts()  # checks' slow preparation, begun once the cluster is ready (pytest_kready.early)
        self.pytest_kind = None  # the session's pytest-kind cluster (providers.pytest_kind.target), set by kready_cluster

    # --- names ---------------------------------------------------------------------------------------------
    def namespace_name(self, prefix: str) -> str:
        """``kr-<prefix>-<run-id><worker>-<n>``: unique in the run, DNS-1123, at most 63 characters."""
        tail = f"-{self.settings.run_id}{labels.worker_suffix()}-{next(self._counter)}"
        prefix = _NAME_OK.sub("-", prefix.lower()).strip("-") or "t"
        prefix = prefix[: max(1, 63 - len("kr-") - len(tail))].strip("-") or "t"
        return f"kr-{prefix}{tail}"

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, early: Callable[[Cluster], None] | None = None) -> Cluster:
        """Make or attach the cluster, check it answers and that the run may do its work, sweep, apply; then
        ``early(cluster)`` (the checks' early starts) while the provider finishes its start (local: the add-ons)."""
        if self.cluster is not None:
            return self.cluster
        if self._start_error is not None:
            raise self._start_error
        try:
            cluster = self._start()
            if early is not None:
                early(cluster)
            settle = getattr(self.provider, "settle", None)
            if settle is not None:
                with timings.phase("cluster.settle", provider=self.provider.name):
                    settle()
                timings.steps("cluster.settle", getattr(self.provider, "settle_timings", None))
            self.cluster = cluster
        except errors.KreadyError as e:
            self._start_error = e
            raise
        self.config.hook.pytest_kready_cluster_ready(cluster=self.cluster)
        return self.cluster

    def _start(self) -> Cluster:
        from . import client, preflight
        from .providers import select_provider

        s = self.settings
        self.provider = provider = select_provider(s, pytest_kind=self.pytest_kind)
        self.meta["provider"] = provider.name
        with timings.phase("cluster.create", provider=provider.name):
            access = provider.create()
        timings.steps("cluster.create", getattr(provider, "timings", None))  # the provider's own steps, if any
        self.messages.extend(getattr(provider, "notes", ()))  # e.g. a killed run's cluster torn down first
        probe = client.new_api_client(access, mode=s.mode, retry_deadline=10, retry_attempts=3)
        with timings.phase("preflight"):
            version = preflight.check_reachable(probe)
            self.meta["server_version"] = version
            preflight.check_run_permissions(preflight.AccessReviewer(probe), s)
        if s.mode != READONLY:
            with timings.phase("sweep"):
                swept = sweep(probe, current_run_id=s.run_id, grace=s.sweep_grace)
            if swept:
                self.messages.append(f"swept {len(swept)} object(s) left by earlier runs: "
                                     + ", ".join(map(str, swept[:10])))
        if provider.capabilities.apply_allowed:  # kind/local: made by this run, or started by the user and named
            prepare = getattr(provider, "prepare", None)
            if prepare is not None:
                with timings.phase("prepare"):
                    prepare(probe)
        if s.apply:
            with timings.phase("apply"):
                self._apply(probe, provider)  # first: --kready-namespaces may name what it creates
        with timings.phase("check-namespaces"):
            self._check_namespaces(probe)
        probe.close()
        return Cluster(self, provider, access, version)

    def _check_namespaces(self, api) -> None:
        for ns in self.settings.namespaces or ():
            try:
                api.raw("GET", f"/api/v1/namespaces/{ns}")
            except errors.APINotFound:
                raise errors.ConfigError(f"--kready-namespaces: namespace {ns} does not exist in the cluster") from None
            except errors.APIForbidden:
                pass  # may not read the Namespace object itself; checks say what they cannot see

    def _apply(self, api, provider: Provider) -> None:
        """``--kready-apply``: apply the manifests (files or directories) and wait for them to settle
        (pytest_kready.applying); what did not exist before carries the run's labels and goes at its end."""
        from .applying import Applied, apply_paths

        s = self.settings
        if s.mode == READONLY:
            raise errors.ConfigError("--kready-apply writes to the cluster; it cannot be used with "
                                     "--kready-mode=readonly")
        if not getattr(provider.capabilities, "apply_allowed", provider.capabilities.ephemeral):
            raise errors.ConfigError(f"--kready-apply changes a cluster; it applies only to kind or local clusters "
                                     f"this run made or you started, not to this {provider.name} cluster")
        self.applied = Applied()
        try:
            apply_paths(api, list(s.apply), s.run_id, into=self.applied)
        except errors.KreadyError:
            # the run stops before its checks: undo what it created on a cluster that outlives it
            owned = provider.capabilities.ephemeral and not getattr(provider, "attached", False)
            if not owned and not keeps(s.keep, True):
                with shielded():
                    for ref in reversed(self.applied.created):
                        try:
                            delete_owned(api, ref, s.run_id)
                        except errors.APIError:
                            pass
                self.applied.created.clear()
            raise
        message = f"applied {len(self.applied.all)} object(s) from " + ", ".join(map(str, s.apply))
        if self.applied.updated:
            message += (f"; {len(self.applied.updated)} already existed and were updated, not deleted at the end: "
                        + ", ".join(map(str, self.applied.updated[:10])))
        self.messages.append(message)

    def note_kept(self, refs: list[Ref]) -> None:
        self.kept.extend(r for r in refs if r not in self.kept)

    def finish(self, failed: bool) -> None:
        """End of session: delete what the run made (or keep it, per --kready-keep), destroy an ephemeral cluster."""
        provider, cluster = self.provider, self.cluster
        if provider is None:
            return
        keep = keeps(self.settings.keep, failed)
        self.messages.extend(self.early.close(failed=failed))  # nothing runs in the background while cleaning up
        with shielded(), timings.phase("cleanup"):
            try:
                # a cluster the provider attached to (local: already up) outlives the run: clean it like an existing one
                if provider.capabilities.ephemeral and not getattr(provider, "attached", False):
                    if keep:
                        describe = getattr(provider, "describe_kept", None)
                        self.messages.append(describe() if describe else f"{provider.name} cluster kept")
                    else:
                        told = len(getattr(provider, "notes", ()))
                        try:
                            with timings.phase("cluster.destroy"):
                                provider.destroy()
                        finally:
                            self.messages.extend(getattr(provider, "notes", [])[told:])  # e.g. a frozen node thawed
                elif cluster is not None and self.settings.mode != READONLY:
                    api = cluster.api_client()
                    if keep:
                        from .cleanup import list_managed

                        for ref in list_managed(api, labels.run_selector(self.settings.run_id)):
                            mark_kept(api, ref, self.settings.run_id)
                            if ref not in self.kept:
                                self.kept.append(ref)
                    else:
                        with timings.phase("cleanup.objects"):
                            for ref in reversed(self.applied.created if self.applied else []):
                                delete_owned(api, ref, self.settings.run_id)  # any kind; only with our labels
                            left = cleanup_run(api, self.settings.run_id)
                        if left:
                            self.messages.append("still deleting at the deadline: " + ", ".join(map(str, left)))
            except (errors.KreadyError, errors.APIError) as e:
                self.messages.append(f"cleanup incomplete: {e}")
            finally:
                if cluster is not None and cluster._api is not None:
                    cluster._api.close()
                self.provider = None
        if self.kept:
            kinds = ",".join(sorted({r.kind.lower() for r in self.kept}))
            self.messages.append(
                f"kept {len(self.kept)} object(s) for debugging: " + ", ".join(map(str, self.kept[:10]))
                + f"; delete them with: kubectl delete {kinds} -l {labels.RUN_ID}={self.settings.run_id}")
