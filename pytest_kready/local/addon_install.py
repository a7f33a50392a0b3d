"""The add-ons of a local cluster — CoreDNS and local-path-provisioner, whose manifests are the ``addons/`` data
folder — and the profile's cluster manifests: rendered with the cluster's images and addresses, applied once the
API serves, and waited for until they are ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from kubernetes import client as k8s

from .. import client as kclient
from ..access import ClusterAccess
from ..errors import ProviderError
from ..profiles import Profile
from .layout import Layout
from .readiness import wait_for

ADDONS = Path(__file__).resolve().parent / "addons"


def image_named(images: list[str], prefix: str, bin_dir: Path) -> str:
    for name in images:
        if name.startswith(prefix):
            return name
    raise ProviderError(f"local provider: no image {prefix}* among the images in {bin_dir}; rebuild with tools/build-local-binaries.sh")


def _local_path_image_prefix(images: list[str]) -> str:
    for name in images:
        if "local-path-provisioner:" in name:
            return name
    return "docker.io/rancher/local-path-provisioner:"


def _helper_image_prefix(images: list[str]) -> str:
    for name in images:
        if "local-path-helper:" in name or "busybox:" in name:
            return name
    return "docker.io/library/busybox:"


def render_addons(layout: Layout, images: list[str], bin_dir: Path) -> list[dict]:
    """The add-on manifests with this cluster's images, DNS address and volume directory filled in."""
    subst = {
        "__COREDNS_IMAGE__": image_named(images, "registry.k8s.io/coredns/coredns:", bin_dir),
        "__DNS_IP__": layout.dns_ip,
        "__LOCAL_PATH_IMAGE__": image_named(images, _local_path_image_prefix(images), bin_dir),
        "__HELPER_IMAGE__": image_named(images, _helper_image_prefix(images), bin_dir),
        "__LOCAL_PATH_DIR__": str(layout.path("local-path")),
    }
    docs = []
    for f in sorted(ADDONS.glob("*.yaml")):
        text = f.read_text()
        for k, v in subst.items():
            text = text.replace(k, v)
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def _ready_to_apply(api) -> bool:
    try:
        api.raw("GET", "/api/v1/namespaces/kube-system")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


def apply_addons(layout: Layout, kubeconfig: Path, images: list[str], bin_dir: Path, profile: Profile, *,
                 diagnose_kubelet: Callable[[], str]) -> None:
    """Apply the add-ons and the profile's cluster manifests, and label the node as the control plane."""
    docs = render_addons(layout, images, bin_dir)
    for f in profile.cluster_manifests:
        docs += kclient.load_manifests(f)
    api = kclient.new_api_client(ClusterAccess(kubeconfig=kubeconfig))
    wait_for("default service account", lambda: _ready_to_apply(api), timeout=30)
    for obj in docs:
        kclient.apply(api, obj)
    label_node(api, layout.node_name, diagnose_kubelet)


def label_node(api, node_name: str, diagnose_kubelet: Callable[[], str]) -> None:
    def label():
        try:
            api.raw("PATCH", f"/api/v1/nodes/{node_name}", content_type="application/merge-patch+json",
                    body={"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}})
            return True
        except Exception:  # noqa: BLE001 - node not registered yet
            return False

    wait_for("node registration", label, timeout=60, diagnose=diagnose_kubelet)


def wait_addons_ready(apps: k8s.AppsV1Api, *, timeout: float, diagnose: Callable[[], str]) -> None:
    """CoreDNS and local-path-provisioner have all their replicas ready."""

    def deployment_ready(ns, name):
        d = apps.read_namespaced_deployment(name, ns)
        return (d.status.ready_replicas or 0) >= (d.spec.replicas or 1)

    wait_for("CoreDNS", lambda: deployment_ready("kube-system", "coredns"), timeout=timeout, diagnose=diagnose)
    wait_for("local-path-provisioner", lambda: deployment_ready("local-path-storage", "local-path-provisioner"),
             timeout=timeout, diagnose=diagnose)
