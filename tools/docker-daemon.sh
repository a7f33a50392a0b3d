#!/usr/bin/env bash
# Development tool: a private Docker daemon for the `kind` provider and tools/build-kind-images.sh.
#
#   tools/docker-daemon.sh start     # install Debian's docker.io if missing, start dockerd, wait for it
#   tools/docker-daemon.sh status    # exit 0 when it answers, 1 when it does not
#   tools/docker-daemon.sh stop      # stop it (TERM, then KILL after the deadline) and wait
#   tools/docker-daemon.sh env       # print DOCKER_HOST=... for the daemon's socket
#
# The daemon keeps everything of its own under $KREADY_CACHE/docker (default ~/.cache/pytest-kready/docker):
# data root, exec root (its own containerd), pid file, log, and the runc wrapper. It never touches the host's
# firewall: --iptables=false --ip-masq=false --bridge=none (kind creates its own bridge network, and API ports
# are published by docker-proxy on 127.0.0.1, which needs no NAT rule).
#
# The runc wrapper: on kernels where root lacks some capabilities in its bounding set (here CAP_SYS_RESOURCE),
# docker asks runc for "all capabilities" for a privileged container (kind's nodes) and runc fails with
# "unable to apply caps: operation not permitted". The wrapper, registered as the daemon's default runtime,
# removes the capabilities the host lacks from the OCI spec (config.json of `create`/`run`, the process file
# of `exec`) and then execs the real runc with the same arguments.
#
# Environment: KREADY_CACHE, KREADY_DOCKER_SOCK (default /var/run/docker.sock, the docker CLI's default),
# KREADY_DOCKER_TIMEOUT (seconds to wait for start/stop, default 60), KREADY_RUNC (default /usr/sbin/runc).
set -euo pipefail
{

CACHE=${KREADY_CACHE:-$HOME/.cache/pytest-kready}
DDIR=$CACHE/docker
DATA_ROOT=$DDIR/data
EXEC_ROOT=$DDIR/exec
PIDFILE=$DDIR/dockerd.pid
LOG=$DDIR/dockerd.log
WRAPPER=$DDIR/runc-wrapper
SOCK=${KREADY_DOCKER_SOCK:-/var/run/docker.sock}
TIMEOUT=${KREADY_DOCKER_TIMEOUT:-60}
REAL_RUNC=${KREADY_RUNC:-/usr/sbin/runc}
RUNTIME_NAME=kready-runc

log() { printf '[docker-daemon] %s\n' "$*" >&2; }
die() { printf '[docker-daemon] error: %s\n' "$*" >&2; exit 1; }

docker_cli() {
  local cli
  cli=$(command -v docker) || die "no docker CLI on PATH"
  "$cli" -H "unix://$SOCK" "$@"
}

# the pid of our dockerd, or nothing: the pid file's process must be dockerd with our data root
our_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 0
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qxF -- "--data-root=$DATA_ROOT"; then
    echo "$pid"
  fi
}

answers() { docker_cli info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

install_docker() {
  command -v dockerd >/dev/null 2>&1 && [ -x "$REAL_RUNC" ] && command -v containerd >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "Debian's docker.io is missing and this is not root: apt-get install docker.io"
  log "installing Debian's docker.io (dockerd, containerd, runc)"
  # never let the package's maintainer scripts start a system docker (with its iptables rules)
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io runc containerd >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io runc containerd >/dev/null; } \
    || rc=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install docker.io failed"
  command -v dockerd >/dev/null 2>&1 || die "dockerd is still missing after installing docker.io"
}

# capabilities (as CAP_* names) that exist in the kernel but not in this process's bounding set
missing_caps() {
  python3 - <<'PY'
import re
names = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
         "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
         "CHECKPOINT_RESTORE"]
last = int(open("/proc/sys/kernel/cap_last_cap").read())
bnd = int(re.search(r"^CapBnd:\s*([0-9a-f]+)$", open("/proc/self/status").read(), re.M).group(1), 16)
print(" ".join("CAP_" + names[i] for i in range(min(last + 1, len(names))) if not bnd & (1 << i)))
PY
}

