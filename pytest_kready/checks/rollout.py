"""rollout.zero-downtime: roll out a new revision under steady load and count the requests that failed.

``reference_workload`` is the workload the check deploys in its own namespace: agnhost netexec, 3 replicas, a
readiness probe (``/readyz``: 503 once SIGTERM arrives) distinct from the liveness probe (``/healthz``), a preStop
delay, a termination grace period above preStop + drain, and a rolling update that never goes below 3 ready pods
(all new pods at once: ``maxSurge: 100%``, ``maxUnavailable: 0``).
``safe=False`` gives the same workload without readiness, preStop and drain: the negative control, which loses
requests on the same cluster. Both simulate two seconds of application start-up (``sleep 2`` before the server
listens), as real applications have.

``measure_rollout`` drives load (pytest_kready/load.py) through the Service's ClusterIP from the in-cluster client for
the whole rollout — before it starts, until every pod of the old revision is gone, and a little after — and
``judge`` turns it into a verdict: 0 failed requests passes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .. import errors
from ..findings import CheckResult, Verdict
from ..waits import WaitTimeout, wait_for
from .. import load
from ..kube import (container, create, get, list_items, merge_patch, object_meta, pod_spec,
                              selector_string, service_selects)

CHECK_ID = "rollout.zero-downtime"
TARGET_CHECK_ID = "rollout.zero-downtime-target"
PORT = 8080
REPLICAS = 3
START_DELAY = 2  # seconds the reference application takes to start listening
PRESTOP_SECONDS = 5
DRAIN_SECONDS = 3  # netexec --delay-shutdown: keeps serving (readyz 503) after SIGTERM
GRACE_SECONDS = 20
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
REFERENCES = (
    "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination",
    "https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/",
    "https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
    "https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment",
)
REMEDIATION = (
    "Give every serving container a readinessProbe on an endpoint that fails as soon as the process is told to "
    "stop (distinct from the livenessProbe), a preStop delay longer than endpoint propagation (e.g. "
    "lifecycle.preStop.sleep.seconds: 5-10), terminationGracePeriodSeconds above preStop + drain time, handle "
    "SIGTERM by draining in-flight requests, and roll out with maxUnavailable: 0 / maxSurge: 1."
)


def reference_workload(run_id: str, image: str, *, name: str = "web", safe: bool = True,
                       replicas: int = REPLICAS) -> tuple[dict, dict]:
    """(Deployment, Service) of the reference workload; ``safe=False``: no readiness, no preStop, no drain."""
    app = {"app.kubernetes.io/name": name, "kready.dev/workload": name}
    netexec = f"exec /agnhost netexec --http-port={PORT}"
    extra: dict[str, Any] = {"ports": [{"containerPort": PORT, "name": "http"}]}
    if safe:
        netexec += f" --delay-shutdown={DRAIN_SECONDS}"
        extra["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 1,
                                   "failureThreshold": 1, "successThreshold": 1, "timeoutSeconds": 1}
        extra["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": PORT}, "initialDelaySeconds": 10,
                                  "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2}
        extra["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sleep", str(PRESTOP_SECONDS)]}}}
    c = container("app", image, [], command=["/bin/sh", "-c", f"sleep {START_DELAY}; {netexec}"], **extra)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": object_meta(run_id, name, extra_labels=app),
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 2,
            "selector": {"matchLabels": app},
            # every new pod at once, no old one gone before its replacement is available: the same guarantee as
            # maxSurge 1 (the remediation's advice for a team's workload), one step instead of three (issue 14)
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": dict(app)},
                         "spec": pod_spec([c], terminationGracePeriodSeconds=GRACE_SECONDS)},
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": object_meta(run_id, name, extra_labels=app),
        "spec": {"selector": dict(app), "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]},
    }
    return deployment, service


def workload_shape(deployment: dict) -> dict[str, Any]:
    """What matters about the workload for zero downtime (evidence)."""
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]

    def probe(p):
        if not p:
            return None
        for kind in ("httpGet", "tcpSocket", "exec", "grpc"):
            if kind in p:
                return {kind: p[kind]}
        return p

    return {"replicas": spec.get("replicas"), "strategy": spec.get("strategy"),
            "readinessProbe": probe(c.get("readinessProbe")), "livenessProbe": probe(c.get("livenessProbe")),
            "preStop": (c.get("lifecycle") or {}).get("preStop"),
            "terminationGracePeriodSeconds": pod.get("terminationGracePeriodSeconds", 30)}


# --- rollout state ---------------------------------------------------------------------------------------


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def rollout_state(api, namespace: str, name: str) -> dict[str, Any]:
    """Where a Deployment's rollout stands: counts, the current revision's pod-template-hash, pods by hash."""
    dep = api.raw("GET", deployment_path(namespace, name))
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep.get("metadata") or {}
    replicas = spec.get("replicas", 1)
    selector = selector_string(spec.get("selector") or {})
    revision = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    current_hash = None
    for rs in list_items(api, f"/apis/apps/v1/namespaces/{namespace}/replicasets", labelSelector=selector):
        owners = (rs.get("metadata") or {}).get("ownerReferences") or []
        if any(o.get("kind") == "Deployment" and o.get("name") == name for o in owners) and \
                ((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision):
            current_hash = (rs["metadata"].get("labels") or {}).get(HASH_LABEL)
    pods: dict[str, int] = {}
    for pod in list_items(api, f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector):
        h = (pod["metadata"].get("labels") or {}).get(HASH_LABEL, "?")
        pods[h] = pods.get(h, 0) + 1
    generation_seen = status.get("observedGeneration", 0) >= meta.get("generation", 0)
    counts_done = all(status.get(k, 0) == replicas for k in ("updatedReplicas", "readyReplicas", "availableReplicas"))
    return {
        "replicas": replicas, "generation_seen": generation_seen, "current_hash": current_hash, "pods": pods,
        "updated": status.get("updatedReplicas", 0), "ready": status.get("readyReplicas", 0),
        "available": status.get("availableReplicas", 0), "revision": revision,
        "done": bool(generation_seen and counts_done and current_hash and set(pods) == {current_hash}),
    }


def wait_available(api, namespace: str, name: str, *, timeout: float) -> dict[str, Any]:
    return wait_for(lambda: (s := rollout_state(api, namespace, name))["done"] and s, timeout=timeout, interval=0.5,
                    max_interval=2, what=f"Deployment {namespace}/{name} available with every pod current",
                    describe=lambda _: str(rollout_state(api, namespace, name)), retry_on=(errors.APIServerError,))


# --- measuring -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    samples: list[load.Sample]
    t_rollout: float | None = None  # seconds since the load started
    t_done: float | None = None
    old_hash: str | None = None
    new_hash: str | None = None
    timeline: list[dict] = dataclasses.field(default_factory=list)
    error: str | None = None  # the rollout itself did not complete
    overhead_ms: float | None = None


def measure_rollout(api, new_api: Callable[[], Any], *, client_namespace: str, namespace: str, name: str,
                    host: str, port: int, path: str, trigger: dict, timeout: float, workers: int = 3,
                    rate_per_worker: float = 8, before: float = 2.0, after: float = 2.0) -> Measurement:
    """Load from ``before`` seconds ahead of the rollout until ``after`` seconds past its end (every old pod gone).
    ``trigger`` is the merge patch that starts the rollout."""
    start_state = rollout_state(api, namespace, name)
    overhead = load.overhead_ms(load.LoadClient(api, client_namespace))
    drivers = [new_api() for _ in range(workers)]
    steady = load.SteadyLoad([load.LoadClient(d, client_namespace) for d in drivers], host, port, path,
                             rate_per_worker=rate_per_worker)
    m = Measurement(samples=[], old_hash=start_state["current_hash"], overhead_ms=overhead)
    try:
        steady.start()
        time.sleep(before)
        merge_patch(api, deployment_path(namespace, name), trigger)
        m.t_rollout = steady.now()
        last_pods: dict | None = None

        def done():
            nonlocal last_pods
            state = rollout_state(api, namespace, name)
            if state["pods"] != last_pods:
                last_pods = state["pods"]
                m.timeline.append({"t_s": round(steady.now(), 2), "pods_by_revision": dict(state["pods"]),
                                   "ready": state["ready"], "updated": state["updated"]})
            if state["done"] and state["current_hash"] != m.old_hash:
                m.new_hash = state["current_hash"]
                return True
            return False

        try:
            wait_for(done, timeout=timeout, interval=0.5, what=f"rollout of Deployment {namespace}/{name}",
                     retry_on=(errors.APIServerError,), describe=lambda _: f"pods by revision {last_pods}")
            m.t_done = steady.now()
        except WaitTimeout as e:
            m.error = str(e)
        # keep measuring until requests sent after the end came back (a hung request holds a worker)
        if m.t_done is not None:
            t_done = m.t_done
            wait_for(lambda: steady.now() >= t_done + after and
                     sum(1 for x in list(steady.samples) if x.t > t_done) >= 2 * workers,
                     timeout=after + 2 * load.REQUEST_TIMEOUT + 15, interval=0.2, what="load after the rollout")
    finally:
        m.samples = steady.stop()
        for d in drivers:
            d.close()
    return m


def served_by(samples: list[load.Sample], name: str, old_hash: str | None, new_hash: str | None) -> dict[str, int]:
    """How many successful requests each revision answered (the reference workload answers its pod name)."""
    counts = {"old": 0, "new": 0, "other": 0}
    for s in samples:
        if not s.ok or not s.body:
            continue
        h = s.body[len(name) + 1:].rsplit("-", 1)[0] if s.body.startswith(name + "-") else None
        counts["old" if h == old_hash else "new" if h == new_hash else "other"] += 1
    return counts


def judge(m: Measurement, *, workload: str, check_reference: bool, name: str = "web",
          shape: dict | None = None, target_namespace: str | None = None, repro: str | None = None) -> CheckResult:
    """0 failed requests: pass. Too few requests, too many driver errors, a rollout that did not finish, or load
    that did not cover both revisions: inconclusive."""
    stats = load.summarize(m.samples)
    evidence: dict[str, Any] = {"workload": workload, **stats, "overhead_ms_p50": m.overhead_ms,
                                "rollout_seconds": round(m.t_done - m.t_rollout, 1) if m.t_done and m.t_rollout
                                else None,
                                "load_seconds": round(m.samples[-1].t, 1) if m.samples else 0,
                                "rollout_started_at_s": round(m.t_rollout, 2) if m.t_rollout else None,
                                "timeline": m.timeline[:20],
                                "measured_path": "driver → API server pod proxy → in-cluster client (nc) → Service "
                                                 "ClusterIP → pod"}
    if shape:
        evidence["workload_spec"] = shape
    common = dict(target_namespace=target_namespace, repro=repro, references=REFERENCES)
    if check_reference:
        evidence["served_by_revision"] = served_by(m.samples, name, m.old_hash, m.new_hash)
    if m.error:
        return CheckResult(Verdict.INCONCLUSIVE, f"{workload}: the rollout did not complete: {m.error}",
                      evidence=evidence, **common)
    total = stats["requests"] + stats["driver_errors"]
    if stats["requests"] < 20 or stats["driver_errors"] > max(5, total // 10):
        return CheckResult(Verdict.INCONCLUSIVE,
                      f"{workload}: too little load measured ({stats['requests']} requests, "
                      f"{stats['driver_errors']} failed on the API server proxy, not the workload)",
                      evidence=evidence, **common)
    before = sum(1 for s in m.samples if s.t < (m.t_rollout or 0))
    after = sum(1 for s in m.samples if m.t_done is not None and s.t > m.t_done)
    if not before or not after:
        return CheckResult(Verdict.INCONCLUSIVE, f"{workload}: the load did not span the whole rollout",
                      evidence=evidence, **common)
    if check_reference:
        by = evidence["served_by_revision"]
        if stats["failed"] == 0 and (not by["old"] or not by["new"]):
            return CheckResult(Verdict.INCONCLUSIVE, f"{workload}: the load did not reach both revisions "
                          f"(old {by['old']}, new {by['new']}): it did not measure the rollout",
                          evidence=evidence, **common)
    lat = stats["latency_ms"]
    numbers = (f"{stats['requests']} requests at {stats['rate_rps']}/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
               f"rollout {evidence['rollout_seconds']} s")
    if stats["failed"] == 0:
        return CheckResult(Verdict.PASS, f"{workload}: 0 failed requests during the rollout ({numbers})",
                      evidence=evidence, severity="high", **common)
    kinds = ", ".join(f"{v} {k}" for k, v in stats["failure_kinds"].items())
    return CheckResult(Verdict.FAIL, f"{workload}: {stats['failed']} of {stats['requests']} requests failed during the "
                  f"rollout ({kinds}; {numbers})", evidence=evidence, severity="high", remediation=REMEDIATION,
                  **common)


def reference_repro(namespace: str, name: str, host: str) -> str:
    loop = (f"while true; do printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc {host} {PORT} | head -1; "
            "sleep 0.05; done")
    return (f"kubectl -n {namespace} exec {load.CLIENT_NAME} -- sh -c \"{loop}\" & "
            f"kubectl -n {namespace} rollout restart deployment/{name} && "
            f"kubectl -n {namespace} rollout status deployment/{name}")


def deploy_reference(api, namespace: str, run_id: str, image: str, *, safe: bool = True, name: str = "web",
                     timeout: float = 120) -> tuple[dict, dict]:
    """Create the workload, its Service and the load client in ``namespace``; wait until every pod is available.
    Returns (the Deployment as sent, the Service as created)."""
    deployment, service = reference_workload(run_id, image, name=name, safe=safe)
    create(api, deployment, namespace)
    svc = create(api, service, namespace)
    load.deploy_client(api, namespace, run_id, image)
    wait_available(api, namespace, name, timeout=timeout)
    return deployment, svc


def check_reference(cluster, make_namespace: Callable[[str], str]) -> tuple[str, CheckResult]:
    """``rollout.zero-downtime`` on the run's cluster, in a fresh namespace from ``make_namespace(prefix)``.
    Returns (namespace, result)."""
    namespace = make_namespace("rollout")
    return namespace, run_reference(cluster.api_client(), cluster.no_retry_client_factory(), namespace,
                                    cluster.run_id, cluster.settings.image)


def start_reference(cluster) -> tuple[str, CheckResult]:
    """The check's early start (``kready_early``): the whole check in its throw-away namespace, while other
    checks run (their requests are few next to the load; a lost request needs a pod that stopped serving while it
    still received traffic, not a slow API server)."""
    return check_reference(cluster, cluster.scratch_namespace)


def run_reference(api, new_api: Callable[[], Any], namespace: str, run_id: str, image: str, *, safe: bool = True,
                  name: str = "web", timeout: float = 120) -> CheckResult:
    """Deploy the reference workload (or the unsafe control) and the client in ``namespace``, roll it out under
    load, judge."""
    deployment, svc = deploy_reference(api, namespace, run_id, image, safe=safe, name=name)
    host = svc["spec"]["clusterIP"]
    workload = f"{'reference' if safe else 'unsafe control'} workload {namespace}/{name}"
    client = load.LoadClient(api, namespace)
    ok, seen = load.warm_up(client, host, PORT, "/hostname")
    if not ok:
        return CheckResult(Verdict.INCONCLUSIVE, f"{workload}: the in-cluster client cannot reach Service {name} "
                      f"({host}:{PORT}) before the rollout; last: {seen[-1].error or seen[-1].driver_error}",
                      target_namespace=namespace)
    trigger = {"spec": {"template": {"metadata": {"annotations": {"kready.dev/rollout": _now()}}}}}
    m = measure_rollout(api, new_api, client_namespace=namespace, namespace=namespace, name=name, host=host,
                        port=PORT, path="/hostname", trigger=trigger, timeout=timeout)
    return judge(m, workload=workload, check_reference=True, name=name, shape=workload_shape(deployment),
                 repro=reference_repro(namespace, name, host))


# --- a user's Deployment ---------------------------------------------------------------------------------


def pick_service(services: list[dict], pod_labels: dict) -> tuple[dict, dict] | None:
    """The Service (with a ClusterIP) selecting these pods and its TCP port, preferring a port named http*."""
    for svc in services:
        spec = svc.get("spec") or {}
        if not service_selects(svc, pod_labels) or spec.get("clusterIP") in (None, "", "None"):
            continue
        ports = [p for p in spec.get("ports") or [] if (p.get("protocol") or "TCP") == "TCP"]
        if ports:
            ports.sort(key=lambda p: not str(p.get("name", "")).startswith("http"))
            return svc, ports[0]
    return None


def run_target(api, new_api: Callable[[], Any], client_namespace: str, run_id: str, image: str, *,
               namespace: str, name: str, path: str = "/") -> CheckResult:
    """Roll out the user's Deployment ``namespace/name`` (as ``kubectl rollout restart`` does) under load sent
    from ``client_namespace`` through the Service that selects its pods."""
    workload = f"Deployment {namespace}/{name}"
    common = dict(target_namespace=namespace, references=REFERENCES)
    dep = get(api, deployment_path(namespace, name))
    if dep is None:
        return CheckResult(Verdict.INCONCLUSIVE, f"--kready-rollout-target: {workload} does not exist", **common)
    spec = dep.get("spec") or {}
    if not spec.get("replicas", 1):
        return CheckResult(Verdict.INCONCLUSIVE, f"{workload} has 0 replicas: nothing to roll out under load", **common)
    pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    picked = pick_service(list_items(api, f"/api/v1/namespaces/{namespace}/services"), pod_labels)
    if picked is None:
        return CheckResult(Verdict.INCONCLUSIVE, f"no Service with a ClusterIP and a TCP port selects the pods of "
                      f"{workload}; the load goes through a Service", **common)
    svc, port = picked
    host, port_no = svc["spec"]["clusterIP"], int(port["port"])
    load.deploy_client(api, client_namespace, run_id, image)
    ok, seen = load.warm_up(load.LoadClient(api, client_namespace), host, port_no, path)
    if not ok:
        last = seen[-1]
        return CheckResult(Verdict.INCONCLUSIVE,
                      f"before the rollout, GET {path} on Service {namespace}/{svc['metadata']['name']} "
                      f"({host}:{port_no}) did not answer 2xx/3xx from namespace {client_namespace} (last: "
                      f"{last.error or last.driver_error}); pass --kready-rollout-path, or allow that traffic",
                      **common)
    pod_spec_ = (spec.get("template") or {}).get("spec") or {}
    grace = int(pod_spec_.get("terminationGracePeriodSeconds", 30))
    timeout = min(int(spec.get("progressDeadlineSeconds", 600)), 600) + grace + 30
    trigger = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": _now()}}}}}
    m = measure_rollout(api, new_api, client_namespace=client_namespace, namespace=namespace, name=name, host=host,
                        port=port_no, path=path, trigger=trigger, timeout=timeout)
    repro = f"kubectl -n {namespace} rollout restart deployment/{name} && kubectl -n {namespace} rollout status " \
            f"deployment/{name}   # while sending requests to {svc['metadata']['name']}:{port_no}{path}"
    result = judge(m, workload=workload, check_reference=False, shape=workload_shape(dep),
                   target_namespace=namespace, repro=repro)
    result.evidence["service"] = f"{namespace}/{svc['metadata']['name']}:{port_no}"
    result.evidence["path"] = path
    return result


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
