#!/usr/bin/env bash
# Development tool: build everything the `kind` provider needs, offline, from Go modules and Debian packages,
# into a cache outside the repository (keyed by version). Rebuilds only what is missing.
#
#   tools/docker-daemon.sh start            # the Docker daemon this uses (started here too if it is down)
#   tools/build-kind-images.sh              # prints the node image name on its last line (kready/node:v1.36.2)
#
# What it makes, under $KREADY_CACHE/kind (default ~/.cache/pytest-kready/kind):
#   bin/kind-<version>                 kind itself (sigs.k8s.io/kind, Go module)
#   (../components/, by tools/build-node-components.sh: containerd, runc, crictl and CNI plugins for the node,
#                                      from Go modules at the versions kind's own images/base/Dockerfile names)
#   debian/<suite>-<hash>.tar          the node's Debian root file system (debootstrap, Debian's mirror)
#   base/kready-base-<tag>.tar         the base image kready/base:<tag> (`docker save`), as kind's base image:
#                                      kind's images/base/files, systemd, the components above
#   k8s-<version>/kubernetes-server-linux-amd64.tar.gz
#                                      a server tarball laid out like a Kubernetes release, from the binaries of
#                                      tools/build-local-binaries.sh (run that first: this script never starts it)
#   k8s-<version>/node-image.tar       the node image kready/node:<version> (`docker save`): on a machine with
#                                      this cache, `docker load` restores it (this script does that by itself)
#
# Every image a cluster needs is inside the node image, so nothing is pulled: kubeadm's list for this version
# (control plane, etcd, CoreDNS, pause), kind's storage images (local-path-provisioner and its helper) and
# agnhost. The build checks that list against the node's containerd store and fails on a missing image.
# kindnetd cannot be built here, so the node image carries a placeholder under kind's kindnetd name that
# only prints why and exits: clusters must use `networking.disableDefaultCNI: true` (the base image has a
# ptp/host-local CNI config for the pod subnet 10.244.0.0/16, single node).
# See tools/kind/probe-config.yaml for the kind config the image was proven with.
#
# Environment: KREADY_CACHE, K8S_VERSION (v1.36.2), KIND_VERSION (v0.33.0), NODE_IMAGE (kready/node:<k8s>),
# DEBIAN_SUITE (bookworm), DEBIAN_MIRROR, COREDNS_VERSION (default: the one kubeadm asks for).
set -euo pipefail
# The whole script is one brace group, read before it runs: editing this file during a build is safe.
{

K8S_VERSION=${K8S_VERSION:-v1.36.2}
KIND_VERSION=${KIND_VERSION:-v0.33.0}
NODE_IMAGE=${NODE_IMAGE:-kready/node:$K8S_VERSION}
BASE_REPO=${BASE_REPO:-kready/base}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# bump when the base image is assembled differently (part of its tag)
BASE_REVISION=1

CACHE=${KREADY_CACHE:-$HOME/.cache/pytest-kready}
KDIR=$CACHE/kind
WORK=$CACHE/build/kind
LOCAL_BIN=$CACHE/local/k8s-$K8S_VERSION/bin      # tools/build-local-binaries.sh's output
NODE_DIR=$KDIR/k8s-$K8S_VERSION
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools/go-module.sh
. "$TOOLS/go-module.sh"  # gomod
mkdir -p "$KDIR/bin" "$KDIR/debian" "$KDIR/base" "$NODE_DIR" "$WORK"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

T0=$SECONDS
STEP=0
STEPS=9
log() { local t=$((SECONDS - T0)); printf '[kind-build %dm%02ds] %s\n' $((t / 60)) $((t % 60)) "$*" >&2; }
step() { STEP=$((STEP + 1)); log "step $STEP/$STEPS: $*"; }
die() { printf '[kind-build] error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [ $rc = 0 ] || printf "[kind-build] failed (exit %s) at step %s/%s after %ss; cache: %s\n" "$rc" "$STEP" "$STEPS" "$((SECONDS - T0))" "$KDIR" >&2' EXIT

log "cache: $KDIR (work: $WORK)"
command -v go >/dev/null || die "go is missing"
for t in python3 readelf jq gzip; do command -v "$t" >/dev/null || die "$t is missing (apt-get install binutils jq)"; done

# the Docker daemon (tools/docker-daemon.sh; started when it is down)
"$TOOLS/docker-daemon.sh" start >/dev/null
DOCKER_SOCK=${KREADY_DOCKER_SOCK:-/var/run/docker.sock}
export DOCKER_HOST=unix://$DOCKER_SOCK

# ---- 1. kind --------------------------------------------------------------------------------------------
step "kind $KIND_VERSION"
KIND=$KDIR/bin/kind-$KIND_VERSION
if [ ! -x "$KIND" ]; then
  mod=$WORK/kind-$KIND_VERSION
  mkdir -p "$mod"
  ( cd "$mod"
    [ -f go.mod ] || printf 'module kready.local/kindbuild\n\ngo 1.26.0\n' > go.mod
    go get sigs.k8s.io/kind@"$KIND_VERSION"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$KIND.tmp" sigs.k8s.io/kind
  )
  mv -f "$KIND.tmp" "$KIND"
fi
ln -sfn "kind-$KIND_VERSION" "$KDIR/bin/kind"
log "kind: $("$KIND" version)"
KIND_SRC=$(cd "$WORK" && go mod download -json sigs.k8s.io/kind@"$KIND_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
[ -f "$KIND_SRC/images/base/Dockerfile" ] || die "kind's source is not at $KIND_SRC"
KIND_FILES=$KIND_SRC/images/base/files

# the versions kind's base image uses (its Dockerfile's ARGs), unless set
dockerfile_arg() { sed -n "s/^ARG $1=\"\(.*\)\"$/\1/p" "$KIND_SRC/images/base/Dockerfile" | head -n1; }
CONTAINERD_VERSION=${CONTAINERD_VERSION:-$(dockerfile_arg CONTAINERD_VERSION)}
RUNC_VERSION=${RUNC_VERSION:-$(dockerfile_arg RUNC_VERSION)}
CRICTL_VERSION=${CRICTL_VERSION:-$(dockerfile_arg CRICTL_VERSION)}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-$(dockerfile_arg CNI_PLUGINS_VERSION)}
for v in CONTAINERD_VERSION RUNC_VERSION CRICTL_VERSION CNI_PLUGINS_VERSION; do
  [ -n "${!v}" ] || die "could not read $v from kind's images/base/Dockerfile"
done
# the image names kind preloads (pkg/build/nodeimage/const_storage.go, const_cni.go)
kind_const() { sed -n "s/^const $1 = \"\(.*\)\"$/\1/p" "$KIND_SRC/pkg/build/nodeimage/$2" | head -n1; }
LPP_IMAGE=$(kind_const storageProvisionerImage const_storage.go)
LPP_HELPER_IMAGE=$(kind_const storageHelperImage const_storage.go)
KINDNETD_IMAGE=$(kind_const kindnetdImage const_cni.go)
[ -n "$LPP_IMAGE" ] && [ -n "$LPP_HELPER_IMAGE" ] && [ -n "$KINDNETD_IMAGE" ] || die "could not read kind's image names"

# ---- 2. node components -----------------------------------------------------------------------------------
step "node components: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, crictl $CRICTL_VERSION, CNI plugins $CNI_PLUGINS_VERSION"
# built by tools/build-node-components.sh (shared with the local provider), at the versions kind's base image uses
declare -A COMPONENT
while IFS='=' read -r k v; do COMPONENT[$k]=$v; done < <(CONTAINERD_VERSION=$CONTAINERD_VERSION RUNC_VERSION=$RUNC_VERSION \
  CRICTL_VERSION=$CRICTL_VERSION CNI_PLUGINS_VERSION=$CNI_PLUGINS_VERSION KREADY_CACHE=$CACHE bash "$TOOLS/build-node-components.sh")
CTRD=${COMPONENT[containerd]} RUNC_DIR=${COMPONENT[runc]} CRICTL_DIR=${COMPONENT[crictl]} CNI_DIR=${COMPONENT[cni]}
[ -x "$CTRD/containerd" ] && [ -x "$RUNC_DIR/runc" ] && [ -x "$CRICTL_DIR/crictl" ] || die "tools/build-node-components.sh did not build the node components"
CNI_PLUGINS=(host-local loopback ptp portmap)  # what the node image's /opt/cni/bin gets

# ---- 3. Debian root file system ---------------------------------------------------------------------------
# the packages kind's images/base/Dockerfile installs
DEB_PACKAGES=(systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz
  fuse-overlayfs nfs-common open-iscsi e2fsprogs bash ca-certificates curl jq procps)
DEB_KEY=$(printf '%s\n' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "${DEB_PACKAGES[@]}" | sha256sum | cut -c1-12)
DEBIAN_TAR=$KDIR/debian/$DEBIAN_SUITE-minbase-$DEB_KEY.tar
step "Debian $DEBIAN_SUITE root file system (debootstrap)"
if [ ! -f "$DEBIAN_TAR" ]; then
  command -v debootstrap >/dev/null || {
    log "installing Debian's debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  }
  root=$WORK/debootstrap-$DEBIAN_SUITE
  rm -rf "$root"
  log "debootstrap --variant=minbase $DEBIAN_SUITE with ${#DEB_PACKAGES[@]} packages (log $WORK/debootstrap.log)"
  pkgs=$(IFS=,; echo "${DEB_PACKAGES[*]}")
  if ! debootstrap --variant=minbase --include="$pkgs" "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (log $WORK/debootstrap.log)"
  fi
  # what a container image does not carry
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname" "$root/etc/resolv.conf"
  tar -C "$root" --numeric-owner --xattrs --sort=name -cf "$DEBIAN_TAR.tmp" .
  mv -f "$DEBIAN_TAR.tmp" "$DEBIAN_TAR"
  rm -rf "$root"
fi
log "rootfs: $DEBIAN_TAR ($(du -h "$DEBIAN_TAR" | cut -f1))"

# ---- 4. base image ----------------------------------------------------------------------------------------
# the sandbox (pause) image: the one this Kubernetes' kubeadm asks for (built by build-local-binaries.sh)
if [ -z "${PAUSE_IMAGE:-}" ] && [ -x "$LOCAL_BIN/kubeadm" ]; then
  PAUSE_IMAGE=$("$LOCAL_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null | grep -m1 '/pause:' || true)
fi
PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:3.10.2}
BASE_KEY=$( {
  printf '%s\n' "$BASE_REVISION" "$PAUSE_IMAGE" "$KIND_VERSION" "$DEB_KEY" "$CONTAINERD_VERSION" "$RUNC_VERSION" "$CRICTL_VERSION" "$CNI_PLUGINS_VERSION"
  cat "$TOOLS"/kind/base/*
} | sha256sum | cut -c1-10)
BASE_TAG=$DEBIAN_SUITE-$KIND_VERSION-$BASE_KEY
BASE_IMAGE=$BASE_REPO:$BASE_TAG
BASE_TAR=$KDIR/base/kready-base-$BASE_TAG.tar
step "base image $BASE_IMAGE"
have_image() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null; }
if [ -z "$(have_image "$BASE_IMAGE")" ] && [ -f "$BASE_TAR" ]; then
  log "loading $BASE_TAR"
  docker load -i "$BASE_TAR" >/dev/null
fi
if [ -z "$(have_image "$BASE_IMAGE")" ]; then
  stage=$WORK/base-rootfs
  rm -rf "$stage"
  mkdir -p "$stage"
  tar -C "$stage" --numeric-owner --xattrs -xpf "$DEBIAN_TAR"
  # kind's images/base/Dockerfile, stage "base": its static files with its modes ...
  install -m 0755 "$KIND_FILES"/usr/local/bin/* "$stage/usr/local/bin/"
  mkdir -p "$stage/kind/bin" "$stage/LICENSES" "$stage/etc/containerd" "$stage/etc/default" "$stage/etc/sysctl.d" \
    "$stage/etc/systemd/system/kubelet.service.d"
  cp -r "$KIND_FILES/kind/." "$stage/kind/"
  find "$stage/kind" -type f -exec chmod 0644 {} +
  find "$stage/kind" -type d -exec chmod 0755 {} +
  chmod 0755 "$stage"/kind/bin/*
  install -m 0644 "$KIND_FILES"/LICENSES/* "$stage/LICENSES/"
  install -m 0644 "$KIND_FILES/etc/crictl.yaml" "$stage/etc/"
  install -m 0644 "$KIND_FILES"/etc/containerd/* "$stage/etc/containerd/"
  install -m 0644 "$KIND_FILES"/etc/default/* "$stage/etc/default/"
  install -m 0644 "$KIND_FILES"/etc/sysctl.d/* "$stage/etc/sysctl.d/"
  find "$KIND_FILES/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 -t "$stage/etc/systemd/system/" {} +
  install -m 0644 "$KIND_FILES"/etc/systemd/system/kubelet.service.d/* "$stage/etc/systemd/system/kubelet.service.d/"
  # ... its clean-up of systemd units ...
  find "$stage/usr/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$stage"/usr/lib/systemd/system/multi-user.target.wants/* "$stage"/etc/systemd/system/*.wants/* \
    "$stage"/usr/lib/systemd/system/local-fs.target.wants/* "$stage"/usr/lib/systemd/system/sockets.target.wants/*udev* \
    "$stage"/usr/lib/systemd/system/sockets.target.wants/*initctl* "$stage"/usr/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >> "$stage/etc/systemd/journald.conf"
  ln -sfn /usr/lib/systemd/systemd "$stage/usr/sbin/init"
  # ... `systemctl enable kubelet containerd undo-mount-hacks` (all WantedBy=multi-user.target), mask binfmt ...
  mkdir -p "$stage/etc/systemd/system/multi-user.target.wants"
  for u in kubelet.service containerd.service undo-mount-hacks.service; do
    ln -sfn "/etc/systemd/system/$u" "$stage/etc/systemd/system/multi-user.target.wants/$u"
  done
  ln -sfn /dev/null "$stage/etc/systemd/system/systemd-binfmt.service"
  mkdir -p "$stage/etc/kubernetes/manifests"
  # ... stage "build": containerd, runc, crictl, CNI plugins, and containerd's base runtime spec
  install -m 0755 "$CTRD/containerd" "$CTRD/ctr" "$CTRD/containerd-shim-runc-v2" "$CRICTL_DIR/crictl" "$stage/usr/local/bin/"
  install -m 0755 "$RUNC_DIR/runc" "$stage/usr/local/sbin/runc"
  mkdir -p "$stage/opt/cni/bin"
  for p in "${CNI_PLUGINS[@]}"; do install -m 0755 "$CNI_DIR/$(basename "$p")" "$stage/opt/cni/bin/"; done
  "$CTRD/ctr" oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > "$stage/etc/containerd/cri-base.json"
  # kready's changes (docs in tools/build-kind-images.sh's header):
  # - the sandbox image is the pause image kubeadm of this Kubernetes asks for (built, never pulled)
  # - restrict_oom_score_adj = true: root here lacks CAP_SYS_RESOURCE, so containerd must not raise oom_score_adj
  # - the kubelet may run on cgroup v1 (hosts with a v1/v2 hybrid): --fail-cgroupv1=false
  # - a CNI config present before boot (kindnetd cannot be built here): ptp + host-local on 10.244.0.0/16
  pause_tag=$PAUSE_IMAGE
  sed -i -e "s#^\(\s*sandbox_image\s*=\s*\).*#\1\"$pause_tag\"#" \
    -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$stage/etc/containerd/config.toml"
  grep -q "sandbox_image = \"$pause_tag\"" "$stage/etc/containerd/config.toml" || die "could not set sandbox_image"
  grep -q 'restrict_oom_score_adj = true' "$stage/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj"
  sed -i 's/^KUBELET_EXTRA_ARGS=.*/& --fail-cgroupv1=false/' "$stage/etc/default/kubelet"
  grep -q -- '--fail-cgroupv1=false' "$stage/etc/default/kubelet" || die "could not set --fail-cgroupv1=false"
  mkdir -p "$stage/etc/cni/net.d"
  install -m 0644 "$TOOLS/kind/base/10-kready-ptp.conflist" "$stage/etc/cni/net.d/"
  log "importing the base image ($(du -sh "$stage" | cut -f1))"
  imported=$(tar -C "$stage" --numeric-owner --xattrs --sort=name -cf - . | docker import \
    --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change "LABEL io.kready.base.kind=$KIND_VERSION io.kready.base.debian=$DEBIAN_SUITE io.kready.base.containerd=$CONTAINERD_VERSION io.kready.base.runc=$RUNC_VERSION io.kready.base.crictl=$CRICTL_VERSION io.kready.base.cni-plugins=$CNI_PLUGINS_VERSION io.kready.base.sandbox=$pause_tag" \
    -)
  rm -rf "$stage"
  # docker 20.10's import/commit refuse STOPSIGNAL: one build step on top, no context, no layer
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$imported" | DOCKER_BUILDKIT=0 docker build -q -t "$BASE_IMAGE" - >/dev/null 2>"$WORK/base-build.err" \
    || { cat "$WORK/base-build.err" >&2; die "docker build (STOPSIGNAL) failed"; }
  docker rmi "$imported" >/dev/null 2>&1 || true
  [ "$(docker image inspect --format '{{.Config.StopSignal}}' "$BASE_IMAGE")" = "SIGRTMIN+3" ] || die "$BASE_IMAGE has no STOPSIGNAL"
  docker save -o "$BASE_TAR.tmp" "$BASE_IMAGE"
  mv -f "$BASE_TAR.tmp" "$BASE_TAR"
fi
log "base: $BASE_IMAGE ($BASE_TAR)"
[ "$(docker image inspect --format '{{index .Config.Labels "io.kready.base.sandbox"}}' "$BASE_IMAGE")" = "$PAUSE_IMAGE" ] \
  || die "$BASE_IMAGE's sandbox image is not $PAUSE_IMAGE"

# ---- the node image: restored from the cache when its inputs are unchanged ---------------------------------
NODE_TAR=$NODE_DIR/node-image.tar
NODE_STAMP=$NODE_DIR/node-image.stamp
SERVER_TGZ=$NODE_DIR/kubernetes-server-linux-amd64.tar.gz

# images the node must hold: kubeadm's list (its pause replaced by the containerd sandbox image, as kind does),
# kind's storage images, agnhost; one a line
AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost:${AGNHOST_TAG:-2.63.0}
required_images() {
  "$LOCAL_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null | grep -v '/pause:'
  printf '%s\n' "$PAUSE_IMAGE" "$LPP_IMAGE" "$LPP_HELPER_IMAGE" "$AGNHOST_IMAGE"
}
# verify IMAGE: run the node image (not as a node: `sleep`), start its containerd, compare its image store
verify_node() {
  local image=$1 cid missing=() have req
  cid=$(docker run -d --rm --entrypoint sleep --security-opt seccomp=unconfined "$image" infinity)
  have=$(docker exec "$cid" bash -c '
    set -e
    (containerd >/dev/null 2>&1 &)
    for i in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && break; sleep 0.2; done
    ctr -n k8s.io images ls -q | grep -v "@sha256:"
    echo "# kubelet $(kubelet --version 2>&1) / kubeadm $(kubeadm version -o short) / kubectl $(kubectl version --client 2>&1 | head -n1)"
    echo "# $(cat /kind/version) $(containerd --version) $(runc --version | head -n1) $(crictl --version)"
    echo "# CNI plugins: $(ls /opt/cni/bin | xargs); CNI config: $(ls /etc/cni/net.d | xargs)"
  ' 2>&1) || { docker rm -f "$cid" >/dev/null 2>&1 || true; printf '%s\n' "$have" >&2; die "could not list the images of $image"; }
  docker rm -f "$cid" >/dev/null 2>&1 || true
  printf '%s\n' "$have" > "$NODE_DIR/node-image.contents"
  while read -r req; do
    [ -n "$req" ] || continue
    if grep -qxF "$req" <<<"$have"; then log "  ok  $req"; else log "  MISSING $req"; missing+=("$req"); fi
  done < <(required_images)
  grep '^# ' <<<"$have" | sed 's/^# /  /' >&2
  [ ${#missing[@]} = 0 ] || die "$image lacks ${#missing[@]} image(s): ${missing[*]}"
}

[ -x "$LOCAL_BIN/kubeadm" ] && [ -f "$LOCAL_BIN/images.json" ] \
  || die "the local binaries are missing in $LOCAL_BIN: run tools/build-local-binaries.sh first (K8S_VERSION=$K8S_VERSION)"

# ---- 5. images for the node ---------------------------------------------------------------------------------
step "images for the node (control plane, etcd, CoreDNS, pause, storage, agnhost)"
IMG_DIR=$NODE_DIR/images
mkdir -p "$IMG_DIR"
MKIMG=(python3 "$TOOLS/make_oci_image.py")
mapfile -t KUBEADM_IMAGES < <("$LOCAL_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
image_of() { printf '%s\n' "${KUBEADM_IMAGES[@]}" | grep -m1 "$1" || die "kubeadm lists no $1 image"; }
ETCD_IMAGE=$(image_of '/etcd:')
COREDNS_IMAGE=$(image_of '/coredns:')
COREDNS_VERSION=${COREDNS_VERSION:-${COREDNS_IMAGE##*:}}
etcd_have=$("$LOCAL_BIN/etcd" --version | sed -n 's/^etcd Version: //p')
[ "${ETCD_IMAGE##*:}" = "$etcd_have-0" ] || die "kubeadm asks for $ETCD_IMAGE, the local etcd is $etcd_have"
# fresh OUT SRC...: OUT exists and is newer than every SRC (and than the tools that make it)
fresh() {
  local out=$1 src; shift
  [ -f "$out" ] || return 1
  for src in "$@" "$TOOLS/make_oci_image.py" "$TOOLS/kind/docker_archive.py" "${BASH_SOURCE[0]}"; do
    [ "$src" -nt "$out" ] && return 1
  done
  return 0
}
PASSWD_BASE='root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n'
GROUP_BASE='root:x:0:\ntty:x:5:\nstaff:x:50:\nnobody:x:65534:\nnonroot:x:65532:\n'
BASE_ENTRIES=(--text "/etc/passwd:0644:$PASSWD_BASE" --text "/etc/group:0644:$GROUP_BASE" --dir /tmp:1777
  --dir /home/nonroot:0755 --text '/etc/nsswitch.conf:0644:hosts: files dns\n')
[ -f /etc/ssl/certs/ca-certificates.crt ] && BASE_ENTRIES+=(--file /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:0644)

# CoreDNS at the version kubeadm asks for: tools/build-local-binaries.sh's when it is that version (its default),
# built here otherwise
COREDNS_BIN=$NODE_DIR/bin/coredns-$COREDNS_VERSION
if [ ! -x "$COREDNS_BIN" ] && [ "$(coredns_version "$LOCAL_BIN/coredns")" = "$COREDNS_VERSION" ]; then
  log "coredns $COREDNS_VERSION: the local set's ($LOCAL_BIN/coredns)"
  mkdir -p "$NODE_DIR/bin"
  install -m 0755 "$LOCAL_BIN/coredns" "$COREDNS_BIN.tmp" && mv -f "$COREDNS_BIN.tmp" "$COREDNS_BIN"
fi
if [ ! -x "$COREDNS_BIN" ]; then
  log "building coredns $COREDNS_VERSION"
  mod=$WORK/coredns-$COREDNS_VERSION
  gomod "$mod" "$COREDNS_VERSION" github.com/coredns/coredns
  mkdir -p "$NODE_DIR/bin"
  ( cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$COREDNS_BIN.tmp" github.com/coredns/coredns )
  mv -f "$COREDNS_BIN.tmp" "$COREDNS_BIN"
fi

# control plane: the binary in /usr/local/bin on a distroless-like base (kubeadm's manifests name the command)
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  oci=$WORK/images/$c.oci.tar
  mkdir -p "$WORK/images"
  if ! fresh "$IMG_DIR/$c.tar" "$LOCAL_BIN/$c"; then
    log "image registry.k8s.io/$c:$K8S_VERSION"
    "${MKIMG[@]}" --name "registry.k8s.io/$c:$K8S_VERSION" -o "$oci" "${BASE_ENTRIES[@]}" \
      --file "$LOCAL_BIN/$c:/usr/local/bin/$c:0755" --entrypoint "[\"/usr/local/bin/$c\"]"
    python3 "$TOOLS/kind/docker_archive.py" -o "$IMG_DIR/$c.tar" "$oci" >/dev/null
  fi
done

# kube-proxy: the binary plus iptables (nft and legacy), conntrack and nft with their libraries, copied from the
# node's Debian root file system, and an iptables wrapper that picks the node's backend (like kind's entrypoint)
KP_TAR=$IMG_DIR/kube-proxy.tar
EXTRA_OCI=()
# the other images ride in kube-proxy.tar: kind's tarball build reads exactly four archives
# (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy) and pulls every other image it needs,
# which cannot work offline; images in those archives count as built and are imported, under these names
EXTRA_OCI+=("$WORK/images/etcd.oci.tar=$ETCD_IMAGE")
EXTRA_OCI+=("$WORK/images/coredns.oci.tar=$COREDNS_IMAGE")
EXTRA_OCI+=("$LOCAL_BIN/pause.tar=$PAUSE_IMAGE")
EXTRA_OCI+=("$LOCAL_BIN/agnhost.tar=$AGNHOST_IMAGE")
EXTRA_OCI+=("$LOCAL_BIN/local-path-provisioner.tar=$LPP_IMAGE")
EXTRA_OCI+=("$LOCAL_BIN/local-path-helper.tar=$LPP_HELPER_IMAGE")
EXTRA_OCI+=("$WORK/images/kindnetd-placeholder.oci.tar=$KINDNETD_IMAGE")
if ! fresh "$KP_TAR" "$LOCAL_BIN/kube-proxy" "$LOCAL_BIN/etcd" "$COREDNS_BIN" "$LOCAL_BIN/pause.tar" "$LOCAL_BIN/agnhost.tar" \
    "$LOCAL_BIN/local-path-provisioner.tar" "$LOCAL_BIN/local-path-helper.tar" "$DEBIAN_TAR" "$TOOLS/kind/kube-proxy/iptables-wrapper" \
    "$TOOLS/kind/elf_deps.py"; then
  log "image registry.k8s.io/kube-proxy:$K8S_VERSION"
  kp=$WORK/kube-proxy-rootfs
  rm -rf "$kp"
  mkdir -p "$kp"
  tar -C "$kp" --numeric-owner -xpf "$DEBIAN_TAR" ./usr/sbin ./usr/lib/x86_64-linux-gnu ./usr/lib64 ./lib64 ./lib ./sbin ./etc/protocols ./etc/services ./etc/ethertypes 2>/dev/null || true
  bins=(/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/conntrack /usr/sbin/nft)
  mapfile -t xt < <(cd "$kp" && find usr/lib/x86_64-linux-gnu/xtables -name '*.so' | sort | sed 's#^#/#')
  mapfile -t deps < <(python3 "$TOOLS/kind/elf_deps.py" "$kp" "${bins[@]}" "${xt[@]}")
  kp_entries=()
  for d in "${deps[@]}"; do kp_entries+=(--file "$kp${d%%$'\t'*}:${d#*$'\t'}:0755"); done
  for l in iptables-nft iptables-nft-save iptables-nft-restore ip6tables-nft ip6tables-nft-save ip6tables-nft-restore; do
    kp_entries+=(--symlink "/usr/sbin/$l:xtables-nft-multi")
  done
  for l in iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables-legacy ip6tables-legacy-save ip6tables-legacy-restore; do
    kp_entries+=(--symlink "/usr/sbin/$l:xtables-legacy-multi")
  done
  for l in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    kp_entries+=(--symlink "/usr/sbin/$l:iptables-wrapper")
  done
  for f in etc/protocols etc/services etc/ethertypes; do [ -f "$kp/$f" ] && kp_entries+=(--file "$kp/$f:/$f:0644"); done
  kp_entries+=(--file "$TOOLS/kind/kube-proxy/iptables-wrapper:/usr/sbin/iptables-wrapper:0755")
  kp_entries+=(--file /bin/busybox:/bin/busybox:0755)
  for a in sh grep timeout ln true cat ls; do kp_entries+=(--symlink "/bin/$a:busybox"); done
  kp_entries+=(--symlink /lib:usr/lib --symlink /sbin:usr/sbin)
  readelf -l /bin/busybox 2>/dev/null | grep -q INTERP && die "/bin/busybox is dynamically linked: apt-get install busybox-static"
  "${MKIMG[@]}" --name "registry.k8s.io/kube-proxy:$K8S_VERSION" -o "$WORK/images/kube-proxy.oci.tar" "${BASE_ENTRIES[@]}" \
    "${kp_entries[@]}" --file "$LOCAL_BIN/kube-proxy:/usr/local/bin/kube-proxy:0755" \
    --entrypoint '["/usr/local/bin/kube-proxy"]'
  rm -rf "$kp"
  # etcd (registry.k8s.io/etcd: etcd, etcdctl, etcdutl in /usr/local/bin, distroless)
  log "image $ETCD_IMAGE"
  "${MKIMG[@]}" --name "$ETCD_IMAGE" -o "$WORK/images/etcd.oci.tar" "${BASE_ENTRIES[@]}" \
    --file "$LOCAL_BIN/etcd:/usr/local/bin/etcd:0755" --file "$LOCAL_BIN/etcdctl:/usr/local/bin/etcdctl:0755" \
    --file "$LOCAL_BIN/etcdutl:/usr/local/bin/etcdutl:0755" --dir /var/lib/etcd:0700 \
    --expose 2379 --expose 2380 --expose 4001 --expose 7001 --entrypoint '["/usr/local/bin/etcd"]'
  # CoreDNS (as tools/build-local-binaries.sh makes it: nonroot, cap_net_bind_service on /coredns)
  log "image $COREDNS_IMAGE"
  "${MKIMG[@]}" --name "$COREDNS_IMAGE" -o "$WORK/images/coredns.oci.tar" "${BASE_ENTRIES[@]}" \
    --file "$COREDNS_BIN:/coredns:0755" --cap /coredns:cap_net_bind_service \
    --user 65532:65532 --workdir / --expose 53 --expose 53/udp --entrypoint '["/coredns"]'
  # kindnetd cannot be built offline (its module is not served): a placeholder that says so and exits
  log "image $KINDNETD_IMAGE (placeholder)"
  "${MKIMG[@]}" --name "$KINDNETD_IMAGE" -o "$WORK/images/kindnetd-placeholder.oci.tar" \
    --file /bin/busybox:/bin/busybox:0755 --symlink /bin/sh:busybox \
    --text '/kindnetd:0755:#!/bin/sh\necho "kready: kindnetd is not in this node image (it cannot be built offline); create clusters with networking.disableDefaultCNI: true (the node has a ptp CNI config)" >&2\nexit 1\n' \
    --label io.kready.placeholder=true --entrypoint '["/kindnetd"]'
  python3 "$TOOLS/kind/docker_archive.py" -o "$KP_TAR" "$WORK/images/kube-proxy.oci.tar" "${EXTRA_OCI[@]}" | sed 's/^/  in kube-proxy.tar: /' >&2
fi

# ---- 6. server tarball --------------------------------------------------------------------------------------
step "server tarball $(basename "$SERVER_TGZ")"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl kubeadm)
srcs=()
for c in "${K8S_CMDS[@]}"; do srcs+=("$LOCAL_BIN/$c"); done
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do srcs+=("$IMG_DIR/$c.tar"); done
if ! fresh "$SERVER_TGZ" "${srcs[@]}"; then
  st=$WORK/server
  rm -rf "$st"
  mkdir -p "$st/kubernetes/server/bin"
  printf '%s\n' "$K8S_VERSION" > "$st/kubernetes/version"
  for c in "${K8S_CMDS[@]}"; do ln "$LOCAL_BIN/$c" "$st/kubernetes/server/bin/$c" 2>/dev/null || cp "$LOCAL_BIN/$c" "$st/kubernetes/server/bin/$c"; done
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    ln "$IMG_DIR/$c.tar" "$st/kubernetes/server/bin/$c.tar" 2>/dev/null || cp "$IMG_DIR/$c.tar" "$st/kubernetes/server/bin/$c.tar"
    printf '%s\n' "$K8S_VERSION" > "$st/kubernetes/server/bin/$c.docker_tag"
  done
  tar -C "$st" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - kubernetes | gzip -1 -n > "$SERVER_TGZ.tmp"
  mv -f "$SERVER_TGZ.tmp" "$SERVER_TGZ"
  rm -rf "$st"
fi
SERVER_SUM=$(sha256sum "$SERVER_TGZ" | cut -c1-16)
log "server tarball: $SERVER_TGZ ($(du -h "$SERVER_TGZ" | cut -f1), sha256 $SERVER_SUM...)"

# ---- 7. node image ------------------------------------------------------------------------------------------
step "node image $NODE_IMAGE"
STAMP="kind=$KIND_VERSION base=$BASE_IMAGE server=$SERVER_SUM image=$NODE_IMAGE"
node_id=$(have_image "$NODE_IMAGE" || true)
if [ -f "$NODE_STAMP" ] && [ "$(head -n1 "$NODE_STAMP")" = "$STAMP" ]; then
  want_id=$(sed -n 2p "$NODE_STAMP")
  if [ "$node_id" != "$want_id" ] && [ -f "$NODE_TAR" ]; then
    log "loading $NODE_TAR"
    docker load -i "$NODE_TAR" >/dev/null
    node_id=$(have_image "$NODE_IMAGE" || true)
  fi
  if [ -n "$node_id" ] && [ "$node_id" = "$want_id" ] && [ ! -f "$NODE_TAR" ]; then
    log "saving $NODE_TAR"
    docker save -o "$NODE_TAR.tmp" "$NODE_IMAGE"
    mv -f "$NODE_TAR.tmp" "$NODE_TAR"
  fi
  if [ -n "$node_id" ] && [ "$node_id" = "$want_id" ]; then
    log "up to date: $NODE_IMAGE ($node_id)"
    step "verify (cached image)"
    verify_node "$NODE_IMAGE"
    step "saved: $NODE_TAR"
    log "done in $((SECONDS - T0))s; cache: $KDIR"
    echo "$NODE_IMAGE"
    exit 0
  fi
fi
log "kind build node-image (log $NODE_DIR/build-node-image.log)"
rm -f "$NODE_STAMP"
if ! "$KIND" build node-image --type file "$SERVER_TGZ" --base-image "$BASE_IMAGE" --image "$NODE_IMAGE" \
    >"$NODE_DIR/build-node-image.log" 2>&1; then
  tail -n 30 "$NODE_DIR/build-node-image.log" >&2
  die "kind build node-image failed (log $NODE_DIR/build-node-image.log)"
fi
grep -i -E 'warn|fail' "$NODE_DIR/build-node-image.log" | grep -v 'support for cgroup v1 is deprecated' | sed 's/^/  kind: /' >&2 || true
node_id=$(have_image "$NODE_IMAGE")

# ---- 8. verify ----------------------------------------------------------------------------------------------
step "verify the images inside $NODE_IMAGE"
verify_node "$NODE_IMAGE"

# ---- 9. save ------------------------------------------------------------------------------------------------
step "docker save $NODE_IMAGE → $NODE_TAR"
docker save -o "$NODE_TAR.tmp" "$NODE_IMAGE"
mv -f "$NODE_TAR.tmp" "$NODE_TAR"
printf '%s\n%s\n' "$STAMP" "$node_id" > "$NODE_STAMP"
log "node image: $NODE_IMAGE ($node_id, $(du -h "$NODE_TAR" | cut -f1) saved); done in $((SECONDS - T0))s; cache: $KDIR"
echo "$NODE_IMAGE"
exit 0
}
