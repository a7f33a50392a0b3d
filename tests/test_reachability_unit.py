"""The reachability engine without a cluster: model, truth tables and grids, the probe script (run for real with
busybox against local listeners), answer classification, and the sampling rules of ``Engine.observe``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import pytest_kready.fixtures  # noqa: F401  (imported before pytester snapshots sys.modules)
from pytest_kready.checks import network as net
from pytest_kready.reachability import engine as engine_mod
from pytest_kready.reachability.engine import Engine, Lab, Source
from pytest_kready.reachability.model import (DNS_NAME, NS_LABEL, POD_LABEL, Model, NamespaceModel, Target, key_matches,
                                              pod_manifest, security_context, service_manifest)
from pytest_kready.reachability.probe import (Answer, ExecError, ExecResult, Probe, ProbeSession, classify,
                                              exec_timeout, kubectl_line, parse, probe_lines, script, session_argv,
                                              session_script)
from pytest_kready.reachability.sampling import Alive, Decision, SettleWindow, decide
from pytest_kready.reachability.truthtable import TruthTable

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BASH_STATIC = "/bin/bash-static"  # Debian's bash-static: the agnhost image's /bin/bash


# --- model -------------------------------------------------------------------------------------------------


def test_grid_model_rows_columns_and_order():
    m = Model.grid(["x", "y"], ["a", "b"], ports=[80, 81], protocols=["tcp", "UDP"], paths=["pod", "service"],
                   dns=True)
    assert m.pod_keys() == ["x/a", "x/b", "y/a", "y/b"]
    assert m.source_keys() == m.pod_keys()
    targets = m.targets()
    assert len(targets) == 4 * 2 * 2 * 2 + 1
    assert targets[0] == Target("x/a", 80, "TCP", "pod") and targets[-1].path == "dns"
    assert [t.group for t in targets[:5]] == ["TCP/80 via pod IP"] * 4 + ["TCP/81 via pod IP"]
    assert targets[-2].group == "UDP/81 via Service"
    assert Model.grid(["x", "y"], ["a"], sources="namespace").source_keys() == ["x", "y"]


def test_model_labels_per_pod_and_namespace():
    m = Model.grid(["x", "y"], ["a", "b"], pod_labels={"a": {"role": "web"}, "y/a": {"tier": "1"}},
                   namespace_labels={"y": {"team": "blue"}})
    assert m.namespace("x").pods[0].labels == {"role": "web"}
    assert m.namespace("y").pods[0].labels == {"role": "web", "tier": "1"}
    assert m.namespace("y").labels == {"team": "blue"}
    with pytest.raises(KeyError, match="not in the model"):
        m.namespace("q")


@pytest.mark.parametrize("kwargs, match", [
    ({"namespaces": ["X"]}, "DNS label"),
    ({"pods": ["probe"]}, "reserved"),
    ({"ports": [0]}, "ports"),
    ({"ports": [80, 80]}, "ports"),
    ({"protocols": ["SCTP"]}, "protocols"),
    ({"paths": ["ingress"]}, "paths"),
    ({"sources": "nodes"}, "sources"),
    ({"namespaces": ["x", "x"]}, "repeat"),
    ({"pods": ["a", "a"]}, "repeat"),
    ({"namespaces": []}, "at least one"),
])
def test_model_refuses_what_cannot_be_deployed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Model.grid(**kwargs)


def test_namespace_sources_need_no_pods_but_pod_sources_do():
    assert Model((NamespaceModel("x"),), sources="namespace").targets() == []
    with pytest.raises(ValueError, match="at least one pod"):
        Model((NamespaceModel("x"),))


@pytest.mark.parametrize("key, pattern, hit", [
    ("x/a", None, True), ("x/a", "*", True), ("x/a", "x", True), ("x/a", "y", False), ("x/a", "x/a", True),
    ("x/a", "x/b", False), ("x/a", "*/a", True), ("x/a", "x/*", True), ("x", "x", True), ("x", "x/*", True),
    ("x", "x/a", False), ("dns", "dns", True), ("dns", "x", False), ("x/a", ["y", "x/a"], True),
    ("x/a", ["y", "z"], False), ("x-1/a", "x-?", True),
])
def test_key_patterns(key, pattern, hit):
    assert key_matches(key, pattern) is hit


def test_manifests_are_restricted_above_1024_and_baseline_below():
    pod, container = security_context([8080])
    assert pod["runAsNonRoot"] and pod["runAsUser"] == 65534 and pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert container == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                         "capabilities": {"drop": ["ALL"]}}
    pod, container = security_context([80, 8080])
    assert pod["runAsUser"] == 0 and "runAsNonRoot" not in pod
    assert container["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}

    server = pod_manifest("a", image="img:1", ports=[8080, 8081], labels={POD_LABEL: "a"})
    c = server["spec"]["containers"][0]
    assert c["args"] == ["porter"] and c["image"] == "img:1"
    assert {e["name"] for e in c["env"]} == {"SERVE_PORT_8080", "SERVE_UDP_PORT_8080", "SERVE_PORT_8081",
                                             "SERVE_UDP_PORT_8081"}
    assert {(p["containerPort"], p["protocol"]) for p in c["ports"]} == {
        (8080, "TCP"), (8080, "UDP"), (8081, "TCP"), (8081, "UDP")}
    assert c["readinessProbe"]["tcpSocket"]["port"] == 8080 and c["resources"]["limits"]["memory"]
    assert server["spec"]["automountServiceAccountToken"] is False and server["spec"]["activeDeadlineSeconds"]
    client = pod_manifest("probe", image="img:1", serve=False)
    assert client["spec"]["containers"][0]["args"] == ["pause"]
    host = pod_manifest("l", image="img:1", ports=[20001], host_network=True)
    assert host["spec"]["hostNetwork"] and host["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    svc = service_manifest("s-a", selector={POD_LABEL: "a"}, ports=[8080])
    assert [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [(8080, "TCP"), (8080, "UDP")]


# --- truth tables ------------------------------------------------------------------------------------------------


def _table(default=True, **kw) -> TruthTable:
    m = Model.grid(["x", "y"], ["a", "b"], ports=[80, 81], **kw)
    return TruthTable(m.source_keys(), m.targets(), default=default)


def test_a_pod_never_probes_itself_and_defaults_fill_the_rest():
    t = _table()
    assert t.counts() == {"cells": 4 * 3 * 2, "connects": 24, "blocked": 0, "unknown": 0}
    self_cell = Target("x/a", 80)
    assert not t.probed("x/a", self_cell) and t.probed("x/b", self_cell)
    with pytest.raises(KeyError):
        t.set("x/a", self_cell, True)


def test_expectations_by_namespace_pod_port_protocol_and_path():
    t = _table(protocols=["TCP", "UDP"], paths=["pod", "service"])
    t.deny(to="x").allow(frm="x", to="x")
    assert t.get("y/a", Target("x/b", 80, "UDP", "service")) is False
    assert t.get("x/a", Target("x/b", 81, "TCP", "pod")) is True
    assert t.get("x/a", Target("y/b", 81, "TCP", "pod")) is True
    t.deny(frm="y/b", port=81, protocol="udp", path="service")
    assert t.get("y/b", Target("y/a", 81, "UDP", "service")) is False
    assert t.get("y/b", Target("y/a", 80, "UDP", "service")) is True
    assert t.get("y/b", Target("y/a", 81, "UDP", "pod")) is True
    assert len(t.select(frm="y/b", port=[80, 81], protocol="UDP")) == 3 * 2 * 2


def test_diff_and_equality():
    expected, observed = _table(), _table()
    assert expected == observed
    observed.set("y/a", Target("x/a", 81), False)
    assert expected != observed
    assert expected.diff(observed) == [("y/a", Target("x/a", 81), True, False)]


def test_sparse_tables_and_sub_tables():
    cols = [Target.address("web", "10.0.0.1", 80), Target.dns()]
    t = TruthTable(["fresh", "t"], cols, cells=[("fresh", cols[0]), ("t", cols[1])])
    assert list(t.cells()) == [("fresh", cols[0]), ("t", cols[1])]
    t.values[("fresh", cols[0])] = False
    t.values[("t", cols[1])] = True
    sub = t.sub(["t"], None)
    assert sub.rows == ["t"] and list(sub.cells()) == [("t", cols[1])] and sub.get("t", cols[1]) is True
    with pytest.raises(KeyError, match="outside"):
        TruthTable(["a"], cols, cells=[("b", cols[0])])


def test_render_shows_expected_observed_and_comparison_side_by_side():
    expected, observed = _table(), _table()
    observed.set("y/a", Target("x/a", 81), False)
    observed.set("y/b", Target("x/a", 81), None)
    text = expected.render(observed)
    assert "TCP/80 via pod IP: 0 wrong of 12" in text and "TCP/81 via pod IP: 2 wrong of 12" in text
    lines = text.splitlines()
    block = lines[next(i for i, line in enumerate(lines) if line.startswith("TCP/81")):]
    assert block[1].split() == ["expected", "observed", "comparison"]
    row = next(line for line in block if line.startswith("y/a "))
    assert row.count("|") == 3 and "X" in row.split("|")[3] and "-" in row.split("|")[2]
    assert "?" in next(line for line in block if line.startswith("y/b ")).split("|")[2]


def test_wide_grids_are_stacked_and_single_rows_listed():
    m = Model.grid(["namespace-one", "namespace-two"], ["pod-a", "pod-b", "pod-c", "pod-d"], ports=[80])
    t = TruthTable(m.source_keys(), m.targets(), default=False)
    text = t.render(t.copy())
    assert "\nexpected:\n" in text and "\ncomparison:\n" in text
    cols = [Target.address("web", "10.0.0.1", 80), Target.dns()]
    single = TruthTable(["fresh"], cols, default=False)
    observed = single.copy()
    observed.values[("fresh", cols[1])] = True
    listing = single.render(observed, details={("fresh", cols[1]): "resolved"}, grouped=False)
    assert "from fresh:" in listing
    line = next(line for line in listing.splitlines() if "dns " in line)
    assert line.startswith("X ") and "does not resolve" in line and "resolves" in line and "resolved" in line


# --- probes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status, text, value, category", [
    ("tcp", 0, "", True, "connected"),
    ("tcp", 1, "nc: can't connect to remote host (10.0.0.1): Connection refused", False, "refused"),
    ("tcp", 1, "nc: timed out", False, "timeout"),
    ("tcp", 1, "nc: connect to 10.0.0.1 port 80 (tcp) failed: Connection refused", False, "refused"),
    ("tcp", 1, "nc: connect to 10.0.0.1 port 80 (tcp) timed out: Operation now in progress", False, "timeout"),
    ("tcp", 1, "REFUSED", False, "refused"),
    ("tcp", 1, "TIMEOUT", False, "timeout"),
    ("tcp", 1, "OTHER: dial tcp 10.0.0.1:80: connect: no route to host", False, "unreachable"),
    ("tcp", 1, "OTHER: dial tcp 10.0.0.1:80: connect: operation not permitted", False, "other"),
    ("tcp", 1, "nc: bad address 'web'", False, "dns"),
    ("tcp", 127, "sh: nc: not found", None, "error"),
    ("tcp", 1, "UNKNOWN: address 10.0.0.1: missing port in address", None, "error"),
    ("udp", 0, "", True, "connected"),
    ("udp", 1, "REFUSED: read udp 10.0.0.2:1->10.0.0.1:80: read: connection refused", False, "refused"),
    ("udp", 1, "TIMEOUT: read udp 10.0.0.2:1->10.0.0.1:80: i/o timeout", False, "timeout"),
    ("dns", 1, "REFUSED", True, "resolved"),
    ("dns", 0, "", True, "resolved"),
    ("dns", 1, "DNS: lookup kubernetes.default on 10.96.0.10:53: read udp: i/o timeout", False, "unresolved"),
    ("dns", 143, "", False, "unresolved"),
    ("dns", 127, "sh: /agnhost: not found", None, "error"),
    ("dns", 0, "nsl: Server: 10.96.0.10 Name: kubernetes.default.svc.cluster.local Address: 10.96.0.1", True,
     "resolved"),
    ("dns", 1, "nsl: nslookup: write to '10.96.0.10': Connection refused ;; no servers could be reached", False,
     "unresolved"),
    ("dns", 1, "nsl: ** server can't find kubernetes.default.svc.cluster.local: NXDOMAIN", False, "unresolved"),
    ("dns", 143, "nsl:", False, "unresolved"),
])
def test_classify(kind, status, text, value, category):
    answer = classify(kind, status, text)
    assert (answer.value, answer.category) == (value, category)


def test_parse_fills_missing_answers_with_errors():
    probes = [Probe("tcp", "10.0.0.1", 80), Probe("udp", "10.0.0.1", 80), Probe("dns", DNS_NAME, 443)]
    out = "noise\nR 1 1 REFUSED: read: connection refused\nR 0 0\nR 9 0\nR x 0\n"
    answers = parse(out, probes)
    assert answers[0] == Answer(True, "connected", "")
    assert answers[1].category == "refused" and answers[2].value is None and answers[2].category == "error"


def test_probe_validation_and_commands():
    with pytest.raises(ValueError):
        Probe("icmp", "10.0.0.1", 1)
    with pytest.raises(ValueError):
        Probe("tcp", "10.0.0.1; rm -rf /", 1)
    assert Probe("tcp", "fd00::1", 80).hostport == "[fd00::1]:80"
    line = kubectl_line("ns", "pod", Probe("udp", "10.0.0.1", 53), container="c", timeout=1.5)
    assert line == "kubectl exec -n ns pod -c c -- /agnhost connect 10.0.0.1:53 --protocol=udp --timeout=2s"
    assert exec_timeout([Probe("tcp", "h", 1)] * 64, timeout=2) < exec_timeout([Probe("udp", "h", 1)] * 64, timeout=2)


class _Listener:
    """A local TCP listener accepting and closing connections (stands for an allowed target)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def busybox_bin(tmp_path) -> Path:
    """A PATH with busybox applets only (as in the agnhost image): sh, nc (with -e), xargs, grep, true, timeout."""
    if not os.path.exists(BUSYBOX):
        pytest.fail(f"busybox is needed at {BUSYBOX} (Debian's busybox-static: the agnhost image's shell)")
    d = tmp_path / "bin"
    d.mkdir()
    for applet in ("sh", "nc", "xargs", "grep", "true", "timeout", "echo"):
        (d / applet).symlink_to(BUSYBOX)
    return d


