#!/usr/bin/env bash
# Development tool: build a node's container runtime from Go modules — containerd, its runc shim, runc, crictl and
# the CNI plugins — into the cache, one directory per component and version. Both the local provider
# (tools/build-local-binaries.sh installs them into its binaries directory) and the kind node image
# (tools/build-kind-images.sh) take them from here, so both run the same runtime. Rebuilds only what is missing.
#
#   tools/build-node-components.sh     # prints NAME=DIR lines (containerd, runc, crictl, cni) on stdout
#
# The default versions are the ones kind v0.33.0's base image uses (images/base/Dockerfile's ARGs); kubelet 1.37
# needs containerd 2.x. Environment: KREADY_CACHE, CONTAINERD_VERSION, RUNC_VERSION, CRICTL_VERSION,
# CNI_PLUGINS_VERSION. runc is built with cgo and seccomp (Debian's libseccomp-dev, installed when missing).
set -euo pipefail
{

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.3.4}
RUNC_VERSION=${RUNC_VERSION:-v1.4.3}
CRICTL_VERSION=${CRICTL_VERSION:-v1.36.0}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.9.1}
# ptp: kind's node (no kindnetd here); bridge: the local provider's network; host-local, loopback, portmap: both
CNI_PLUGINS=(ipam/host-local main/loopback main/ptp main/bridge meta/portmap)

CACHE=${KREADY_CACHE:-$HOME/.cache/pytest-kready}
COMP=$CACHE/components
WORK=$CACHE/build/components
mkdir -p "$COMP" "$WORK"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

T0=$SECONDS
log() { local t=$((SECONDS - T0)); printf '[components %dm%02ds] %s\n' $((t / 60)) $((t % 60)) "$*" >&2; }
die() { printf '[components] error: %s\n' "$*" >&2; exit 1; }
command -v go >/dev/null || die "go is missing"

# gomod DIR VERSION PACKAGE...: a throw-away module requiring the packages' module at VERSION
# shellcheck source=tools/go-module.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-module.sh"

CTRD=$COMP/containerd-$CONTAINERD_VERSION
if [ ! -x "$CTRD/containerd" ] || [ ! -x "$CTRD/ctr" ] || [ ! -x "$CTRD/containerd-shim-runc-v2" ]; then
  log "building containerd $CONTAINERD_VERSION"
  mod=$WORK/containerd-$CONTAINERD_VERSION
  gomod "$mod" "$CONTAINERD_VERSION" github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/ctr github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  mkdir -p "$CTRD.tmp"
  ( cd "$mod"
    ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
    tags="no_aufs no_zfs no_btrfs no_devmapper"
    CGO_ENABLED=1 go build -trimpath -tags "$tags" -ldflags "$ld" -o "$CTRD.tmp/containerd" github.com/containerd/containerd/v2/cmd/containerd
    CGO_ENABLED=1 go build -trimpath -tags "$tags" -ldflags "$ld" -o "$CTRD.tmp/ctr" github.com/containerd/containerd/v2/cmd/ctr
    CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ld" -o "$CTRD.tmp/containerd-shim-runc-v2" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  )
  rm -rf "$CTRD" && mv "$CTRD.tmp" "$CTRD"
fi

RUNC_DIR=$COMP/runc-$RUNC_VERSION
if [ ! -x "$RUNC_DIR/runc" ]; then
  log "building runc $RUNC_VERSION (cgo, seccomp: Debian's libseccomp-dev)"
  if ! pkg-config --exists libseccomp 2>/dev/null; then
    [ "$(id -u)" = 0 ] || die "runc needs Debian's libseccomp-dev and pkg-config"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config >/dev/null; }
  fi
  mod=$WORK/runc-$RUNC_VERSION
  gomod "$mod" "$RUNC_VERSION" github.com/opencontainers/runc
  mkdir -p "$RUNC_DIR"
  ( cd "$mod"
    CGO_ENABLED=1 go build -trimpath -buildmode=pie -tags "seccomp urfave_cli_no_docs" \
      -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$RUNC_DIR/runc.tmp" github.com/opencontainers/runc
  )
  mv -f "$RUNC_DIR/runc.tmp" "$RUNC_DIR/runc"
fi

CRICTL_DIR=$COMP/crictl-$CRICTL_VERSION
if [ ! -x "$CRICTL_DIR/crictl" ]; then
  log "building crictl $CRICTL_VERSION"
  mod=$WORK/cri-tools-$CRICTL_VERSION
  gomod "$mod" "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl
  mkdir -p "$CRICTL_DIR"
  ( cd "$mod"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      -o "$CRICTL_DIR/crictl.tmp" sigs.k8s.io/cri-tools/cmd/crictl
  )
  mv -f "$CRICTL_DIR/crictl.tmp" "$CRICTL_DIR/crictl"
fi

CNI_DIR=$COMP/cni-plugins-$CNI_PLUGINS_VERSION
missing=()
for p in "${CNI_PLUGINS[@]}"; do [ -x "$CNI_DIR/$(basename "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "building CNI plugins $CNI_PLUGINS_VERSION (${missing[*]})"
  mod=$WORK/cni-plugins-$CNI_PLUGINS_VERSION
  gomod "$mod" "$CNI_PLUGINS_VERSION" "${missing[@]/#/github.com/containernetworking/plugins/plugins/}"
  mkdir -p "$CNI_DIR"
  ( cd "$mod"
    for p in "${missing[@]}"; do
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
        -o "$CNI_DIR/$(basename "$p").tmp" "github.com/containernetworking/plugins/plugins/$p"
      mv -f "$CNI_DIR/$(basename "$p").tmp" "$CNI_DIR/$(basename "$p")"
    done
  )
fi

log "containerd $("$CTRD/containerd" --version | cut -d' ' -f3), runc $("$RUNC_DIR/runc" --version | head -n1 | cut -d' ' -f3), crictl $("$CRICTL_DIR/crictl" --version | cut -d' ' -f3), CNI plugins $CNI_PLUGINS_VERSION in $COMP"
printf 'containerd=%s\nrunc=%s\ncrictl=%s\ncni=%s\n' "$CTRD" "$RUNC_DIR" "$CRICTL_DIR" "$CNI_DIR"
exit 0
}
