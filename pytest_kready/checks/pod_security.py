"""Attack pods for every control of the Pod Security Standards (baseline and restricted profiles), and the
verdict rules of the pod-security checks.

Each attack pod is the compliant pod (``attempts.compliant_pod``) with one change, written as operations on
paths, so the change is exact, shown in the evidence, and checked again on the admitted pod (a mutating policy
that neutralises the change counts as a refusal). Where the API itself requires a second change (a privileged
container may not also forbid privilege escalation; a HostProcess pod must use the host network), the attack
names it in ``also`` and a refusal only counts when its message names the control under test.

The controls are those of the policy registry of ``k8s.io/pod-security-admission`` at the pinned Kubernetes
version (``data/psa-controls-v1.<minor>.json``, written by ``tools/gen_psa_controls.py``): each attack names the
registry checks (``psa``) its change violates, and a registry check no attack names is a gap the unit tests report.
The functions ``compliant_result`` and ``attack_result`` turn what was tried into the ``CheckResult`` a suite
records.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from ..attempts import (DRY_RUN_UNSUPPORTED, INVALID, NAMESPACE_GONE, NO_PERMISSION, Attempt, CrossCheck,
                        compliant_container, kubectl_create, probe_name, request_evidence)
from ..findings import CheckResult, Verdict
from ..resources import profile_file
from . import references as ref

try:  # the one definition of the pinned Kubernetes version
    from ..local.bins import K8S_VERSION as PINNED_K8S_VERSION
except ImportError:  # trees from before pytest_kready.local.bins
    from ..settings import LOCAL_K8S_VERSION as PINNED_K8S_VERSION

_MISSING = object()
Path_ = tuple[Any, ...]

POD_SC = ("spec", "securityContext")
C0 = ("spec", "containers", 0)
C0_SC = C0 + ("securityContext",)


@dataclasses.dataclass(frozen=True)
class Op:
    """``set`` a value at a path of the pod, or ``delete`` what is there."""

    action: str  # "set" | "delete"
    path: Path_
    value: Any = None

    def describe(self) -> str:
        where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in self.path).replace(".[", "[")
        if self.action == "delete":
            return f"{where} unset"
        return f"{where}: {_compact(self.value)}"


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else \
        json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


def set_(*path: Any, value: Any) -> Op:
    return Op("set", tuple(path), value)


def delete(*path: Any) -> Op:
    return Op("delete", tuple(path))


@dataclasses.dataclass(frozen=True)
class Attack:
    name: str  # the pytest parameter id
    check_id: str
    control: str  # Pod Security Standards control
    level: str  # baseline | restricted
    severity: str
    description: str
    ops: tuple[Op, ...]
    references: tuple[str, ...]
    also: tuple[str, ...] = ()  # other controls the pod must violate for the API to accept it
    marker: str | None = None  # regex a refusal message names the control by (used when ``also``)
    psa: tuple[str, ...] = ()  # the checks of the pod-security-admission registry its change violates

    @property
    def covers(self) -> tuple[tuple[str, str], ...]:
        """The (level, Pod Security Standards control) rows it covers: those of its registry checks."""
        return tuple(dict.fromkeys(
            (REGISTRY.level_of(i) or self.level, control_name(i)) for i in self.psa)) or ((self.level, self.control),)

    def build(self, base: dict) -> dict:
        pod = copy.deepcopy(base)
        pod["metadata"]["name"] = probe_name(self.name)
        for op in self.ops:
            if op.action == "set":
                set_path(pod, op.path, copy.deepcopy(op.value))
            else:
                delete_path(pod, op.path)
        return pod

    def still_present(self, admitted: dict | None) -> bool:
        """True when the admitted pod still carries every change of the attack (no mutation undid it)."""
        if not isinstance(admitted, dict):
            return True  # nothing to look at: assume the worst
        for op in self.ops:
            seen = get_path(admitted, op.path)
            if op.action == "set":
                if seen is _MISSING or not contains(seen, op.value):
                    return False
            elif seen is not _MISSING and seen is not None:
                return False
        return True

    def changes(self) -> list[str]:
        return [op.describe() for op in self.ops]


# --- path helpers --------------------------------------------------------------------------------------------


def get_path(obj: Any, path: Path_) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or key >= len(obj):
                return _MISSING
        elif not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def set_path(obj: dict, path: Path_, value: Any) -> None:
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(obj, list):
            obj = obj[key]
            continue
        if key not in obj or obj[key] is None:
            obj[key] = [] if isinstance(nxt, int) else {}
        obj = obj[key]
    obj[path[-1]] = value


def delete_path(obj: dict, path: Path_) -> None:
    parent = get_path(obj, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
        # drop emptied parents (``securityContext: {}`` would still be a change of its own)
        for cut in range(len(path) - 1, 0, -1):
            holder = get_path(obj, path[: cut - 1]) if cut > 1 else obj
            value = get_path(obj, path[:cut])
            if isinstance(holder, dict) and value == {}:
                holder.pop(path[cut - 1], None)
            else:
                break


def contains(seen: Any, wanted: Any) -> bool:
    """``wanted`` is contained in ``seen`` (dicts: a subset, recursively; lists: element by element)."""
    if isinstance(wanted, dict):
        return isinstance(seen, dict) and all(k in seen and contains(seen[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(seen, list) and len(seen) == len(wanted) and all(
            contains(s, w) for s, w in zip(seen, wanted))
    return seen == wanted


# --- the controls: the pod-security-admission policy registry of the pinned version -----------------------

DATA_DIR = Path(__file__).resolve().parent / "data"

# The Pod Security Standards name of each check of the registry (https://kubernetes.io/docs/concepts/security/
# pod-security-standards/), in the order the Standards list them. A registry check missing here is shown by its ID.
PSA_CONTROL_NAMES = {
    "windowsHostProcess": "HostProcess", "hostNamespaces": "Host Namespaces", "privileged": "Privileged Containers",
    "capabilities_baseline": "Capabilities", "hostPathVolumes": "HostPath Volumes", "hostPorts": "Host Ports",
    "hostProbesAndHostLifecycle": "Host Probes / Lifecycle Hooks", "appArmorProfile": "AppArmor",
    "seLinuxOptions": "SELinux", "procMount": "/proc Mount Type", "seccompProfile_baseline": "Seccomp",
    "sysctls": "Sysctls",
    "restrictedVolumes": "Volume Types", "allowPrivilegeEscalation": "Privilege Escalation",
    "runAsNonRoot": "Running as Non-root", "runAsUser": "Running as Non-root user",
    "seccompProfile_restricted": "Seccomp", "capabilities_restricted": "Capabilities",
    "procMount_restricted": "/proc Mount Type",
}


@dataclasses.dataclass(frozen=True)
class PsaCheck:
    """One check of the registry: its ID, level, the policy version it applies from, the fields it restricts."""

    id: str
    level: str
    applies_from: str | None
    applies: bool  # registered, not experimental, and in force at the pinned version
    restricted_fields: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()  # baseline checks it replaces at the pinned version


@dataclasses.dataclass(frozen=True)
class PsaRegistry:
    module: str
    module_version: str
    kubernetes_version: str
    policy_version: str
    checks: tuple[PsaCheck, ...]

    @property
    def applicable(self) -> tuple[PsaCheck, ...]:
        return tuple(c for c in self.checks if c.applies)

    def get(self, check_id: str) -> PsaCheck | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def level_of(self, check_id: str) -> str | None:
        check = self.get(check_id)
        return check.level if check else None


def registry_file(kubernetes_version: str = PINNED_K8S_VERSION) -> Path:
    minor = re.match(r"v?1\.(\d+)", kubernetes_version)
    return DATA_DIR / f"psa-controls-v1.{minor.group(1) if minor else kubernetes_version}.json"


def parse_registry(doc: dict) -> PsaRegistry:
    return PsaRegistry(
        module=doc["module"], module_version=doc["module_version"], kubernetes_version=doc["kubernetes_version"],
        policy_version=doc["policy_version"],
        checks=tuple(PsaCheck(c["id"], c["level"], c.get("applies_from"), bool(c.get("applies_to_pinned_version")),
                              tuple(c.get("restricted_fields") or ()),
                              tuple(c.get("overrides_at_pinned_version") or ()))
                     for c in doc["checks"]))


def load_registry(kubernetes_version: str = PINNED_K8S_VERSION) -> PsaRegistry:
    path = registry_file(kubernetes_version)
    try:
        return parse_registry(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"the Pod Security Admission controls of Kubernetes {kubernetes_version} ({path}) cannot "
                           f"be read ({e}): run tools/gen_psa_controls.py") from None


REGISTRY = load_registry()


def control_name(check_id: str) -> str:
    """The Pod Security Standards name of a registry check (its ID when this module does not know it yet)."""
    return PSA_CONTROL_NAMES.get(check_id, check_id)


def pss_controls(registry: PsaRegistry) -> dict[str, tuple[str, ...]]:
    """Every control of the two profiles in force at the registry's version: level → control names."""
    order = list(PSA_CONTROL_NAMES)
    checks = sorted(registry.applicable, key=lambda c: order.index(c.id) if c.id in order else len(order))
    return {level: tuple(dict.fromkeys(control_name(c.id) for c in checks if c.level == level))
            for level in ("baseline", "restricted")}


