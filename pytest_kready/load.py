"""Steady HTTP load from an in-cluster client, for as long as a rollout takes.

The client is an agnhost ``netexec`` pod. Each request is one run of its ``/shell`` endpoint, reached through the
API server's pod proxy: inside the pod, busybox ``nc`` sends ``GET <path> HTTP/1.0`` to the Service's ClusterIP
(through kube-proxy, as any in-cluster caller) and prints the answer; the status line decides success (2xx/3xx),
and a refused, reset, empty or timed-out connection is a failure. Requests are paced by a few driver threads.

Why this shape: agnhost carries no HTTP load generator, netexec's ``/dial`` does not look at status codes (a 503
counts as a success there), and busybox ``wget -T`` crashes in Debian's static busybox, while ``nc`` does not.

Latency is what the driver observes for a whole request: API server proxy → client pod → shell → ``nc`` → the
Service → the workload and back. ``overhead_ms`` (the same path to the client's own port, no Service hop) is
measured first and reported beside it, so the part the workload adds can be read off.

A request that fails on the driver's side (the API server proxy, not the workload) is a *driver error*: counted
apart, never as a failed request, and too many of them make the result inconclusive.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import threading
import time
from typing import Any

from . import errors
from .kube import container, create, object_meta, percentile, pod_spec, wait_pod

CLIENT_NAME = "kready-load-client"
CLIENT_PORT = 8080
REQUEST_TIMEOUT = 5  # seconds inside the pod (connect + answer)
_STATUS = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})")


@dataclasses.dataclass
class Sample:
    t: float  # seconds since the load started, when the request was sent
    latency: float  # seconds, as the driver saw it
    ok: bool
    status: int | None = None
    error: str | None = None  # why it failed (the workload's side)
    body: str | None = None  # first line of the body (the reference workload answers its pod name)
    driver_error: str | None = None  # the API server proxy failed: not counted for or against the workload


def client_pod(run_id: str, image: str) -> dict:
    """The in-cluster client: agnhost netexec (its /shell runs nc); no token, restricted Pod Security."""
    probe = {"httpGet": {"path": "/healthz", "port": CLIENT_PORT}, "periodSeconds": 2}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": object_meta(run_id, CLIENT_NAME, extra_labels={"app.kubernetes.io/name": CLIENT_NAME}),
        "spec": pod_spec([container("client", image, ["netexec", f"--http-port={CLIENT_PORT}"],
                                    ports=[{"containerPort": CLIENT_PORT, "name": "http"}], readinessProbe=probe)],
                         terminationGracePeriodSeconds=1),
    }


def http_command(host: str, port: int, path: str, timeout: int = REQUEST_TIMEOUT) -> str:
    """The shell line the client runs for one request; values are printf arguments, never part of the format."""
    fmt = "GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: pytest-kready\\r\\nConnection: close\\r\\n\\r\\n"
    return (f"printf {shlex.quote(fmt)} {shlex.quote(path)} {shlex.quote(host)} | timeout {int(timeout)} "
            f"nc -w {int(timeout)} {shlex.quote(host)} {int(port)} 2>&1 | head -c 600")


def classify(output: str) -> tuple[bool, int | None, str | None, str | None]:
    """(ok, status, error, first body line) from what ``nc`` printed."""
    text = output or ""
    m = _STATUS.match(text)
    if not m:
        line = text.strip().splitlines()[0] if text.strip() else ""
        if "refused" in line.lower():
            return False, None, "connection refused", None
        if line == "Terminated" or "timed out" in line.lower():
            return False, None, f"no answer within {REQUEST_TIMEOUT}s", None
        if not line:
            return False, None, "connection closed without an answer (reset or empty)", None
        return False, None, line[:160], None
    status = int(m.group(1))
    _, _, body = text.replace("\r\n", "\n").partition("\n\n")
    first = body.strip().splitlines()[0][:120] if body.strip() else ""
    if 200 <= status < 400:
        return True, status, None, first
    return False, status, f"HTTP {status}", first


class LoadClient:
    """Requests through the in-cluster client pod (see the module docstring)."""

    def __init__(self, api, namespace: str, pod: str = CLIENT_NAME):
        self.api = api
        self.namespace = namespace
        self.pod = pod
        self.path = f"/api/v1/namespaces/{namespace}/pods/{pod}:{CLIENT_PORT}/proxy/shell"

    def request(self, host: str, port: int, path: str, *, t0: float = 0.0) -> Sample:
        cmd = http_command(host, port, path)
        sent = time.monotonic()
        try:
            answer = self.api.raw("GET", self.path, query={"cmd": cmd}, timeout=REQUEST_TIMEOUT + 10)
        except errors.APIError as e:
            if e.status == 417 and isinstance(e.body, dict):  # the shell line exited non-zero; output is there
                answer = e.body
            else:
                return Sample(sent - t0, time.monotonic() - sent, False, driver_error=f"{type(e).__name__}: {e}"[:200])
        except errors.KreadyError as e:
            return Sample(sent - t0, time.monotonic() - sent, False, driver_error=f"{type(e).__name__}: {e}"[:200])
        latency = time.monotonic() - sent
        if isinstance(answer, str):
            try:
                answer = json.loads(answer)
            except ValueError:
                return Sample(sent - t0, latency, False, driver_error=f"unexpected answer {answer[:100]!r}")
        ok, status, error, body = classify((answer or {}).get("output") or "")
        return Sample(sent - t0, latency, ok, status=status, error=error, body=body)


class SteadyLoad:
    """``workers`` threads, each sending one request every ``1/rate_per_worker`` seconds until ``stop()``."""

    def __init__(self, clients: list[LoadClient], host: str, port: int, path: str, *, rate_per_worker: float = 8):
        self.clients = clients
        self.host, self.port, self.path = host, port, path
        self.interval = 1.0 / rate_per_worker
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0
        self.stopped_at: float | None = None

    def start(self) -> float:
        self.t0 = time.monotonic()
        for i, c in enumerate(self.clients):
            t = threading.Thread(target=self._worker, args=(c, i), name=f"kready-load-{i}", daemon=True)
            self._threads.append(t)
            t.start()
        return self.t0

    def _worker(self, client: LoadClient, index: int) -> None:
        # stagger the workers over one interval so the requests are spread evenly
        if self._stop.wait(self.interval * index / max(1, len(self.clients))):
            return
        while not self._stop.is_set():
            began = time.monotonic()
            sample = client.request(self.host, self.port, self.path, t0=self.t0)
            with self._lock:
                self.samples.append(sample)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def now(self) -> float:
        return time.monotonic() - self.t0

    def stop(self) -> list[Sample]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=REQUEST_TIMEOUT + 20)
        self.stopped_at = self.now()
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)


def deploy_client(api, namespace: str, run_id: str, image: str, *, timeout: float = 90) -> None:
    create(api, client_pod(run_id, image), namespace)
    wait_pod(api, namespace, CLIENT_NAME, timeout=timeout, ready=True)


def warm_up(client: LoadClient, host: str, port: int, path: str, *, needed: int = 5,
            timeout: float = 60) -> tuple[bool, list[Sample]]:
    """Requests until ``needed`` succeed in a row (steady state before measuring), or the deadline passes."""
    deadline = time.monotonic() + timeout
    seen: list[Sample] = []
    streak = 0
    while time.monotonic() < deadline:
        s = client.request(host, port, path)
        seen.append(s)
        streak = streak + 1 if s.ok else 0
        if streak >= needed:
            return True, seen
        if not s.ok:
            time.sleep(0.5)
    return False, seen


def overhead_ms(client: LoadClient, *, count: int = 10) -> float | None:
    """Median latency of the measuring path itself (the client's own port, no Service hop), in ms."""
    values = []
    for _ in range(count):
        s = client.request("127.0.0.1", CLIENT_PORT, "/healthz")
        if s.ok:
            values.append(s.latency * 1000)
    return round(percentile(values, 50), 1) if values else None


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Counts, failure kinds, the first failures and latency percentiles (ms) of the measured requests."""
    measured = [s for s in samples if s.driver_error is None]
    failed = [s for s in measured if not s.ok]
    kinds: dict[str, int] = {}
    for s in failed:
        kinds[s.error or "?"] = kinds.get(s.error or "?", 0) + 1
    lat = [s.latency * 1000 for s in measured if s.ok]

    def ms(q: float) -> float | None:
        v = percentile(lat, q)
        return round(v, 1) if v is not None else None

    span = (samples[-1].t - samples[0].t) if len(samples) > 1 else 0.0
    return {
        "requests": len(measured),
        "failed": len(failed),
        "failure_kinds": kinds,
        "first_failures": [{"t_s": round(s.t, 2), "error": s.error, "status": s.status} for s in failed[:10]],
        "latency_ms": {"p50": ms(50), "p90": ms(90), "p99": ms(99), "max": round(max(lat), 1) if lat else None},
        "driver_errors": len(samples) - len(measured),
        "driver_error_examples": sorted({s.driver_error for s in samples if s.driver_error})[:3],
        "rate_rps": round(len(samples) / span, 1) if span else None,
    }
