"""RBAC checks, acted out with real credentials; each check is a function returning a ``findings.CheckResult``:
``default_sa_secrets``, ``default_sa_exec`` (with ``ExecControl``, its positive control), ``token_automount``,
``cluster_admin_subjects``, ``wildcards`` and ``anonymous``. Also: who is a system subject (the known
control-plane ServiceAccounts are listed with their source: a kube-* namespace alone makes nothing "system"),
which bindings hand out cluster-admin or wildcard roles to workloads, what a ServiceAccount token may actually do,
and an API client with no credentials at all.

The reach of a token is *tried*, not reviewed: a request for a Secret name that does not exist answers 403
when refused and 404 when authorized (authorization comes before the lookup), so nothing is read either way;
lists and watches carry a field selector matching no object for the same reason. A pass needs the whole view
and a positive control; a partial view or an answer that decides nothing is inconclusive.
"""

from __future__ import annotations

import dataclasses
import re
import secrets as _secrets
import threading
import time
from typing import Any

from ..client import Response, send
from ..findings import CheckResult, Verdict
from ..resources import profile_file
from . import references as ref

RBAC_GROUP = "rbac.authorization.k8s.io"
RB = f"/apis/{RBAC_GROUP}/v1"
# groups that are "everyone" of a kind: never system, whatever their prefix
EVERYONE_GROUPS = frozenset({"system:authenticated", "system:unauthenticated", "system:serviceaccounts"})
EVERYONE_USERS = frozenset({"system:anonymous"})
SA_USER_PREFIX = "system:serviceaccount:"

# The ServiceAccounts the control plane itself runs as, and where each comes from (Kubernetes v1.36, the pinned
# version; feature-gated ones included). Being in a kube-* namespace makes nothing "system": any other
# ServiceAccount there (a Helm tiller, an operator installed into kube-system, a namespace's default) is a
# workload's identity like any other and is judged as one.
_CONTROLLER_SOURCE = ("kube-controller-manager --use-service-account-credentials: one ServiceAccount per controller, "
                      "bound to ClusterRole system:controller:<name> (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/"
                      "controller_policy.go)")
CONTROLLER_SERVICEACCOUNTS = (
    "attachdetach-controller", "certificate-controller", "clusterrole-aggregation-controller", "cronjob-controller",
    "daemon-set-controller", "deployment-controller", "device-taint-eviction-controller", "disruption-controller",
    "endpoint-controller", "endpointslice-controller", "endpointslicemirroring-controller",
    "ephemeral-volume-controller", "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler",
    "job-controller", "kube-apiserver-serving-clustertrustbundle-publisher", "legacy-service-account-token-cleaner",
    "namespace-controller", "node-controller", "persistent-volume-binder", "pod-garbage-collector",
    "podcertificaterequestcleaner", "podgroup-protection-controller", "pv-protection-controller",
    "pvc-protection-controller", "replicaset-controller", "replication-controller", "resource-claim-controller",
    "resourcepoolstatusrequest-controller", "resourcequota-controller", "root-ca-cert-publisher", "route-controller",
    "selinux-warning-controller", "service-account-controller", "service-cidrs-controller", "service-controller",
    "statefulset-controller", "storage-version-garbage-collector", "storage-version-migrator-controller",
    "ttl-after-finished-controller", "ttl-controller", "validatingadmissionpolicy-status-controller",
    "volumeattributesclass-protection-controller",
)
CONTROL_PLANE_SERVICEACCOUNTS: dict[tuple[str, str], str] = {
    **{("kube-system", n): _CONTROLLER_SOURCE for n in CONTROLLER_SERVICEACCOUNTS},
    **{("kube-system", n): ("bootstrap policy: Role system:controller:" + n + " in kube-system "
                            "(bootstrappolicy/namespace_policy.go)")
       for n in ("bootstrap-signer", "token-cleaner", "cloud-provider")},
    **{("kube-system", n): ("bootstrap policy: leader-election RoleBinding in kube-system "
                            "(bootstrappolicy/namespace_policy.go)")
       for n in ("kube-controller-manager", "leader-election-controller", "kube-scheduler")},
    ("kube-system", "kube-dns"): "bootstrap policy: ClusterRoleBinding system:kube-dns (bootstrappolicy/policy.go)",
    ("kube-system", "coredns"): "kubeadm's CoreDNS add-on (cmd/kubeadm/app/phases/addons/dns), and the local provider's",
    ("kube-system", "kube-proxy"): "kubeadm's kube-proxy add-on (cmd/kubeadm/app/phases/addons/proxy)",
    ("kube-system", "kindnet"): "kind's default CNI (kind pkg/build/nodeimage/const_cni.go)",
    ("kube-system", "cloud-controller-manager"): "an external cloud-controller-manager (k8s.io/cloud-provider "
                                                 "example manifests)",
}


def control_plane_serviceaccount(namespace: str | None, name: str | None) -> str | None:
    """Where a known control-plane ServiceAccount comes from, or None when it is not one."""
    return CONTROL_PLANE_SERVICEACCOUNTS.get((str(namespace or ""), str(name or "")))


def _sa_of_user(name: str) -> tuple[str, str] | None:
    """(namespace, name) when a User subject names a ServiceAccount's identity (system:serviceaccount:NS:NAME)."""
    if not name.startswith(SA_USER_PREFIX):
        return None
    ns, _, sa = name[len(SA_USER_PREFIX):].partition(":")
    return (ns, sa) if ns and sa else None


