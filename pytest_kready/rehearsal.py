"""The upgrade rehearsal: upgrade a running cluster in place, the documented way, with the reference workload under
load the whole time, and measure what each step costs.

``--kready-provider=local --kready-upgrade-rehearsal=1.36.2:1.37.2`` starts the cluster at the older version; the
shipped suites run once (phase ``before``), then ``upgrade.rehearsal`` upgrades the cluster —

1. ``etcd-snapshot``: ``etcdctl snapshot save`` (the backup a failed upgrade is rolled back from);
2. ``kube-apiserver``; 3. ``kube-controller-manager`` and ``kube-scheduler``; 4. ``kubelet`` and ``kube-proxy``
   (``LocalCluster.upgrade_step``: stop, start from the newer version's binaries, wait until they serve) —

while two observers run: the reference workload (``checks.rollout.reference_workload``: agnhost netexec behind a
Service) answering HTTP requests sent to its ClusterIP from the node every ``LOAD_INTERVAL`` seconds (the data
plane: ``ServiceLoad``, a process on the control-plane node, independent of the API server), and the API server's
``/readyz`` polled every ``API_INTERVAL`` seconds (``ApiWatch``). Between the control-plane steps and the node step
the cluster is in the state the version-skew policy must allow (new control plane, old kubelet):
``upgrade.version-skew`` is judged there. Then the suites run again (phase ``after``) and the verdicts that changed
between the phases are reported (``verdict_changes``).

Usable without pytest: ``run(...)`` takes a client, a control plane that can ``upgrade_step`` and a namespace.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterable

from .findings import CheckResult, Verdict

LOAD_INTERVAL = 0.05  # seconds between two requests to the workload
API_INTERVAL = 0.1  # seconds between two /readyz polls
SETTLE = 3.0  # seconds observed after each step finished
BASELINE = 3.0  # seconds of load observed before the first step: the positive control
STEP_NAMES = {("kube-apiserver",): "kube-apiserver", ("kube-controller-manager", "kube-scheduler"):
              "controller-manager+scheduler", ("kubelet", "kube-proxy"): "kubelet+kube-proxy"}
REFERENCES = (
    "https://kubernetes.io/docs/tasks/administer-cluster/cluster-upgrade/",
    "https://kubernetes.io/releases/version-skew-policy/#supported-component-upgrade-order",
)


# --- versions ---------------------------------------------------------------------------------------------------

def parse_versions(value: str) -> tuple[str, str]:
    """``"1.36.2:1.37.2"`` → ``("v1.36.2", "v1.37.2")``; the newer one minor above the older (the skew policy
    upgrades one minor at a time). ValueError with one line otherwise."""
    parts = str(value).split(":")
    if len(parts) != 2:
        raise ValueError(f"{value!r}: give OLD:NEW patch versions, e.g. 1.36.2:1.37.2")
    out = []
    for p in parts:
        nums = p.strip().lstrip("v").split(".")
        if len(nums) != 3 or not all(n.isdigit() for n in nums):
            raise ValueError(f"{value!r}: {p!r} is not a MAJOR.MINOR.PATCH version (e.g. 1.36.2:1.37.2)")
        out.append(tuple(int(n) for n in nums))
    old, new = out
    if new[0] != old[0] or new[1] != old[1] + 1:
        raise ValueError(f"{value!r}: upgrade one minor version at a time (e.g. 1.36.2:1.37.2)")
    return "v%d.%d.%d" % old, "v%d.%d.%d" % new


def minor_of(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


# --- observers --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sample:
    t: float  # time.monotonic() when sent
    ok: bool
    detail: str = ""


def window(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    """Counts in ``[start, end]``: requests, failed, the longest run of failures in seconds (first failure sent →
    next success sent), and the first failures' details."""
    inside = [s for s in samples if start <= s.t <= end]
    failed = [s for s in inside if not s.ok]
    longest, gap_start = 0.0, None
    for s in inside:
        if not s.ok and gap_start is None:
            gap_start = s.t
        elif s.ok and gap_start is not None:
            longest, gap_start = max(longest, s.t - gap_start), None
    if gap_start is not None:
        longest = max(longest, end - gap_start)
    return {"requests": len(inside), "failed": len(failed), "longest_gap_s": round(longest, 2),
            "errors": sorted({s.detail for s in failed if s.detail})[:3]}


