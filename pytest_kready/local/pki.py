"""Certificates and keys for a local cluster (ECDSA P-256, signed by throw-away CAs), and the kubeconfigs of its
components and admin: ``write_cluster_pki`` makes them all."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .components import write_kubeconfig
from .layout import Layout

VALIDITY = datetime.timedelta(days=30)


@dataclasses.dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


class CA:
    def __init__(self, directory: Path, name: str, cn: str):
        self.key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = _name(cn)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pair = Pair(
            _write(directory / f"{name}.crt", self.cert.public_bytes(serialization.Encoding.PEM), 0o644),
            _write(directory / f"{name}.key", _pem_key(self.key)),
        )
        self.directory = directory

    def issue(
        self,
        name: str,
        cn: str,
        *,
        orgs: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> Pair:
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, orgs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Pair(
            _write(self.directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644),
            _write(self.directory / f"{name}.key", _pem_key(key)),
        )


def service_account_keys(directory: Path) -> Pair:
    key = _key()
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Pair(_write(directory / "sa.pub", pub, 0o644), _write(directory / "sa.key", _pem_key(key)))


# component kubeconfigs: file name → (user name, organisations)
USERS = {
    "admin": ("kubernetes-admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kubelet": ("system:node:{node}", ("system:nodes",)),
    "kube-proxy": ("system:kube-proxy", ()),
}


def write_cluster_pki(lay: Layout, d: Path, conf: Path) -> None:
    """Every certificate and key of the cluster into ``d``; the admin kubeconfig at ``lay.kubeconfig`` and the
    components' kubeconfigs into ``conf``."""
    ca = CA(d, "ca", "kubernetes")
    etcd_ca = CA(d, "etcd-ca", "etcd-ca")
    CA(d, "front-proxy-ca", "front-proxy-ca").issue("front-proxy-client", "front-proxy-client", client=True)
    etcd_ca.issue("etcd-server", "kready-etcd", server=True, client=True, dns=("localhost",), ips=("127.0.0.1", lay.node_ip))
    etcd_ca.issue("etcd-client", "kready-etcdctl", client=True)
    etcd_ca.issue("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True)
    ca.issue(
        "apiserver", "kube-apiserver", server=True,
        dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
             "localhost", lay.node_name),
        ips=(lay.node_ip, lay.api_service_ip, "127.0.0.1"),
    )
    ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",), client=True)
    ca.issue("kubelet-serving", lay.node_name, server=True, dns=(lay.node_name,), ips=(lay.node_ip,))
    service_account_keys(d)
    for name, (cn, orgs) in USERS.items():
        cn = cn.format(node=lay.node_name)
        pair = ca.issue(name, cn, orgs=orgs, client=True)
        target = lay.kubeconfig if name == "admin" else conf / f"{name}.kubeconfig"
        write_kubeconfig(target, server=lay.api_url, ca=d / "ca.crt", cert=pair.cert, key=pair.key, user=cn,
                         cluster=f"kready-{lay.name}")