def is_system_subject(subject: dict) -> bool:
    """System subjects are the cluster's own: ``system:`` users and groups (not the everyone-groups, not
    ``system:anonymous``, not the groups of all ServiceAccounts of a namespace) and the known control-plane
    ServiceAccounts (``CONTROL_PLANE_SERVICEACCOUNTS``) — not every ServiceAccount of a kube-* namespace."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        if (sa := _sa_of_user(name)) is not None:
            return control_plane_serviceaccount(*sa) is not None
        return name.startswith("system:") and name not in EVERYONE_USERS
    if kind == "Group":
        return (name.startswith("system:") and name not in EVERYONE_GROUPS
                and not name.startswith("system:serviceaccounts:"))
    if kind == "ServiceAccount":
        return control_plane_serviceaccount(subject.get("namespace"), name) is not None
    return False


def is_workload_subject(subject: dict) -> bool:
    """Subjects a workload's pod runs as: any ServiceAccount that is not a known control-plane one (its User
    form ``system:serviceaccount:NS:NAME`` too), and the groups of all ServiceAccounts (of a namespace)."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return control_plane_serviceaccount(subject.get("namespace"), name) is None
    if kind == "User" and (sa := _sa_of_user(name)) is not None:
        return control_plane_serviceaccount(*sa) is None
    if kind == "Group":
        return name == "system:serviceaccounts" or name.startswith("system:serviceaccounts:")
    return False


def subject_str(subject: dict) -> str:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return f"ServiceAccount {subject.get('namespace')}/{name}"
    return f"{kind} {name}"


def is_system_role(role: dict) -> bool:
    meta = role.get("metadata") or {}
    labels = meta.get("labels") or {}
    return str(meta.get("name", "")).startswith("system:") or labels.get("kubernetes.io/bootstrapping") == "rbac-defaults"


def wildcard_rules(role: dict) -> list[dict]:
    """Rules of ``role`` with ``*`` among their verbs or resources."""
    return [r for r in role.get("rules") or [] if "*" in (r.get("verbs") or []) or "*" in (r.get("resources") or [])]


def _binding_ref(b: dict) -> str:
    meta = b.get("metadata") or {}
    kind = b.get("kind") or ("RoleBinding" if meta.get("namespace") else "ClusterRoleBinding")
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{kind} {where}{meta.get('name')}"


# kubeadm (since 1.29, kubeadm init's phase "kubeconfig/admin") binds cluster-admin to the group of its admin.conf
# credential, so that credential can be revoked without system:masters: kind's and every kubeadm cluster's own,
# reported in the evidence as the platform's, not as an offender.
KUBEADM_ADMINS = "kubeadm:cluster-admins"
KUBEADM_ADMINS_NOTE = ("kubeadm binds cluster-admin to the group kubeadm:cluster-admins, the identity of its "
                       "admin.conf (cmd/kubeadm/app/phases/kubeconfig): whoever holds that file or a certificate "
                       "with O=kubeadm:cluster-admins is cluster-admin; keep it out of CI and people's hands")


def is_platform_admin_binding(binding: dict, subject: dict) -> bool:
    """kubeadm's own ClusterRoleBinding kubeadm:cluster-admins → Group kubeadm:cluster-admins."""
    return ((binding.get("metadata") or {}).get("name") == KUBEADM_ADMINS and not binding["metadata"].get("namespace")
            and subject.get("kind") == "Group" and subject.get("name") == KUBEADM_ADMINS)


def cluster_admin_offenders(cluster_bindings: list[dict], role_bindings: list[dict]) -> list[dict[str, str]]:
    """Non-system subjects bound to the ClusterRole cluster-admin (cluster-wide, or in one namespace); kubeadm's
    own binding of its admin.conf group is the platform's, not an offender (``is_platform_admin_binding``)."""
    out = []
    for scope, items in (("cluster-wide", cluster_bindings), ("namespace", role_bindings)):
        for b in items:
            role = b.get("roleRef") or {}
            if role.get("kind") != "ClusterRole" or role.get("name") != "cluster-admin":
                continue
            for s in b.get("subjects") or []:
                if scope == "cluster-wide" and is_platform_admin_binding(b, s):
                    continue
                if not is_system_subject(s):
                    where = scope if scope == "cluster-wide" else f"namespace {b['metadata'].get('namespace')}"
                    out.append({"binding": _binding_ref({**b, "kind": "ClusterRoleBinding" if scope == "cluster-wide"
                                                          else "RoleBinding"}),
                                "subject": subject_str(s), "scope": where})
    return out


def cluster_admin_bindings(cluster_bindings: list[dict]) -> list[str]:
    return [b["metadata"]["name"] for b in cluster_bindings
            if (b.get("roleRef") or {}).get("name") == "cluster-admin" and (b.get("roleRef") or {}).get("kind") == "ClusterRole"]


def wildcard_offenders(cluster_roles: list[dict], roles: list[dict], cluster_bindings: list[dict],
                       role_bindings: list[dict]) -> tuple[list[dict[str, Any]], list[str]]:
    """(non-system roles with wildcards bound to workload subjects, every non-system wildcard role)."""
    wild: dict[tuple[str, str | None, str], list[dict]] = {}
    for r in cluster_roles:
        if not is_system_role(r) and wildcard_rules(r):
            wild[("ClusterRole", None, r["metadata"]["name"])] = wildcard_rules(r)
    for r in roles:
        if not is_system_role(r) and wildcard_rules(r):
            wild[("Role", r["metadata"].get("namespace"), r["metadata"]["name"])] = wildcard_rules(r)
    offenders = []
    for scope, items in (("ClusterRoleBinding", cluster_bindings), ("RoleBinding", role_bindings)):
        for b in items:
            ref = b.get("roleRef") or {}
            ns = b["metadata"].get("namespace")
            key = (ref.get("kind"), ns if ref.get("kind") == "Role" else None, ref.get("name"))
            if key not in wild:
                continue
            workloads = [subject_str(s) for s in b.get("subjects") or [] if is_workload_subject(s)]
            if workloads:
                role = f"{key[0]} {key[1] + '/' if key[1] else ''}{key[2]}"
                offenders.append({"role": role, "binding": _binding_ref({**b, "kind": scope}),
                                  "subjects": workloads, "wildcard_rules": wild[key]})
    roles_seen = [f"{k[0]} {k[1] + '/' if k[1] else ''}{k[2]}" for k in wild]
    return offenders, roles_seen