class ApiWatch:
    """Polls the API server's ``/readyz`` through a client that never retries, every ``interval`` seconds."""

    def __init__(self, new_api: Callable[[], Any], interval: float = API_INTERVAL):
        self.new_api, self.interval = new_api, interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kready-rehearsal-api", daemon=True)

    def _loop(self) -> None:
        api = None
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                api = api or self.new_api()
                api.raw("GET", "/readyz", timeout=1)
                self.samples.append(Sample(t, True))
            except Exception as e:  # any failure to answer is unavailability, whatever its type
                self.samples.append(Sample(t, False, type(e).__name__))
                api = None
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def __enter__(self) -> "ApiWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class ServiceLoad:
    """HTTP requests to a Service's ClusterIP from the control-plane node, one every ``interval`` seconds: a
    process started through ``start(argv)`` (the node's network namespace) running ``load_main``; its lines are
    read back here with this process's clock (``time.monotonic`` is the same clock for both)."""

    def __init__(self, start: Callable[[list[str]], subprocess.Popen], host: str, port: int,
                 interval: float = LOAD_INTERVAL):
        self.argv = [sys.executable, "-m", "pytest_kready.rehearsal", "--load", f"{host}:{port}", str(interval)]
        self.start = start
        self.samples: list[Sample] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                t, ok, detail = json.loads(line)
            except ValueError:
                continue
            self.samples.append(Sample(float(t), bool(ok), str(detail)))

    def __enter__(self) -> "ServiceLoad":
        self.proc = self.start(self.argv)
        self._reader = threading.Thread(target=self._read, name="kready-rehearsal-load", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)


def load_main(target: str, interval: float, *, out=sys.stdout, stop: Callable[[], bool] = lambda: False) -> None:
    """The load process: ``GET /hostname`` on ``target`` (host:port) every ``interval`` seconds, one JSON line
    ``[monotonic time sent, ok, detail]`` per request, until terminated."""
    host, _, port = target.rpartition(":")
    while not stop():
        t = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=1)
            conn.request("GET", "/hostname")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            ok, detail = 200 <= resp.status < 400, f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as e:
            ok, detail = False, type(e).__name__
        out.write(json.dumps([t, ok, "" if ok else detail]) + "\n")
        out.flush()
        time.sleep(max(0.0, interval - (time.monotonic() - t)))


# --- the rehearsal ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Step:
    name: str
    started: float
    finished: float | None = None
    error: str | None = None


def not_ready_workloads(api) -> list[str]:
    """Deployments, StatefulSets and DaemonSets anywhere whose ready count is below what they want."""
    out = []
    for kind, path, want, have in (
        ("Deployment", "/apis/apps/v1/deployments", "replicas", "readyReplicas"),
        ("StatefulSet", "/apis/apps/v1/statefulsets", "replicas", "readyReplicas"),
        ("DaemonSet", "/apis/apps/v1/daemonsets", "desiredNumberScheduled", "numberReady"),
    ):
        for obj in api.raw("GET", path).get("items", []):
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            wanted = (status if kind == "DaemonSet" else spec).get(want, 1 if kind != "DaemonSet" else 0)
            if status.get(have, 0) < wanted:
                m = obj["metadata"]
                out.append(f"{kind} {m['namespace']}/{m['name']} ({status.get(have, 0)}/{wanted} ready)")
    return out


