"""The enforcer process: watch Pods, Namespaces and NetworkPolicies; keep the iptables rules in step.

* One informer thread per kind: list, then watch from the list's resourceVersion (server-side timeout, bookmarks);
  on 410 Gone (or any other error) list again, with a capped backoff on errors.
* On any change the main thread waits ``debounce`` seconds (0.1 s) for more, then recomputes the ruleset
  (:func:`rules.build_ruleset`, a pure function) and, only when it differs from what it applied last or the
  installed rules have drifted, applies it in one ``iptables-restore --noflush`` transaction.
* Every ``resync`` seconds it checks that the hooks are still first in FORWARD/INPUT and the chains intact (other
  components insert rules too), and re-applies when not.
* The first successful sync writes ``--ready-file``. SIGTERM/SIGINT: remove every rule and chain of ours, remove
  the ready file, exit 0 (1 when the rules could not be removed).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import rules

log = logging.getLogger("kready.netpol")

STARTING_RETRY = 0.25  # seconds between lists until the first one succeeds (the API server starting)
BRIDGE_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


# --- objects kept in memory: only the fields the rules read ---------------------------------------------------------


def _slim_meta(obj: dict) -> dict:
    m = obj.get("metadata") or {}
    out = {k: m[k] for k in ("name", "namespace", "labels", "resourceVersion", "creationTimestamp", "deletionTimestamp") if k in m}
    return out


def slim_pod(obj: dict) -> dict:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}

    def containers(items):
        return [{k: c[k] for k in ("name", "ports", "restartPolicy") if k in c} for c in items or []]

    return {
        "metadata": _slim_meta(obj),
        "spec": {"hostNetwork": bool(spec.get("hostNetwork")), "containers": containers(spec.get("containers")),
                 "initContainers": containers(spec.get("initContainers"))},
        "status": {k: status[k] for k in ("phase", "podIP", "podIPs") if k in status},
    }


def slim_namespace(obj: dict) -> dict:
    return {"metadata": _slim_meta(obj)}


def slim_policy(obj: dict) -> dict:
    return {"metadata": _slim_meta(obj), "spec": obj.get("spec") or {}}


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Informer(threading.Thread):
    """List + watch one kind into a dict, calling ``on_change`` whenever the dict changes."""

    def __init__(self, kind: str, list_fn: Callable[..., Any], slim: Callable[[dict], dict], on_change: Callable[[], None],
                 stop: threading.Event, *, watch_timeout: int = 300, request_timeout: float = 30):
        super().__init__(name=f"informer-{kind}", daemon=True)
        self.kind = kind
        self.list_fn = list_fn
        self.slim = slim
        self.on_change = on_change
        self.stop_event = stop
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.lock = threading.Lock()
        self.objects: dict[str, dict] = {}
        self.synced = threading.Event()
        self.lists = 0
        self._watch = None

    @staticmethod
    def key(obj: dict) -> str:
        m = obj.get("metadata") or {}
        return f"{m.get('namespace', '')}/{m.get('name', '')}"

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.objects.values())

    def stop(self) -> None:
        w = self._watch
        if w is not None:
            w.stop()

    def run(self) -> None:
        # Until the first list succeeds, the API server is starting beside us (the enforcer starts with it): try
        # again every STARTING_RETRY seconds, quietly. After that, an error backs off from 0.5 s up to 10 s.
        backoff = 0.5
        listed, tries = False, 0
        while not self.stop_event.is_set():
            try:
                rv = self.list()
                listed, backoff = True, 0.5
                while not self.stop_event.is_set():
                    rv = self.watch(rv)
            except Gone:
                log.info("%s: resourceVersion expired (410); listing again", self.kind)
            except Exception as exc:  # API down, bad response, ...: list again after a pause
                if self.stop_event.is_set():
                    break
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                if not listed:
                    tries += 1  # said once, then every ~5 s: the cluster's start shows this log when it fails
                    if tries % int(5 / STARTING_RETRY) == 1:
                        log.warning("%s: %s; not listed yet, trying every %.2fs", self.kind, why, STARTING_RETRY)
                    self.stop_event.wait(STARTING_RETRY)
                    continue
                log.warning("%s: %s; listing again in %.1fs", self.kind, why, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10)

    def list(self) -> str:
        from kubernetes.client.rest import ApiException

        try:
            resp = self.list_fn(_preload_content=False, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        data = json.loads(resp.data)
        objects = {self.key(o): self.slim(o) for o in data.get("items") or []}
        with self.lock:
            changed = objects != self.objects
            self.objects = objects
        self.lists += 1
        first = not self.synced.is_set()
        self.synced.set()
        if changed or first:
            self.on_change()
        return (data.get("metadata") or {}).get("resourceVersion") or ""

    def watch(self, rv: str) -> str:
        """Watch from ``rv`` until the server ends the request; returns the last resourceVersion seen."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        w = watch.Watch()
        self._watch = w
        try:
            for event in w.stream(self.list_fn, resource_version=rv, timeout_seconds=self.watch_timeout,
                                  allow_watch_bookmarks=True, _request_timeout=(10, self.watch_timeout + 30)):
                if self.stop_event.is_set():
                    break
                kind, obj = event.get("type"), event.get("raw_object") or {}
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind == "BOOKMARK":
                    rv = new_rv or rv
                    continue
                key = self.key(obj)
                with self.lock:
                    before = self.objects.get(key)
                    if kind == "DELETED":
                        self.objects.pop(key, None)
                        after = None
                    else:
                        after = self.slim(obj)
                        self.objects[key] = after
                rv = new_rv or rv
                if _without_rv(before) != _without_rv(after):
                    self.on_change()
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        finally:
            self._watch = None
            w.stop()
        return rv