def bindings_granting(subject_ns: str, subject_name: str, cluster_bindings: list[dict],
                      role_bindings: list[dict]) -> list[str]:
    """Bindings whose subjects include the ServiceAccount (directly or through its groups)."""
    groups = {"system:serviceaccounts", f"system:serviceaccounts:{subject_ns}", "system:authenticated"}
    out = []
    for b in cluster_bindings + [rb for rb in role_bindings if rb["metadata"].get("namespace") == subject_ns]:
        if str((b.get("roleRef") or {}).get("name", "")).startswith("system:"):
            continue  # the stock discovery and self-review roles every identity has
        for s in b.get("subjects") or []:
            if (s.get("kind") == "ServiceAccount" and s.get("name") == subject_name
                    and s.get("namespace") == subject_ns) or (s.get("kind") == "Group" and s.get("name") in groups):
                kind = "RoleBinding" if b["metadata"].get("namespace") else "ClusterRoleBinding"
                out.append(f"{_binding_ref({**b, 'kind': kind})} → {(b.get('roleRef') or {}).get('kind')} "
                           f"{(b.get('roleRef') or {}).get('name')}")
                break
    return out


# --- reading the bindings ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Listing:
    """Every item at a cluster-wide list path, or None with the HTTP status when the list was refused."""

    path: str
    items: list[dict] | None
    status: int

    @property
    def read(self) -> bool:
        return self.items is not None

    def describe(self) -> str:
        return f"{len(self.items)} read" if self.items is not None else f"not readable (HTTP {self.status})"


def list_listing(api, path: str) -> Listing:
    """Every item at ``path`` (paged); None items with the status when the list is refused."""
    items: list[dict] = []
    cont = None
    while True:
        resp = send(api, "GET", path, query={"limit": 500, "continue": cont})
        if resp.status in (401, 403, 404):
            return Listing(path, None, resp.status)
        if not resp.ok:
            raise RuntimeError(f"GET {path}: HTTP {resp.status} {resp.message}")
        items += resp.body.get("items") or []
        cont = (resp.body.get("metadata") or {}).get("continue")
        if not cont:
            return Listing(path, items, resp.status)


def list_all(api, path: str) -> list[dict] | None:
    """Every item at ``path`` (paged), or None when the list is refused."""
    return list_listing(api, path).items


@dataclasses.dataclass
class Bindings:
    """The ClusterRoleBindings and RoleBindings (all namespaces) as far as the run may read them."""

    cluster_listing: Listing
    namespaced_listing: Listing

    @property
    def cluster(self) -> list[dict] | None:
        return self.cluster_listing.items

    @property
    def namespaced(self) -> list[dict] | None:
        return self.namespaced_listing.items

    def __getitem__(self, key: str) -> list[dict] | None:  # the old dict form: bindings["cluster"]
        return {"cluster": self.cluster, "namespaced": self.namespaced}[key]


def read_bindings(api) -> Bindings:
    return Bindings(list_listing(api, f"{RB}/clusterrolebindings"), list_listing(api, f"{RB}/rolebindings"))


# --- attempts ------------------------------------------------------------------------------------------------


def absent_name() -> str:
    return f"kready-absent-{_secrets.token_hex(4)}"


@dataclasses.dataclass
class Try:
    """One request made with some identity, and what the answer means."""

    action: str
    method: str
    path: str
    query: dict[str, Any]
    response: Response
    allowed_statuses: tuple[int, ...] = (200, 201, 404)
    refused_statuses: tuple[int, ...] = (401, 403)
    allowed_reason: str | None = None  # the Status reason an "allowed" answer must carry (None: any)
    refused_pattern: str | None = None  # what a refusal's message must say (None: any); else undecided

    @property
    def refused(self) -> bool:
        if self.response.status not in self.refused_statuses:
            return False
        return self.refused_pattern is None or re.search(self.refused_pattern, self.response.message) is not None

    @property
    def allowed(self) -> bool:
        if self.response.status not in self.allowed_statuses:
            return False
        return self.allowed_reason is None or self.response.reason == self.allowed_reason

    @property
    def undecided(self) -> bool:
        return not (self.refused or self.allowed)

    @property
    def meaning(self) -> str:
        return "refused" if self.refused else "allowed" if self.allowed else "undecided"

    def evidence(self) -> dict[str, Any]:
        return {"action": self.action, "request": f"{self.method} {self.path}", "query": self.query,
                "status": self.response.status, "meaning": self.meaning,
                "message": self.response.message[:300] if not self.response.ok else ""}


def secret_tries(api, namespace: str) -> list[Try]:
    """get, list and watch Secrets in ``namespace`` as ``api``'s identity; nothing can come back."""
    name = absent_name()
    base = f"/api/v1/namespaces/{namespace}/secrets"
    selector = f"metadata.name={name}"
    out = []
    for action, path, query in (
            ("get", f"{base}/{name}", {}),
            ("list", base, {"fieldSelector": selector, "limit": 1}),
            ("watch", base, {"watch": "true", "fieldSelector": selector, "timeoutSeconds": 1})):
        out.append(Try(action, "GET", path, query, send(api, "GET", path, query=query, timeout=15)))
    return out


WEBSOCKET_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": "a3JlYWR5LWV4ZWMtcHJvYmU=", "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}
# what the RBAC authorizer says when it refuses pods/exec (the websocket GET is authorized as create since 1.31)
EXEC_REFUSAL = r'cannot \w+ resource "pods/exec"'
EXEC_QUERY = {"command": "true", "stdout": "true", "stderr": "true"}