def run(api, new_api: Callable[[], Any], cp, namespace: str, run_id: str, image: str, *, old: str, new: str,
        skew_check: Callable[[], CheckResult] | None = None, ready_timeout: float = 120) -> tuple[CheckResult, CheckResult | None]:
    """Upgrade the cluster behind ``cp`` (a control plane with ``upgrade_steps``, ``upgrade_step``, ``start`` and
    ``etcd``) from ``old`` to ``new`` under load; return the ``upgrade.rehearsal`` result and, when ``skew_check``
    is given, ``upgrade.version-skew`` judged in the mid-state (new control plane, old node)."""
    from .checks import etcd as etcd_check
    from .checks import rollout
    from .kube import create

    deployment, service = rollout.reference_workload(run_id, image, name="rehearsal")
    create(api, deployment, namespace)
    svc = create(api, service, namespace)
    rollout.wait_available(api, namespace, "rehearsal", timeout=ready_timeout)
    cluster_ip = svc["spec"]["clusterIP"]
    steps: list[Step] = []
    mid_skew: CheckResult | None = None
    evidence: dict[str, Any] = {"from": old, "to": new, "workload": f"{namespace}/rehearsal",
                                "load": f"GET http://{cluster_ip}:{rollout.PORT}/hostname every {LOAD_INTERVAL}s "
                                        "from the control-plane node",
                                "api_probe": f"GET /readyz every {API_INTERVAL}s"}
    with ApiWatch(new_api) as api_watch, ServiceLoad(cp.start, cluster_ip, rollout.PORT) as load:
        t0 = time.monotonic()
        time.sleep(BASELINE)
        baseline = window(load.samples, t0, time.monotonic())
        evidence["before_upgrade"] = baseline
        if baseline["requests"] == 0 or baseline["failed"] == baseline["requests"]:
            return CheckResult(Verdict.INCONCLUSIVE, "the reference workload answered no request before the upgrade: "
                               "nothing to measure the upgrade against", evidence=evidence, scope="cluster"), None
        step = Step("etcd-snapshot", time.monotonic())
        steps.append(step)
        path, _ = etcd_check.snapshot_paths(cp, f"kready-rehearsal-{run_id}.db")
        proc = etcd_check.save_snapshot(cp, path)
        step.finished = time.monotonic()
        if proc.returncode != 0:
            step.error = f"etcdctl snapshot save failed: {etcd_check.last_line(proc)}"
        else:
            evidence["etcd_snapshot"] = path
        for names in cp.upgrade_steps if step.error is None else ():
            if names == cp.upgrade_steps[-1] and skew_check is not None:
                mid_skew = skew_check()
            step = Step(STEP_NAMES.get(tuple(names), "+".join(names)), time.monotonic())
            steps.append(step)
            try:
                cp.upgrade_step(tuple(names), new)
            except Exception as e:  # the step failed: report it, never retry or go on
                step.error = f"{type(e).__name__}: {e}"
            step.finished = time.monotonic()
            time.sleep(SETTLE)
            if step.error:
                break
        t_end = time.monotonic()
    not_ready: list[str] = []
    if not any(s.error for s in steps):
        deadline = time.monotonic() + ready_timeout
        while (not_ready := not_ready_workloads(api)) and time.monotonic() < deadline:
            time.sleep(1)
    table = []
    for i, s in enumerate(steps):
        end = steps[i + 1].started if i + 1 < len(steps) else t_end
        row = {"step": s.name, "seconds": round((s.finished or end) - s.started, 2),
               "requests_lost": window(load.samples, s.started, end),
               "api_unavailable": window(api_watch.samples, s.started, end)}
        if s.error:
            row["error"] = s.error
        table.append(row)
    whole = window(load.samples, steps[0].started, t_end)
    evidence.update(steps=table, total={"requests": whole["requests"], "lost": whole["failed"],
                                        "longest_gap_s": whole["longest_gap_s"],
                                        "api_unavailable_s": sum(r["api_unavailable"]["longest_gap_s"] for r in table)},
                    not_ready_after=not_ready)
    failed_step = next((s for s in steps if s.error), None)
    figures = (f"{whole['failed']} of {whole['requests']} requests lost (longest gap {whole['longest_gap_s']} s), "
               f"API unavailable {evidence['total']['api_unavailable_s']:.1f} s")
    common = dict(evidence=evidence, scope="cluster", references=REFERENCES)
    if failed_step is not None:
        result = CheckResult(Verdict.FAIL, f"upgrade {old} → {new} failed at {failed_step.name}: {failed_step.error}",
                             severity="high", remediation="Fix what the failed step names before upgrading; the etcd "
                             "snapshot taken first is the way back.", **common)
    elif whole["failed"] or not_ready:
        bad = [f"{whole['failed']} requests lost"] if whole["failed"] else []
        bad += [f"not Ready after the upgrade: {', '.join(not_ready[:3])}"] if not_ready else []
        result = CheckResult(Verdict.FAIL, f"upgrade {old} → {new}: {'; '.join(bad)} ({figures})", severity="high",
                             remediation="Run more than one replica behind a PodDisruptionBudget with readiness probes, "
                             "and look at the steps table for the step that lost requests.", **common)
    else:
        result = CheckResult(Verdict.PASS, f"upgrade {old} → {new} in place: {figures}; every workload Ready after",
                             severity="info", **common)
    return result, mid_skew


# --- verdicts between the phases ------------------------------------------------------------------------------------

PHASES = ("before", "after")


def split_phase(variant: str | None) -> tuple[str | None, str]:
    """``"root-before"`` → ``("before", "root")``; ``"after"`` → ``("after", "")``; no phase → ``(None, variant)``."""
    v = variant or ""
    for phase in PHASES:
        if v == phase:
            return phase, ""
        if v.endswith("-" + phase):
            return phase, v[: -len(phase) - 1]
    return None, v


def verdict_changes(findings: Iterable[dict]) -> list[dict]:
    """Findings (the v1 JSON's) whose verdict differs between phase ``before`` and ``after``, matched on check id,
    target key and the variant without its phase; a finding in one phase only is listed with the other missing."""
    by_key: dict[tuple, dict[str, str]] = {}
    for f in findings:
        phase, variant = split_phase(f.get("variant"))
        if phase is None:
            continue
        by_key.setdefault((f["check_id"], f.get("target_key") or "", variant), {})[phase] = f["verdict"]
    out = []
    for (check, target, variant), v in sorted(by_key.items()):
        if v.get("before") != v.get("after"):
            out.append({"check_id": check, "target_key": target, "variant": variant or None,
                        "before": v.get("before"), "after": v.get("after")})
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "--load":
        try:
            load_main(args[1], float(args[2]))
        except (KeyboardInterrupt, BrokenPipeError):
            pass
        return 0
    print("usage: python -m pytest_kready.rehearsal --load HOST:PORT INTERVAL", file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
