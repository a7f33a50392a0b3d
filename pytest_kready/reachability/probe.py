"""Probes: one exec per source pod, kept open, runs every probe of that source at once, round after round.

The exec runs a small shell script: bash when the image has it (the upstream agnhost image does, and so does the
one built here), else its POSIX ``sh`` (busybox). It reads its probes from stdin once, then waits: each ``go`` line
it receives starts a round — every probe at once — and it prints the round in one write: one line per probe,
``R <id> <exit status> <message>``, then ``END <round>``. End of stdin (the exec closed) ends it. So the second and
later rounds of a matrix cost no exec setup at all, and nothing of the probe list travels in the exec URL. Per
probe:

* TCP, under bash: a fork of the session's shell that opens ``/dev/tcp/<address>/<port>`` — no program is started,
  which is what lets one pod probe dozens of targets in a few milliseconds. Its error message goes to a file of
  its own (``/dev/shm``) and is read back by the same process; a watchdog of the round kills the probes still
  connecting after the timeout (each then reads as ``timed out``). A host that is not an IP address, or a pod
  where neither ``/dev/shm`` nor ``/tmp`` is writable, goes the POSIX way below;
* TCP, POSIX ``sh``: ``nc`` when the image has a usable one (``nc -z`` of netcat-openbsd, as in the upstream
  agnhost image; ``nc -e true`` of busybox), else ``/agnhost connect``, as background jobs of the shell;
* UDP: ``/agnhost connect --protocol=udp`` through ``xargs -P``: a datagram out, the server's answer back (a port
  with no answering server reads as blocked);
* DNS: ``nslookup <service>.<namespace>.svc.<cluster domain>`` (the domain read from the pod's search path; a name
  ending in ``.`` is taken as is) against the pod's own nameserver — it fails at once when DNS traffic is rejected,
  where Go's resolver waits out its timeout. Without ``nslookup``: ``/agnhost connect NAME:443``, where the answer
  is whether the name resolved (agnhost prints ``DNS:`` when it did not), whatever the connection did after.

Denied traffic answers fast on clusters that reject (TCP reset, ICMP unreachable); on clusters that drop it, a
probe takes its timeout. Nothing here decides what a result means: it reports what each probe saw.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import shlex
import threading
from collections.abc import Callable, Sequence

KINDS = ("tcp", "udp", "dns")
TCP_PARALLEL = 32  # TCP probes at once in one pod (forks of bash, or nc processes: cheap)
AGNHOST_PARALLEL = 4  # agnhost processes at once in one pod (each a Go start: CPU-bound, ~10 MB)
DNS_GRACE = 2  # seconds a name lookup may take beyond the connect timeout before it counts as unresolved


@dataclasses.dataclass(frozen=True)
class Probe:
    """One probe from a pod: ``kind`` tcp/udp/dns to ``host``:``port``."""

    kind: str
    host: str
    port: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"probe kind {self.kind!r}: choose one of {', '.join(KINDS)}")
        if not self.host or any(c.isspace() for c in self.host) or "'" in self.host:
            raise ValueError(f"probe host {self.host!r} is not an address or name")

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def agnhost_argv(self, timeout: float) -> list[str]:
        """The same probe as a plain command (for people: ``kubectl exec ... -- <this>``)."""
        argv = ["/agnhost", "connect", self.hostport, f"--timeout={_seconds(timeout)}s"]
        if self.kind == "udp":
            argv.insert(3, "--protocol=udp")
        return argv


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one probe saw. ``value``: True connects (resolves, for DNS), False blocked, None unknown."""

    value: bool | None
    category: str  # connected, refused, timeout, unreachable, dns, other, resolved, unresolved, error
    detail: str = ""

    def __str__(self) -> str:
        if not self.detail or self.category in ("connected", "resolved"):
            return self.category
        if self.detail.lower().startswith(self.category):
            return self.detail  # agnhost already names it: "REFUSED: read udp ..."
        return f"{self.category}: {self.detail}"


def _seconds(timeout: float) -> int:
    return max(1, int(math.ceil(timeout)))


# one UDP or DNS probe (through xargs: sh -c "$P" <id> <kind> <host> <port> <host:port>)
_PROBE = r"""exec </dev/null
k=$1 h=$2 p=$3 hp=$4
case $k in
dns) case $h in *.) n=$h ;; *) n=$h.$Z ;; esac
     if [ -n "$Z" ] && command -v nslookup >/dev/null 2>&1; then o="nsl: $(timeout "$D" nslookup "$n" 2>&1)"; r=$?
     else o=$(timeout "$D" /agnhost connect "$hp" --timeout="${T}s" 2>&1); r=$?; fi ;;
*) o=$(/agnhost connect "$hp" --protocol="$k" --timeout="${T}s" 2>&1); r=$? ;;
esac
set -f
echo "R $0 $r" $o"""