def exec_tries(api, namespace: str, *, post: bool, pod: str | None = None) -> list[Try]:
    """pods/exec into a pod that does not exist, as kubectl does it (websocket GET; SPDY POST when ``post``).
    Only two answers decide: 403 with the authorizer's refusal (refused), and 404 NotFound for the pod (the exec
    was authorized and only the missing pod stopped it). Anything else — 400, 401, 5xx, a 403 from something
    other than the authorizer — is undecided."""
    pod = pod or absent_name()
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    judged = dict(allowed_statuses=(404,), allowed_reason="NotFound", refused_statuses=(403,),
                  refused_pattern=EXEC_REFUSAL)
    out = [Try("exec (websocket GET)", "GET", path, dict(EXEC_QUERY),
               send(api, "GET", path, query=EXEC_QUERY, headers=WEBSOCKET_HEADERS, timeout=15), **judged)]
    if post:
        out.append(Try("exec (SPDY POST)", "POST", path, dict(EXEC_QUERY),
                       send(api, "POST", path, query=EXEC_QUERY, timeout=15), **judged))
    return out


def whoami(api) -> tuple[int, str | None]:
    """SelfSubjectReview: (HTTP status, username) of ``api``'s identity."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    resp = send(api, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body)
    user = ((resp.body or {}).get("status") or {}).get("userInfo", {}).get("username") if resp.ok else None
    return resp.status, user


def anonymous_client(base, *, mode: str):
    """A client for the same API server as ``base`` that sends no credentials at all."""
    from .. import client

    return client.anonymous_client(base, mode=mode, retry_deadline=20, retry_attempts=3)


CLUSTER_LISTS = (
    ("namespaces", "/api/v1/namespaces"), ("nodes", "/api/v1/nodes"), ("pods", "/api/v1/pods"),
    ("secrets", "/api/v1/secrets"), ("configmaps", "/api/v1/configmaps"),
    ("serviceaccounts", "/api/v1/serviceaccounts"), ("deployments", "/apis/apps/v1/deployments"),
    ("clusterroles", f"/apis/{RBAC_GROUP}/v1/clusterroles"),
)
NAMESPACE_LISTS = ("pods", "secrets", "configmaps", "serviceaccounts", "services")


def list_tries(api, paths: list[tuple[str, str]]) -> list[Try]:
    """List each path with a field selector that matches nothing (so nothing is read even when allowed)."""
    query = {"fieldSelector": f"metadata.name={absent_name()}", "limit": 1}
    return [Try(f"list {what}", "GET", path, query, send(api, "GET", path, query=query, timeout=15),
                allowed_statuses=(200,)) for what, path in paths]


def has_token_volume(pod: dict | None) -> bool:
    """True when an admitted pod carries a ServiceAccount token volume (the kube-api-access-* projection)."""
    for v in ((pod or {}).get("spec") or {}).get("volumes") or []:
        if str(v.get("name", "")).startswith("kube-api-access-"):
            return True
        for src in (v.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in src:
                return True
    return False


# --- the positive control of rbac.default-sa-exec ------------------------------------------------------------


class ExecControl:
    """An identity that may exec, making the same request as the default ServiceAccount: it must get past
    authorisation (404 NotFound for the absent pod), else a 403 for the ServiceAccount proves nothing about this
    API server's answers. First the run's own identity, in the target namespace itself; if that is refused, in
    standard mode a ServiceAccount the run creates in a throw-away namespace of its own and binds there to a Role
    allowing pods/exec (the same request, in that namespace). In readonly mode nothing is created, and the
    evidence says what could not be shown."""

    SA_NAME = "kready-exec-control"
    SETTLE = 15.0  # RBAC caches: how long a fresh binding may take to authorize

    def __init__(self, cluster, as_serviceaccount):
        self.cluster = cluster
        self.as_serviceaccount = as_serviceaccount
        self._scratch: tuple[str, Any] | None = None
        self._scratch_error: str | None = None
        self.namespace: str | None = None
        self._lock = threading.Lock()  # target namespaces are judged side by side: one scratch identity for all

    def show(self, namespace: str, pod: str, *, post: bool) -> dict[str, Any]:
        """``{"shown": bool, ...}``: whether an authorised identity got past authorisation on this request."""
        own = exec_tries(self.cluster.api_client(), namespace, post=post, pod=pod)
        out: dict[str, Any] = {"run_identity": {"namespace": namespace, "attempts": [t.evidence() for t in own]}}
        if all(t.allowed for t in own):
            return {"shown": True, "identity": "the run's own identity", "namespace": namespace, **out}
        statuses = ", ".join(f"{t.action}: HTTP {t.response.status} ({t.meaning})" for t in own)
        from ..settings import READONLY

        if self.cluster.mode == READONLY:
            return {"shown": False, **out, "why_not": (
                f"the run's own identity does not get past authorisation on the same request in {namespace} "
                f"({statuses}), and readonly mode creates no ServiceAccount that may exec, so no identity showed "
                "what an authorised exec looks like here")}
        scratch = self._scratch_identity()
        if scratch is None:
            return {"shown": False, **out, "why_not": (
                f"the run's own identity does not get past authorisation in {namespace} ({statuses}), and a "
                f"ServiceAccount allowed to exec could not be made: {self._scratch_error}")}
        ns, api = scratch
        deadline = time.monotonic() + self.SETTLE
        while True:
            tries = exec_tries(api, ns, post=post, pod=pod)
            if all(t.allowed for t in tries) or time.monotonic() > deadline:
                break
            time.sleep(1)
        out["scratch_serviceaccount"] = {"identity": f"system:serviceaccount:{ns}:{self.SA_NAME}", "namespace": ns,
                                         "attempts": [t.evidence() for t in tries]}
        if all(t.allowed for t in tries):
            return {"shown": True, "identity": f"ServiceAccount {ns}/{self.SA_NAME} (bound to pods/exec by the run)",
                    "namespace": ns, **out}
        return {"shown": False, **out, "why_not": (
            f"neither the run's own identity ({statuses}) nor ServiceAccount {ns}/{self.SA_NAME}, bound to "
            "pods/exec, got past authorisation on the same request")}

    def _scratch_identity(self):
        with self._lock:
            return self._make_scratch_identity()

    def _make_scratch_identity(self):
        if self._scratch is not None or self._scratch_error is not None:
            return self._scratch
        from .. import errors

        try:
            ns = self.namespace = self.cluster.scratch_namespace("exec-control")
            rbac_v1 = f"{RBAC_GROUP}/v1"
            self.cluster.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.SA_NAME}},
                                namespace=ns)
            self.cluster.create({"apiVersion": rbac_v1, "kind": "Role", "metadata": {"name": self.SA_NAME},
                                 "rules": [{"apiGroups": [""], "resources": ["pods/exec"],
                                            "verbs": ["create", "get"]}]}, namespace=ns)
            self.cluster.create({"apiVersion": rbac_v1, "kind": "RoleBinding", "metadata": {"name": self.SA_NAME},
                                 "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": self.SA_NAME},
                                 "subjects": [{"kind": "ServiceAccount", "name": self.SA_NAME, "namespace": ns}]},
                                namespace=ns)
            self._scratch = (ns, self.as_serviceaccount(ns, self.SA_NAME))
        except (errors.KreadyError, errors.APIError) as e:
            self._scratch_error = f"{type(e).__name__}: {e}"
        return self._scratch

    def close(self, *, failed: bool) -> None:
        if self.namespace is not None:
            from ..cleanup import Ref

            self.cluster.release([Ref("v1", "Namespace", self.namespace)], failed=failed)


# --- the checks: each returns findings.CheckResult ----------------------------------------------------------


NO_TARGETS = ("no target namespaces (readonly mode without --kready-namespaces and no non-system namespace in the "
              "cluster)")


def sa_login(cluster, ns: str, as_serviceaccount, fields: dict) -> tuple[Any, dict] | CheckResult:
    """A client holding a real token of ``ns``'s default ServiceAccount and the positive control that it
    authenticates as that ServiceAccount, or the result saying why not (not-applicable / inconclusive)."""
    from .. import errors

    expected = f"system:serviceaccount:{ns}:default"
    if not cluster.can("create", "serviceaccounts", namespace=ns, subresource="token"):
        return CheckResult(Verdict.NOT_APPLICABLE, f"no permission to create serviceaccounts/token in namespace {ns} "
                           "(TokenRequest for its default ServiceAccount)", target_namespace=ns, **fields)
    try:
        cluster.api_client().raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
    except errors.APINotFound:
        return CheckResult(Verdict.NOT_APPLICABLE, f"namespace {ns} has no default ServiceAccount (or is gone)",
                           target_namespace=ns, **fields)
    except errors.APIForbidden:
        pass  # may not read it; the token request says more
    try:
        sa = as_serviceaccount(ns)
    except errors.APIError as e:
        return CheckResult(Verdict.INCONCLUSIVE, f"TokenRequest for {expected} failed: {e}", target_namespace=ns,
                           **fields)
    status, user = whoami(sa)
    control = {"selfsubjectreview": {"status": status, "username": user}, "expected": expected}
    if user != expected:
        return CheckResult(Verdict.INCONCLUSIVE, f"positive control failed: the token does not authenticate as "
                           f"{expected} (SelfSubjectReview: HTTP {status}, user {user})", target_namespace=ns,
                           evidence={"positive_control": control}, **fields)
    return sa, control


def _granted_by(bindings: Bindings, ns: str) -> list[str] | str:
    if bindings.cluster is None or bindings.namespaced is None:
        return "bindings not readable by this run"
    return bindings_granting(ns, "default", bindings.cluster, bindings.namespaced)


def _sa_remediation(ns: str, what: str) -> str:
    return (f"Remove what grants the default ServiceAccount of {ns} {what} (evidence.granted_by lists the bindings; "
            f"kubectl get rolebindings,clusterrolebindings -A -o wide | grep -e '{ns}/default' -e system:serviceaccounts"
            " -e system:authenticated), and give each workload a ServiceAccount of its own bound to a Role with only "
            "the verbs and resource names it needs, e.g.\n"
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: app-config-reader\n"
            f"  namespace: {ns}\nrules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n"
            "    resourceNames: [app-config]\n    verbs: [get]")


def judge_tries(ns: str, tries: list[Try], bindings: Bindings, evidence: dict, fields: dict, *, what: str, fail,
                passed: str, control: dict | None = None) -> CheckResult:
    """One result from requests made as the default ServiceAccount: any allowed → fail (naming the bindings that
    grant it); any neither refused nor allowed → inconclusive; all refused → pass, unless ``control`` (a positive
    control that must have been shown) was not shown → inconclusive, saying what it could not show."""
    allowed = [t.action for t in tries if t.allowed]
    undecided = [t for t in tries if t.undecided]
    if allowed:
        evidence["granted_by"] = _granted_by(bindings, ns)
        verdict, summary = Verdict.FAIL, fail(allowed)
    elif undecided:
        verdict, summary = Verdict.INCONCLUSIVE, ("neither the authorizer's refusal nor an authorised answer for "
                                                  + ", ".join(f"{t.action} (HTTP {t.response.status})"
                                                              for t in undecided))
    elif control is not None and not control.get("shown"):
        verdict, summary = Verdict.INCONCLUSIVE, ("refused, but the positive control was not shown: "
                                                  + str(control.get("why_not")))
    else:
        verdict, summary = Verdict.PASS, passed
    return CheckResult(verdict, summary, target_namespace=ns, evidence=evidence,
                       request=[f"{t.method} {t.path}" for t in tries], response=[t.response.summary() for t in tries],
                       remediation=None if verdict is Verdict.PASS else _sa_remediation(ns, what), **fields)


def default_sa_secrets(cluster, ns: str, as_serviceaccount, bindings: Bindings) -> CheckResult:
    """rbac.default-sa-secrets for ``ns``: get, list, watch Secrets with the default ServiceAccount's token."""
    fields = dict(severity="high", references=(ref.CIS_SECRETS, ref.CIS_DEFAULT_SA, ref.NSA_RBAC),
                  repro=f"kubectl get secrets -n {ns} --as=system:serviceaccount:{ns}:default")
    login = sa_login(cluster, ns, as_serviceaccount, fields)
    if isinstance(login, CheckResult):
        return login
    sa, control = login
    tries = secret_tries(sa, ns)
    evidence = {"identity": control["expected"], "positive_control": control, "attempts": [t.evidence() for t in tries]}
    return judge_tries(
        ns, tries, bindings, evidence, fields, what="access to Secrets",
        fail=lambda allowed: (f"the default ServiceAccount may {', '.join(allowed)} Secrets in {ns} (tried with its "
                              "own token): every pod without a ServiceAccount of its own can read them"),
        passed=f"get, list and watch of Secrets in {ns} refused (403) for its default ServiceAccount")