def test_the_probe_script_runs_under_busybox_and_probes_concurrently(busybox_bin):
    listener = _Listener()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more: connection refused
    try:
        probes = [Probe("tcp", "127.0.0.1", listener.port) if i % 2 == 0 else Probe("tcp", "127.0.0.1", closed_port)
                  for i in range(40)]
        text = script(probes, timeout=2)
        proc = subprocess.run([str(busybox_bin / "sh"), "-c", text], capture_output=True, text=True, timeout=60,
                              env={"PATH": str(busybox_bin)})
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("DONE")
    answers = parse(proc.stdout, probes)
    assert [a.value for a in answers.values()] == [i % 2 == 0 for i in range(40)]
    assert {a.category for i, a in answers.items() if i % 2} == {"refused"}


def test_the_probe_script_reports_a_missing_tool_as_unknown(busybox_bin):
    # /agnhost (UDP and DNS probes) is not on this host: the probes say "error", never "blocked"
    probes = [Probe("udp", "127.0.0.1", 9), Probe("dns", "localhost", 9)]
    proc = subprocess.run([str(busybox_bin / "sh"), "-c", script(probes)], capture_output=True, text=True,
                          timeout=60, env={"PATH": str(busybox_bin)})
    answers = parse(proc.stdout, probes)
    assert [(a.value, a.category) for a in answers.values()] == [(None, "error"), (None, "error")]
    assert "/agnhost" in answers[0].detail