# one TCP probe, run as a background job of the session's shell: q <id> <kind> <host> <port> <host:port>
_TCP = r"""q() { set -f
  case $NC in
  z) o=$(nc -z -w "$T" "$3" "$4" 2>&1 </dev/null) ;;
  e) o=$(nc -w "$T" "$3" "$4" -e true 2>&1 </dev/null) ;;
  *) o=$(/agnhost connect "$5" --timeout="${T}s" 2>&1) ;;
  esac
  echo "R $1 $?" $o; }"""


# the TCP probes of a round under bash (evaluated by bash only: POSIX sh cannot parse it). Each probe is a fork of
# the session's shell (no exec) opening /dev/tcp, its error message in a file of its own ($W.<id>) read back by the
# same process; every TCP_PARALLEL probes, a watchdog (`read -t` on a pipe nobody writes: no process started) kills
# those still connecting after $T s, which then read as timed out. A host that is not an IP address goes to q (nc).
_BASH = r"""coproc KREADY_SILENT { read -r _; }
exec 9<&"${KREADY_SILENT[0]}"
trap 'rm -f "$W".* 2>/dev/null' EXIT
b() { local i k h p hp n=0; local -a ids=() pids=()
  while read -r i k h p hp; do
    if [[ $h == *:* || $h != *[!0-9.]* ]]; then
      ( exec 2>"$W.$i" 3<>"/dev/tcp/$h/$p" && { echo "R $i 0"; exit 0; }; read -r m <"$W.$i"; echo "R $i 1 ${m#*: }" ) &
      ids+=("$i"); pids+=($!); n=$((n+1))
      if (( n % TP == 0 )); then bw; fi
    else q "$i" "$k" "$h" "$p" "$hp" &
    fi
  done
  bw; wait; }
bw() { local x w; ((${#pids[@]})) || return 0
  ( read -t "$T" -u 9 _; kill -9 "${pids[@]}" ) 2>/dev/null & w=$!
  for x in "${!pids[@]}"; do wait "${pids[x]}" 2>/dev/null; (( $? > 128 )) && echo "R ${ids[x]} 124 timed out"; done
  kill "$w" 2>/dev/null; wait "$w" 2>/dev/null; ids=(); pids=(); }"""

# starts the session's script ($1) in bash when the image has one (and the caller allows it), else in this sh
_LAUNCH = ('if [ "$2" = bash ] && command -v bash >/dev/null 2>&1; then exec bash -c "$1" kready-probe; fi; '
           'exec sh -c "$1" kready-probe')


def _header(timeout: float) -> list[str]:
    t = _seconds(timeout)
    return [
        f"T={t} D={t + DNS_GRACE}",
        "if nc -h 2>&1 | grep -q -e '-z'; then NC=z; elif nc -h 2>&1 | grep -q -e '-e PROG'; then NC=e; else NC=; fi",
        # the cluster domain (svc.<domain>) from the pod's search path: Service names resolve without the search
        "Z=; for w in $(grep '^search' /etc/resolv.conf 2>/dev/null); do case $w in svc.*) Z=$w; break ;; esac; done",
        "export T D NC Z",
        # each agnhost probe is a fresh Go process that allocates next to nothing: one P, no collector (~30% less CPU)
        "export GOMAXPROCS=1 GOGC=off",
        f"P={shlex.quote(_PROBE)}",
        _TCP,
    ]


def _bash_lines(tcp_parallel: int) -> list[str]:
    """Under bash with a writable /dev/shm (or /tmp): the TCP probes through /dev/tcp (``B=1``); else nothing."""
    return [
        "B=; W=",
        'if [ -n "$BASH_VERSION" ] && [ "${BASH_VERSINFO:-0}" -ge 4 ]; then',
        "  for d in /dev/shm /tmp; do if { : >\"$d/kready-probe.$$.t\"; } 2>/dev/null; then W=$d/kready-probe.$$; break; fi; done",
        f'  [ -n "$W" ] && {{ B=1; TP={int(tcp_parallel)}; eval {shlex.quote(_BASH)}; }}',
        "fi",
    ]