def default_sa_exec(cluster, ns: str, as_serviceaccount, bindings: Bindings, exec_control: ExecControl) -> CheckResult:
    """rbac.default-sa-exec for ``ns``: pods/exec with the default ServiceAccount's token, and the same request
    made by an identity that may exec (``ExecControl``)."""
    from ..settings import READONLY

    fields = dict(severity="high", references=(ref.CIS_DEFAULT_SA, ref.CIS_CREATE_PODS, ref.NSA_RBAC),
                  repro=f"kubectl exec -n {ns} kready-absent --as=system:serviceaccount:{ns}:default -- true "
                        "# Forbidden = refused, NotFound = allowed")
    login = sa_login(cluster, ns, as_serviceaccount, fields)
    if isinstance(login, CheckResult):
        return login
    sa, token_control = login
    post = cluster.mode != READONLY
    pod = absent_name()
    tries = exec_tries(sa, ns, post=post, pod=pod)
    control = exec_control.show(ns, pod, post=post)
    evidence = {"identity": token_control["expected"],
                "positive_control": {"token": token_control, "authorised_exec": control},
                "attempts": [t.evidence() for t in tries],
                "note": ("the exec targets a pod name that does not exist: 404 NotFound means authorised, 403 with the "
                         "authorizer's refusal means refused, anything else decides nothing")}
    return judge_tries(
        ns, tries, bindings, evidence, fields, what="pods/exec", control=control,
        fail=lambda allowed: (f"the default ServiceAccount of {ns} may exec into pods ({', '.join(allowed)} "
                              "authorized): any pod without its own ServiceAccount can run commands in its "
                              "neighbours"),
        passed=(f"pods/exec in {ns} refused (403) for its default ServiceAccount; {control.get('identity')} gets past "
                "authorisation on the same request (positive control)"))