write_wrapper() {
  local drop tmp
  drop=$(missing_caps)
  tmp=$WRAPPER.tmp.$$
  cat > "$tmp" <<PY
#!/usr/bin/python3 -I
# Written by tools/docker-daemon.sh: dockerd's default runtime. Removes the capabilities this host's root
# lacks ($drop) from the OCI spec runc is given, then execs the real runc with the same arguments.
import json, os, sys

REAL_RUNC = "$REAL_RUNC"
DROP = set("$drop".split())
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def strip(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return
    proc = doc.get("process", doc) if "process" in doc else doc  # config.json or an exec process file
    caps = proc.get("capabilities") if isinstance(proc, dict) else None
    if not isinstance(caps, dict):
        return
    changed = False
    for key in SETS:
        vals = caps.get(key)
        if isinstance(vals, list) and DROP.intersection(vals):
            caps[key] = [c for c in vals if c not in DROP]
            changed = True
    if changed:
        tmp = path + ".kready"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)


def option(args, names):
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a[len(n) + 1:]
    return None


def main():
    args = sys.argv[1:]
    if DROP:
        # global options come first: find the command (the first word that is no option or option value)
        with_value = {"--root", "--log", "--log-format", "--criu", "--rootless"}
        i = 0
        while i < len(args) and args[i].startswith("-"):
            i += 1 if ("=" in args[i] or args[i] not in with_value) else 2
        cmd, rest = (args[i], args[i + 1:]) if i < len(args) else ("", [])
        if cmd in ("create", "run"):
            bundle = option(rest, ("--bundle", "-b")) or os.getcwd()
            strip(os.path.join(bundle, "config.json"))
        elif cmd == "exec":
            proc = option(rest, ("--process", "-p"))
            if proc:
                strip(proc)
    os.execv(REAL_RUNC, [REAL_RUNC] + args)


main()
PY
  chmod 0755 "$tmp"
  mv -f "$tmp" "$WRAPPER"
  log "runc wrapper $WRAPPER drops: ${drop:-nothing}"
}

start() {
  local pid deadline
  pid=$(our_pid)
  if [ -n "$pid" ] && answers; then
    log "already running (pid $pid), socket $SOCK"
    return 0
  fi
  if [ -z "$pid" ] && [ -S "$SOCK" ] && answers; then
    die "another Docker daemon answers on $SOCK (not ours): set KREADY_DOCKER_SOCK to another path"
  fi
  install_docker
  [ -x "$REAL_RUNC" ] || die "$REAL_RUNC is missing (Debian's runc)"
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$SOCK")"
  write_wrapper
  if [ -z "$pid" ]; then
    local args=(
      "--data-root=$DATA_ROOT" "--exec-root=$EXEC_ROOT" "--pidfile=$PIDFILE" "--host=unix://$SOCK"
      --iptables=false --ip-masq=false --bridge=none
      "--add-runtime=$RUNTIME_NAME=$WRAPPER" "--default-runtime=$RUNTIME_NAME"
    )
    log "starting dockerd (log $LOG)"
    # its own session, so it outlives this shell; stdin closed
    setsid "$(command -v dockerd)" "${args[@]}" >>"$LOG" 2>&1 </dev/null &
    disown || true
  fi
  deadline=$((SECONDS + TIMEOUT))
  until answers; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$LOG" >&2 || true
      die "dockerd did not answer on $SOCK within ${TIMEOUT}s (log $LOG)"
    fi
    sleep 0.5
  done
  pid=$(our_pid)
  log "running: pid ${pid:-?}, socket $SOCK, data root $DATA_ROOT, $(docker_cli info --format 'docker {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, default runtime {{.DefaultRuntime}}' 2>/dev/null)"
  echo "DOCKER_HOST=unix://$SOCK"
}

# On a cgroup v1 host a process in a FROZEN freezer cgroup does not act on SIGKILL: a kind node whose pod cgroup
# runc left frozen (runc killed between freeze and thaw) can never stop, and dockerd waits for it. Thaw every frozen
# cgroup under our daemon's running containers, nothing else: each container's cgroup is the one named by its full ID
# (/docker/<id>, or docker-<id>.scope with the systemd driver; its init's PID may be stale after a failed kill).
thaw_containers() {
  local id top state n=0
  [ -d /sys/fs/cgroup/freezer ] && answers || return 0
  for id in $(docker_cli ps --quiet --no-trunc 2>/dev/null); do
    [[ "$id" =~ ^[0-9a-f]{64}$ ]] || continue
    top=$(find /sys/fs/cgroup/freezer -mindepth 1 -maxdepth 3 -type d \( -name "$id" -o -name "*-$id.scope" \) -print -quit 2>/dev/null)
    [ -n "$top" ] || continue
    while IFS= read -r state; do
      if grep -qxE 'FROZEN|FREEZING' "$state" 2>/dev/null && echo THAWED > "$state" 2>/dev/null; then
        n=$((n + 1))
        log "thawed ${state%/freezer.state}"
      fi
    done < <(find "$top" -name freezer.state 2>/dev/null | sort)
  done
  [ "$n" = 0 ] || log "thawed $n frozen cgroup(s) under running containers"
}

stop() {
  local pid deadline
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    log "not running"
    return 0
  fi
  thaw_containers
  log "stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + TIMEOUT))
  while [ -d "/proc/$pid" ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "dockerd did not stop within ${TIMEOUT}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  log "stopped"
}

status() {
  local pid
  pid=$(our_pid)
  if [ -n "$pid" ] && answers; then
    log "running: pid $pid, socket $SOCK, data root $DATA_ROOT"
    echo "DOCKER_HOST=unix://$SOCK"
    return 0
  fi
  if [ -n "$pid" ]; then log "process $pid is up but does not answer on $SOCK"; else log "not running"; fi
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "DOCKER_HOST=unix://$SOCK" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
exit $?
}
