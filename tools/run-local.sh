#!/usr/bin/env bash
# One command on a fresh machine: install what the local provider needs (Debian packages, the plugin in a
# virtualenv), build or restore the cluster's binaries and images (cached in ~/.cache/pytest-kready), then run
# the shipped suites on the embedded default, a local cluster the run starts and removes:
#
#   bash tools/run-local.sh [pytest arguments...]      e.g. --kready-profile=hardened --kready-json=findings.json
#
# The virtualenv is $KREADY_VENV (default ~/.cache/pytest-kready/venv). Needs root (the cluster's processes,
# network namespace and mounts) and a Debian machine (apt-get).
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
START=$SECONDS
say() { printf '[run-local %dm%02ds] %s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "run-local: the local provider needs root (processes, network namespace, mounts): run it with sudo" >&2; exit 4; }

need=()
for cmd in iptables ipset conntrack pkg-config gcc; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev)
[ -x /bin/busybox ] || need+=(busybox)
if [ ${#need[@]} -gt 0 ]; then
  say "step 1 of 4: installing Debian packages (missing: ${need[*]})"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables ipset conntrack busybox-static \
    gcc pkg-config libseccomp-dev >/dev/null  # containerd, runc and CNI plugins are built from Go modules
else
  say "step 1 of 4: Debian packages present"
fi

VENV=${KREADY_VENV:-$HOME/.cache/pytest-kready/venv}
say "step 2 of 4: installing the plugin into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check .

say "step 3 of 4: binaries and images (built once, then restored from the cache)"
bin_dir=$(bash tools/build-local-binaries.sh | tail -n 1)

say "step 4 of 4: pytest --kready --kready-provider=local $* (binaries: $bin_dir)"
cd "$here"  # relative paths in the arguments (--kready-json=..., --kready-apply=...) are the caller's
KREADY_LOCAL_BIN_DIR=$bin_dir exec "$VENV/bin/python" -m pytest --kready --kready-provider=local -p no:cacheprovider "$@"