def _token_remediation(ns: str) -> str:
    try:
        text = profile_file("hardened", "namespace", "serviceaccount.yaml").read_text().replace(
            "namespace: app", f"namespace: {ns}")
    except OSError:
        text = f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n" \
               "automountServiceAccountToken: false\n"
    return (f"Stop mounting the default ServiceAccount's token into pods of {ns} (pods that need the API get a "
            f"ServiceAccount of their own and set automountServiceAccountToken: true):\n"
            f"kubectl patch serviceaccount default -n {ns} -p '{{\"automountServiceAccountToken\": false}}'\n---\n"
            + "\n".join(line for line in text.splitlines() if not line.startswith("#")))


def token_automount(cluster, ns: str) -> CheckResult:
    """rbac.token-automount for ``ns``: dry-run a pod that says nothing about tokens, and one that asks for it."""
    from .. import attempts, errors

    refs = (ref.CIS_TOKEN_MOUNT, ref.CIS_DEFAULT_SA, ref.NSA_SA_TOKENS)
    image = cluster.settings.image
    plain = attempts.compliant_pod(image, attempts.probe_name("automount"))
    del plain["spec"]["automountServiceAccountToken"]  # what most workloads do: say nothing
    asked = attempts.compliant_pod(image, attempts.probe_name("automount-control"))
    asked["spec"]["automountServiceAccountToken"] = True
    attempt = attempts.attempt_create(cluster, plain, ns)
    control = attempts.attempt_create(cluster, asked, ns)
    try:
        sa_setting = cluster.api_client().raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default").get(
            "automountServiceAccountToken")
    except errors.APIError as e:
        sa_setting = f"unreadable ({type(e).__name__})"
    evidence = {"serviceaccount_automountServiceAccountToken": sa_setting,
                "pod_without_setting": attempt.evidence() | {"token_volume": has_token_volume(attempt.obj)},
                "positive_control_pod_asking_for_token": control.evidence() | {
                    "token_volume": has_token_volume(control.obj)}}
    if attempt.outcome in (attempts.NO_PERMISSION, attempts.NAMESPACE_GONE):
        verdict, summary = Verdict.NOT_APPLICABLE, f"cannot dry-run pods in {ns}: {attempt.describe()}"
    elif not (attempt.accepted and control.accepted):
        verdict, summary = Verdict.INCONCLUSIVE, (
            "the dry-run pods were not admitted, so what would be mounted is unknown: "
            f"{attempt.describe() if not attempt.accepted else control.describe()}")
    elif not has_token_volume(control.obj):
        verdict, summary = Verdict.INCONCLUSIVE, ("positive control failed: a pod asking for its token "
                                                  "(automountServiceAccountToken: true) gets none either, so the "
                                                  "absence proves nothing (ServiceAccount admission plugin off?)")
    elif has_token_volume(attempt.obj):
        verdict, summary = Verdict.FAIL, (f"a pod in {ns} that says nothing gets the default ServiceAccount's API "
                                          "token mounted (kube-api-access volume)")
    else:
        verdict, summary = Verdict.PASS, (f"a pod in {ns} that says nothing gets no token; one that asks does "
                                          "(positive control)")
    return CheckResult(verdict, summary, target_namespace=ns, severity="medium", references=refs,
                       request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", plain),
                       response=attempt.evidence(),
                       repro=(f"kubectl run kready-automount -n {ns} --image={image} --dry-run=server "
                              "-o jsonpath='{.spec.volumes[*].name}'"),
                       remediation=None if verdict is Verdict.PASS else _token_remediation(ns), evidence=evidence)