def _round_lines(fast: str, slow: str, tcp_parallel: int, agnhost_parallel: int) -> list[str]:
    """One round: the TCP probes ``tcp_parallel`` at a time (under bash, ``b``: forks opening /dev/tcp; else jobs
    of this shell running nc), the others through xargs."""
    n = int(tcp_parallel)
    return [f'[ -n "{fast}" ] && [ -n "$B" ] && {{ printf "%s" "{fast}" | b & }}',
            f'[ -n "{fast}" ] && [ -z "$B" ] && {{ printf "%s" "{fast}" | {{ j=0; while read -r i k h p hp; do '
            f'q "$i" "$k" "$h" "$p" "$hp" & j=$((j+1)); [ $((j % {n})) = 0 ] && wait; done; wait; }} & }}',
            f'[ -n "{slow}" ] && {{ printf "%s" "{slow}" | xargs -P {int(agnhost_parallel)} -n 5 sh -c "$P" & }}',
            "wait"]


def session_script(*, timeout: float = 2, tcp_parallel: int = TCP_PARALLEL,
                   agnhost_parallel: int = AGNHOST_PARALLEL) -> str:
    """The script of a probe session: probe lines on stdin up to a line ``.``, then a round per ``go`` line (run it
    with ``session_argv``: under bash, its TCP probes start no program)."""
    return "\n".join(_header(timeout) + _bash_lines(tcp_parallel) + [
        "F=; S=; N=0",
        "while IFS= read -r l; do",
        '  [ "$l" = . ] && break',
        '  case "$l" in *" tcp "*) F="$F$l',
        '";; *) S="$S$l',
        '";; esac',
        "done",
        "echo READY",
        "while IFS= read -r c; do",
        '  [ "$c" = go ] || break',
        "  N=$((N+1))",
        # the round's lines gathered, then written at once: one message on the exec stream, not one per probe
        "  O=$(",
        *("    " + line for line in _round_lines("$F", "$S", tcp_parallel, agnhost_parallel)),
        "  )",
        # one %s and no newline in the format: bash's printf writes a format's newlines one write() each
        '  printf "%s" "$O',
        'END $N',
        '"',
        "done",
    ]) + "\n"


def session_argv(script_text: str, *, bash: bool = True) -> list[str]:
    """The exec's command for a session script: bash when ``bash`` and the image has it, else the image's sh."""
    return ["sh", "-c", _LAUNCH, "kready-probe", script_text, "bash" if bash else "sh"]


def probe_lines(probes: Sequence[Probe]) -> str:
    """The probes as a session reads them (ids are their indexes), ending with the line ``.``."""
    return "".join(f"{i} {p.kind} {p.host} {p.port} {p.hostport}\n" for i, p in enumerate(probes)) + ".\n"


def script(probes: Sequence[Probe], *, timeout: float = 2, tcp_parallel: int = TCP_PARALLEL,
           agnhost_parallel: int = AGNHOST_PARALLEL) -> str:
    """A one-shot POSIX script probing ``probes`` once (no stdin needed); ends by printing ``DONE``."""
    fast = "".join(f"{i} {p.kind} {p.host} {p.port} {p.hostport}\n" for i, p in enumerate(probes) if p.kind == "tcp")
    slow = "".join(f"{i} {p.kind} {p.host} {p.port} {p.hostport}\n" for i, p in enumerate(probes) if p.kind != "tcp")
    return "\n".join(_header(timeout) + ["B="] + [f"F={shlex.quote(fast)}", f"S={shlex.quote(slow)}"]
                     + _round_lines("$F", "$S", tcp_parallel, agnhost_parallel) + ["echo DONE"]) + "\n"


def exec_timeout(probes: Sequence[Probe], *, timeout: float, tcp_parallel: int = TCP_PARALLEL,
                 agnhost_parallel: int = AGNHOST_PARALLEL) -> float:
    """How long one exec of ``script(probes)`` may take, with room for a slow start."""
    t = _seconds(timeout) + 1
    fast = sum(1 for p in probes if p.kind == "tcp")
    slow = sum(1 for p in probes if p.kind == "udp")
    dns = sum(1 for p in probes if p.kind == "dns")
    waves = math.ceil(fast / tcp_parallel) * t + math.ceil((slow + dns) / agnhost_parallel) * (t + DNS_GRACE)
    return 20.0 + waves