class _LocalExec:
    """A stand-in for the exec websocket: runs the command with busybox on this host (stdin, stdout, stderr)."""

    def __init__(self, argv, path):
        import subprocess as sp

        self.proc = sp.Popen(argv, stdin=sp.PIPE, stdout=sp.PIPE, stderr=sp.PIPE, env={"PATH": str(path)})
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stderr.fileno(), False)
        self.buf = {1: "", 2: ""}

    def write_stdin(self, data):
        self.proc.stdin.write(data.encode())
        self.proc.stdin.flush()

    def update(self, timeout=0):
        import select

        ready, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], timeout)
        for f, ch in ((self.proc.stdout, 1), (self.proc.stderr, 2)):
            if f in ready:
                self.buf[ch] += (f.read() or b"").decode()

    def read_channel(self, ch, timeout=0):
        out, self.buf[ch] = self.buf[ch], ""
        return out

    def is_open(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


class _LocalExecutor:
    def __init__(self, path):
        self.path = path
        self.opened: list[_LocalExec] = []

    def open(self, namespace, pod, argv, *, container=None):
        if pod == "gone":
            raise ExecError(f"exec in {namespace}/{pod} failed to start: pods \"{pod}\" not found")
        ex = _LocalExec([str(self.path / "sh"), *argv[1:]], self.path)
        self.opened.append(ex)
        return ex


def test_a_session_runs_round_after_round_over_one_exec(busybox_bin):
    listener = _Listener()
    try:
        probes = [Probe("tcp", "127.0.0.1", listener.port), Probe("tcp", "127.0.0.1", 1)]
        executor = _LocalExecutor(busybox_bin)
        with ProbeSession(executor, "ns", "pod", probes) as session:
            rounds = [session.round() for _ in range(3)]
            assert session.execs == 1 and len(executor.opened) == 1
        for answers in rounds:
            assert [(a.value, a.category) for a in answers.values()] == [(True, "connected"), (False, "refused")]
        assert executor.opened[0].proc.wait(timeout=30) == 0  # stdin closed: the loop ended, nothing left running
    finally:
        listener.close()


def test_a_session_that_cannot_start_answers_unknown(busybox_bin):
    session = ProbeSession(_LocalExecutor(busybox_bin), "ns", "gone", [Probe("tcp", "127.0.0.1", 1)])
    answers = session.round()
    assert answers[0].value is None and answers[0].category == "error" and "not found" in answers[0].detail


@pytest.fixture
def bash_bin(busybox_bin) -> Path:
    """The agnhost image's PATH: busybox applets and bash (Debian's bash-static, as the image built here has)."""
    if not os.path.exists(BASH_STATIC):
        pytest.fail(f"bash is needed at {BASH_STATIC} (Debian's bash-static: the agnhost image's /bin/bash)")
    (busybox_bin / "bash").symlink_to(BASH_STATIC)
    (busybox_bin / "rm").symlink_to(BUSYBOX)
    return busybox_bin


class _FullListener:
    """A listener whose accept queue is full and never drained: the kernel drops new SYNs, so a connect neither
    succeeds nor fails — a target behind a policy that drops (stands for a timeout)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(c)

    def close(self):
        for c in self.fill:
            c.close()
        self.sock.close()


def _session(path: Path, probes, *, rounds: int, bash: bool = True, timeout: float = 2, tcp_parallel: int = 32,
             prefix: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, list[dict[int, Answer]]]:
    """Run a session script as the engine starts it (``session_argv``) with ``path`` as the image's PATH."""
    argv = session_argv(session_script(timeout=timeout, tcp_parallel=tcp_parallel), bash=bash)
    argv[0] = str(path / "sh")
    proc = subprocess.run([*prefix, *argv], input=probe_lines(probes) + "go\n" * rounds, capture_output=True,
                          text=True, timeout=60, env={"PATH": str(path)})
    chunks = proc.stdout.split("\nEND ")
    return proc, [parse(chunk, probes) for chunk in chunks[:rounds]]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_under_bash_tcp_probes_start_no_program(bash_bin):
    # nc is broken in this PATH: the IP-address probes cannot have used it (bash's /dev/tcp did), while a host
    # name still goes to nc and says so
    (bash_bin / "nc").unlink()
    (bash_bin / "nc").write_text('#!/bin/sh\n[ "$1" = -h ] && echo "-e PROG"\necho nc-was-run; exit 3\n')
    (bash_bin / "nc").chmod(0o755)
    listener, closed = _Listener(), _closed_port()
    before = set(Path("/dev/shm").glob("kready-probe.*"))
    try:
        probes = [Probe("tcp", "127.0.0.1", listener.port), Probe("tcp", "127.0.0.1", closed),
                  Probe("tcp", "::1", closed), Probe("tcp", "localhost", listener.port)]
        proc, rounds = _session(bash_bin, probes, rounds=3)
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "READY" and proc.stdout.rstrip().endswith("END 3")
    for answers in rounds:
        assert (answers[0].value, answers[0].category) == (True, "connected")
        assert (answers[1].value, answers[1].category) == (False, "refused")
        assert answers[1].detail == "connect: Connection refused"  # bash's message, not nc's
        assert (answers[2].value, answers[2].category) == (False, "refused")
        assert answers[3].value is False and "nc-was-run" in answers[3].detail
    assert set(Path("/dev/shm").glob("kready-probe.*")) == before  # the error files went with the session


def test_under_bash_a_dropped_connect_times_out_and_the_round_ends(bash_bin):
    full, listener = _FullListener(), _Listener()
    try:
        probes = [Probe("tcp", "127.0.0.1", full.port)] * 3 + [Probe("tcp", "127.0.0.1", listener.port)]
        t0 = time.monotonic()
        proc, rounds = _session(bash_bin, probes, rounds=2, timeout=1, tcp_parallel=2)
        took = time.monotonic() - t0
    finally:
        full.close()
        listener.close()
    assert proc.returncode == 0, proc.stderr
    for answers in rounds:
        assert [(a.value, a.category) for a in answers.values()] == [(False, "timeout")] * 3 + [(True, "connected")]
    # two rounds of two batches (tcp_parallel=2), each ending when its watchdog does: about 4 s, never 2 minutes
    assert 3.5 < took < 15, took
    assert "Killed" not in proc.stderr


def test_bash_false_or_no_bash_keeps_the_posix_way(bash_bin, busybox_bin):
    closed = _closed_port()
    probes = [Probe("tcp", "127.0.0.1", closed)]
    _, rounds = _session(bash_bin, probes, rounds=1, bash=False)
    assert "nc:" in rounds[0][0].detail and rounds[0][0].category == "refused"
    (bash_bin / "bash").unlink()
    _, rounds = _session(busybox_bin, probes, rounds=1)
    assert "nc:" in rounds[0][0].detail and rounds[0][0].category == "refused"


def test_under_bash_without_a_writable_directory_nc_probes(bash_bin):
    # a pod whose /dev/shm and /tmp are read-only: the session cannot keep its error files, so nc does the probes
    closed = _closed_port()
    probes = [Probe("tcp", "127.0.0.1", closed)]
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    assert unshare and mount, "util-linux's unshare and mount are needed"
    prefix = (unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
              "for d in /dev/shm /tmp; do {m} --bind $d $d && {m} -o remount,bind,ro $d || exit 9; done; exec \"$@\"".format(
                  m=mount), "ro")
    proc, rounds = _session(bash_bin, probes, rounds=1, prefix=prefix)
    assert proc.returncode == 0, proc.stderr
    assert rounds[0][0].category == "refused" and "nc:" in rounds[0][0].detail


class _SplitStream:
    """A live exec stream as kubernetes' WSClient behaves: ``update`` takes in the frames that have arrived; reading a
    channel that holds nothing takes them in first (``update(0)``). Each ``go`` makes the round's output arrive as
    two frames, the second one only for the next ``update``."""

    def __init__(self):
        self._channels: dict[int, str] = {}
        self._waiting: list[str] = []
        self.n = 0

    def write_stdin(self, data):
        if "go" in data:
            self.n += 1
            self._waiting += ["R 0 0\n", f"END {self.n}\n"]

    def update(self, timeout=0):
        if self._waiting:
            self._channels[1] = self._channels.get(1, "") + self._waiting.pop(0)
        elif timeout:
            time.sleep(timeout)  # nothing more comes: the wait runs out

    def read_channel(self, channel, timeout=0):
        if channel not in self._channels:
            self.update(timeout)
        return self._channels.pop(channel, "")

    def is_open(self):
        return True

    def close(self):
        pass


def test_a_round_ends_when_its_last_line_arrives_not_a_wait_later():
    # the last line taken in while reading stderr must not wait in the client's buffer for the next update (1 s)
    stream = _SplitStream()

    class Opener:
        def open(self, namespace, pod, argv, *, container=None):
            return stream

    session = ProbeSession(Opener(), "ns", "pod", [Probe("tcp", "10.0.0.1", 80)])
    t0 = time.monotonic()
    for _ in range(3):
        assert session.round()[0].value is True
    assert time.monotonic() - t0 < 0.5


def test_session_script_reads_probes_then_rounds(busybox_bin):
    probes = [Probe("tcp", "127.0.0.1", 1), Probe("udp", "127.0.0.1", 1)]
    proc = subprocess.run([str(busybox_bin / "sh"), "-c", session_script()], input=probe_lines(probes) + "go\ngo\n",
                          capture_output=True, text=True, timeout=60, env={"PATH": str(busybox_bin)})
    lines = proc.stdout.splitlines()
    assert lines[0] == "READY" and lines.count("END 1") == 1 and lines[-1] == "END 2"
    assert sum(1 for line in lines if line.startswith("R 0 ")) == 2
    assert sum(1 for line in lines if line.startswith("R 1 ")) == 2


# --- sampling -------------------------------------------------------------------------------------------------


class _Scripted:
    """Stands in for ``ProbeSession``: round n of a pod answers with ``rounds[n]`` (the last one repeats); a
    round is ``values(pod, probe)`` → True / False / None or an ``Answer``. Probes of ``localhost`` (the targets'
    proofs of life) answer ``local(pod, probe, n)``: True unless given."""

    def __init__(self, rounds, local=None):
        self.rounds = rounds
        self.local = local or (lambda pod, p, n: True)
        self.calls: dict[str, int] = {}
        self.closed = 0
        self.made = 0
        self.lock = threading.Lock()

    def __call__(self, executor, namespace, pod, probes, *, container=None, timeout=2, **parallel):
        scripted = self

        class Session:
            def round(self):
                with scripted.lock:
                    n = scripted.calls.get(pod, 0)
                    scripted.calls[pod] = n + 1
                values = scripted.rounds[min(n, len(scripted.rounds) - 1)]
                out = {}
                for i, p in enumerate(probes):
                    v = scripted.local(pod, p, n) if p.host == "127.0.0.1" else values(pod, p)
                    out[i] = v if isinstance(v, Answer) else Answer(v, "scripted")
                return out

            def close(self):
                with scripted.lock:
                    scripted.closed += 1

        self.made += 1
        session = Session()
        session.probes = list(probes)
        return session


@pytest.fixture
def engine(monkeypatch):
    eng = Engine(api=None, exec_client_factory=lambda: None)
    yield eng
    eng.close()


def _lab(engine, protocol="TCP") -> Lab:
    lab = Lab(engine, Model.grid(["x"], ["a", "b"], ports=[80], protocols=[protocol]), {"x": "real-x"})
    lab.sources = [Source("x/a", "real-x", "a"), Source("x/b", "real-x", "b")]
    lab.targets = [Target("x/a", 80, protocol, host="10.0.0.1"), Target("x/b", 80, protocol, host="10.0.0.2")]
    lab.pods = {"x/a": {}, "x/b": {}}
    return lab


def _run(monkeypatch, engine, rounds, expected=None, local=None, protocol="TCP", **kw):
    scripted = _Scripted(rounds, local)
    monkeypatch.setattr(engine_mod, "ProbeSession", scripted)
    lab = _lab(engine, protocol)
    kw.setdefault("pause", 0)
    kw.setdefault("settle_pause", 0)
    result = lab.observe(expected(lab) if expected else None, **kw)
    return result, scripted


A_TO_B, B_TO_A = ("x/a", Target("x/b", 80)), ("x/b", Target("x/a", 80))


# the rule itself


def test_a_cell_connects_if_any_counted_round_connected():
    assert decide([False, False, True], [True, True, True]).value is True
    assert decide([None, True, None], [False, False, False]).value is True


def test_blocked_needs_min_rounds_failures_with_the_target_shown_alive_in_the_same_round():
    assert decide([False] * 3, [True] * 3) == Decision(False, 3, 3)
    some = decide([False] * 3, [True, False, True])
    assert some.value is None and some.proofs == 2 and some.pending and "2 counted round(s); 3 are needed" in some.why
    dead = decide([False] * 3, [False] * 3, alive_text="no listener")
    assert dead.value is None and not dead.pending
    assert dead.why == ("the target was not shown alive in any of the 3 counted round(s) its probe failed in "
                        "(no listener)")
    assert decide([False] * 3, None).value is False  # aliveness not asked for: a raw observation
    assert decide([False, False], [True, True]).value is None  # too few rounds
    errors = decide([None, None, False], [True, True, True])
    assert errors.value is None and errors.pending
    assert decide([], []).why.startswith("no round counted")


def test_rounds_of_the_settle_window_do_not_count():
    w = SettleWindow(5, expectation=True)
    w.add(False, 0.0, 0.5)
    assert w.open and list(w.counted()) == []
    w.add(True, 0.6, 1.0)  # the first round that agrees closes the window and counts
    w.add(True, 1.1, 1.4)
    assert list(w.counted()) == [1, 2]
    w.add(False, 1.5, 1.9)  # disagreeing while younger than settle: still settling
    assert w.open and list(w.counted()) == []
    w.add(False, 5.0, 5.3)  # after settle every round counts, agreeing or not
    w.add(False, 5.4, 5.7)
    assert list(w.counted()) == [4, 5]
    free = SettleWindow(5, expectation=False)
    free.add(False, 0, 0.1)
    assert list(free.counted()) == [0]


def test_alive_specs():
    a, b, c = ("r", Target("a", 1)), ("r", Target("b", 1)), ("r", Target("c", 1))
    spec = Alive.by(a, text="a").also_any([b, c], text="b or c")
    assert spec.cells() == {a, b, c} and spec.text == "a; b or c" and spec.possible
    assert spec.holds({a: True, c: True}) and not spec.holds({a: True, b: False}) and not spec.holds({b: True})
    assert Alive.known("Ready").holds({}) and not Alive.never("no endpoint").holds({a: True})
    assert not Alive.never("x").possible and not Alive.by(a).also_any([]).possible


# the engine


def test_three_counted_rounds_that_match_end_the_sampling(monkeypatch, engine):
    result, scripted = _run(monkeypatch, engine, [lambda pod, p: True], expected=lambda lab: lab.expect(True))
    assert result.ok and result.stable and result.rounds == 3 and scripted.calls == {"a": 3, "b": 3}
    assert list(result.counted) == [0, 1, 2]
    assert scripted.closed == 0 and scripted.made == 2  # the sessions stay open for the next observation
    again = _lab(engine).observe(_lab(engine).expect(True), pause=0, settle_pause=0)
    assert again.ok and scripted.made == 2 and scripted.calls == {"a": 6, "b": 6}  # no new exec
    engine.close()
    assert scripted.closed == 2  # closing the engine ends them


def test_two_agreeing_blocked_rounds_no_longer_decide_a_connect_in_the_sample_wins(monkeypatch, engine):
    """The false pass of "stop when two rounds agree": under load, timeouts read as blocked twice in a row."""
    flaky = [lambda pod, p: Answer(False, "timeout", "timed out"), lambda pod, p: Answer(False, "timeout", "x"),
             lambda pod, p: Answer(True, "connected")]
    result, _ = _run(monkeypatch, engine, flaky, expected=lambda lab: lab.expect(False), settle=0)
    assert result.rounds == 3 and not result.ok
    assert result.observed.get(*A_TO_B) is True and result.seen(*A_TO_B) == ["timeout", "timeout", "connected"]


def test_settling_rounds_do_not_count(monkeypatch, engine):
    late = [lambda pod, p: True, lambda pod, p: True, lambda pod, p: False]
    result, _ = _run(monkeypatch, engine, late, expected=lambda lab: lab.expect(False), settle=30)
    assert result.ok and result.rounds == 5 and result.counted_from == 2
    assert result.history[A_TO_B] == [True, True, False, False, False]
    assert "seen: + + | - - -" in result.detail(*A_TO_B)


def test_a_settle_window_that_began_earlier_counts_at_once(monkeypatch, engine):
    """``settle_since``: the pods were Ready long ago, so a disagreement in the first round is no longer "settling"
    (the same rounds as in test_settling_rounds_do_not_count decide at once, the other way)."""
    import time

    late = [lambda pod, p: True, lambda pod, p: True, lambda pod, p: False]
    result, _ = _run(monkeypatch, engine, late, expected=lambda lab: lab.expect(False), settle=30,
                     settle_since=time.monotonic() - 31)
    assert result.counted_from == 0 and result.rounds == 3 and not result.ok
    assert result.observed.get(*A_TO_B) is True  # it connected in counted rounds: a finding, not a settling round
    engine.close()
    recent, _ = _run(monkeypatch, engine, late, expected=lambda lab: lab.expect(False), settle=30,
                     settle_since=time.monotonic() - 1)
    assert recent.ok and recent.counted_from == 2  # the window still runs: as without settle_since


def test_a_disagreeing_round_inside_the_settle_window_starts_the_count_again(monkeypatch, engine):
    flap = [lambda pod, p: True, lambda pod, p: pod != "a", lambda pod, p: True, lambda pod, p: True]
    result, _ = _run(monkeypatch, engine, flap, expected=lambda lab: lab.expect(True))
    assert result.ok and result.rounds == 5 and result.counted_from == 2
    assert result.history[A_TO_B] == [True, False, True, True, True]
    assert "seen: + - | + + +" in result.detail(*A_TO_B)


def test_a_target_that_never_answers_is_unknown_not_blocked(monkeypatch, engine):
    """x/b has nothing listening: every probe to it fails, whatever the policies say."""
    result, _ = _run(monkeypatch, engine, [lambda pod, p: Answer(False, "refused", "Connection refused")],
                     expected=lambda lab: lab.expect(False), local=lambda pod, p, n: pod != "b", deadline=30)
    assert result.observed.get(*B_TO_A) is False  # x/a answers on localhost: shown alive, blocked
    assert result.observed.get(*A_TO_B) is None and not result.ok
    assert result.rounds == 3  # nothing more rounds could change: no waiting for the deadline
    why = result.decisions[A_TO_B].why
    assert "not shown alive in any of the 3 counted round(s)" in why and "x/b answers on localhost:80/TCP" in why
    ev = result.cell_evidence(*A_TO_B)
    assert ev["seen"] == ["refused"] * 3 and ev["message"] == "Connection refused" and ev["observed"] == "unknown"
    assert ev["alive"] == "x/b answers on localhost:80/TCP: in 0 of 3 counted round(s)"
    assert "not shown alive" in result.report()


def test_a_target_alive_in_some_rounds_is_sampled_until_enough_rounds_prove_it(monkeypatch, engine):
    result, _ = _run(monkeypatch, engine, [lambda pod, p: False], expected=lambda lab: lab.expect(False),
                     local=lambda pod, p, n: pod != "b" or n % 2 == 0, deadline=30)
    assert result.ok and result.rounds == 5 and result.decisions[A_TO_B].proofs == 3
    assert result.alive_rounds(Target("x/b", 80)) == [True, False, True, False, True]


def test_udp_cells_need_a_udp_path_that_works(monkeypatch, engine):
    result, _ = _run(monkeypatch, engine, [lambda pod, p: False], expected=lambda lab: lab.expect(False),
                     protocol="UDP", deadline=30)
    assert result.unknown == [A_TO_B[:1] + (Target("x/b", 80, "UDP"),), B_TO_A[:1] + (Target("x/a", 80, "UDP"),)]
    assert "a UDP probe between pods connects" in result.decisions[(A_TO_B[0], Target("x/b", 80, "UDP"))].why
    engine.close()  # the next observation gets new (scripted) sessions
    one_way, _ = _run(monkeypatch, engine, [lambda pod, p: pod == "a"], protocol="UDP", deadline=30)
    assert one_way.observed.get("x/a", Target("x/b", 80, "UDP")) is True
    assert one_way.observed.get("x/b", Target("x/a", 80, "UDP")) is False  # a UDP path works: x/a → x/b


def test_probes_that_cannot_answer_are_unknown_not_blocked(monkeypatch, engine):
    result, _ = _run(monkeypatch, engine, [lambda pod, p: None], expected=lambda lab: lab.expect(False),
                     deadline=0.2)
    assert not result.ok and not result.stable and result.unknown
    assert all(v is None for v in result.observed.values.values())
    assert "NOT complete" in result.summary()


def test_static_proofs_and_their_revocation(monkeypatch, engine):
    monkeypatch.setattr(engine_mod, "ProbeSession", _Scripted([lambda pod, p: False]))
    lab = _lab(engine)
    alive = {lab.targets[0]: Alive.known("pod a is Ready through a readiness probe on port 80")}
    result = engine.observe(lab.sources, lab.targets, alive=alive, pause=0)
    assert result.observed.get(*B_TO_A) is False and result.observed.get(*A_TO_B) is None  # x/b: no entry
    assert result.alive_detail(Target("x/a", 80)) == "pod a is Ready through a readiness probe on port 80"
    result.revoke(Target("x/a", 80), "pod a restarted during the sample")
    assert result.observed.get(*B_TO_A) is None and result.decisions[B_TO_A].why == "pod a restarted during the sample"
    engine.close()
    raw = engine.observe(lab.sources, lab.targets, pause=0)  # no aliveness asked for: every failure counts
    assert raw.observed.counts()["blocked"] == 2


def test_the_lab_proves_its_pods_alive_from_inside_them(engine):
    lab = _lab(engine)
    controls, control_sources, alive = lab.aliveness()
    local = Target.local(80)
    assert controls == [("x/b", local), ("x/a", local)] and control_sources == []  # the pods are sources
    assert alive[Target("x/b", 80)].cells() == {("x/b", local)}
    ns_lab = Lab(engine, Model.grid(["x"], ["a"], ports=[80], sources="namespace", dns=True), {"x": "real-x"})
    ns_lab.sources = [Source("x", "real-x", "probe")]
    ns_lab.targets = [Target("x/a", 80, host="10.0.0.1"), Target.dns()]
    ns_lab.pods = {"x/a": {}}
    controls, control_sources, alive = ns_lab.aliveness()
    assert control_sources == [Source("x/a", "real-x", "a")] and controls == [("x/a", local)]
    assert alive[Target.dns()].groups == ((("x", Target.dns()),),)


def test_expectations_must_have_the_probed_shape(monkeypatch, engine):
    lab = _lab(engine)
    wrong = TruthTable(["x/a"], lab.targets, default=True)
    with pytest.raises(ValueError, match="cells"):
        lab.observe(wrong)
    with pytest.raises(ValueError, match="without an address"):
        engine.observe(lab.sources, [Target("x/a", 80)])
    with pytest.raises(ValueError, match="not probed"):
        engine.observe(lab.sources, lab.targets, alive={lab.targets[0]: Alive.by(("x/a", Target.local(81)))})


def test_lab_helpers(engine):
    lab = _lab(engine)
    assert lab.ns("x") == "real-x"
    with pytest.raises(KeyError, match="not in the model"):
        lab.ns("y")
    assert lab.namespace_selector("x") == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["real-x"]}]}
    assert lab.pod_selector("a") == {"matchExpressions": [{"key": POD_LABEL, "operator": "In", "values": ["a"]}]}
    assert NS_LABEL == "kready.dev/ns"