def cluster_admin_subjects(bindings: Bindings) -> CheckResult:
    """rbac.cluster-admin-subjects: non-system subjects bound to the ClusterRole cluster-admin, cluster-wide or in
    any namespace. A pass needs the whole view: the stock binding seen (positive control) and the RoleBindings
    of every namespace read; with a partial view, offenders found still fail, and finding none is inconclusive."""
    cluster, namespaced = bindings.cluster, bindings.namespaced
    stock = cluster_admin_bindings(cluster or [])
    evidence: dict[str, Any] = {"positive_control": {"bindings_to_cluster_admin_seen": stock},
                                "clusterrolebindings": bindings.cluster_listing.describe(),
                                "rolebindings": bindings.namespaced_listing.describe(),
                                "rolebindings_read": namespaced is not None}
    fields = dict(severity="critical", references=(ref.CIS_CLUSTER_ADMIN, ref.CIS_SYSTEM_MASTERS, ref.NSA_RBAC),
                  request=[f"GET {RB}/clusterrolebindings", f"GET {RB}/rolebindings"],
                  repro=("kubectl get clusterrolebindings,rolebindings -A -o custom-columns='KIND:.kind,NS:.metadata."
                         "namespace,NAME:.metadata.name,ROLE:.roleRef.name,SUBJECTS:.subjects[*].name' | grep cluster-admin"),
                  response={"clusterrolebindings": None if cluster is None else len(cluster),
                            "rolebindings": None if namespaced is None else len(namespaced)},
                  evidence=evidence)
    if cluster is None:
        return CheckResult(Verdict.NOT_APPLICABLE, "no permission to list clusterrolebindings "
                           f"(HTTP {bindings.cluster_listing.status})", **fields)
    if not stock:
        return CheckResult(Verdict.INCONCLUSIVE, "positive control failed: no binding to the ClusterRole cluster-admin "
                           "is visible (not even the stock one for system:masters), so an empty result proves nothing",
                           **fields)
    offenders = cluster_admin_offenders(cluster, namespaced or [])
    evidence["offenders"] = offenders
    platform = [f"ClusterRoleBinding {b['metadata']['name']} → Group {s['name']}" for b in cluster
                if (b.get("roleRef") or {}).get("name") == "cluster-admin"
                for s in b.get("subjects") or [] if is_platform_admin_binding(b, s)]
    if platform:
        evidence["platform_bindings"] = {"bindings": platform, "note": KUBEADM_ADMINS_NOTE}
    evidence["system_serviceaccounts"] = {
        f"{s.get('namespace')}/{s.get('name')}": control_plane_serviceaccount(s.get("namespace"), s.get("name"))
        for b in cluster + (namespaced or []) if (b.get("roleRef") or {}).get("name") == "cluster-admin"
        for s in b.get("subjects") or [] if s.get("kind") == "ServiceAccount" and is_system_subject(s)}
    if offenders:
        names = sorted({o["binding"] for o in offenders})
        partial = "" if namespaced is not None else (
            f" (RoleBindings not readable, HTTP {bindings.namespaced_listing.status}: there may be more)")
        return CheckResult(
            Verdict.FAIL, f"cluster-admin is bound to {len(offenders)} non-system subject(s): "
            + "; ".join(f"{o['subject']} by {o['binding']} ({o['scope']})" for o in offenders) + partial,
            remediation=("Bind people and workloads to roles with only what they need, then delete the bindings to "
                         "cluster-admin: " + "; ".join(f"kubectl delete {n.split(' ', 1)[0].lower()} "
                                                        + (f"-n {n.split(' ', 1)[1].split('/')[0]} {n.split('/')[-1]}"
                                                           if '/' in n else n.split(' ', 1)[1]) for n in names)
                         + ". Break-glass access belongs to a group used only in emergencies, audited."),
            **fields)
    if namespaced is None:
        return CheckResult(
            Verdict.INCONCLUSIVE, "partial view: the ClusterRoleBindings bind cluster-admin only to system subjects "
            f"({', '.join(stock)}), but the RoleBindings could not be listed (HTTP {bindings.namespaced_listing.status}), "
            "so a RoleBinding to cluster-admin in any namespace would go unseen (grant list rolebindings cluster-wide)",
            **fields)
    kubeadm = f"; kubeadm's admin.conf group {KUBEADM_ADMINS} (see evidence)" if platform else ""
    return CheckResult(Verdict.PASS, f"cluster-admin is bound only to system subjects ({', '.join(stock)}; "
                       f"{len(namespaced)} RoleBindings read{kubeadm})", **fields)


