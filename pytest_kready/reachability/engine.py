"""The reachability engine: deploy a model, probe it in rounds, decide each cell from the counted rounds, compare
with what was expected, and say what differs with the grids and a command per wrong cell.

* ``Engine``: the cluster side (create objects with the run's labels, wait for pods, exec probes). ``observe``
  probes sources × targets in rounds: every source pod at once, one exec each (kept open for the next
  observation), all its targets at once. Rounds in the settle window do not count; a cell connects if any counted
  round connected and is blocked only if, in at least ``min_rounds`` counted rounds, its probe failed while its
  target was shown alive in that same round (``sampling``); nothing goes on past ``deadline``.
* ``Lab``: a deployed ``Model`` (namespaces, server pods, optional Services and probe pods) with the helpers a
  test needs: ``ns``, ``apply``, ``expect``, ``observe``, ``check``; its pods prove themselves alive over localhost.
* ``Result``: expected and observed truth tables, every round's answers, each cell's decision, ``report()`` and
  ``cell_evidence()``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import errors, timings
from ..kube import pod_ready, wait_default_serviceaccount
from ..labels import created_annotation
from ..settings import DEFAULT_IMAGE
from ..waits import wait_for
from .model import (NS_LABEL, POD_LABEL, PROBE_POD, ROLE_LABEL, Model, Target, pod_manifest, service_manifest)
from .probe import AGNHOST_PARALLEL, TCP_PARALLEL, Answer, Executor, Probe, ProbeSession, kubectl_line
from .sampling import MIN_ROUNDS, Alive, Decision, SettleWindow, decide
from .truthtable import Cell, TruthTable, word

DEFAULT_TIMEOUT = 2.0  # seconds per probe (denied traffic that is rejected answers at once)
DEFAULT_DEADLINE = 60.0
DEFAULT_SETTLE = 5.0
# seconds between rounds: none (a round itself takes ~0.2 s; spacing rounds added nothing to what they show, as the
# stability series of tools/bench_reachability.py measures); rounds that keep disagreeing while settling wait
# ``settle_pause``
DEFAULT_PAUSE = 0.0
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
    """One observation: the observed table (and the expectation it was compared with), every round's answers, and
    how each cell was decided (see ``sampling``)."""

    observed: TruthTable
    expected: TruthTable | None
    answers: dict[Cell, Answer]  # the last round's
    history: dict[Cell, list[bool | None]]  # every round's value, settling rounds included (control cells too)
    rounds: int
    seconds: float
    stable: bool  # the sample is complete: settled, at least min_rounds counted, nothing left that more could decide
    sources: dict[str, Source]
    probes: dict[Target, Probe]
    timeout: float = DEFAULT_TIMEOUT
    namespaces: dict[str, str] = dataclasses.field(default_factory=dict)
    samples: dict[Cell, list[Answer]] = dataclasses.field(default_factory=dict)  # every round's answer
    counted_from: int | None = 0  # the first counted round (None: the sample never left the settle window)
    decisions: dict[Cell, Decision] = dataclasses.field(default_factory=dict)
    alive: dict[Target, Alive] | None = None
    min_rounds: int = MIN_ROUNDS

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

    @property
    def counted(self) -> range:
        return range(self.counted_from, self.rounds) if self.counted_from is not None else range(0)

    def seen(self, row: str, col: Target) -> list[str]:
        """What the probe saw in each counted round (connected, refused, timeout, ...)."""
        answers = self.samples.get((row, col), [])
        return [answers[i].category for i in self.counted if i < len(answers)]

    def alive_rounds(self, col: Target) -> list[bool] | None:
        """Per counted round, whether ``col`` was shown alive (None: aliveness was not asked for)."""
        if self.alive is None:
            return None
        return _shown(self.alive.get(col), self.history, self.counted)

    def alive_detail(self, col: Target) -> str:
        """How ``col`` was shown alive: ``Ready ...`` or ``<how>: in 3 of 3 counted rounds``."""
        if self.alive is None:
            return "not asked for"
        spec = self.alive.get(col)
        if spec is None:
            return "no way to show it alive"
        if spec.static is not None:
            return spec.static
        shown = self.alive_rounds(col) or []
        return f"{spec.text or 'control probes'}: in {sum(shown)} of {len(shown)} counted round(s)"

    def detail(self, row: str, col: Target) -> str:
        """The last answer; what each counted round saw when they differ; why a cell is unknown; and the values of
        every round (``|`` ends the settle window) when they changed."""
        answer = self.answers.get((row, col))
        text = str(answer) if answer else ""
        parts = [text] if text else []
        seen = self.seen(row, col)
        if len(set(seen)) > 1:
            counts: dict[str, int] = {}
            for cat in seen:
                counts[cat] = counts.get(cat, 0) + 1
            parts.append("counted rounds: " + ", ".join(f"{k} ×{v}" for k, v in counts.items()))
        decision = self.decisions.get((row, col))
        if decision is not None and decision.value is None and decision.why:
            parts.append(decision.why)
        history = self.history.get((row, col), [])
        if len(set(history)) > 1:
            marks = [{True: "+", False: "-", None: "?"}[v] for v in history]
            if self.counted_from:
                marks.insert(self.counted_from, "|")
            parts.append("seen: " + " ".join(marks))
        return "; ".join(parts)

    def cell_evidence(self, row: str, col: Target) -> dict:
        """One cell for a finding: expected, observed, what every counted round saw, how the target was shown alive."""
        out = {"from": row, "to": str(col), "observed": word(self.observed.get(row, col), col),
               "seen": self.seen(row, col)}
        if self.expected is not None:
            out["expected"] = word(self.expected.get(row, col), col)
        answer = self.answers.get((row, col))
        if answer is not None and answer.detail:
            out["message"] = answer.detail
        if self.observed.get(row, col) is not True:
            out["alive"] = self.alive_detail(col)
        decision = self.decisions.get((row, col))
        if decision is not None and decision.why:
            out["why_unknown"] = decision.why
        return out

    def revoke(self, col: Target, why: str) -> None:
        """The target's static proof of life did not hold up (checked after the sample): its blocked cells become
        unknown, saying why."""
        for cell in list(self.observed.cells()):
            if cell[1] == col and self.observed.get(*cell) is False:
                self.observed.values[cell] = None
                old = self.decisions.get(cell)
                self.decisions[cell] = Decision(None, old.rounds if old else 0, 0, why)

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
        """The same observation restricted to ``rows`` and ``cols`` (control cells' records are kept: the
        aliveness of the remaining targets is read from them)."""
        observed = self.observed.sub(rows, cols)
        keep = set(observed.cells())
        return dataclasses.replace(
            self, observed=observed, expected=self.expected.sub(rows, cols) if self.expected is not None else None,
            answers={c: a for c, a in self.answers.items() if c in keep})

    def summary(self) -> str:
        counts = self.observed.counts()
        counted = len(self.counted)
        head = (f"{counts['cells']} cells from {len(self.observed.rows)} source(s) in {self.rounds} round(s) "
                f"({counted} counted), {self.seconds:.1f}s, {'complete' if self.stable else 'NOT complete'}")
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
                alive = f"; target alive: {self.alive_detail(col)}" if obs is False and self.alive is not None else ""
                lines.append(f"  {row} → {col}: expected {word(exp, col)}, observed {word(obs, col)} "
                             f"({self.detail(row, col)}{alive})")
                lines.append(f"    {self.kubectl(row, col, kubeconfig=kubeconfig)}")
            if len(wrong) > limit:
                lines.append(f"  ... and {len(wrong) - limit} more")
        return "\n".join(lines)


class Engine:
    """Cluster operations of the reachability engine, over a ``KreadyApiClient`` (``raw`` requests).

    ``exec_client_factory`` makes a private ApiClient for each concurrent exec (see ``probe.Executor``);
    ``labels`` are stamped on everything the engine creates (the run's ownership labels); ``timeout`` is each
    probe's; ``max_parallel_execs`` bounds the source pods probing at once, ``tcp_parallel`` / ``agnhost_parallel``
    the probes at once inside one pod (a TCP probe is a fork of bash, or an nc process: cheap; every agnhost probe
    is a Go process start); ``bash=False`` keeps the sessions in the image's POSIX ``sh`` (nc per TCP probe). With
    ``keep_sessions`` (the default) a probe session stays open after an observation and serves the next observation
    of the same pod with the same probes (no exec setup); ``close()`` ends them."""

    def __init__(self, api, *, exec_client_factory: Callable[[], object], image: str = DEFAULT_IMAGE,
                 labels: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_parallel_execs: int = 16, tcp_parallel: int = TCP_PARALLEL,
                 agnhost_parallel: int = AGNHOST_PARALLEL, keep_sessions: bool = True, bash: bool = True):
        self.api = api
        self.image = image
        self.labels = dict(labels or {})
        self.timeout = float(timeout)
        self.max_parallel_execs = max_parallel_execs
        self.parallel = {"tcp_parallel": tcp_parallel, "agnhost_parallel": agnhost_parallel}
        self.bash = bash
        self.executor = Executor(exec_client_factory, max_clients=max_parallel_execs)
        self.keep_sessions = keep_sessions
        self._sessions: dict[tuple, list[ProbeSession]] = {}
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        with self._sessions_lock:
            idle, self._sessions = self._sessions, {}
        for sessions in idle.values():
            for session in sessions:
                session.close()
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
            return all(probe_ready(seen.get((ns, n))) for ns, names in wanted.items() for n in names)

        def describe(_):
            return "; ".join(f"{ns}/{n}: {pod_state(seen.get((ns, n)))}" for ns, names in wanted.items()
                             for n in sorted(names) if not probe_ready(seen.get((ns, n))))

        wait_for(ready, timeout=timeout, interval=0.3, max_interval=2, what="probe pods ready", describe=describe)
        return seen

    # --- probing -----------------------------------------------------------------------------------------
    def _round(self, sessions: dict[str, ProbeSession], plan: dict[str, list[Target]]) -> dict[Cell, Answer]:
        """One round: every session at once; the answer of every planned cell."""
        answers: dict[Cell, Answer] = {}
        rows = [r for r in plan if plan[r]]
        workers = max(1, min(len(rows), self.max_parallel_execs))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kready-probe") as pool:
            for row, got in zip(rows, pool.map(lambda r: sessions[r].round(), rows)):
                for i, col in enumerate(plan[row]):
                    answers[(row, col)] = got[i]
        return answers

    def observe(self, sources: Sequence[Source], targets: Sequence[Target], *, expected: TruthTable | None = None,
                cells: Iterable[Cell] | None = None, deadline: float = DEFAULT_DEADLINE,
                settle: float = DEFAULT_SETTLE, min_rounds: int = MIN_ROUNDS, pause: float = DEFAULT_PAUSE,
                settle_pause: float = 1.0, namespaces: Mapping[str, str] | None = None,
                controls: Iterable[Cell] = (), control_sources: Sequence[Source] = (),
                alive: Mapping[Target, Alive] | None = None, settle_since: float | None = None) -> Result:
        """Probe every source → target (not a pod to itself; only ``cells`` when given, or the expectation's cells)
        in rounds, and decide each cell from the counted rounds (see ``sampling``).

        ``controls``: more cells probed in every round but not part of the table (their rows are ``sources`` or
        ``control_sources``: pods that only probe controls, e.g. themselves over localhost); ``alive``: for each
        target, how it is shown alive in a round (``sampling.Alive``, whose cells may be table or control cells).
        With ``alive`` given, a target without an entry is never "blocked"; without it (``None``), every failed
        probe counts (a raw observation). ``settle_since``: the ``time.monotonic()`` the settle window runs from
        (default: now) — e.g. when the last pod of the table was Ready and nothing has changed since, a window that
        has already passed costs no waiting."""
        unresolved = [t for t in targets if not t.host]
        if unresolved:
            raise ValueError(f"targets without an address: {', '.join(map(str, unresolved[:5]))}")
        rows = [s.key for s in sources]
        every = rows + [s.key for s in control_sources]
        if len(set(every)) != len(every):
            raise ValueError("source keys repeat")
        if cells is None and expected is not None and expected.only is not None:
            cells = expected.only
        shape = TruthTable(rows, targets, cells=cells)
        if expected is not None and not expected.same_shape(shape):
            raise ValueError("the expectation's cells are not the cells probed (build it with the same sources, "
                             "targets and cells)")
        controls = [c for c in dict.fromkeys(controls) if c not in set(shape.cells())]
        stray = [c for c in controls if c[0] not in every or not c[1].host]
        if stray:
            raise ValueError(f"control cells without a source or an address: {stray[:3]}")
        if alive is not None:
            known = set(shape.cells()) | set(controls)
            for target, spec in alive.items():
                missing = spec.cells() - known
                if missing:
                    raise ValueError(f"the aliveness of {target} reads cells that are not probed: "
                                     f"{sorted(map(str, missing))[:3]}")
        all_targets = list(dict.fromkeys(list(targets) + [c for _, c in controls]))
        probes = {t: _probe_for(t) for t in all_targets}
        plan = {row: [col for col in shape.cols if shape.probed(row, col)] for row in shape.rows}
        for row, col in controls:
            plan.setdefault(row, []).append(col)
        by_key = {s.key: s for s in list(sources) + list(control_sources)}
        with timings.phase("reach.observe", cells=sum(1 for _ in shape.cells()), sources=len(plan)):
            sessions = {key: self._take_session(by_key[key], [probes[c] for c in plan[key]])
                        for key in plan if plan[key]}
            try:
                return self._sample(shape, sessions, plan, probes, expected=expected, deadline=deadline,
                                    settle=settle, min_rounds=min_rounds, pause=pause, settle_pause=settle_pause,
                                    sources=list(sources) + list(control_sources), namespaces=namespaces,
                                    alive=alive, settle_since=settle_since)
            finally:
                for key, session in sessions.items():
                    self._give_back(by_key[key], session)

    # --- probe sessions, kept open between observations ----------------------------------------------------
    def _session_key(self, source: Source, probes: Sequence[Probe]) -> tuple:
        return source.namespace, source.pod, source.container, tuple(probes)

    def _take_session(self, source: Source, probes: list[Probe]) -> ProbeSession:
        """An open session of this pod with exactly these probes, from an earlier observation (a Lab observed
        again pays no exec setup), or a new one."""
        key = self._session_key(source, probes)
        with self._sessions_lock:
            idle = self._sessions.get(key)
            if idle:
                return idle.pop()
        return ProbeSession(self.executor, source.namespace, source.pod, probes, container=source.container,
                            timeout=self.timeout, bash=self.bash, **self.parallel)

    def _give_back(self, source: Source, session: ProbeSession) -> None:
        if not self.keep_sessions:
            session.close()
            return
        with self._sessions_lock:
            self._sessions.setdefault(self._session_key(source, session.probes), []).append(session)

    def _sample(self, shape: TruthTable, sessions: dict[str, ProbeSession], plan: dict[str, list[Target]],
                probes: dict[Target, Probe], *, expected: TruthTable | None, deadline: float, settle: float,
                min_rounds: int, pause: float, settle_pause: float, sources: Sequence[Source],
                namespaces: Mapping[str, str] | None, alive: Mapping[Target, Alive] | None,
                settle_since: float | None = None) -> Result:
        start = time.monotonic()
        ahead = max(0.0, start - settle_since) if settle_since is not None else 0.0  # of the window, already past
        table_cells = list(shape.cells())
        planned = [(row, col) for row, cols in plan.items() for col in cols]
        history: dict[Cell, list[bool | None]] = {c: [] for c in planned}
        samples: dict[Cell, list[Answer]] = {c: [] for c in planned}
        window = SettleWindow(settle, expectation=expected is not None)
        answers: dict[Cell, Answer] = {}
        previous: dict[Cell, bool | None] | None = None
        decisions: dict[Cell, Decision] = {}
        complete = False
        rounds = 0
        while True:
            began = time.monotonic() - start
            answers = self._round(sessions, plan)
            rounds += 1
            for cell in planned:
                answer = answers.get(cell) or Answer(None, "error", "no answer")
                samples[cell].append(answer)
                history[cell].append(answer.value)
            values = {c: history[c][-1] for c in table_cells}
            elapsed = time.monotonic() - start
            agrees = expected is not None and all(expected.get(*c) == values[c] for c in table_cells)
            window.add(agrees, began + ahead, elapsed + ahead)
            if not window.open and len(window.counted()) >= min_rounds:
                decisions = _decide(table_cells, history, window.counted(), alive, min_rounds)
                if not any(d.pending for d in decisions.values()):
                    complete = True
                    break
            if elapsed >= deadline:
                break
            # a settled answer that differs from the expectation: a policy may still be on its way; look more calmly
            calm = window.open and previous == values
            previous = values
            time.sleep(settle_pause if calm else pause)
        decisions = _decide(table_cells, history, window.counted(), alive, min_rounds)
        final = TruthTable(shape.rows, shape.cols, cells=shape.only)
        final.values = {c: decisions[c].value for c in table_cells}
        return Result(observed=final, expected=expected, answers=answers, history=history, rounds=rounds,
                      seconds=time.monotonic() - start, stable=complete, sources={s.key: s for s in sources},
                      probes=probes, timeout=self.timeout, namespaces=dict(namespaces or {}), samples=samples,
                      counted_from=window.counted_from, decisions=decisions,
                      alive=dict(alive) if alive is not None else None, min_rounds=min_rounds)


def _shown(spec: Alive | None, history: Mapping[Cell, list[bool | None]], counted: range) -> list[bool]:
    if spec is None:
        return [False] * len(counted)
    cells = spec.cells()
    return [spec.holds({c: history[c][i] for c in cells if i < len(history.get(c, []))}) for i in counted]


def _decide(cells: Sequence[Cell], history: Mapping[Cell, list[bool | None]], counted: range,
            alive: Mapping[Target, Alive] | None, min_rounds: int) -> dict[Cell, Decision]:
    shown: dict[Target, list[bool] | None] = {}
    out = {}
    for row, col in cells:
        spec = (alive.get(col) or Alive.never("no way to show it alive")) if alive is not None else None
        if col not in shown:
            shown[col] = _shown(spec, history, counted) if spec is not None else None
        out[(row, col)] = decide([history[(row, col)][i] for i in counted], shown[col], min_rounds=min_rounds,
                                 alive_text=spec.text if spec is not None else "")
    return out


def _probe_for(target: Target) -> Probe:
    if target.path == "dns":
        return Probe("dns", target.host or "", target.port)
    return Probe(target.protocol.lower(), target.host or "", target.port)


def probe_ready(pod: dict | None) -> bool:
    """Ready (``kube.pod_ready``: Running, Ready, not being deleted) and with an address to probe."""
    return pod_ready(pod) and bool((pod.get("status") or {}).get("podIP"))


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

    def aliveness(self, cells: Iterable[Cell] | None = None
                  ) -> tuple[list[Cell], list[Source], dict[Target, Alive]]:
        """(control cells, control-only sources, how each target is shown alive) for ``cells`` (default: every
        cell of the lab). A model pod's port is alive in a round when the pod answers on it over ``localhost``
        (from the pod itself: a source pod probes itself in its own session, a pod that is not a source gets a
        session of its own); a UDP port also needs a UDP path that works in that round (any UDP cell of the
        table connecting); the DNS column, the name resolving from some source in that round."""
        table = list(cells) if cells is not None else list(self.expect(True).cells())
        rows = {s.key for s in self.sources}
        controls: list[Cell] = []
        control_sources: list[Source] = []
        alive: dict[Target, Alive] = {}
        udp = tuple(c for c in table if c[1].protocol == "UDP" and c[1].path in ("pod", "service"))
        dns = tuple(c for c in table if c[1].path == "dns")
        for target in dict.fromkeys(col for _, col in table):
            if target.path == "dns":
                alive[target] = Alive((dns,), None, "the name resolves from another source in the same round")
                continue
            key = target.pod_key
            if key is None or key not in self.pods:
                continue
            if key not in rows and key not in {s.key for s in control_sources}:
                ns, _, pod = key.partition("/")
                control_sources.append(Source(key, self.ns(ns), pod))
            local = Target.local(target.port, target.protocol)
            controls.append((key, local))
            spec = Alive.by((key, local), text=f"{key} answers on localhost:{target.port}/{target.protocol}")
            if target.protocol == "UDP":
                spec = spec.also_any(udp, text="a UDP probe between pods connects")
            alive[target] = spec
        return list(dict.fromkeys(controls)), control_sources, alive

    def observe(self, expected: TruthTable | None = None, **kwargs: Any) -> Result:
        if "alive" not in kwargs:
            cells = expected.cells() if expected is not None else None
            controls, control_sources, alive = self.aliveness(cells)
            kwargs.update(controls=controls, control_sources=control_sources, alive=alive)
        return self.engine.observe(self.sources, self.targets, expected=expected, namespaces=self.namespaces,
                                   **kwargs)

    def check(self, expected: TruthTable, **kwargs: Any) -> Result:
        """Observe (see ``observe``) and compare with ``expected``; ``AssertionError``
        with the expected, observed and comparison grids and a kubectl line per wrong cell otherwise."""
        result = self.observe(expected, **kwargs)
        if not result.ok:
            raise AssertionError("reachability differs from the expectation:\n" + result.report())
        return result
