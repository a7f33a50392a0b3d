#!/usr/bin/env bash
# Development tool: build the binaries and images the `local` provider runs, from Go modules and
# Debian packages, into a cache outside the repository (keyed by version). Rebuilds only what is missing.
#
#   tools/build-local-binaries.sh            # build into $KREADY_CACHE (default ~/.cache/pytest-kready)
#   prints the binaries directory on its last line (laid out like kubernetes/server/bin of a release)
#
# Beside the binaries it writes the images pods use as OCI image layout tarballs (tools/make_oci_image.py),
# as a Kubernetes server release ships image .tar files beside its binaries, and images.json
# ({"<full image name>": "<file>.tar"}), which pytest_kready.local.images reads to import them into
# containerd (namespace k8s.io) under their upstream names: nothing is ever pulled. An image is rebuilt
# when its tarball is missing, older than what goes into it, or holds other names. docs/images.md.
set -euo pipefail
# The whole script is one brace group, read before it runs: editing this file during a build is safe.
{

K8S_VERSION=${K8S_VERSION:-v1.36.2}
STAGING_VERSION=v0.${K8S_VERSION#v1.}
# BUILD_SET=upgrade: only what an in-place upgrade restarts (API server, controller manager, scheduler, kubelet,
# kube-proxy): the newer version of --kready-upgrade-rehearsal needs no more (no kubectl, kubeadm or etcd tools)
BUILD_SET=${BUILD_SET:-all}
ETCD_VERSION=${ETCD_VERSION:-}           # default: the etcd the release's go.mod requires (v1.36.2: v3.6.8, v1.37.2: v3.7.0)
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.2}  # the one kubeadm v1.36 asks for: the kind node image takes this binary
GO_VERSION=$(go env GOVERSION)   # the machine's Go (same minor as the release's .go-version, 1.26.4)
PAUSE_TAG=${PAUSE_TAG:-3.10.2}
AGNHOST_TAG=${AGNHOST_TAG:-2.63.0}
LPP_VERSION=${LPP_VERSION:-v0.0.30}       # github.com/rancher/local-path-provisioner
# the names kind v0.29.0 preloads for its default StorageClass (pkg/build/nodeimage/const_storage.go)
LPP_IMAGE=${LPP_IMAGE:-docker.io/kindest/local-path-provisioner:v20250214-acbabc1a}
LPP_HELPER_IMAGE=${LPP_HELPER_IMAGE:-docker.io/kindest/local-path-helper:v20241212-8ac705d0}
BUSYBOX=${BUSYBOX:-/bin/busybox}          # Debian's busybox-static: the shell and tools of agnhost and the helper
BASH_STATIC=${BASH_STATIC:-/bin/bash-static}  # Debian's bash-static: agnhost's /bin/bash (upstream's image has bash)

CACHE=${KREADY_CACHE:-$HOME/.cache/pytest-kready}
OUT=$CACHE/local/k8s-$K8S_VERSION
BIN=$OUT/bin
WORK=$CACHE/build
mkdir -p "$BIN" "$WORK"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

# the etcd version k8s.io/kubernetes@$K8S_VERSION requires (its go.mod's go.etcd.io/etcd/client/v3), unless set
if [ -z "$ETCD_VERSION" ]; then
  gomod_file=$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  ETCD_VERSION=$(awk '$1 == "go.etcd.io/etcd/client/v3" {print $2; exit}' "$gomod_file")
  [ -n "$ETCD_VERSION" ] || { printf '[build] error: no go.etcd.io/etcd/client/v3 in %s\n' "$gomod_file" >&2; exit 1; }
fi

START=$SECONDS
STEP=0
STEPS=14  # module, the Kubernetes commands, agnhost, etcd, etcdctl, etcdutl, coredns, pause, local-path, 5 images
log() { printf '[build %dm%02ds] %s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*" >&2; }
step() { STEP=$((STEP + 1)); log "step $STEP of at most $STEPS: $*"; }
log "cache: $CACHE (binaries and images in $BIN; delete it to rebuild everything)"
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/go-module.sh
. "$TOOLS/go-module.sh"  # gomod, coredns_version

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)
extra_cmds=(agnhost etcd etcdctl etcdutl)
if [ "$BUILD_SET" = upgrade ]; then
  k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
  extra_cmds=()
fi
missing=()
for c in "${k8s_cmds[@]}" "${extra_cmds[@]}"; do [ -x "$BIN/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  mod=$WORK/k8s-$K8S_VERSION
  mkdir -p "$mod"
  if [ ! -f "$mod/go.mod" ]; then
    step "preparing module for k8s.io/kubernetes $K8S_VERSION (staging $STAGING_VERSION)"
    ( cd "$mod"
      printf 'module kready.local/k8sbuild\n\ngo 1.26.0\n' > go.mod
      go mod edit -require=k8s.io/kubernetes@"$K8S_VERSION"
      go mod download k8s.io/kubernetes@"$K8S_VERSION"
      kdir=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION
      for m in $(sed -n '/^replace (/,/^)/p' "$kdir/go.mod" | awk '/=> .\/staging/ {print $1}'); do
        go mod edit -replace="$m=$m@$STAGING_VERSION"
      done
      cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
GO
      go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION" go.etcd.io/etcd/etcdutl/v3@"$ETCD_VERSION" go.etcd.io/etcd/etcdctl/v3@"$ETCD_VERSION"
      go mod tidy -e >/dev/null 2>&1 || true
      go mod download all >/dev/null 2>&1 || true
    )
  fi
  ( cd "$mod"
    # one go build for all of them: shared packages compiled once and the binaries linked two at a time
    todo=()
    for c in "${k8s_cmds[@]}"; do [ -x "$BIN/$c" ] || todo+=("$c"); done
    if [ ${#todo[@]} -gt 0 ]; then
      step "building ${todo[*]}"
      go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" -o "$BIN/" "${todo[@]/#/k8s.io/kubernetes/cmd/}"
    fi
    [ "$BUILD_SET" = upgrade ] && exit 0
    [ -x "$BIN/agnhost" ] || { step "building agnhost"; go build -trimpath -ldflags "-s -w" -o "$BIN/agnhost" k8s.io/kubernetes/test/images/agnhost; }
    [ -x "$BIN/etcd" ] || { step "building etcd"; go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3; }
    [ -x "$BIN/etcdctl" ] || { step "building etcdctl"; go build -trimpath -ldflags "-s -w" -o "$BIN/etcdctl" go.etcd.io/etcd/etcdctl/v3; }
    [ -x "$BIN/etcdutl" ] || { step "building etcdutl"; go build -trimpath -ldflags "-s -w" -o "$BIN/etcdutl" go.etcd.io/etcd/etcdutl/v3; }
  )
fi

if [ "$BUILD_SET" = upgrade ]; then
  printf 'k8s=%s go=%s set=upgrade\n' "$K8S_VERSION" "$GO_VERSION" > "$OUT/VERSIONS"
  log "done (what an in-place upgrade restarts): $BIN"
  echo "$BIN"
  exit 0
fi

if [ "$(coredns_version "$BIN/coredns")" != "$COREDNS_VERSION" ]; then  # missing, or another version cached
  mod=$WORK/coredns-$COREDNS_VERSION
  step "building coredns $COREDNS_VERSION"
  gomod "$mod" "$COREDNS_VERSION" github.com/coredns/coredns
  ( cd "$mod" && go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.tmp" github.com/coredns/coredns )
  mv -f "$BIN/coredns.tmp" "$BIN/coredns"
fi

if [ ! -x "$BIN/pause" ]; then
  step "building pause $PAUSE_TAG"
  kdir=$(cd "$WORK/k8s-$K8S_VERSION" && go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION
  gcc -Os -Wall -static -DVERSION="v$PAUSE_TAG-kready" -o "$BIN/pause" "$kdir/build/pause/linux/pause.c"
fi

if [ ! -x "$BIN/local-path-provisioner" ]; then
  mod=$WORK/local-path-provisioner-$LPP_VERSION
  mkdir -p "$mod"
  step "building local-path-provisioner $LPP_VERSION"
  ( cd "$mod"
    [ -f go.mod ] || printf 'module kready.local/localpathbuild\n\ngo 1.26.0\n' > go.mod
    go get github.com/rancher/local-path-provisioner@"$LPP_VERSION"
    go build -trimpath -ldflags "-s -w -X main.VERSION=$LPP_VERSION" -o "$BIN/local-path-provisioner" github.com/rancher/local-path-provisioner
  )
fi

# ---- the node's container runtime ------------------------------------------------------------------------
# containerd 2.x, its shim, runc and the CNI plugins, built from Go modules by tools/build-node-components.sh (the
# same ones the kind node image gets), installed beside the Kubernetes binaries: the local provider runs these,
# not the host's (Debian's containerd 1.6 is too old for kubelet 1.37).
declare -A COMPONENT
while IFS='=' read -r k v; do COMPONENT[$k]=$v; done < <(KREADY_CACHE=$CACHE bash "$TOOLS/build-node-components.sh")
[ -n "${COMPONENT[containerd]:-}" ] && [ -n "${COMPONENT[runc]:-}" ] && [ -n "${COMPONENT[cni]:-}" ] \
  || die "tools/build-node-components.sh did not build the node components"
# install SRC DEST: copy when missing or different (cmp), so a cached directory is left as it is
put() { cmp -s "$1" "$2" 2>/dev/null || { install -m 0755 "$1" "$2.tmp" && mv -f "$2.tmp" "$2"; }; }
mkdir -p "$BIN/cni"
for c in containerd ctr containerd-shim-runc-v2; do put "${COMPONENT[containerd]}/$c" "$BIN/$c"; done
put "${COMPONENT[runc]}/runc" "$BIN/runc"
for p in bridge host-local loopback portmap; do put "${COMPONENT[cni]}/$p" "$BIN/cni/$p"; done
log "runtime: $("$BIN/containerd" --version | cut -d' ' -f3), runc $("$BIN/runc" --version | head -n1 | cut -d' ' -f3), CNI plugins in $BIN/cni"

# ---- images -------------------------------------------------------------------------------------
PAUSE_IMAGE=registry.k8s.io/pause:$PAUSE_TAG
AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_TAG
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
LPP_RANCHER_IMAGE=docker.io/rancher/local-path-provisioner:$LPP_VERSION
MKIMG=(python3 "$TOOLS/make_oci_image.py")
BUSYBOX_APPLETS=(sh cat echo ls mkdir sleep test touch wc rm id grep head tail date env hostname nslookup
  '[' true false printf cp mv chmod ln rmdir cut tr sort uniq tee sed awk ps kill uname whoami stat find
  xargs seq basename dirname pwd readlink timeout nc ip netstat ping du df which)

# the names in a tarball's index.json, sorted, one line
tar_names() {
  python3 - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    index = json.load(t.extractfile("index.json"))
print(" ".join(sorted(m.get("annotations", {}).get("io.containerd.image.name", "") for m in index["manifests"])))
PY
}
# stale TAR "NAME..." SOURCE...: true when TAR is missing, holds other names, or is older than a source
stale() {
  local tar=$1 names=$2 src; shift 2
  [ -f "$tar" ] || return 0
  for src in "$TOOLS/make_oci_image.py" "$@"; do [ "$src" -nt "$tar" ] && return 0; done
  [ "$(tar_names "$tar")" = "$(printf '%s\n' $names | LC_ALL=C sort | xargs)" ] || return 0
  return 1
}
# layout_changed TAR LAYOUT: true when TAR was built with another layout (what goes in besides its inputs' bytes:
# a file added to the image rebuilds it even where every input is older than the tarball); layout_done records it
layout_changed() { [ "$(cat "$1.layout" 2>/dev/null)" != "$2" ]; }
layout_done() { printf '%s\n' "$2" >"$1.layout"; }
# need_static PATH PACKAGE DEFAULT: Debian's statically linked PACKAGE at PATH (installed, as root, when PATH is
# the package's own DEFAULT and the package is missing)
need_static() {
  local path=$1 pkg=$2 default=$3
  if [ "$path" = "$default" ] && ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
    [ "$(id -u)" = 0 ] || die "Debian's $pkg is needed: apt-get install $pkg"
    log "installing Debian's $pkg"
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
  fi
  [ -x "$path" ] || die "$path is missing: apt-get install $pkg"
  if readelf -l "$path" 2>/dev/null | grep -q INTERP; then
    die "$path is dynamically linked: apt-get install $pkg (the static build)"
  fi
}
need_busybox() { need_static "$BUSYBOX" busybox-static /bin/busybox; }
need_bash_static() { need_static "$BASH_STATIC" bash-static /bin/bash-static; }
busybox_entries() {  # --file/--symlink arguments for busybox at /bin/busybox and its applets
  local a
  printf '%s\n' --file "$BUSYBOX:/bin/busybox:0755"
  for a in "${BUSYBOX_APPLETS[@]}"; do printf '%s\n' --symlink "/bin/$a:busybox"; done
  printf '%s\n' --symlink /usr/bin/env:/bin/busybox
}
image_done() { step "image $1 → $(basename "$2") ($(du -h "$2" | cut -f1))"; }
# a distroless-like base: users root, nobody and nonroot (65532), a writable /tmp, CA certificates
PASSWD_BASE='root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n'
GROUP_BASE='root:x:0:\ntty:x:5:\nstaff:x:50:\nnobody:x:65534:\nnonroot:x:65532:\n'
CA_CERTS=/etc/ssl/certs/ca-certificates.crt
base_entries() {
  printf '%s\n' --text "/etc/passwd:0644:$PASSWD_BASE" --text "/etc/group:0644:$GROUP_BASE" --dir /tmp:1777 \
    --dir /home/nonroot:0755 --text '/etc/nsswitch.conf:0644:hosts: files dns\n'
  [ -f "$CA_CERTS" ] && printf '%s\n' --file "$CA_CERTS:/etc/ssl/certs/ca-certificates.crt:0644"
  return 0
}

# registry.k8s.io/pause (build/pause/Dockerfile: FROM scratch, /pause, USER 65535:65535)
if stale "$BIN/pause.tar" "$PAUSE_IMAGE" "$BIN/pause"; then
  "${MKIMG[@]}" --name "$PAUSE_IMAGE" -o "$BIN/pause.tar" --file "$BIN/pause:/pause:0755" \
    --entrypoint '["/pause"]' --user 65535:65535
  image_done "$PAUSE_IMAGE" "$BIN/pause.tar"
fi

# registry.k8s.io/e2e-test-images/agnhost (test/images/agnhost/Dockerfile: alpine with tools, /agnhost,
# /agnhost-2, /uploads, porter's localhost.crt/key, user-defined-in-image (1000) and group-defined-in-image
# (50000), EXPOSE 80 8080 8081 9376 5000, ENTRYPOINT ["/agnhost"], CMD ["pause"]); the tools come from busybox,
# bash (upstream installs it too) is Debian's static one.
AGNHOST_LAYOUT="busybox bash"
if stale "$BIN/agnhost.tar" "$AGNHOST_IMAGE" "$BIN/agnhost" "$BUSYBOX" "$BASH_STATIC" ||
   layout_changed "$BIN/agnhost.tar" "$AGNHOST_LAYOUT"; then
  need_busybox
  need_bash_static
  kdir=$(cd "$WORK/k8s-$K8S_VERSION" && go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION
  porter=()
  for f in localhost.crt localhost.key; do
    [ -f "$kdir/test/images/agnhost/porter/$f" ] && porter+=(--file "$kdir/test/images/agnhost/porter/$f:/$f:0644")
  done
  mapfile -t bb < <(busybox_entries)
  "${MKIMG[@]}" --name "$AGNHOST_IMAGE" -o "$BIN/agnhost.tar" \
    --file "$BIN/agnhost:/agnhost:0755" --symlink /agnhost-2:agnhost --dir /uploads:0755 "${porter[@]}" "${bb[@]}" \
    --file "$BASH_STATIC:/bin/bash:0755" \
    --text '/etc/passwd:0644:root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nuser-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n' \
    --text '/etc/group:0644:root:x:0:root\nnobody:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' \
    --text '/etc/nsswitch.conf:0644:hosts: files dns\n' \
    --dir /tmp:1777 --dir /root:0700 --dir /home/user-defined-in-image:0755 \
    --expose 80 --expose 8080 --expose 8081 --expose 9376 --expose 5000 \
    --entrypoint '["/agnhost"]' --cmd '["pause"]'
  layout_done "$BIN/agnhost.tar" "$AGNHOST_LAYOUT"
  image_done "$AGNHOST_IMAGE" "$BIN/agnhost.tar"
fi

# registry.k8s.io/coredns/coredns (its Dockerfile: distroless static nonroot, /coredns with
# cap_net_bind_service+ep, USER nonroot:nonroot (here numeric, so runAsNonRoot can verify it),
# WORKDIR /, EXPOSE 53 53/udp, ENTRYPOINT ["/coredns"])
if stale "$BIN/coredns.tar" "$COREDNS_IMAGE" "$BIN/coredns"; then
  mapfile -t base < <(base_entries)
  "${MKIMG[@]}" --name "$COREDNS_IMAGE" -o "$BIN/coredns.tar" "${base[@]}" \
    --file "$BIN/coredns:/coredns:0755" --cap /coredns:cap_net_bind_service \
    --user 65532:65532 --workdir / --expose 53 --expose 53/udp --entrypoint '["/coredns"]'
  image_done "$COREDNS_IMAGE" "$BIN/coredns.tar"
fi

# local-path-provisioner under kind's name and rancher's (package/Dockerfile: /usr/bin/local-path-provisioner,
# CMD ["local-path-provisioner"]; kind's image has it in /usr/local/bin): the binary in /usr/bin, linked from
# /usr/local/bin and /, found through PATH as kind's manifest runs it (command: local-path-provisioner ...)
if stale "$BIN/local-path-provisioner.tar" "$LPP_IMAGE $LPP_RANCHER_IMAGE" "$BIN/local-path-provisioner"; then
  mapfile -t base < <(base_entries)
  "${MKIMG[@]}" --name "$LPP_IMAGE" --name "$LPP_RANCHER_IMAGE" -o "$BIN/local-path-provisioner.tar" "${base[@]}" \
    --file "$BIN/local-path-provisioner:/usr/bin/local-path-provisioner:0755" \
    --symlink /usr/local/bin/local-path-provisioner:/usr/bin/local-path-provisioner \
    --symlink /local-path-provisioner:usr/bin/local-path-provisioner \
    --cmd '["local-path-provisioner"]'
  image_done "$LPP_IMAGE" "$BIN/local-path-provisioner.tar"
fi

# the provisioner's helper pod image (kind's images/local-path-helper: sh, rm, mkdir on distroless static)
if stale "$BIN/local-path-helper.tar" "$LPP_HELPER_IMAGE" "$BUSYBOX"; then
  need_busybox
  mapfile -t base < <(base_entries)
  mapfile -t bb < <(busybox_entries)
  "${MKIMG[@]}" --name "$LPP_HELPER_IMAGE" -o "$BIN/local-path-helper.tar" "${base[@]}" "${bb[@]}" --cmd '["/bin/sh"]'
  image_done "$LPP_HELPER_IMAGE" "$BIN/local-path-helper.tar"
fi

python3 - "$BIN/images.json" \
  "$PAUSE_IMAGE=pause.tar" "$AGNHOST_IMAGE=agnhost.tar" "$COREDNS_IMAGE=coredns.tar" \
  "$LPP_IMAGE=local-path-provisioner.tar" "$LPP_RANCHER_IMAGE=local-path-provisioner.tar" \
  "$LPP_HELPER_IMAGE=local-path-helper.tar" <<'PY'
import json, os, sys
out = dict(arg.rsplit("=", 1) for arg in sys.argv[2:])
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write("\n")
os.replace(tmp, sys.argv[1])
PY

printf 'k8s=%s etcd=%s coredns=%s go=%s pause=%s agnhost=%s local-path-provisioner=%s containerd=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "$COREDNS_VERSION" "$GO_VERSION" "$PAUSE_TAG" "$AGNHOST_TAG" "$LPP_VERSION" "$(basename "${COMPONENT[containerd]}")" > "$OUT/VERSIONS"
log "done: everything is in $BIN"
echo "$BIN"
exit 0
}
