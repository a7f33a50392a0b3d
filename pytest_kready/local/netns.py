"""The cluster's network namespace, the veth pair the host reaches it by, and the host-side guard routes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import ProviderError
from .layout import Layout

NETNS_DIR = Path("/run/netns")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise ProviderError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def in_netns(layout: Layout, argv: list[str]) -> list[str]:
    """argv run inside the cluster's network namespace (network only: the mount namespace stays the host's,
    so kubelet's volume mounts are seen by containerd)."""
    return ["nsenter", f"--net={NETNS_DIR / layout.netns}", "--", *argv]


def guard_routes(layout: Layout) -> list[list[str]]:
    """Host routes that keep the cluster's ranges off every outside interface: `unreachable` for the pod and
    service ranges, at a low priority so nothing else is shadowed. They do not depend on any interface."""
    return [["unreachable", layout.pod_cidr, "metric", "4242"], ["unreachable", layout.service_cidr, "metric", "4242"]]


def exists(layout: Layout) -> bool:
    return (NETNS_DIR / layout.netns).exists()


def setup(layout: Layout) -> None:
    # The guard first, so it holds from the first packet on.
    for route in guard_routes(layout):
        _ip("route", "replace", *route)
    _ip("netns", "add", layout.netns)
    ns = ["-n", layout.netns]
    _ip(*ns, "link", "set", "lo", "up")
    _ip("link", "add", layout.host_if, "type", "veth", "peer", "name", layout.node_if, "netns", layout.netns)
    _ip("addr", "add", f"{layout.host_ip}/{layout.node_prefix}", "dev", layout.host_if)
    _ip("link", "set", layout.host_if, "up")
    _ip(*ns, "addr", "add", f"{layout.node_ip}/{layout.node_prefix}", "dev", layout.node_if)
    _ip(*ns, "link", "set", layout.node_if, "up")
    # No default route inside the namespace: an address outside the cluster is unreachable from it. The Service
    # range gets a route of its own (a node's default route serves it elsewhere): a locally sent packet to a
    # ClusterIP needs one before kube-proxy's OUTPUT rules rewrite it to a pod — the API server calling a webhook or
    # an aggregated API through its Service, a process on the node calling a Service.
    _ip(*ns, "route", "add", layout.service_cidr, "dev", layout.node_if, "src", layout.node_ip)
    for key, value in (
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
        ("net/ipv4/conf/all/route_localnet", "1"),
        # refusals of denied UDP probes (ICMP port unreachable) are not rate-limited: probes fail fast
        ("net/ipv4/icmp_ratelimit", "0"),
    ):
        write_sysctl(layout, key, value)


def write_sysctl(layout: Layout, key: str, value: str) -> None:
    proc = subprocess.run(
        in_netns(layout, ["sh", "-c", 'echo "$1" > "/proc/sys/$2"', "sysctl", value, key]),
        capture_output=True, text=True, timeout=30,
    )
    if proc.returncode != 0:
        raise ProviderError(f"cannot set {key} in the cluster's network namespace: {proc.stderr.strip()}")


def teardown(layout: Layout) -> None:
    """Remove the namespace (its interfaces, bridge, iptables rules and ipsets go with it), the host end of the
    veth pair, and the guard routes. Safe when parts are already gone."""
    if exists(layout):
        _ip("netns", "del", layout.netns, check=False)
    if Path(f"/sys/class/net/{layout.host_if}").exists():
        _ip("link", "del", layout.host_if, check=False)
    for route in guard_routes(layout):
        _ip("route", "del", *route, check=False)


def leftovers(layout: Layout) -> list[str]:
    """What of ours is still on the host (empty when clean)."""
    found = []
    if exists(layout):
        found.append(f"network namespace {layout.netns}")
    if Path(f"/sys/class/net/{layout.host_if}").exists():
        found.append(f"interface {layout.host_if}")
    routes = _ip("route", "show", "table", "main", check=False).stdout
    for cidr in (layout.pod_cidr, layout.service_cidr):
        for line in routes.splitlines():
            if line.startswith(f"unreachable {cidr}") and "metric 4242" in line:
                found.append(f"route {line.strip()}")
    return found