def classify(kind: str, status: int, text: str) -> Answer:
    """Turn one probe's exit status and message into an ``Answer``."""
    text = " ".join(text.split())[:300]
    low = text.lower()
    # the probe tool itself failed (missing, bad arguments): that says nothing about the network
    tool_broken = status in (126, 127) or low.startswith("unknown:") or any(
        s in low for s in (": not found", "can't execute", "exec format error", "invalid option", "unknown flag",
                           "usage:"))
    if kind == "dns" and low.startswith("nsl:"):  # nslookup: exit status 0 is an answer, anything else is not
        if status == 0:
            return Answer(True, "resolved", text[4:].strip()[:120])
        if tool_broken and not any(w in low for w in ("can't find", "no servers", "timed out", "refused")):
            return Answer(None, "error", text)
        return Answer(False, "unresolved", text[4:].strip() or f"no answer within the lookup deadline "
                                                              f"(exit {status})")
    if kind == "dns":
        if "dns:" in low[:20]:
            return Answer(False, "unresolved", text)
        if status in (124, 137, 143) and not text:
            return Answer(False, "unresolved", f"no answer within the lookup deadline (exit {status})")
        if tool_broken:
            return Answer(None, "error", text)
        if status == 0 or low.startswith(("refused", "timeout", "other")):
            return Answer(True, "resolved", text)  # agnhost got past the lookup: the name resolved
        return Answer(None, "error", text or f"exit status {status}")
    if status == 0:
        return Answer(True, "connected", text)
    if tool_broken:
        return Answer(None, "error", text)
    if "dns:" in low[:20] or "bad address" in low:
        return Answer(False, "dns", text)
    if "refused" in low:
        return Answer(False, "refused", text)
    if "timed out" in low or "timeout" in low:
        return Answer(False, "timeout", text)
    if "no route" in low or "unreachable" in low:
        return Answer(False, "unreachable", text)
    return Answer(False, "other", text or f"exit status {status}")


def parse(output: str, probes: Sequence[Probe]) -> dict[int, Answer]:
    """Answers by probe index from a script's output; a probe without a line gets an ``error`` answer."""
    answers: dict[int, Answer] = {}
    for line in output.splitlines():
        if not line.startswith("R "):
            continue
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        idx = int(parts[1])
        if idx >= len(probes):
            continue
        try:
            status = int(parts[2])
        except ValueError:
            continue
        answers[idx] = classify(probes[idx].kind, status, parts[3] if len(parts) > 3 else "")
    return {idx: answers.get(idx, Answer(None, "error", "the probe printed no result")) for idx in range(len(probes))}


def kubectl_line(namespace: str, pod: str, probe: Probe, *, container: str | None = None,
                 timeout: float = 2, kubeconfig: str | None = None) -> str:
    """A command a person can paste to see one probe for themselves."""
    argv = ["kubectl"]
    if kubeconfig:
        argv.append(f"--kubeconfig={kubeconfig}")
    argv += ["exec", "-n", namespace, pod]
    if container:
        argv += ["-c", container]
    argv.append("--")
    argv += probe.agnhost_argv(timeout)
    return " ".join(shlex.quote(a) for a in argv)


# --- exec ------------------------------------------------------------------------------------------------


class ExecError(Exception):
    """An exec could not be run or did not finish."""


@dataclasses.dataclass
class ExecResult:
    status: int | None
    stdout: str
    stderr: str