def wildcards(api, bindings: Bindings) -> CheckResult:
    """rbac.wildcards: non-system Roles and ClusterRoles with * verbs or resources bound to workload subjects."""
    roles_listing = list_listing(api, f"{RB}/roles")
    cluster_roles_listing = list_listing(api, f"{RB}/clusterroles")
    cluster_roles, roles = cluster_roles_listing.items or [], roles_listing.items or []
    fields = dict(severity="high", references=(ref.CIS_WILDCARDS, ref.NSA_RBAC),
                  request=[f"GET {RB}/clusterroles", f"GET {RB}/roles", f"GET {RB}/clusterrolebindings",
                           f"GET {RB}/rolebindings"],
                  repro=("kubectl get clusterroles,roles -A -o jsonpath='{range .items[*]}{.kind} {.metadata.namespace}/"
                         "{.metadata.name} {.rules}{\"\\n\"}{end}' | grep '\"\\*\"'"))
    control_role = next((r for r in cluster_roles if r["metadata"]["name"] == "cluster-admin"), None)
    control = {"cluster-admin_wildcard_rules_detected": bool(control_role and wildcard_rules(control_role))}
    unread = [lst for lst in (cluster_roles_listing, roles_listing, bindings.cluster_listing,
                              bindings.namespaced_listing) if not lst.read]
    if not control["cluster-admin_wildcard_rules_detected"]:
        return CheckResult(Verdict.INCONCLUSIVE, "positive control failed: the wildcard rules of the stock ClusterRole "
                           "cluster-admin are not visible, so finding none elsewhere proves nothing",
                           evidence={"positive_control": control}, **fields)
    offenders, wildcard_roles = wildcard_offenders(cluster_roles, roles, bindings.cluster or [], bindings.namespaced or [])
    evidence = {"positive_control": control, "offenders": offenders, "non_system_wildcard_roles": wildcard_roles,
                "not_readable": [f"{lst.path} (HTTP {lst.status})" for lst in unread]}
    response = {"clusterroles": len(cluster_roles), "roles": len(roles)}
    if offenders:
        return CheckResult(
            Verdict.FAIL, f"{len(offenders)} binding(s) give workloads non-system roles with * verbs or resources: "
            + "; ".join(f"{o['role']} to {', '.join(o['subjects'])} by {o['binding']}" for o in offenders),
            response=response, evidence=evidence,
            remediation=("List the verbs, resources and resource names each workload uses (kubectl auth can-i --list "
                         "--as=system:serviceaccount:NS:SA shows today's reach) and replace the wildcards with them, "
                         "e.g. rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch]}]"),
            **fields)
    if unread:
        return CheckResult(Verdict.INCONCLUSIVE, "partial view: " + ", ".join(evidence["not_readable"])
                           + " could not be listed, so a wildcard role bound there would go unseen",
                           response=response, evidence=evidence, **fields)
    extra = f"; non-system wildcard roles bound to no workload: {', '.join(wildcard_roles)}" if wildcard_roles else ""
    return CheckResult(Verdict.PASS, "no non-system role with * verbs or resources is bound to a workload" + extra,
                       response=response, evidence=evidence, **fields)


def anonymous(cluster, targets: list[str]) -> list[CheckResult]:
    """rbac.anonymous: list with no credentials at all, cluster-wide and in each target namespace."""
    from .. import attempts, client

    api = cluster.api_client()
    anon = anonymous_client(api, mode=cluster.mode)
    try:
        version = client.send(anon, "GET", "/version")
        anonymous_auth = ("enabled (anonymous requests are authenticated as system:anonymous)" if version.status != 401
                          else "disabled (401 for every anonymous request)")
        scopes: list[tuple[str | None, list[tuple[str, str]]]] = [(None, list(CLUSTER_LISTS))]
        for ns in targets:
            scopes.append((ns, [(r, f"/api/v1/namespaces/{ns}/{r}") for r in NAMESPACE_LISTS]))
        refs = (ref.CIS_ANONYMOUS, ref.NSA_AUTHN, ref.NSA_RBAC)

        def judge(scope: tuple[str | None, list[tuple[str, str]]]) -> CheckResult:
            ns, paths = scope
            tries = list_tries(anon, paths)
            controls = list_tries(api, paths)
            listable = [c.action for c in controls if c.allowed]
            allowed = [t for t in tries if t.allowed]
            undecided = [t for t in tries if t.undecided]
            first = paths[0][1]
            evidence = {"anonymous_auth": anonymous_auth, "anonymous_version_status": version.status,
                        "attempts": [t.evidence() for t in tries],
                        "positive_control": {"listable_by_the_run": listable}}
            where = f"namespace {ns}" if ns else "cluster-wide"
            if allowed:
                verdict, summary = Verdict.FAIL, (f"anonymous requests may {', '.join(t.action for t in allowed)} "
                                                  f"({where})")
            elif not listable:
                verdict, summary = Verdict.INCONCLUSIVE, (f"positive control failed: the run itself may list none of "
                                                          f"these ({where}), so refusals of anonymous prove little")
            elif undecided:
                verdict, summary = Verdict.INCONCLUSIVE, ("no refusal and no acceptance for anonymous "
                                                          + ", ".join(f"{t.action} (HTTP {t.response.status})"
                                                                      for t in undecided))
            else:
                verdict, summary = Verdict.PASS, (f"anonymous requests list nothing ({where}: "
                                                  f"{len(tries)} lists refused; anonymous auth {anonymous_auth.split(' ')[0]})")
            return CheckResult(
                verdict, summary, target_namespace=ns, severity="critical", references=refs,
                request=[f"GET {t.path} (no credentials)" for t in tries],
                response=[t.response.summary() for t in tries], evidence=evidence,
                repro=("curl -sk \"$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
                       f"{first}\""),
                remediation=None if verdict is Verdict.PASS else (
                    "Remove every binding to system:anonymous or system:unauthenticated (kubectl get "
                    "clusterrolebindings,rolebindings -A -o wide | grep -e system:anonymous -e system:unauthenticated), "
                    "and turn anonymous authentication off (kube-apiserver --anonymous-auth=false, or an "
                    "AuthenticationConfiguration allowing anonymous only for /livez, /readyz and /healthz)."))

        out = attempts.each_namespace(judge, scopes)  # the scopes side by side, in their order
    finally:
        anon.close()
    return out