def _without_rv(obj: dict | None) -> Any:
    if obj is None:
        return None
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


# --- iptables ---------------------------------------------------------------------------------------------------


class IPTables:
    """``iptables-save`` / ``iptables-restore --noflush`` of the filter table (argument lists, no shell)."""

    def __init__(self, iptables: str = "iptables", timeout: float = 30):
        self.save_cmd = [f"{iptables}-save", "-t", "filter"]
        self.restore_cmd = [f"{iptables}-restore", "--noflush", "--wait=5"]
        self.timeout = timeout

    def state(self) -> rules.FilterState:
        proc = subprocess.run(self.save_cmd, capture_output=True, text=True, timeout=self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.save_cmd)} failed: {proc.stderr.strip()[:500]}")
        return rules.parse_iptables_save(proc.stdout)

    def restore(self, text: str) -> None:
        proc = subprocess.run(self.restore_cmd, input=text, capture_output=True, text=True, timeout=self.timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(self.restore_cmd)} failed ({proc.returncode}): {proc.stderr.strip()[:1000]}")


def ensure_bridge_netfilter(path: Path = BRIDGE_SYSCTL) -> None:
    """Pod-to-pod traffic on the bridge reaches iptables only with bridge-nf-call-iptables=1 (per network
    namespace). Sets it when it is 0; raises when it cannot be had."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise RuntimeError(f"{path} unreadable ({exc}): br_netfilter missing; pod-to-pod traffic would bypass iptables") from exc
    if value != "1":
        try:
            path.write_text("1\n")
        except OSError as exc:
            raise RuntimeError(f"cannot set {path} to 1 ({exc}); pod-to-pod traffic would bypass iptables") from exc
        log.warning("%s was %s; set it to 1", path, value)


# --- the controller --------------------------------------------------------------------------------------------------


class Controller:
    def __init__(self, *, core_api: Any, networking_api: Any, node: rules.NodeFacts, iptables: IPTables,
                 ready_file: Path | None = None, debounce: float = 0.1, resync: float = 5.0, watch_timeout: int = 300,
                 check_bridge: Callable[[], None] | None = ensure_bridge_netfilter):
        self.node = node
        self.iptables = iptables
        self.ready_file = ready_file
        self.debounce = debounce
        self.resync = resync
        self.check_bridge = check_bridge
        self.stop = threading.Event()
        self.changed = threading.Event()
        mk = lambda kind, fn, slim: Informer(kind, fn, slim, self.changed.set, self.stop, watch_timeout=watch_timeout)  # noqa: E731
        self.pods = mk("pods", core_api.list_pod_for_all_namespaces, slim_pod)
        self.namespaces = mk("namespaces", core_api.list_namespace, slim_namespace)
        self.policies = mk("networkpolicies", networking_api.list_network_policy_for_all_namespaces, slim_policy)
        self.informers = [self.pods, self.namespaces, self.policies]
        self.applied_body: str | None = None
        self.ruleset: rules.Ruleset | None = None
        self.syncs = 0
        self.ready = False

    # --- one sync
    def sync(self, reason: str) -> bool:
        """Recompute and apply when needed. Returns False when applying failed (retried later)."""
        t0 = time.monotonic()
        rs = rules.build_ruleset(self.pods.snapshot(), self.namespaces.snapshot(), self.policies.snapshot(), self.node)
        t1 = time.monotonic()
        body = rs.body()
        try:
            state = self.iptables.state()
            if body == self.applied_body and rules.in_place(rs, state):
                action = "unchanged"
            else:
                drift = body == self.applied_body
                self.iptables.restore(rules.render_restore(rs, state))
                action = "re-applied (installed rules had drifted)" if drift else "applied"
        except Exception as exc:
            log.error("sync (%s) failed: %s", reason, exc)
            return False
        t2 = time.monotonic()
        self.applied_body, self.ruleset = body, rs
        self.syncs += 1
        for w in rs.warnings:
            log.warning("%s", w)
        if action != "unchanged" or reason != "resync":
            log.info("sync #%d (%s): %s; %s; computed in %.0f ms, iptables %.0f ms",
                     self.syncs, reason, rs.summary(), action, (t1 - t0) * 1000, (t2 - t1) * 1000)
        if not self.ready:
            self.ready = True
            if self.ready_file is not None:
                self.ready_file.parent.mkdir(parents=True, exist_ok=True)
                self.ready_file.write_text(f"{time.time():.3f}\n")
            log.info("ready")
        return True

    def teardown(self) -> bool:
        try:
            text = rules.render_teardown(self.iptables.state())
            if text:
                self.iptables.restore(text)
            log.info("removed the NetworkPolicy rules")
            return True
        except Exception as exc:
            log.error("removing the rules failed: %s", exc)
            return False

    # --- the loop
    def run(self) -> int:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        if self.check_bridge is not None:
            self.check_bridge()
        for inf in self.informers:
            inf.start()
        retry_at: float | None = None
        next_resync = time.monotonic() + self.resync
        try:
            while not self.stop.is_set():
                deadline = next_resync if retry_at is None else min(next_resync, retry_at)
                fired = self.changed.wait(max(0.0, deadline - time.monotonic()))
                if self.stop.is_set():
                    break
                if not all(inf.synced.is_set() for inf in self.informers):
                    # Never enforce a partial view (policies without their pods, or the reverse): wait for the
                    # first list of every kind; the last one to finish sets `changed` again.
                    self.changed.clear()
                    if all(inf.synced.is_set() for inf in self.informers):
                        self.changed.set()
                    continue
                now = time.monotonic()
                if fired:
                    self.stop.wait(self.debounce)  # let a burst of changes settle
                    self.changed.clear()  # changes from here on trigger another sync
                    reason = "change"
                elif retry_at is not None and now >= retry_at:
                    reason = "retry"
                elif now >= next_resync:
                    reason = "resync"
                    if self.check_bridge is not None:
                        try:
                            self.check_bridge()
                        except RuntimeError as exc:
                            log.error("%s", exc)
                else:
                    continue
                ok = self.sync(reason)
                retry_at = None if ok else time.monotonic() + 1.0
                next_resync = time.monotonic() + self.resync
        finally:
            self.stop.set()
            for inf in self.informers:
                inf.stop()
        ok = self.teardown()
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        return 0 if ok else 1

    def request_stop(self, signum: int | None = None, frame: Any = None) -> None:
        if signum is not None:
            log.info("got %s; stopping", signal.Signals(signum).name)
        self.stop.set()
        self.changed.set()


def main(args: Any) -> int:
    """Entry point used by ``python -m pytest_kready.local.netpol`` (``args`` from its argument parser)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s netpol %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings repeat ours
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=str(args.kubeconfig), context=args.context)
        node = rules.NodeFacts([c for c in args.pod_cidr.split(",")], mark=args.mark)
    except Exception as exc:  # unreadable kubeconfig, bad CIDR or mark: one line, not a traceback
        log.error("cannot start: %s: %s", type(exc).__name__, exc)
        return 2
    controller = Controller(
        core_api=client.CoreV1Api(api), networking_api=client.NetworkingV1Api(api), node=node,
        iptables=IPTables(args.iptables), ready_file=Path(args.ready_file) if args.ready_file else None,
        debounce=args.debounce, resync=args.resync_period, watch_timeout=args.watch_timeout,
        check_bridge=None if args.no_bridge_check else ensure_bridge_netfilter,
    )
    signal.signal(signal.SIGTERM, controller.request_stop)
    signal.signal(signal.SIGINT, controller.request_stop)
    log.info("starting: pod CIDR %s, mark %#x, %s", ",".join(node.pod_cidrs), node.mark, " ".join(controller.iptables.restore_cmd))
    try:
        return controller.run()
    except RuntimeError as exc:
        log.error("%s", exc)
        controller.teardown()
        return 1