class Executor:
    """Runs commands in pods through the exec subresource (``kubernetes.stream``), many at once.

    ``kubernetes.stream.stream`` swaps the ``call_api`` of the ApiClient it is given for the duration of the call,
    so a client shared between threads would send other requests over websockets: every concurrent exec here takes
    a private client from a pool (``client_factory()``), returned after use.
    """

    def __init__(self, client_factory: Callable[[], object], *, max_clients: int = 16):
        self._factory = client_factory
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._made: list = []
        self._lock = threading.Lock()
        self._sem = threading.BoundedSemaphore(max_clients)
        self.max_clients = max_clients

    def _take(self):
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            client = self._factory()
            with self._lock:
                self._made.append(client)
            return client

    def run(self, namespace: str, pod: str, argv: list[str], *, container: str | None = None,
            timeout: float = 60) -> ExecResult:
        from kubernetes import client as k8s
        from kubernetes.stream import stream

        with self._sem:
            api = self._take()
            try:
                core = k8s.CoreV1Api(api)
                kwargs = {"command": argv, "stderr": True, "stdout": True, "stdin": False, "tty": False,
                          "_preload_content": False}
                if container:
                    kwargs["container"] = container
                try:
                    resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
                except Exception as e:  # noqa: BLE001 - websocket, TLS and API errors alike: the exec did not start
                    raise ExecError(f"exec in {namespace}/{pod} failed to start: {_first_line(e)}") from e
                try:
                    resp.run_forever(timeout=timeout)
                    stdout, stderr = resp.read_stdout(), resp.read_stderr()
                    if resp.is_open():
                        raise ExecError(f"exec in {namespace}/{pod} did not finish within {timeout:g}s")
                    try:
                        status = resp.returncode
                    except (KeyError, IndexError, TypeError, ValueError):
                        status = None  # the error channel held a failure that is not an exit status
                    return ExecResult(status, stdout or "", stderr or "")
                finally:
                    resp.close()
            finally:
                self._pool.put(api)

    def open(self, namespace: str, pod: str, argv: list[str], *, container: str | None = None):
        """Start ``argv`` in the pod with stdin, stdout and stderr attached and return the live stream
        (``kubernetes.stream.ws_client.WSClient``). The private client goes back to the pool at once: only the
        connection setup uses it."""
        from kubernetes import client as k8s
        from kubernetes.stream import stream

        with self._sem:
            api = self._take()
            try:
                kwargs = {"command": argv, "stderr": True, "stdout": True, "stdin": True, "tty": False,
                          "_preload_content": False}
                if container:
                    kwargs["container"] = container
                try:
                    return stream(k8s.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
                except Exception as e:  # noqa: BLE001 - websocket, TLS and API errors alike: the exec did not start
                    raise ExecError(f"exec in {namespace}/{pod} failed to start: {_first_line(e)}") from e
            finally:
                self._pool.put(api)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            close = getattr(client, "close", None)
            if close:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


class ProbeSession:
    """One source pod's probes, run round after round over one open exec (see the module doc).

    ``round()`` runs every probe once and returns the answers by index; an exec that fails or hangs is closed and
    the next ``round()`` opens a new one. Use as a context manager, or call ``close()``."""

    def __init__(self, executor: Executor, namespace: str, pod: str, probes: Sequence[Probe], *,
                 container: str | None = None, timeout: float = 2, tcp_parallel: int = TCP_PARALLEL,
                 agnhost_parallel: int = AGNHOST_PARALLEL, bash: bool = True):
        self.executor = executor
        self.bash = bash
        self.namespace, self.pod, self.container = namespace, pod, container
        self.probes = list(probes)
        self.timeout = timeout
        self.parallel = {"tcp_parallel": tcp_parallel, "agnhost_parallel": agnhost_parallel}
        self._resp = None
        self._n = 0
        self._out = ""
        self._err = ""
        self.execs = 0  # how many execs this session opened (1 when nothing failed)

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self.close()
        self._resp = self.executor.open(self.namespace, self.pod,
                                        session_argv(session_script(timeout=self.timeout, **self.parallel),
                                                     bash=self.bash),
                                        container=self.container)
        self.execs += 1
        self._n, self._out, self._err = 0, "", ""
        self._resp.write_stdin(probe_lines(self.probes))

    def _read_until(self, marker: str, deadline: float) -> str:
        import time

        resp = self._resp
        while True:
            i = self._out.find(marker)
            if i >= 0:
                text, self._out = self._out[:i], self._out[i + len(marker):]
                return text
            if not resp.is_open():
                why = (self._err.strip() or "the exec ended")[:200]
                raise ExecError(f"the probe session in {self.namespace}/{self.pod} stopped: {why}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExecError(f"the probes in {self.namespace}/{self.pod} gave no answer within "
                                f"{exec_timeout(self.probes, timeout=self.timeout, **self.parallel):g}s")
            resp.update(timeout=min(left, 1.0))
            # stderr first: reading a channel that holds nothing takes in the frames that are waiting (update(0)),
            # so stdout read first could leave the round's last line in the client's buffer for the next wait
            self._err += resp.read_channel(2)
            self._out += resp.read_channel(1)

    def round(self) -> dict[int, Answer]:
        """Run every probe once; answers by index (``error`` answers, value None, when the exec failed)."""
        import time

        if not self.probes:
            return {}
        try:
            if self._resp is None or not self._resp.is_open():
                self._start()
            self._n += 1
            self._resp.write_stdin("go\n")
            text = self._read_until(f"END {self._n}\n", time.monotonic() + exec_timeout(
                self.probes, timeout=self.timeout, **self.parallel))
        except ExecError as e:
            self.close()
            return {i: Answer(None, "error", str(e)) for i in range(len(self.probes))}
        except Exception as e:  # noqa: BLE001 - a broken websocket: this round has no answers, the next reconnects
            self.close()
            return {i: Answer(None, "error", f"exec in {self.namespace}/{self.pod}: {_first_line(e)}")
                    for i in range(len(self.probes))}
        return parse(text, self.probes)

    def close(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            self._resp = None


def run_probes(executor: Executor, namespace: str, pod: str, probes: Sequence[Probe], *,
               container: str | None = None, timeout: float = 2) -> dict[int, Answer]:
    """Run ``probes`` once from one pod and return the answers by index (nothing raises: an exec that fails
    yields ``error`` answers, value None)."""
    with ProbeSession(executor, namespace, pod, probes, container=container, timeout=timeout) as session:
        return session.round()