def uncovered(registry: PsaRegistry, attacks) -> list[PsaCheck]:
    """The registry checks in force at its version that no attack pod names: gaps of the suite."""
    named = {i for a in attacks for i in a.psa}
    return [c for c in registry.applicable if c.id not in named]


def unknown(registry: PsaRegistry, attacks) -> dict[str, list[str]]:
    """Attack → the registry checks it names that the registry does not have (stale IDs)."""
    out = {a.name: [i for i in a.psa if registry.get(i) is None] for a in attacks}
    return {k: v for k, v in out.items() if v}


# --- the attacks ---------------------------------------------------------------------------------------------

B, R = "baseline", "restricted"
_PSS = {
    "HostProcess": ref.pss("HostProcess", B), "Host Namespaces": ref.pss("Host Namespaces", B),
    "Privileged Containers": ref.pss("Privileged Containers", B), "Capabilities": ref.pss("Capabilities", B),
    "HostPath Volumes": ref.pss("HostPath Volumes", B), "Host Ports": ref.pss("Host Ports", B),
    "AppArmor": ref.pss("AppArmor", B), "SELinux": ref.pss("SELinux", B),
    "/proc Mount Type": ref.pss("/proc Mount Type", B), "Seccomp": ref.pss("Seccomp", B),
    "Sysctls": ref.pss("Sysctls", B), "Volume Types": ref.pss("Volume Types", R),
    "Privilege Escalation": ref.pss("Privilege Escalation", R), "Running as Non-root": ref.pss("Running as Non-root", R),
    "Running as Non-root user": ref.pss("Running as Non-root user", R),
    "Seccomp (restricted)": ref.pss("Seccomp", R), "Capabilities (restricted)": ref.pss("Capabilities", R),
    "Host Probes / Lifecycle Hooks": ref.pss("Host Probes / Lifecycle Hooks", B),
    "/proc Mount Type (restricted)": ref.pss("/proc Mount Type", R),
}
_NSA = (ref.NSA_POD_SECURITY,)