# --- the fixture is registered -------------------------------------------------------------------------------


def test_the_fixture_is_offered_with_kready(pytester):
    result = pytester.runpytest_subprocess("--kready", "--fixtures", "-p", "no:cacheprovider")
    assert "kready_reachability" in result.stdout.str()
    plain = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    assert "kready_reachability" not in plain.stdout.str()


# --- the network checks' proofs of life (pytest_kready/checks/network.py) ------------------------------------------


def _pod(name, *, ready=True, ports=(8080,), readiness=None, uid="u1", restarts=0, ip="10.0.0.9"):
    container = {"name": "app", "ports": [{"containerPort": p, "name": f"p-{p}"} for p in ports]}
    if readiness is not None:
        container["readinessProbe"] = readiness
    return {"metadata": {"name": name, "uid": uid},
            "spec": {"containers": [container]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "app", "restartCount": restarts}]}}


def test_readiness_probes_prove_the_port_they_connect_to():
    assert net.readiness_ports({"readinessProbe": {"tcpSocket": {"port": 8080}}}) == {8080: "tcpSocket"}
    named = {"ports": [{"name": "http", "containerPort": 9000}], "readinessProbe": {"httpGet": {"port": "http"}}}
    assert net.readiness_ports(named) == {9000: "httpGet"}
    assert net.readiness_ports({"readinessProbe": {"grpc": {"port": 50051}}}) == {50051: "grpc"}
    assert net.readiness_ports({"readinessProbe": {"httpGet": {"port": 80, "host": "example.com"}}}) == {}
    assert net.readiness_ports({"readinessProbe": {"exec": {"command": ["true"]}}}) == {}
    web = _pod("web", readiness={"tcpSocket": {"port": 8080}})
    assert net.ready_proof(web, 8080) == ("pod web is Ready through a tcpSocket readiness probe on port 8080 "
                                          "(container app)")
    assert net.ready_proof(web, 9090) is None  # a readiness probe on another port proves nothing here
    assert net.ready_proof(_pod("w", ready=False, readiness={"tcpSocket": {"port": 8080}}), 8080) is None


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1 1 0000000000000000
   1: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 2 1 0000000000000000
   2: 0900000A:1F91 0A00000A:C350 01 00000000:00000000 00:00000000 00000000 65534        0 3 1 0000000000000000
   3: 0900000A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 4 1 0000000000000000
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000
   2: 0000000000000000FFFF00000100007F:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listeners_seen_inside_a_pod_exclude_loopback_and_connections():
    # 0.0.0.0:8080, 10.0.0.9:80 and [::]:8443 listen; 127.0.0.1:9090, [::1]:8082 and [::ffff:127.0.0.1]:8083
    # cannot answer another pod; 10.0.0.9:8081 is a connection, not a listener
    assert net.listening_ports(PROC_NET_TCP) == {8080, 80, 8443}


