"""The reachability engine: deploy a model, probe it, sample until the answer is stable, compare with what was
expected, and say what differs with the grids and a command per wrong cell.

* ``Engine``: the cluster side (create objects with the run's labels, wait for pods, exec probes). ``observe``
  probes sources × targets in rounds: every source pod at once, one exec each, all its targets at once. It stops
  when ``stable_rounds`` consecutive rounds agree and, when an expectation is given, agree with it; rounds that
  agree with each other but not with the expectation go on for ``settle`` seconds (a policy just written may take
  a moment to be enforced), and nothing goes on past ``deadline``. Cells still changing at the end are unknown.
* ``Lab``: a deployed ``Model`` (namespaces, server pods, optional Services and probe pods) with the helpers a
  test needs: ``ns``, ``apply``, ``expect``, ``observe``, ``check``.
* ``Result``: expected and observed truth tables, per-cell answers, and ``report()``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import errors
from ..kube import wait_default_serviceaccount
from ..labels import created_annotation
from ..settings import DEFAULT_IMAGE
from ..waits import wait_for
from .model import (NS_LABEL, POD_LABEL, PROBE_POD, ROLE_LABEL, Model, Target, pod_manifest, service_manifest)
from .probe import AGNHOST_PARALLEL, TCP_PARALLEL, Answer, Executor, Probe, ProbeSession, kubectl_line
from .truthtable import Cell, TruthTable, word

DEFAULT_TIMEOUT = 2.0  # seconds per probe (denied traffic that is rejected answers at once)
DEFAULT_DEADLINE = 60.0
DEFAULT_SETTLE = 5.0
READY_TIMEOUT = 180.0


@dataclasses.dataclass(frozen=True)
class Source:
    """A row of the truth table: the pod probes run in."""

    key: str
    namespace: str
    pod: str
    container: str | None = None


@dataclasses.dataclass
class Result:
    """One observation: the observed table (and the expectation it was compared with)."""

    observed: TruthTable
    expected: TruthTable | None
    answers: dict[Cell, Answer]
    history: dict[Cell, list[bool | None]]
    rounds: int
    seconds: float
    stable: bool
    sources: dict[str, Source]
    probes: dict[Target, Probe]
    timeout: float = DEFAULT_TIMEOUT
    namespaces: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def wrong(self) -> list[tuple[str, Target, bool | None, bool | None]]:
        """Cells where observed differs from expected: (row, col, expected, observed)."""
        return self.expected.diff(self.observed) if self.expected is not None else []

    @property
    def ok(self) -> bool:
        return self.expected is not None and not self.wrong

    @property
    def unknown(self) -> list[Cell]:
        return [c for c in self.observed.cells() if self.observed.get(*c) is None]

    def detail(self, row: str, col: Target) -> str:
        answer = self.answers.get((row, col))
        text = str(answer) if answer else ""
        seen = self.history.get((row, col), [])
        if len(set(seen)) > 1:
            text = (text + "; " if text else "") + "seen: " + " ".join(
                {True: "+", False: "-", None: "?"}[v] for v in seen)
        return text

    def kubectl(self, row: str, col: Target, *, kubeconfig: str | None = None) -> str:
        src = self.sources[row]
        return kubectl_line(src.namespace, src.pod, self.probes[col], container=src.container,
                            timeout=self.timeout, kubeconfig=kubeconfig)

    def kubectl_lines(self, cells: Iterable[Cell] | None = None, *, kubeconfig: str | None = None) -> list[str]:
        """One command per cell (default: every wrong cell) that repeats that probe by hand."""
        if cells is None:
            cells = [(r, c) for r, c, _, _ in self.wrong]
        return [self.kubectl(r, c, kubeconfig=kubeconfig) for r, c in cells]

    def grid(self, *, grouped: bool = True) -> str:
        details = {cell: self.detail(*cell) for cell in self.observed.cells()}
        if self.expected is None:
            return self.observed.render(None, details=details, grouped=grouped)
        return self.expected.render(self.observed, details=details, grouped=grouped)

    def sub(self, rows: Sequence[str] | None = None, cols: Sequence[Target] | None = None) -> Result:
        """The same observation restricted to ``rows`` and ``cols``."""
        observed = self.observed.sub(rows, cols)
        keep = set(observed.cells())
        return dataclasses.replace(
            self, observed=observed, expected=self.expected.sub(rows, cols) if self.expected is not None else None,
            answers={c: a for c, a in self.answers.items() if c in keep},
            history={c: h for c, h in self.history.items() if c in keep})

    def summary(self) -> str:
        counts = self.observed.counts()
        head = (f"{counts['cells']} cells from {len(self.observed.rows)} source(s) in {self.rounds} round(s), "
                f"{self.seconds:.1f}s, {'stable' if self.stable else 'NOT stable'}")
        if self.expected is None:
            return head
        wrong = self.wrong
        return head + (f"; {len(wrong)} cell(s) differ from the expectation" if wrong else "; as expected")

    def report(self, *, kubeconfig: str | None = None, limit: int = 20) -> str:
        """Summary, grids (expected, observed, comparison), each wrong cell and a command to repeat it."""
        lines = [self.summary()]
        if self.namespaces:
            lines.append("namespaces: " + ", ".join(f"{k}={v}" for k, v in self.namespaces.items()))
        lines.append(self.grid())
        wrong = self.wrong
        if wrong:
            lines.append("")
            lines.append("wrong cells (expected → observed):")
            for row, col, exp, obs in wrong[:limit]:
                lines.append(f"  {row} → {col}: expected {word(exp, col)}, observed {word(obs, col)} "
                             f"({self.detail(row, col)})")
                lines.append(f"    {self.kubectl(row, col, kubeconfig=kubeconfig)}")
            if len(wrong) > limit:
                lines.append(f"  ... and {len(wrong) - limit} more")
        return "\n".join(lines)


class Engine:
    """Cluster operations of the reachability engine, over a ``KreadyApiClient`` (``raw`` requests).

    ``exec_client_factory`` makes a private ApiClient for each concurrent exec (see ``probe.Executor``);
    ``labels`` are stamped on everything the engine creates (the run's ownership labels); ``timeout`` is each
    probe's; ``max_parallel_execs`` bounds the source pods probing at once, ``tcp_parallel`` / ``agnhost_parallel``
    the probes at once inside one pod (nc is cheap; every agnhost probe is a Go process start)."""

    def __init__(self, api, *, exec_client_factory: Callable[[], object], image: str = DEFAULT_IMAGE,
                 labels: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_parallel_execs: int = 16, tcp_parallel: int = TCP_PARALLEL,
                 agnhost_parallel: int = AGNHOST_PARALLEL):
        self.api = api
        self.image = image
        self.labels = dict(labels or {})
        self.timeout = float(timeout)
        self.max_parallel_execs = max_parallel_execs
        self.parallel = {"tcp_parallel": tcp_parallel, "agnhost_parallel": agnhost_parallel}
        self.executor = Executor(exec_client_factory, max_clients=max_parallel_execs)

    def close(self) -> None:
        self.executor.close()

    # --- objects ---------------------------------------------------------------------------------------
    def _stamp(self, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        meta["annotations"] = {**(meta.get("annotations") or {}), **created_annotation()}
        return obj

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        body = self._stamp({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": dict(labels or {})}})
        self.api.raw("POST", "/api/v1/namespaces", body=body)
        wait_default_serviceaccount(self.api, name)
        return name

    def create(self, namespace: str, obj: dict) -> dict:
        """Create a Pod, Service or NetworkPolicy (or any kind, through discovery) in ``namespace``."""
        obj = self._stamp(dict(obj, metadata=dict(obj.get("metadata") or {}, namespace=namespace)))
        paths = {("v1", "Pod"): "pods", ("v1", "Service"): "services",
                 ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies"}
        plural = paths.get((obj.get("apiVersion"), obj.get("kind")))
        if plural is None:
            from ..client import create

            return create(self.api, obj, default_namespace=namespace)
        base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        return self.api.raw("POST", f"{base}/namespaces/{namespace}/{plural}", body=obj)

    def delete(self, namespace: str, kind: str, name: str) -> None:
        plural = {"Pod": "/api/v1/namespaces/{ns}/pods", "Service": "/api/v1/namespaces/{ns}/services",
                  "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"}[kind]
        try:
            self.api.raw("DELETE", plural.format(ns=namespace) + f"/{name}")
        except errors.APINotFound:
            pass

    def wait_ready(self, pods: Iterable[tuple[str, str]], *,
                   timeout: float = READY_TIMEOUT) -> dict[tuple[str, str], dict]:
        """Wait until every (namespace, name) pod is Running, Ready and has an IP; return the pods. One list per
        namespace per poll. On timeout, ``WaitTimeout`` names each pod that is not ready and why."""
        wanted: dict[str, set[str]] = {}
        for ns, name in pods:
            wanted.setdefault(ns, set()).add(name)
        seen: dict[tuple[str, str], dict] = {}

        def ready() -> bool:
            for ns, names in wanted.items():
                listing = self.api.raw("GET", f"/api/v1/namespaces/{ns}/pods")
                for pod in listing.get("items") or []:
                    if pod["metadata"]["name"] in names:
                        seen[(ns, pod["metadata"]["name"])] = pod
            return all(pod_ready(seen.get((ns, n))) for ns, names in wanted.items() for n in names)

        def describe(_):
            return "; ".join(f"{ns}/{n}: {pod_state(seen.get((ns, n)))}" for ns, names in wanted.items()
                             for n in sorted(names) if not pod_ready(seen.get((ns, n))))

        wait_for(ready, timeout=timeout, interval=0.3, max_interval=2, what="probe pods ready", describe=describe)
        return seen

    # --- probing -----------------------------------------------------------------------------------------
    def _round(self, table: TruthTable, sessions: dict[str, ProbeSession], plan: dict[str, list[Target]]
               ) -> tuple[TruthTable, dict[Cell, Answer]]:
        observed = table.copy()
        observed.values = {}
        answers: dict[Cell, Answer] = {}
        rows = [r for r in plan if plan[r]]
        workers = max(1, min(len(rows), self.max_parallel_execs))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kready-probe") as pool:
            for row, got in zip(rows, pool.map(lambda r: sessions[r].round(), rows)):
                for i, col in enumerate(plan[row]):
                    answer = got[i]
                    answers[(row, col)] = answer
                    observed.values[(row, col)] = answer.value
        return observed, answers

    def observe(self, sources: Sequence[Source], targets: Sequence[Target], *, expected: TruthTable | None = None,
                cells: Iterable[Cell] | None = None, deadline: float = DEFAULT_DEADLINE,
                settle: float = DEFAULT_SETTLE, stable_rounds: int = 2, pause: float = 0.2,
                settle_pause: float = 1.0, namespaces: Mapping[str, str] | None = None) -> Result:
        """Probe every source → target (not a pod to itself; only ``cells`` when given, or the expectation's cells)
        until the answer is stable (see the module doc)."""
        unresolved = [t for t in targets if not t.host]
        if unresolved:
            raise ValueError(f"targets without an address: {', '.join(map(str, unresolved[:5]))}")
        rows = [s.key for s in sources]
        if len(set(rows)) != len(rows):
            raise ValueError("source keys repeat")
        if cells is None and expected is not None and expected.only is not None:
            cells = expected.only
        shape = TruthTable(rows, targets, cells=cells)
        if expected is not None and not expected.same_shape(shape):
            raise ValueError("the expectation's cells are not the cells probed (build it with the same sources, "
                             "targets and cells)")
        probes = {t: _probe_for(t) for t in targets}
        plan = {row: [col for col in shape.cols if shape.probed(row, col)] for row in shape.rows}
        sessions = {s.key: ProbeSession(self.executor, s.namespace, s.pod, [probes[c] for c in plan[s.key]],
                                        container=s.container, timeout=self.timeout, **self.parallel)
                    for s in sources}
        try:
            return self._sample(shape, sessions, plan, probes, expected=expected, deadline=deadline, settle=settle,
                                stable_rounds=stable_rounds, pause=pause, settle_pause=settle_pause,
                                sources=sources, namespaces=namespaces)
        finally:
            for session in sessions.values():
                session.close()

    def _sample(self, shape: TruthTable, sessions: dict[str, ProbeSession], plan: dict[str, list[Target]],
                probes: dict[Target, Probe], *, expected: TruthTable | None, deadline: float, settle: float,
                stable_rounds: int, pause: float, settle_pause: float, sources: Sequence[Source],
                namespaces: Mapping[str, str] | None) -> Result:
        start = time.monotonic()
        history: dict[Cell, list[bool | None]] = {c: [] for c in shape.cells()}
        tables: list[TruthTable] = []
        answers: dict[Cell, Answer] = {}
        stable = False
        while True:
            observed, answers = self._round(shape, sessions, plan)
            tables.append(observed)
            for cell in history:
                history[cell].append(observed.get(*cell))
            elapsed = time.monotonic() - start
            window = tables[-stable_rounds:]
            stable = (len(window) == stable_rounds and all(t == window[0] for t in window[1:])
                      and not observed.counts()["unknown"])
            if stable and (expected is None or observed == expected or elapsed >= settle):
                break
            if elapsed >= deadline:
                break
            # stable but not as expected: a policy may still be on its way; look again, more calmly
            time.sleep(settle_pause if stable else pause)
        final = tables[-1].copy()
        if not stable:  # cells that still change, or that no probe could decide, are unknown
            window = tables[-stable_rounds:]
            for cell in final.cells():
                if len({t.get(*cell) for t in window}) > 1:
                    final.values[cell] = None
        return Result(observed=final, expected=expected, answers=answers, history=history, rounds=len(tables),
                      seconds=time.monotonic() - start, stable=stable, sources={s.key: s for s in sources},
                      probes=probes, timeout=self.timeout, namespaces=dict(namespaces or {}))


def _probe_for(target: Target) -> Probe:
    if target.path == "dns":
        return Probe("dns", target.host or "", target.port)
    return Probe(target.protocol.lower(), target.host or "", target.port)


def pod_ready(pod: dict | None) -> bool:
    if not pod:
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_state(pod: dict | None) -> str:
    if not pod:
        return "not found"
    status = pod.get("status") or {}
    parts = [status.get("phase") or "?"]
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if waiting.get("reason"):
            parts.append(f"{waiting['reason']}: {waiting.get('message', '')}".strip(": "))
        if terminated.get("reason"):
            parts.append(f"terminated {terminated['reason']}")
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" and cond.get("message"):
            parts.append(cond["message"])
    return ", ".join(parts)[:300]


# --- a deployed model ----------------------------------------------------------------------------------------


def service_name(pod: str) -> str:
    return f"s-{pod}"[:63]


class Lab:
    """A ``Model`` made real: its namespaces, pods (and Services, probe pods), ready to probe.

    ``lab.ns("x")`` is the real name of namespace x; ``lab.namespace_selector("x")`` selects it in a policy;
    ``lab.apply(policy, namespace="x")`` creates an object there; ``lab.expect(True).deny(frm=..., to=...)``
    builds an expectation; ``lab.check(expected)`` probes and raises ``AssertionError`` with the grids when the
    observation differs; ``lab.observe()`` just observes."""

    def __init__(self, engine: Engine, model: Model, namespaces: Mapping[str, str]):
        self.engine = engine
        self.model = model
        self.namespaces = dict(namespaces)
        self.sources: list[Source] = []
        self.targets: list[Target] = []
        self.pods: dict[str, dict] = {}
        self.policies: list[tuple[str, str]] = []

    # --- making it ---------------------------------------------------------------------------------------
    @classmethod
    def deploy(cls, engine: Engine, model: Model, make_namespace: Callable[[str, dict[str, str]], str], *,
               ready_timeout: float = READY_TIMEOUT) -> Lab:
        """Create ``model``'s namespaces (through ``make_namespace(logical name, labels) → real name``), pods and
        Services; wait until every pod is ready; resolve the targets' addresses."""
        names = {n.name: make_namespace(n.name, {**n.labels, NS_LABEL: n.name}) for n in model.namespaces}
        lab = cls(engine, model, names)
        want: list[tuple[str, str]] = []
        services: dict[str, str] = {}
        for nsm in model.namespaces:
            real = names[nsm.name]
            for pm in nsm.pods:
                labels = {**pm.labels, POD_LABEL: pm.name, ROLE_LABEL: "server"}
                engine.create(real, pod_manifest(pm.name, image=engine.image, ports=model.ports, labels=labels))
                want.append((real, pm.name))
                if "service" in model.paths:
                    svc = engine.create(real, service_manifest(service_name(pm.name), selector={POD_LABEL: pm.name},
                                                               ports=model.ports))
                    services[f"{nsm.name}/{pm.name}"] = svc["spec"]["clusterIP"]
            if model.sources == "namespace":
                engine.create(real, pod_manifest(PROBE_POD, image=engine.image, serve=False,
                                                 labels={POD_LABEL: PROBE_POD, ROLE_LABEL: "probe"}))
                want.append((real, PROBE_POD))
        ready = engine.wait_ready(want, timeout=ready_timeout)
        by_real = {v: k for k, v in names.items()}
        for (real, name), pod in ready.items():
            lab.pods[f"{by_real[real]}/{name}"] = pod
        for key in model.source_keys():
            ns, _, pod = key.partition("/")
            lab.sources.append(Source(key, names[ns], pod or PROBE_POD))
        for t in model.targets():
            if t.path == "pod":
                host = lab.pods[t.to]["status"]["podIP"]
            elif t.path == "service":
                host = services[t.to]
            else:
                host = t.host
            lab.targets.append(dataclasses.replace(t, host=host))
        return lab

    # --- helpers for tests ---------------------------------------------------------------------------------
    def ns(self, name: str) -> str:
        """The real name of the model's namespace ``name``."""
        try:
            return self.namespaces[name]
        except KeyError:
            raise KeyError(f"namespace {name!r} is not in the model ({', '.join(self.namespaces)})") from None

    def namespace_selector(self, *names: str) -> dict:
        """A ``namespaceSelector`` selecting exactly the model's namespaces ``names``."""
        return {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                      "values": [self.ns(n) for n in names]}]}

    @staticmethod
    def pod_selector(*names: str) -> dict:
        """A ``podSelector`` selecting the model's pods named ``names`` (in whatever namespace it applies to)."""
        return {"matchExpressions": [{"key": POD_LABEL, "operator": "In", "values": list(names)}]}

    def apply(self, obj: dict, namespace: str) -> dict:
        """Create ``obj`` (e.g. a NetworkPolicy) in the model's namespace ``namespace``."""
        real = self.ns(namespace)
        created = self.engine.create(real, obj)
        if obj.get("kind") == "NetworkPolicy":
            self.policies.append((real, created["metadata"]["name"]))
        return created

    def remove_policies(self) -> None:
        """Delete every NetworkPolicy ``apply`` created."""
        for real, name in self.policies:
            self.engine.delete(real, "NetworkPolicy", name)
        self.policies.clear()

    def expect(self, default: bool = True) -> TruthTable:
        """An expectation over this lab's cells, every cell ``default``; refine with ``.allow``/``.deny``."""
        return TruthTable([s.key for s in self.sources], self.targets, default=default)

    def observe(self, expected: TruthTable | None = None, **kwargs: Any) -> Result:
        return self.engine.observe(self.sources, self.targets, expected=expected, namespaces=self.namespaces,
                                   **kwargs)

    def check(self, expected: TruthTable, **kwargs: Any) -> Result:
        """Observe until stable and equal to ``expected`` (within ``settle``/``deadline``); ``AssertionError``
        with the expected, observed and comparison grids and a kubectl line per wrong cell otherwise."""
        result = self.observe(expected, **kwargs)
        if not result.ok:
            raise AssertionError("reachability differs from the expectation:\n" + result.report())
        return result
