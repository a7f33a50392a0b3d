"""Command lines and configuration files of a local cluster's components, from its layout and binaries."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .layout import Layout
from .runtime import Runtime

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"


def write_kubeconfig(path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str, cluster: str) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)
    return path


def containerd_config(layout: Layout, rt: Runtime) -> str:
    """containerd's configuration: version 3 for containerd 2.x (the bundled one), version 2 for a host's 1.6/1.7.

    Nothing shared with another cluster: NRI off (its socket is a fixed host path); state, sockets and runc's root
    under this cluster's directories. (containerd 2 always adds ``/etc/containerd/conf.d/*.toml`` to its imports.)"""
    version = rt.containerd_version()
    if version is None or version[0] >= 2:
        return _containerd_config_v3(layout, rt.cni_bin)
    return _containerd_config_v2(layout, rt.cni_bin)


def _containerd_header(layout: Layout, version: int) -> str:
    """What both config versions share: this cluster's root, state, socket and opt directory; plugins off."""
    base = layout.base
    return f"""version = {version}
root = "{base / 'containerd'}"
state = "{layout.run / 'containerd'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'containerd-opt'}"
"""


def _containerd_config_v3(layout: Layout, cni_bin: Path) -> str:
    cri = 'plugins."io.containerd.cri.v1'
    return _containerd_header(layout, 3) + f"""
[{cri}.images"]
  snapshotter = "overlayfs"
  [{cri}.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[{cri}.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{cri}.runtime".containerd]
    default_runtime_name = "runc"
    [{cri}.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{layout.run / 'runc'}"
  [{cri}.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{layout.base / 'cni' / 'net.d'}"
"""


def _containerd_config_v2(layout: Layout, cni_bin: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return _containerd_header(layout, 2) + f"""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{layout.run / 'runc'}"
  [{cri}.cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{layout.base / 'cni' / 'net.d'}"
"""


def cni_config(layout: Layout) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": layout.cni_network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": layout.node_pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.path("cni", "ipam")),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: Layout, pki: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDomain": "cluster.local",
        "clusterDNS": [layout.dns_ip],
        "resolvConf": str(layout.path("resolv.conf")),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "podLogsDir": str(layout.path("pod-logs")),
        "staticPodPath": "",
        # Images are imported, never pulled: keep image GC away from them, and disk pressure from evicting.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": False,
        "maxPods": 110,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(layout: Layout, kubeconfig: Path) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": layout.pod_cidr,
        "hostnameOverride": layout.node_name,
        "bindAddress": layout.node_ip,
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


class Argv:
    """Command lines, given the binaries directory and the cluster's files."""

    def __init__(self, layout: Layout, bin_dir: Path):
        self.layout = layout
        self.bin = bin_dir
        self.pki = layout.path("pki")

    def etcd(self, data_dir: Path) -> list[str]:
        p, ip = self.pki, self.layout.node_ip
        return [
            str(self.bin / "etcd"),
            "--name", "kready",
            "--data-dir", str(data_dir),
            "--listen-client-urls", f"https://127.0.0.1:2379,https://{ip}:2379",
            "--advertise-client-urls", "https://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "kready=http://127.0.0.1:2380",
            "--initial-cluster-state", "new",
            "--listen-metrics-urls", f"http://{ip}:2381",
            "--cert-file", str(p / "etcd-server.crt"), "--key-file", str(p / "etcd-server.key"),
            "--trusted-ca-file", str(p / "etcd-ca.crt"), "--client-cert-auth",
            "--snapshot-count", "10000",
        ]

    def apiserver(self, extra: dict[str, str]) -> list[str]:
        p, lay = self.pki, self.layout
        args = {
            "advertise-address": lay.node_ip,
            "bind-address": "0.0.0.0",
            "secure-port": "6443",
            "etcd-servers": "https://127.0.0.1:2379",
            "etcd-cafile": str(p / "etcd-ca.crt"),
            "etcd-certfile": str(p / "apiserver-etcd-client.crt"),
            "etcd-keyfile": str(p / "apiserver-etcd-client.key"),
            "client-ca-file": str(p / "ca.crt"),
            "tls-cert-file": str(p / "apiserver.crt"),
            "tls-private-key-file": str(p / "apiserver.key"),
            "kubelet-client-certificate": str(p / "apiserver-kubelet-client.crt"),
            "kubelet-client-key": str(p / "apiserver-kubelet-client.key"),
            "kubelet-preferred-address-types": "InternalIP",
            "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
            "service-account-key-file": str(p / "sa.pub"),
            "service-account-signing-key-file": str(p / "sa.key"),
            "service-cluster-ip-range": lay.service_cidr,
            "authorization-mode": "Node,RBAC",
            "enable-admission-plugins": "NodeRestriction",
            "allow-privileged": "true",
            "requestheader-client-ca-file": str(p / "front-proxy-ca.crt"),
            "requestheader-allowed-names": "front-proxy-client",
            "requestheader-extra-headers-prefix": "X-Remote-Extra-",
            "requestheader-group-headers": "X-Remote-Group",
            "requestheader-username-headers": "X-Remote-User",
            "proxy-client-cert-file": str(p / "front-proxy-client.crt"),
            "proxy-client-key-file": str(p / "front-proxy-client.key"),
        }
        args.update(extra)
        return [str(self.bin / "kube-apiserver"), *(f"--{k}={v}" for k, v in args.items())]

    def controller_manager(self, kubeconfig: Path) -> list[str]:
        p, lay = self.pki, self.layout
        return [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--cluster-cidr={lay.pod_cidr}",
            "--allocate-node-cidrs=true",
            "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={lay.service_cidr}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--controllers=*,bootstrapsigner,tokencleaner",
            # the client's rate limit (default 20/s, burst 30) paced its start: each controller's ServiceAccount
            # and token are requested one after the other before it runs (~120 requests), so a namespace's
            # default ServiceAccount, and with it the first pod, came ~4 s after the API server was ready
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]

    def scheduler(self, kubeconfig: Path) -> list[str]:
        return [
            str(self.bin / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]

    def kubelet(self, config: Path, kubeconfig: Path) -> list[str]:
        lay = self.layout
        return [
            str(self.bin / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={lay.node_name}",
            f"--node-ip={lay.node_ip}",
            f"--root-dir={lay.path('kubelet')}",
        ]

    def kube_proxy(self, config: Path) -> list[str]:
        return [str(self.bin / "kube-proxy"), f"--config={config}"]