def test_a_service_needs_a_ready_endpoint_on_its_port():
    slices = [{"metadata": {"labels": {"kubernetes.io/service-name": "web"}},
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True},
                              "targetRef": {"kind": "Pod", "name": "web-1"}},
                             {"addresses": ["10.0.0.8"], "conditions": {"ready": False},
                              "targetRef": {"kind": "Pod", "name": "web-2"}}]},
              {"metadata": {"labels": {"kubernetes.io/service-name": "other"}},
               "ports": [{"name": "http", "port": 80}], "endpoints": [{"addresses": ["10.0.0.7"]}]}]
    assert net.ready_endpoints(slices, "web", "http") == [{"ip": "10.0.0.9", "port": 8080, "pod": "web-1"}]
    assert net.ready_endpoints(slices, "web", "metrics") == []
    assert net.ready_endpoints(slices, "ghost", "") == []


def test_a_proof_resting_on_a_pod_must_hold_after_the_sample():
    before = _pod("web", readiness={"tcpSocket": {"port": 8080}})
    stamp = net.pod_stamp(before, True)
    assert net.still_alive(stamp, before) is None
    assert net.still_alive(stamp, _pod("web", restarts=1)) == "pod web restarted during the sample"
    assert net.still_alive(stamp, _pod("web", uid="u2")) == "pod web was replaced or deleted during the sample"
    assert net.still_alive(stamp, None) == "pod web was replaced or deleted during the sample"
    assert net.still_alive(stamp, _pod("web", ready=False)).startswith("pod web stopped being Ready")
    assert net.still_alive(net.pod_stamp(before, False), _pod("web", ready=False)) is None