def _privileged_init(image_placeholder: str = "__IMAGE__") -> dict:
    c = compliant_container(image_placeholder, name="init")
    c["securityContext"] = {"privileged": True, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    return c


# Host fields of probes and lifecycle handlers: with a host set, the kubelet makes the request itself, from the
# node's network, to that host (cloud metadata, node-local services) instead of to the pod. One attack per field
# the registry's hostProbesAndHostLifecycle check restricts in spec.containers, and one sidecar (a restartable
# init container, the only init container the API lets carry probes) for spec.initContainers.
_HTTP_HOST = {"host": "169.254.169.254", "path": "/latest/meta-data/", "port": 80}  # cloud metadata service
_TCP_HOST = {"host": "127.0.0.1", "port": 10250}  # the node's own kubelet port


def _probe_host(where: str, handler: str) -> Attack:
    """An attack setting ``<where>.<handler>.host``: ``where`` is a probe or ``postStart``/``preStop``."""
    value = {handler: dict(_HTTP_HOST if handler == "httpGet" else _TCP_HOST)}
    lifecycle = where in ("postStart", "preStop")
    path = C0 + (("lifecycle", where) if lifecycle else (where,))
    target = f"{value[handler]['host']}:{value[handler]['port']}"
    if lifecycle and handler == "tcpSocket":
        severity = "low"
        why = ("a deprecated handler the kubelet does not run, still a field the control forbids: a policy missing it "
               "misses what the Standards list")
    else:
        severity = "medium"
        why = f"the kubelet connects from the node to {target}, not to the pod"
    kind = f"{where} hook" if lifecycle else where
    return Attack(f"{where}-{handler}-host", "pod-security.probe-host", "Host Probes / Lifecycle Hooks", B, severity,
                  f"a container whose {kind} ({handler}) names a host ({why})",
                  (set_(*path, value=value),), (_PSS["Host Probes / Lifecycle Hooks"], *_NSA),
                  psa=("hostProbesAndHostLifecycle",))


def _sidecar_probe_host(image_placeholder: str = "__IMAGE__") -> dict:
    c = compliant_container(image_placeholder, name="sidecar")
    c["restartPolicy"] = "Always"
    c["startupProbe"] = {"httpGet": dict(_HTTP_HOST)}
    return c


PROBE_HOST_ATTACKS = tuple(_probe_host(where, handler) for where in (
    "livenessProbe", "readinessProbe", "startupProbe", "postStart", "preStop") for handler in ("httpGet", "tcpSocket"))

ATTACKS: tuple[Attack, ...] = (
    # ---- baseline profile ----
    Attack("hostProcess", "pod-security.host-process", "HostProcess", B, "high",
           "a Windows HostProcess pod (full access to a Windows node)",
           (set_(*POD_SC, "windowsOptions", value={"hostProcess": True}), set_("spec", "hostNetwork", value=True)),
           (_PSS["HostProcess"], ref.CIS_HOST_PROCESS, *_NSA), also=("host-namespaces",), marker=r"hostprocess",
           psa=("windowsHostProcess",)),
    Attack("hostNetwork", "pod-security.host-namespaces", "Host Namespaces", B, "high",
           "a pod in the node's network namespace (sees and binds node interfaces, bypasses NetworkPolicy)",
           (set_("spec", "hostNetwork", value=True),), (_PSS["Host Namespaces"], ref.CIS_HOST_NETWORK, *_NSA),
           psa=("hostNamespaces",)),
    Attack("hostPID", "pod-security.host-namespaces", "Host Namespaces", B, "high",
           "a pod in the node's PID namespace (sees, signals and ptraces node processes)",
           (set_("spec", "hostPID", value=True),), (_PSS["Host Namespaces"], ref.CIS_HOST_PID, *_NSA),
           psa=("hostNamespaces",)),
    Attack("hostIPC", "pod-security.host-namespaces", "Host Namespaces", B, "medium",
           "a pod in the node's IPC namespace (reads node shared memory)",
           (set_("spec", "hostIPC", value=True),), (_PSS["Host Namespaces"], ref.CIS_HOST_IPC, *_NSA),
           psa=("hostNamespaces",)),
    Attack("privileged", "pod-security.privileged", "Privileged Containers", B, "critical",
           "a privileged container (every device and capability of the node)",
           (set_(*C0_SC, "privileged", value=True), delete(*C0_SC, "allowPrivilegeEscalation")),
           (_PSS["Privileged Containers"], ref.CIS_PRIVILEGED, *_NSA), also=("privilege-escalation",),
           marker=r"privileged", psa=("privileged",)),
    Attack("privileged-init", "pod-security.privileged", "Privileged Containers", B, "critical",
           "a privileged init container (policies that look only at spec.containers miss it)",
           (set_("spec", "initContainers", value=[_privileged_init()]),),
           (_PSS["Privileged Containers"], ref.CIS_PRIVILEGED, *_NSA), also=("privilege-escalation",),
           marker=r"privileged", psa=("privileged",)),
    Attack("cap-NET_ADMIN", "pod-security.capabilities", "Capabilities", B, "high",
           "a container adding NET_ADMIN (beyond the baseline set: reconfigures the pod's, or node's, network)",
           (set_(*C0_SC, "capabilities", value={"drop": ["ALL"], "add": ["NET_ADMIN"]}),),
           (_PSS["Capabilities"], ref.CIS_ADDED_CAPS, *_NSA), psa=("capabilities_baseline",)),
    Attack("cap-NET_RAW", "pod-security.capabilities", "Capabilities", B, "medium",
           "a container adding NET_RAW (raw sockets: spoofing, ARP and DNS poisoning inside the node)",
           (set_(*C0_SC, "capabilities", value={"drop": ["ALL"], "add": ["NET_RAW"]}),),
           (_PSS["Capabilities"], ref.CIS_NET_RAW, *_NSA), psa=("capabilities_baseline",)),
    Attack("hostPath", "pod-security.host-path", "HostPath Volumes", B, "critical",
           "a hostPath volume of the node's root filesystem (read-only even: node credentials and keys)",
           (set_("spec", "volumes", value=[{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}]),
            set_(*C0, "volumeMounts", value=[{"name": "host", "mountPath": "/host", "readOnly": True}])),
           (_PSS["HostPath Volumes"], ref.CIS_HOST_PATH, *_NSA), also=("volume-types",), marker=r"hostpath",
           psa=("hostPathVolumes",)),
    Attack("hostPort", "pod-security.host-ports", "Host Ports", B, "medium",
           "a container binding a port on the node (hostPort)",
           (set_(*C0, "ports", value=[{"containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}]),),
           (_PSS["Host Ports"], ref.CIS_HOST_PORTS, *_NSA), psa=("hostPorts",)),
    Attack("appArmor-unconfined", "pod-security.apparmor", "AppArmor", B, "medium",
           "a container with AppArmor disabled (appArmorProfile Unconfined)",
           (set_(*C0_SC, "appArmorProfile", value={"type": "Unconfined"}),),
           (_PSS["AppArmor"], ref.CIS_SECURITY_CONTEXT, ref.NSA_HARDENING_CONTAINERS), psa=("appArmorProfile",)),
    Attack("seLinux-type", "pod-security.selinux", "SELinux", B, "high",
           "a container with the SELinux type spc_t (a super-privileged container, unconfined by SELinux)",
           (set_(*C0_SC, "seLinuxOptions", value={"type": "spc_t"}),),
           (_PSS["SELinux"], ref.CIS_SECURITY_CONTEXT, ref.NSA_HARDENING_CONTAINERS), psa=("seLinuxOptions",)),
    Attack("seLinux-user-role", "pod-security.selinux", "SELinux", B, "medium",
           "a container choosing its SELinux user and role",
           (set_(*C0_SC, "seLinuxOptions", value={"user": "system_u", "role": "system_r"}),),
           (_PSS["SELinux"], ref.CIS_SECURITY_CONTEXT, ref.NSA_HARDENING_CONTAINERS), psa=("seLinuxOptions",)),
    # The API refuses Unmasked unless the pod has its own user namespace (hostUsers: false), and the baseline
    # profile of current Kubernetes (1.33+) admits Unmasked there; the restricted profile refuses it.
    Attack("procMount-unmasked", "pod-security.proc-mount", "/proc Mount Type", R, "medium",
           "a container with an unmasked /proc (kernel interfaces the runtime normally hides; in a user-namespaced "
           "pod, which the API requires for Unmasked and the baseline profile of Kubernetes 1.33+ admits)",
           (set_("spec", "hostUsers", value=False), set_(*C0_SC, "procMount", value="Unmasked")),
           (_PSS["/proc Mount Type (restricted)"], _PSS["/proc Mount Type"], ref.CIS_SECURITY_CONTEXT,
            ref.NSA_HARDENING_CONTAINERS), psa=("procMount_restricted", "procMount")),
    Attack("seccomp-unconfined", "pod-security.seccomp", "Seccomp", B, "medium",
           "a pod with seccomp disabled (seccompProfile Unconfined: every syscall reachable)",
           (set_(*POD_SC, "seccompProfile", value={"type": "Unconfined"}),),
           (_PSS["Seccomp"], ref.CIS_SECCOMP, ref.NSA_HARDENING_CONTAINERS), psa=("seccompProfile_baseline",)),
    Attack("unsafe-sysctl", "pod-security.sysctls", "Sysctls", B, "medium",
           "a pod setting an unsafe sysctl (kernel.msgmax)",
           (set_(*POD_SC, "sysctls", value=[{"name": "kernel.msgmax", "value": "65536"}]),),
           (_PSS["Sysctls"], ref.CIS_SECURITY_CONTEXT, ref.NSA_HARDENING_CONTAINERS), psa=("sysctls",)),
    *PROBE_HOST_ATTACKS,
    Attack("sidecar-probe-host", "pod-security.probe-host", "Host Probes / Lifecycle Hooks", B, "medium",
           "a sidecar (restartable init container) whose startupProbe names a host (policies that look only at "
           "spec.containers miss it; the kubelet connects from the node to 169.254.169.254:80)",
           (set_("spec", "initContainers", value=[_sidecar_probe_host()]),),
           (_PSS["Host Probes / Lifecycle Hooks"], *_NSA), psa=("hostProbesAndHostLifecycle",)),
    # ---- restricted profile ----
    Attack("nfs-volume", "pod-security.volume-types", "Volume Types", R, "medium",
           "a pod mounting an NFS volume (only configMap, csi, downwardAPI, emptyDir, ephemeral, "
           "persistentVolumeClaim, projected and secret are allowed)",
           (set_("spec", "volumes", value=[{"name": "nfs", "nfs": {"server": "192.0.2.1", "path": "/export"}}]),
            set_(*C0, "volumeMounts", value=[{"name": "nfs", "mountPath": "/nfs", "readOnly": True}])),
           (_PSS["Volume Types"], *_NSA), psa=("restrictedVolumes",)),
    Attack("allowPrivilegeEscalation-true", "pod-security.privilege-escalation", "Privilege Escalation", R, "medium",
           "a container allowing privilege escalation (setuid binaries gain privileges)",
           (set_(*C0_SC, "allowPrivilegeEscalation", value=True),),
           (_PSS["Privilege Escalation"], ref.CIS_PRIV_ESC, *_NSA), psa=("allowPrivilegeEscalation",)),
    Attack("allowPrivilegeEscalation-unset", "pod-security.privilege-escalation", "Privilege Escalation", R,
           "medium", "a container not forbidding privilege escalation (the default allows it)",
           (delete(*C0_SC, "allowPrivilegeEscalation"),),
           (_PSS["Privilege Escalation"], ref.CIS_PRIV_ESC, *_NSA), psa=("allowPrivilegeEscalation",)),
    Attack("runAsUser-0", "pod-security.root", "Running as Non-root user", R, "high",
           "a pod running as root (runAsUser 0, runAsNonRoot unset)",
           (set_(*POD_SC, "runAsUser", value=0), delete(*POD_SC, "runAsNonRoot")),
           (_PSS["Running as Non-root user"], _PSS["Running as Non-root"], ref.CIS_ROOT, ref.NSA_NON_ROOT),
           psa=("runAsUser", "runAsNonRoot")),
    Attack("runAsNonRoot-unset", "pod-security.root", "Running as Non-root", R, "medium",
           "a pod not requiring a non-root user (runAsNonRoot unset: the image's user, often root, is used)",
           (delete(*POD_SC, "runAsNonRoot"), delete(*POD_SC, "runAsUser"), delete(*POD_SC, "runAsGroup")),
           (_PSS["Running as Non-root"], ref.CIS_ROOT, ref.NSA_NON_ROOT), psa=("runAsNonRoot",)),
    Attack("runAsNonRoot-false", "pod-security.root", "Running as Non-root", R, "medium",
           "a pod declaring runAsNonRoot false",
           (set_(*POD_SC, "runAsNonRoot", value=False), delete(*POD_SC, "runAsUser"), delete(*POD_SC, "runAsGroup")),
           (_PSS["Running as Non-root"], ref.CIS_ROOT, ref.NSA_NON_ROOT), psa=("runAsNonRoot",)),
    Attack("seccomp-unset", "pod-security.seccomp", "Seccomp", R, "low",
           "a pod with no seccomp profile (the restricted profile requires RuntimeDefault or Localhost)",
           (delete(*POD_SC, "seccompProfile"),),
           (_PSS["Seccomp (restricted)"], ref.CIS_SECCOMP, ref.NSA_HARDENING_CONTAINERS),
           psa=("seccompProfile_restricted",)),
    Attack("capabilities-not-dropped", "pod-security.capabilities", "Capabilities", R, "low",
           "a container keeping the runtime's default capabilities (no drop ALL)",
           (delete(*C0_SC, "capabilities"),),
           (_PSS["Capabilities (restricted)"], ref.CIS_CAPS_ASSIGNED, *_NSA), psa=("capabilities_restricted",)),
    Attack("cap-CHOWN", "pod-security.capabilities", "Capabilities", R, "low",
           "a container adding CHOWN (allowed by baseline, not by restricted: only NET_BIND_SERVICE may be added)",
           (set_(*C0_SC, "capabilities", value={"drop": ["ALL"], "add": ["CHOWN"]}),),
           (_PSS["Capabilities (restricted)"], ref.CIS_ADDED_CAPS, *_NSA), psa=("capabilities_restricted",)),
)
ATTACKS_BY_NAME = {a.name: a for a in ATTACKS}
POD_SECURITY_CHECKS = tuple(dict.fromkeys(a.check_id for a in ATTACKS))
COMPLIANT_CHECK = "pod-security.compliant-pod"

# every control of the two profiles at the pinned version: the registry's checks, by their Standards names
PSS_CONTROLS = pss_controls(REGISTRY)


def attacks_for_image(image: str) -> dict[str, Attack]:
    """The attacks with the probe image filled in where an attack carries a container of its own."""
    out = {}
    for a in ATTACKS:
        ops = tuple(Op(o.action, o.path, _fill_image(o.value, image)) for o in a.ops)
        out[a.name] = dataclasses.replace(a, ops=ops)
    return out


def _fill_image(value: Any, image: str) -> Any:
    if isinstance(value, dict):
        return {k: (image if k == "image" and v == "__IMAGE__" else _fill_image(v, image)) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_image(v, image) for v in value]
    return value


# --- verdicts -----------------------------------------------------------------------------------------------


def judge_control(control: Attempt | None) -> tuple[Verdict, str] | None:
    """None when the positive control (the compliant pod) was accepted; else the verdict every check in that
    namespace takes, and why."""
    if control is None:
        return Verdict.INCONCLUSIVE, "the compliant pod (positive control) was not tried"
    if control.accepted:
        return None
    if control.outcome == NO_PERMISSION:
        return Verdict.NOT_APPLICABLE, f"no permission to create pods in namespace {control.namespace} " \
                                       "(a server-side dry-run needs create pods)"
    if control.outcome == NAMESPACE_GONE:
        return Verdict.NOT_APPLICABLE, f"namespace {control.namespace} is gone or being deleted"
    if control.refused:
        return Verdict.INCONCLUSIVE, (f"the compliant pod (positive control) is refused too, by {control.refused_by}: "
                                      "something refuses every pod here, so a refusal proves nothing")
    return Verdict.INCONCLUSIVE, f"the compliant pod (positive control) could not be tried: {control.describe()}"


def judge_reach(attempt: Attempt) -> tuple[Verdict, str] | None:
    """Not-applicable when the attempt could not reach admission at all (no permission, namespace gone)."""
    if attempt.outcome == NO_PERMISSION:
        return Verdict.NOT_APPLICABLE, f"no permission to create pods in namespace {attempt.namespace} " \
                                       "(a server-side dry-run needs create pods)"
    if attempt.outcome == NAMESPACE_GONE:
        return Verdict.NOT_APPLICABLE, f"namespace {attempt.namespace} is gone or being deleted"
    return None


def judge_attack(attack: Attack, control: Attempt | None, attempt: Attempt,
                 cross: CrossCheck | None = None) -> tuple[Verdict, str]:
    """The verdict for one attack pod in one namespace."""
    decided = judge_reach(attempt) or judge_control(control)
    if decided is not None:
        return decided
    verdict, why = _judge_attempt(attack, attempt)
    return _cross_checked(verdict, why, cross)


def _judge_attempt(attack: Attack, attempt: Attempt) -> tuple[Verdict, str]:
    if attempt.accepted:
        if not attack.still_present(attempt.obj):
            return Verdict.PASS, (f"{attack.description}: accepted, but admission removed the change "
                                  f"({'; '.join(attack.changes())} no longer all present)")
        how = "server-side dry-run" if attempt.dry_run else "real create"
        return Verdict.FAIL, f"{attack.description}: admitted ({how}); the compliant pod too, nothing refused it"
    if attempt.refused:
        if attack.also and not (attack.marker and re.search(attack.marker, attempt.message, re.I)):
            return Verdict.INCONCLUSIVE, (
                f"refused by {attempt.refused_by}, but the refusal does not name {attack.control}; the attack pod also "
                f"violates {', '.join(attack.also)} (the API requires it), which may be what was refused")
        return Verdict.PASS, f"{attack.description}: refused by {attempt.refused_by}"
    if attempt.outcome == INVALID:
        return Verdict.INCONCLUSIVE, ("the API server rejected the attack pod as invalid before admission decided "
                                      f"(this Kubernetes version may not know the field): {attempt.message}")
    if attempt.outcome == DRY_RUN_UNSUPPORTED:
        return Verdict.INCONCLUSIVE, (f"a webhook does not support server-side dry-run ({attempt.message}); run in "
                                      "standard mode for a real create in a throw-away namespace")
    return Verdict.INCONCLUSIVE, f"the attempt failed without an admission decision: {attempt.describe()}"


def _cross_checked(verdict: Verdict, why: str, cross: CrossCheck | None) -> tuple[Verdict, str]:
    if cross is None or cross.agree:
        return verdict, why
    # dry-run refused but the real create was accepted: a dry-run refusal proves nothing here
    if verdict is Verdict.PASS and cross.dry.refused and cross.real.accepted:
        return Verdict.INCONCLUSIVE, (f"{why}; but in throw-away namespace {cross.namespace} the dry-run was refused "
                                      "and the real create accepted, so a dry-run refusal cannot be trusted")
    # dry-run accepted but the real create refused: a dry-run acceptance proves nothing here
    if verdict is Verdict.FAIL and cross.dry.accepted and cross.real.refused:
        return Verdict.INCONCLUSIVE, (f"{why}; but in throw-away namespace {cross.namespace} the dry-run was accepted "
                                      f"and the real create refused (by {cross.real.refused_by}), so a dry-run "
                                      "acceptance cannot be trusted")
    return verdict, why


# --- results -------------------------------------------------------------------------------------------------

_COMPLIANT_REMEDIATION = ("Find what refuses a pod meeting the restricted Pod Security profile (the refusal message "
                          "names it) and let such pods through: until then no refusal here proves anything.")


def _evidence_of(attempt: Attempt | None) -> Any:
    return attempt.evidence() if attempt is not None else None


def compliant_result(pod: dict, namespace: str, control: Attempt | None,
                     cross: CrossCheck | None = None) -> CheckResult:
    """``pod-security.compliant-pod`` in one namespace: the positive control, with its request, answer and repro."""
    decided = judge_control(control)
    if decided is None:
        verdict, summary = Verdict.PASS, "the compliant pod is admitted (server-side dry-run)"
        if cross is not None and not cross.real.accepted:
            verdict = Verdict.INCONCLUSIVE
            summary += (f"; but its real create in throw-away namespace {cross.namespace} was not: "
                        f"{cross.real.describe()}")
    else:
        verdict, summary = decided
    return CheckResult(
        verdict, summary, target_namespace=namespace, severity="info",
        request=request_evidence("POST", f"/api/v1/namespaces/{namespace}/pods", pod),
        response=_evidence_of(control), repro=kubectl_create(pod, namespace),
        remediation=None if verdict is Verdict.PASS else _COMPLIANT_REMEDIATION,
        references=(ref.CIS_POLICY_MECHANISM, ref.PSS_URL),
        evidence={"cross_check": cross.evidence() if cross else None})


def attack_result(attack: Attack, pod: dict, namespace: str, control: Attempt | None, attempt: Attempt,
                  cross: CrossCheck | None = None) -> CheckResult:
    """One attack pod in one namespace: the verdict (``judge_attack``), the request and answer, a kubectl line that
    reproduces it, the remediation when it did not pass, and the references of the control."""
    verdict, summary = judge_attack(attack, control, attempt, cross)
    return CheckResult(
        verdict, summary, target_namespace=namespace, severity=attack.severity,
        request=request_evidence("POST", f"/api/v1/namespaces/{namespace}/pods", pod),
        response=attempt.evidence(), repro=kubectl_create(pod, namespace),
        remediation=None if verdict is Verdict.PASS else namespace_remediation(namespace, attack.level),
        references=attack.references,
        evidence={"attack": attack.name, "control": attack.control, "level": attack.level,
                  "psa_checks": list(attack.psa), "changes": attack.changes(), "also_violates": list(attack.also),
                  "positive_control": _evidence_of(control),
                  "cross_check": cross.evidence() if cross else None})


# --- remediation ---------------------------------------------------------------------------------------------

_REFERENCE_NAMESPACE = profile_file("hardened", "namespace", "namespace.yaml")


def namespace_remediation(namespace: str, level: str) -> str:
    """The fix: Pod Security Admission enforcing the restricted profile on the namespace (YAML and kubectl)."""
    try:
        text = _REFERENCE_NAMESPACE.read_text()
        yaml_text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        yaml_text = re.sub(r"(?m)^(\s*name:\s*)app\s*$", lambda m: m.group(1) + namespace, yaml_text, count=1)
    except OSError:
        yaml_text = (f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n"
                     "    pod-security.kubernetes.io/enforce: restricted\n"
                     "    pod-security.kubernetes.io/enforce-version: latest")
    floor = "" if level == R else " (this control is in the baseline profile: baseline is the least to enforce)"
    return (f"Enforce the restricted Pod Security profile on namespace {namespace}{floor}, with Pod Security Admission "
            "or an equivalent Kyverno, Gatekeeper or ValidatingAdmissionPolicy rule that covers containers, "
            "initContainers and ephemeralContainers:\n"
            f"kubectl label --overwrite namespace {namespace} pod-security.kubernetes.io/enforce=restricted "
            "pod-security.kubernetes.io/enforce-version=latest\n---\n" + yaml_text.strip() + "\n"
            "# cluster-wide default for new namespaces: an AdmissionConfiguration for the PodSecurity plugin "
            "(--admission-control-config-file) with defaults.enforce: restricted")


def control_table() -> list[tuple[str, str, str, str]]:
    """(level, PSS control, check id, attack ids) — the table docs/checks-pod-security.md shows."""
    rows = []
    for level in (B, R):
        for control in PSS_CONTROLS[level]:
            hits = [a for a in ATTACKS if (level, control) in a.covers]
            rows.append((level, control, ", ".join(dict.fromkeys(a.check_id for a in hits)),
                         ", ".join(a.name for a in hits)))
    return rows


def registry_table() -> list[tuple[str, str, str, str, str]]:
    """(level, registry check, policy version it applies from, check ids, attack ids) for every check of the
    pod-security-admission registry in force at the pinned version — the second table of the docs."""
    rows = []
    for c in REGISTRY.applicable:
        hits = [a for a in ATTACKS if c.id in a.psa]
        rows.append((c.level, c.id, c.applies_from or "", ", ".join(dict.fromkeys(a.check_id for a in hits)),
                     ", ".join(a.name for a in hits)))
    return rows
