"""RBAC helpers: who is a system subject, which bindings hand out cluster-admin or wildcard roles to
workloads, what a ServiceAccount token may actually do, and an API client with no credentials at all.

The reach of a token is *tried*, not reviewed: a request for a Secret name that does not exist answers 403
when refused and 404 when authorized (authorization comes before the lookup), so nothing is read either way;
lists and watches carry a field selector matching no object for the same reason.
"""

from __future__ import annotations

import dataclasses
import secrets as _secrets
from typing import Any

from ..client import Response, send

RBAC_GROUP = "rbac.authorization.k8s.io"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
# groups that are "everyone" of a kind: never system, whatever their prefix
EVERYONE_GROUPS = frozenset({"system:authenticated", "system:unauthenticated", "system:serviceaccounts"})
EVERYONE_USERS = frozenset({"system:anonymous"})


def is_system_namespace(ns: str | None) -> bool:
    return bool(ns) and (ns in SYSTEM_NAMESPACES or ns.startswith("kube-"))


def is_system_subject(subject: dict) -> bool:
    """System subjects are the cluster's own: ``system:`` users and groups (not the everyone-groups, not
    ``system:anonymous``) and ServiceAccounts of kube-* namespaces other than their ``default``."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return name.startswith("system:") and name not in EVERYONE_USERS
    if kind == "Group":
        return (name.startswith("system:") and name not in EVERYONE_GROUPS
                and not name.startswith("system:serviceaccounts:"))
    if kind == "ServiceAccount":
        return is_system_namespace(subject.get("namespace")) and name != "default"
    return False


def is_workload_subject(subject: dict) -> bool:
    """Subjects a workload's pod runs as: ServiceAccounts outside kube-*, or groups of all ServiceAccounts."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return not is_system_namespace(subject.get("namespace")) or name == "default"
    if kind == "Group":
        return name == "system:serviceaccounts" or (
            name.startswith("system:serviceaccounts:") and not is_system_namespace(name.split(":", 2)[2]))
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


def cluster_admin_offenders(cluster_bindings: list[dict], role_bindings: list[dict]) -> list[dict[str, str]]:
    """Non-system subjects bound to the ClusterRole cluster-admin (cluster-wide, or in one namespace)."""
    out = []
    for scope, items in (("cluster-wide", cluster_bindings), ("namespace", role_bindings)):
        for b in items:
            role = b.get("roleRef") or {}
            if role.get("kind") != "ClusterRole" or role.get("name") != "cluster-admin":
                continue
            for s in b.get("subjects") or []:
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

    @property
    def refused(self) -> bool:
        return self.response.status in (401, 403)

    @property
    def allowed(self) -> bool:
        return self.response.status in self.allowed_statuses

    @property
    def undecided(self) -> bool:
        return not (self.refused or self.allowed)

    def evidence(self) -> dict[str, Any]:
        meaning = "refused" if self.refused else "allowed" if self.allowed else "undecided"
        return {"action": self.action, "request": f"{self.method} {self.path}", "query": self.query,
                "status": self.response.status, "meaning": meaning,
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


def exec_tries(api, namespace: str, *, post: bool) -> list[Try]:
    """pods/exec into a pod that does not exist, as kubectl does it (websocket GET; SPDY POST when ``post``):
    403 is a refusal, 404 means the exec was authorized and only the missing pod stopped it."""
    pod = absent_name()
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    query = {"command": "true", "stdout": "true", "stderr": "true"}
    out = [Try("exec (websocket GET)", "GET", path, query,
               send(api, "GET", path, query=query, headers=WEBSOCKET_HEADERS, timeout=15),
               allowed_statuses=(101, 200, 400, 404))]
    if post:
        out.append(Try("exec (SPDY POST)", "POST", path, query, send(api, "POST", path, query=query, timeout=15),
                       allowed_statuses=(101, 200, 400, 404)))
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


def list_all(api, path: str) -> list[dict] | None:
    """Every item at ``path`` (paged), or None when the list is refused."""
    items: list[dict] = []
    cont = None
    while True:
        resp = send(api, "GET", path, query={"limit": 500, "continue": cont})
        if resp.status in (401, 403, 404):
            return None
        if not resp.ok:
            raise RuntimeError(f"GET {path}: HTTP {resp.status} {resp.message}")
        items += resp.body.get("items") or []
        cont = (resp.body.get("metadata") or {}).get("continue")
        if not cont:
            return items


def has_token_volume(pod: dict | None) -> bool:
    """True when an admitted pod carries a ServiceAccount token volume (the kube-api-access-* projection)."""
    for v in ((pod or {}).get("spec") or {}).get("volumes") or []:
        if str(v.get("name", "")).startswith("kube-api-access-"):
            return True
        for src in (v.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in src:
                return True
    return False