class _FakeExecutor:
    def __init__(self, outputs):
        self.outputs = outputs
        self.calls = []

    def run(self, namespace, pod, argv, *, container=None, timeout=60):
        self.calls.append((namespace, pod, tuple(argv), container))
        out = self.outputs[pod]
        if isinstance(out, Exception):
            raise out
        return ExecResult(0, out, "")


def _audit(outputs, placed=True):
    audit = net.NetworkAudit.__new__(net.NetworkAudit)
    audit.proofs, audit.execs, audit.target_ns = {}, {}, {}
    audit.placements = {"shop": net.Placement("shop", pod="kready-probe-r" if placed else None,
                                              ip="10.0.0.50" if placed else None)}
    audit.engine = type("E", (), {"executor": _FakeExecutor(outputs)})()
    return audit


def test_how_each_workload_target_is_shown_alive():
    web = _pod("web", readiness={"tcpSocket": {"port": 8080}}, ports=(8080, 9090))
    idle = _pod("idle", ports=(7000,), ip="10.0.0.10")
    listening = _pod("listening", ports=(80,), ip="10.0.0.11")
    audit = _audit({"idle": "  sl  local_address\n", "listening": PROC_NET_TCP, "web": PROC_NET_TCP})
    t = {name: Target.address(f"shop/pod {pod['metadata']['name']}", pod["status"]["podIP"], port)
         for name, pod, port in [("web", web, 8080), ("metrics", web, 9090), ("idle", idle, 7000),
                                 ("listening", listening, 80)]}
    svc = {"web": Target.address("shop/svc web", "10.96.0.5", 80), "ghost": Target.address("shop/svc ghost",
                                                                                         "10.96.0.6", 80)}
    slices = [{"metadata": {"labels": {"kubernetes.io/service-name": "web"}}, "ports": [{"name": "", "port": 8080}],
               "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True},
                              "targetRef": {"kind": "Pod", "name": "web"}}]}]
    audit._prove("shop", [(t["web"], web), (t["metrics"], web), (t["idle"], idle), (t["listening"], listening)],
                  [(svc["web"], {"metadata": {"name": "web"}}, {"port": 80}),
                   (svc["ghost"], {"metadata": {"name": "ghost"}}, {"port": 80})],
                  slices, {"web": web, "idle": idle, "listening": listening})
    p = audit.proofs
    assert p[t["web"]].alive.static.startswith("pod web is Ready through a tcpSocket readiness probe on port 8080")
    assert p[t["web"]].pods == [("web", "u1", 0, True)]
    # 9090 of web has no readiness probe and no listener (PROC_NET_TCP has none on 9090): the namespace's own probe
    # pod may still show it alive; otherwise it is never blocked
    assert p[t["metrics"]].control and p[t["metrics"]].alive.cells() == {("shop", t["metrics"])}
    assert "pod web: no readiness probe on port 9090, and no listener on it seen inside the pod" in \
        p[t["metrics"]].alive.text
    assert p[t["listening"]].alive.static == ("a listener on port 80 seen inside pod listening "
                                               "(cat /proc/net/tcp /proc/net/tcp6)")
    assert p[t["listening"]].pods == [("listening", "u1", 0, False)]
    assert p[t["idle"]].control
    assert p[svc["web"]].alive.static.startswith("ready endpoint 10.0.0.9:8080 of Service web: pod web is Ready")
    assert p[svc["ghost"]].alive == Alive.never("Service ghost has no ready endpoint for port 80")
    calls = audit.engine.executor.calls
    assert sorted(c[1] for c in calls) == ["idle", "listening", "web"] and all(c[2][0] == "cat" for c in calls)
    assert all("changes nothing" in line for line in audit.execs["shop"])
    # without a probe pod in the namespace there is nothing left to try: never blocked
    bare = _audit({"idle": ExecError("exec in shop/idle failed to start: no cat")}, placed=False)
    bare._prove("shop", [(t["idle"], idle)], [], None, {"idle": idle})
    spec = bare.proofs[t["idle"]].alive
    assert not spec.possible and "its listeners could not be read (exec in shop/idle failed to start: no cat)" in \
        spec.text and "no probe pod in shop" in spec.text
