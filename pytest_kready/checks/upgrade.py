"""The upgrade acceptance gate (``--kready-upgrade-to=1.37``): checks that predict a failed minor upgrade from what
the cluster does, not from manifests. Each returns ``findings.CheckResult`` (a list where one finding per node,
CRD or webhook is the natural unit); ``suites/test_upgrade.py`` only records them. Everything but
``upgrade.backup`` works in readonly mode on an existing cluster (reads, and server-side dry runs).

``upgrade.removed-apis``
    What clients have *requested* that the target removes: the API server's ``apiserver_requested_deprecated_apis``
    gauge (one series per deprecated group/version/resource requested since that API server started, with the
    ``removed_release`` the server knows) and, where the audit log is readable through the control plane, the
    audit events it annotated ``k8s.io/deprecated`` (who asked: user and user agent). A series without a
    ``removed_release`` is looked up in the shipped table (``data/removed-apis.yaml``: the deprecation guide and
    the API types of the pinned version). A *deprecated version of a CustomResourceDefinition* that clients
    request fails too: the API server records it with no removal release at all (the CRD's owner decides when it
    goes, typically in the operator release you install alongside the cluster upgrade), so the gate cannot show it
    survives the upgrade; it is reported as "removal release not declared", severity medium. Series of CRDs that
    no longer exist are stale (the gauge is never reset) and ignored. Positive control: a request this run makes
    that the gauge must count, seen counted — in standard mode a deprecated version of a throw-away CRD
    (``upgradeprobes.ra-<run-id>.upgrade.kready.dev``, deleted at the end; its series stays in that API server's
    metrics until it restarts, and is never judged); in readonly mode a GET of ``v1 endpoints`` (deprecated since
    1.33) when nobody has requested it yet; otherwise the evidence says no request of this run could be seen.
``upgrade.crd-stored-versions``
    CRDs whose ``status.storedVersions`` hold a version that is no longer served or is deprecated: objects stored
    in it must be migrated (read and written back in the storage version, then ``storedVersions`` trimmed) before
    the owner removes the version. Control (standard mode): a throw-away CRD stored in a deprecated version must be
    flagged by the same judgement.
``upgrade.drain``
    For every node, a server-side dry-run eviction of every pod ``kubectl drain`` would evict (not DaemonSet pods,
    not mirror pods, not finished pods). A 429 means the drain would wait on a PodDisruptionBudget: the pod, the
    budget and its allowed disruptions are named (fail); a 500 for a pod under more than one budget stalls too.
    Workloads whose every pod runs on the node and that have no budget (single-replica ones first) go down while
    it drains: reported in the evidence, severity low, not a failure.
``upgrade.webhooks``
    Admission webhooks with ``failurePolicy: Fail`` (the v1 default): a dry-run request each would intercept,
    built from its rules (a create of a resource it names, or a no-op update of an object it would see), timed;
    the API server's per-webhook call counter (``apiserver_admission_webhook_admission_duration_seconds``) shows it
    was called. No ready endpoints behind its Service, a timeout or an error calling it means it would block
    writes while its backend restarts during the upgrade (fail). Webhooks that intercept kube-system objects are
    called out (severity high).
``upgrade.version-skew``
    The API server (the instance that answers), kubelets, kube-proxy, controller-manager and scheduler against the
    version-skew policy for the target (``data/release-table.yaml``): one minor at a time, kubelets and kube-proxy
    never newer than the API server and at most three minors older than the target, controller-manager and
    scheduler at the current minor; and the target's support window from the same table.
``upgrade.backup``
    The etcd snapshot-and-restore drill (``checks/etcd.run_drill``) where the control plane is reachable and the
    drill allowed (disruptive mode, capabilities control-plane-exec, etcd, etcd-restore); not-applicable with the
    reason elsewhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .. import client, errors, labels
from ..findings import CheckResult, Verdict
from ..kube import container, list_items, pod_spec, selector_matches
from ..waits import WaitTimeout, wait_for

REMOVED_APIS_CHECK = "upgrade.removed-apis"
CRD_CHECK = "upgrade.crd-stored-versions"
DRAIN_CHECK = "upgrade.drain"
WEBHOOKS_CHECK = "upgrade.webhooks"
SKEW_CHECK = "upgrade.version-skew"
BACKUP_CHECK = "upgrade.backup"
REHEARSAL_CHECK = "upgrade.rehearsal"

DATA_DIR = Path(__file__).resolve().parent / "data"
DEPRECATION_GUIDE = "https://kubernetes.io/docs/reference/using-api/deprecation-guide/"
DEPRECATED_METRIC_DOC = "https://kubernetes.io/blog/2020/09/03/warnings/#deprecation-warnings"
SKEW_POLICY = "https://kubernetes.io/releases/version-skew-policy/"
RELEASES = "https://kubernetes.io/releases/"
CRD_VERSIONING = ("https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/"
                  "custom-resource-definition-versioning/#upgrade-existing-objects-to-a-new-stored-version")
DRAIN_DOC = "https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/"
PDB_DOC = "https://kubernetes.io/docs/tasks/run-application/configure-pdb/"
WEBHOOK_DOC = "https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/"
WEBHOOK_GOOD_PRACTICES = "https://kubernetes.io/docs/concepts/cluster-administration/admission-webhooks-good-practices/"
ETCD_BACKUP_DOC = "https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#backing-up-an-etcd-cluster"

DEPRECATED_METRIC = "apiserver_requested_deprecated_apis"
WEBHOOK_COUNT_METRIC = "apiserver_admission_webhook_admission_duration_seconds_count"
WEBHOOK_SUM_METRIC = "apiserver_admission_webhook_admission_duration_seconds_sum"
START_METRIC = "process_start_time_seconds"
CONTROL_GROUP_SUFFIX = ".upgrade.kready.dev"  # groups of this plugin's own throw-away CRDs (never judged)
CONTROL_PLURAL, CONTROL_KIND = "upgradeprobes", "UpgradeProbe"
PROBE_LABEL = "kready.dev/upgrade-probe"
AUDIT_DEPRECATED = '"k8s.io/deprecated":"true"'
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


# --- versions and shipped data ----------------------------------------------------------------------------


def minor_of(version: str | None) -> tuple[int, int] | None:
    """``v1.36.2``, ``1.37``, ``v1.36.2-eks-1234``, ``registry.k8s.io/kube-proxy:v1.36.2`` → (1, 36); None if none."""
    if not version:
        return None
    m = re.search(r"v?(\d+)\.(\d+)(?:\.\d+)?", str(version).rpartition(":")[2] if ":" in str(version) else
                  str(version))
    return (int(m.group(1)), int(m.group(2))) if m else None


def show_minor(minor: tuple[int, int]) -> str:
    return f"{minor[0]}.{minor[1]}"


@functools.cache
def removed_api_table() -> tuple[dict, ...]:
    """The shipped table of removed API versions (``data/removed-apis.yaml``, tools/gen_removed_apis.py)."""
    return tuple(yaml.safe_load((DATA_DIR / "removed-apis.yaml").read_text())["apis"])


@functools.cache
def release_table() -> dict:
    """The shipped release table and skew policy (``data/release-table.yaml``)."""
    return yaml.safe_load((DATA_DIR / "release-table.yaml").read_text())


def table_entry(group: str, version: str, resource: str, subresource: str = "",
                table: Iterable[dict] | None = None) -> dict | None:
    for e in removed_api_table() if table is None else table:
        if (e["group"], e["version"], e["resource"], e.get("subresource") or "") == (group, version, resource,
                                                                                        subresource or ""):
            return e
    for e in removed_api_table() if table is None else table:  # a subresource of a removed version goes with it
        if (e["group"], e["version"], e["resource"]) == (group, version, resource) and not e.get("subresource"):
            return e
    return None


def api_name(group: str, version: str, resource: str, subresource: str = "") -> str:
    gv = f"{group}/{version}" if group else version
    return f"{gv} {resource}" + (f"/{subresource}" if subresource else "")


# --- Prometheus text ---------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` in Prometheus text: (labels, value)."""
    out = []
    for line in (text or "").splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        labels_ = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(3) or "")}
        try:
            out.append((labels_, float(m.group(4))))
        except ValueError:
            continue
    return out


def metric_declared(text: str, name: str) -> bool:
    return f"# TYPE {name} " in (text or "") or f"# HELP {name} " in (text or "")


def read_metrics(api) -> client.Response:
    return client.send(api, "GET", "/metrics", headers={"Accept": "text/plain"}, text=True, timeout=30)


def deprecated_series(text: str) -> list[dict[str, str]]:
    """The ``apiserver_requested_deprecated_apis`` series set to 1 (requested since that API server started)."""
    keys = ("group", "version", "resource", "subresource", "removed_release")
    return [{k: lab.get(k, "") for k in keys} for lab, value in samples(text, DEPRECATED_METRIC) if value >= 1]


def series_key(s: dict) -> tuple[str, str, str, str]:
    return s.get("group", ""), s.get("version", ""), s.get("resource", ""), s.get("subresource", "")


def api_server_started(text: str) -> float | None:
    found = samples(text, START_METRIC)
    return found[0][1] if found else None


# --- CRDs ----------------------------------------------------------------------------------------------------


def crd_versions(crds: list[dict]) -> dict[tuple[str, str], dict]:
    """(group, plural) → {"name", "versions": {version: {served, deprecated, storage}}} of every CRD."""
    out = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        versions = {v.get("name"): {"served": bool(v.get("served")), "deprecated": bool(v.get("deprecated")),
                                    "storage": bool(v.get("storage"))} for v in spec.get("versions") or []}
        out[(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))] = {
            "name": (crd.get("metadata") or {}).get("name"), "versions": versions}
    return out


def control_crd(run_id: str, prefix: str, *, storage: str = "v1") -> dict:
    """A throw-away CRD of this run: ``v1`` and ``v1beta1`` (deprecated), served; ``storage`` is stored."""
    group = f"{prefix}-{run_id}{CONTROL_GROUP_SUFFIX}"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": labels.object_meta(run_id, name=f"{CONTROL_PLURAL}.{group}"),
        "spec": {"group": group, "scope": "Cluster",
                 "names": {"plural": CONTROL_PLURAL, "singular": "upgradeprobe", "kind": CONTROL_KIND,
                           "listKind": f"{CONTROL_KIND}List"},
                 "versions": [
                     {"name": "v1", "served": True, "storage": storage == "v1", "schema": schema},
                     {"name": "v1beta1", "served": True, "storage": storage == "v1beta1", "deprecated": True,
                      "deprecationWarning": "pytest-kready upgrade check: a deliberately deprecated version",
                      "schema": schema}]},
    }


def _established(crd: dict | None) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in ((crd or {}).get("status") or {}).get("conditions") or [])


def make_control_crd(cluster, prefix: str, *, storage: str = "v1", timeout: float = 60) -> tuple[dict, Any]:
    """Create a throw-away CRD (tracked, labelled) and wait until it is established; (CRD, Ref)."""
    from ..cleanup import Ref

    obj = control_crd(cluster.run_id, prefix, storage=storage)
    api = cluster.api_client()
    created = cluster.create(obj)
    ref = cluster.track(Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", created["metadata"]["name"]))
    path = f"{CRD_PATH}/{ref.name}"

    def established() -> dict | None:
        crd = api.raw("GET", path)
        return crd if _established(crd) else None

    try:
        crd = wait_for(established, timeout=timeout, interval=0.3, max_interval=2,
                       what=f"CustomResourceDefinition {ref.name} established")
    except WaitTimeout:
        cluster.release([ref], failed=False)
        raise
    return crd, ref


# --- upgrade.removed-apis ------------------------------------------------------------------------------------


def audit_deprecated(cp, path: str, *, max_lines: int = 50000) -> tuple[dict, str | None]:
    """Audit events the API server annotated ``k8s.io/deprecated``, grouped by API: (key → summary, error)."""
    proc = cp.run(["grep", "-F", AUDIT_DEPRECATED, path], timeout=120)
    if proc.returncode not in (0, 1):
        err = (proc.stderr or b"").decode("utf-8", "replace").strip()
        return {}, err.splitlines()[-1][:300] if err else f"grep exit status {proc.returncode}"
    lines = (proc.stdout or b"").decode("utf-8", "replace").splitlines()[-max_lines:]
    return summarise_audit(lines), None


def summarise_audit(lines: Iterable[str]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        ann = ev.get("annotations") or {}
        if ann.get("k8s.io/deprecated") != "true" or ev.get("stage") not in (None, "ResponseComplete", "Panic"):
            continue
        ref = ev.get("objectRef") or {}
        key = (ref.get("apiGroup") or "", ref.get("apiVersion") or "", ref.get("resource") or "",
               ref.get("subresource") or "")
        entry = out.setdefault(key, {"removed_release": ann.get("k8s.io/removed-release", ""), "requests": 0,
                                     "clients": {}, "last_seen": None})
        entry["requests"] += 1
        who = ((ev.get("user") or {}).get("username") or "?", ev.get("userAgent") or "?")
        entry["clients"][who] = entry["clients"].get(who, 0) + 1
        stamp = ev.get("requestReceivedTimestamp")
        if stamp and (entry["last_seen"] is None or stamp > entry["last_seen"]):
            entry["last_seen"] = stamp
    return out


def judge_requested(keys: dict[tuple, dict], crds: dict[tuple[str, str], dict] | None, target: tuple[int, int],
                    table: Iterable[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(problems, deprecated-but-kept) among requested deprecated APIs ``keys`` (key → {removed_release, ...})."""
    problems, kept = [], []
    for key, info in sorted(keys.items()):
        group, version, resource, sub = key
        entry = table_entry(group, version, resource, sub, table)
        removed = info.get("removed_release") or (entry or {}).get("removed") or ""
        item = {"api": api_name(*key), "group": group, "version": version, "resource": resource,
                "subresource": sub, "removed_release": removed or None,
                "replacement": (entry or {}).get("replacement"), **{k: v for k, v in info.items()
                                                                    if k not in ("removed_release",)}}
        if isinstance(item.get("clients"), dict):
            item["clients"] = [{"user": u, "user_agent": a, "requests": n}
                               for (u, a), n in sorted(item["clients"].items(), key=lambda x: -x[1])[:10]]
        crd = (crds or {}).get((group, resource))
        removed_minor = minor_of(removed) if removed else None
        if removed_minor is not None:
            item["source_of_removal"] = "API server" if info.get("removed_release") else "shipped table"
            if removed_minor <= target:
                item["why"] = f"removed in {show_minor(removed_minor)}"
                problems.append(item)
            else:
                item["why"] = f"removed in {show_minor(removed_minor)}, after the target"
                kept.append(item)
        elif crd is not None and (crd["versions"].get(version) or {}).get("deprecated"):
            item.update(crd=crd["name"], why="deprecated version of a CustomResourceDefinition (removal release not "
                        "declared: its owner may stop serving it at any upgrade)",
                        replacement=next((v for v, s in crd["versions"].items()
                                          if s["served"] and not s["deprecated"]), None))
            problems.append(item)
        elif crd is None and group and entry is None and not _builtin(group):
            item["why"] = ("a CustomResourceDefinition that no longer exists (stale series)" if crds is not None
                           else UNJUDGED)
            kept.append(item)
        else:
            item["why"] = "deprecated, no removal planned"
            kept.append(item)
    return problems, kept


UNJUDGED = "a custom resource version: CustomResourceDefinitions not readable to tell whether it is deprecated"


def _builtin(group: str) -> bool:
    return group in ("", "apps", "batch", "policy", "autoscaling", "extensions") or group.endswith(".k8s.io")


def removed_apis(cluster, target: str, *, metrics_wait: float = 20) -> CheckResult:
    """upgrade.removed-apis (see the module doc)."""
    api = cluster.api_client()
    tgt = minor_of(target)
    evidence: dict[str, Any] = {"target": target}
    common: dict[str, Any] = dict(references=(DEPRECATION_GUIDE, DEPRECATED_METRIC_DOC), evidence=evidence,
                                  repro=f"kubectl get --raw /metrics | grep '^{DEPRECATED_METRIC}'")
    before = read_metrics(api)
    if before.status in (401, 403):
        return CheckResult(Verdict.NOT_APPLICABLE, f"this run may not read /metrics (HTTP {before.status}), where the "
                           f"API server counts deprecated requests", **common)
    if not before.ok:
        return CheckResult(Verdict.INCONCLUSIVE, f"GET /metrics answered HTTP {before.status}", **common)
    if not metric_declared(before.body, DEPRECATED_METRIC):
        return CheckResult(Verdict.INCONCLUSIVE, f"the API server exposes no {DEPRECATED_METRIC} metric, so what "
                           "clients requested cannot be told", **common)
    crds = _crds(api, evidence)
    control: dict[str, Any] = {}
    try:
        control = _removed_apis_control(cluster, api, before.body, metrics_wait)
        evidence["control"] = control.pop("evidence")
        text = control.pop("text", None) or read_metrics(api).body
        crds = _crds(api, evidence) if control.get("ref") else crds
        series = deprecated_series(text)
        started = api_server_started(text)
        if started:
            evidence["requests_since"] = dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(
                timespec="seconds")
            evidence["window_hours"] = round((time.time() - started) / 3600, 1)
        keys: dict[tuple, dict] = {series_key(s): {"removed_release": s["removed_release"], "seen_in": ["metric"]}
                                   for s in series}
        _add_audit(cluster, keys, evidence)
        problems, kept = judge_requested(keys, crds, tgt)
        if control.get("key") is not None:  # the control must be judged like anyone's request, then left out
            flagged = any(series_key(p) == control["key"] for p in problems)
            evidence["control"]["judged_as_problem"] = flagged
            if not flagged:
                return CheckResult(Verdict.INCONCLUSIVE, "this run's own request to a deprecated CRD version was "
                                   "counted but not judged a problem: the judgement cannot be trusted", **common)
        problems = [p for p in problems if not p["group"].endswith(CONTROL_GROUP_SUFFIX)]
        kept = [p for p in kept if not p["group"].endswith(CONTROL_GROUP_SUFFIX)]
        evidence.update(requested_removed=problems, requested_deprecated_kept=kept,
                        note="the gauge covers the API server instance that answered /metrics, since it started")
    finally:
        if control.get("ref") is not None:
            cluster.release([control["ref"]], failed=False)
    if problems:
        builtin = [p for p in problems if "crd" not in p]
        names = "; ".join(f"{p['api']} ({p['why']}" + (f", use {p['replacement']}" if p.get("replacement") else "")
                          + (f"; clients: {', '.join(c['user_agent'] for c in p['clients'][:3])}"
                             if p.get("clients") else "") + ")" for p in problems[:8])
        return CheckResult(Verdict.FAIL, f"clients requested {len(problems)} API version(s) that do not survive the "
                           f"upgrade to {target}: {names}", severity="high" if builtin else "medium",
                           remediation=("Move every client to the replacement version before upgrading (kubectl "
                                        "convert for manifests; new client libraries or chart versions for "
                                        "controllers). Find the clients in the audit log (events annotated "
                                        "k8s.io/deprecated, with user and userAgent) or in their own logs (the API "
                                        "server answers such requests with a Warning header). For a deprecated CRD "
                                        "version, move clients to the version its owner serves without deprecation."),
                           **common)
    unjudged = [p["api"] for p in kept if p["why"] == UNJUDGED]
    if unjudged:
        return CheckResult(Verdict.INCONCLUSIVE, f"clients requested {len(unjudged)} custom resource version(s) the "
                           f"API server calls deprecated ({', '.join(unjudged[:5])}), but this run may not read "
                           "CustomResourceDefinitions to tell what they are", **common)
    if not control.get("counted"):
        if not series:
            return CheckResult(Verdict.INCONCLUSIVE, f"no deprecated API request was ever counted and this run could "
                               f"not make one of its own ({evidence['control'].get('why')}): whether the API server "
                               "counts them is not shown", **common)
        evidence["control"]["note"] = (f"no request of this run was seen counted ({evidence['control'].get('why')}); "
                                       f"the gauge holds {len(series)} series recorded by the API server, so it counts "
                                       "deprecated requests")
    return CheckResult(Verdict.PASS, f"no client requested an API version the upgrade to {target} removes "
                       f"({len(kept)} deprecated API(s) requested that {target} still serves)", severity="high",
                       **common)


def _crds(api, evidence: dict) -> dict | None:
    try:
        return crd_versions(list_items(api, CRD_PATH))
    except errors.APIForbidden as e:
        evidence["crds_unreadable"] = str(e)[:200]
        return None


def _removed_apis_control(cluster, api, before_text: str, wait: float) -> dict:
    """A request of this run that the gauge must count: a deprecated CRD version (standard mode) or ``v1
    endpoints`` when nobody requested it yet (readonly)."""
    before = {series_key(s) for s in deprecated_series(before_text)}
    ev: dict[str, Any] = {}
    out: dict[str, Any] = {"evidence": ev}
    from ..settings import READONLY

    if cluster.mode != READONLY and cluster.can("create", "customresourcedefinitions", "apiextensions.k8s.io"):
        try:
            crd, ref = make_control_crd(cluster, "ra")
        except (errors.APIError, WaitTimeout) as e:
            ev["why"] = f"the throw-away CRD could not be made: {str(e)[:200]}"
            return out
        out["ref"] = ref
        group = crd["spec"]["group"]
        path = f"/apis/{group}/v1beta1/{CONTROL_PLURAL}"
        key = (group, "v1beta1", CONTROL_PLURAL, "")
        ev["request"] = f"GET {path} (a version the CRD marks deprecated)"
    elif ("", "v1", "endpoints", "") not in before:
        path, key = "/api/v1/endpoints", ("", "v1", "endpoints", "")
        ev["request"] = "GET /api/v1/endpoints?limit=1 (v1 Endpoints are deprecated since 1.33; a read)"
    else:
        ev["why"] = ("readonly mode: no throw-away CRD, and v1 endpoints (the read this run could make) was already "
                     "counted" if cluster.mode == READONLY else
                     "no permission to create a CRD, and v1 endpoints was already counted")
        return out
    def served() -> client.Response | None:  # a new CRD version is served a moment after it is established
        resp = client.send(api, "GET", path, query={"limit": 1})
        return resp if resp.status != 404 else None

    def counted() -> str | None:
        text = read_metrics(api).body
        return text if key in {series_key(s) for s in deprecated_series(text)} else None

    try:
        resp = wait_for(served, timeout=30, interval=0.5, max_interval=2, what=f"GET {path} served")
    except WaitTimeout as e:
        ev["why"] = f"the control request was never served: {e}"
        return out
    ev["response"] = resp.summary()
    if not resp.ok:
        ev["why"] = f"the control request answered HTTP {resp.status}"
        return out
    try:
        text = wait_for(counted, timeout=wait, interval=0.5, max_interval=2,
                        what=f"{DEPRECATED_METRIC} counting {api_name(*key)}")
    except WaitTimeout:
        ev["why"] = f"the API server did not count this run's request to {api_name(*key)} within {wait:g} s"
        ev["counted"] = False
        return out
    ev["counted"] = True
    ev["series"] = api_name(*key)
    out.update(counted=True, text=text, key=key if key[0].endswith(CONTROL_GROUP_SUFFIX) else None)
    return out


def _add_audit(cluster, keys: dict, evidence: dict) -> None:
    """Merge what the audit log says (who requested deprecated APIs) into ``keys``, where it is readable."""
    cp, path = cluster.control_plane, cluster.capabilities.audit_log
    if cp is None or not path:
        evidence["audit_log"] = f"not read: {cluster.capabilities.why_not('audit-log')}"
        return
    found, err = audit_deprecated(cp, path)
    if err:
        evidence["audit_log"] = f"{path} could not be read: {err}"
        return
    evidence["audit_log"] = f"{path}: {sum(v['requests'] for v in found.values())} deprecated request(s) recorded"
    for key, info in found.items():
        entry = keys.setdefault(key, {"removed_release": info["removed_release"], "seen_in": []})
        entry["seen_in"] = entry.get("seen_in", []) + ["audit log"]
        entry["removed_release"] = entry.get("removed_release") or info["removed_release"]
        entry.update(requests=info["requests"], clients=info["clients"], last_seen=info["last_seen"])


# --- upgrade.crd-stored-versions -------------------------------------------------------------------------------


def judge_crd(crd: dict) -> dict:
    """The stored versions of one CRD: {"problems": [...], "migrate": [...], "stored": [...]}."""
    spec, status = crd.get("spec") or {}, crd.get("status") or {}
    versions = {v.get("name"): v for v in spec.get("versions") or []}
    stored = list(status.get("storedVersions") or [])
    storage = next((n for n, v in versions.items() if v.get("storage")), None)
    problems, migrate = [], []
    for name in stored:
        v = versions.get(name)
        if v is None:
            problems.append(f"{name} is stored but no longer in spec.versions")
        elif not v.get("served"):
            problems.append(f"{name} is stored but no longer served")
        elif v.get("deprecated"):
            problems.append(f"{name} is stored and deprecated")
        elif name != storage:
            migrate.append(f"{name} is stored besides the storage version {storage}")
    return {"stored": stored, "storage": storage, "problems": problems, "migrate": migrate}


def crd_stored_versions(cluster) -> list[CheckResult]:
    """upgrade.crd-stored-versions (see the module doc): one fail per CRD needing a storage migration first."""
    from ..settings import READONLY

    api = cluster.api_client()
    refs = (CRD_VERSIONING,)
    evidence: dict[str, Any] = {}
    control_ref = None
    if cluster.mode != READONLY and cluster.can("create", "customresourcedefinitions", "apiextensions.k8s.io"):
        try:
            crd, control_ref = make_control_crd(cluster, "sv", storage="v1beta1")
            judged = judge_crd(crd)
            evidence["control"] = {"crd": crd["metadata"]["name"], "stored": judged["stored"],
                                   "flagged": judged["problems"]}
            if not judged["problems"]:
                cluster.release([control_ref], failed=True)
                return [CheckResult(Verdict.INCONCLUSIVE, "a throw-away CRD stored in a deprecated version was not "
                                    "flagged: the judgement cannot be trusted", evidence=evidence, references=refs)]
        except (errors.APIError, WaitTimeout) as e:
            evidence["control"] = {"why": f"the throw-away CRD could not be made: {str(e)[:200]}"}
    else:
        evidence["control"] = {"why": "readonly mode (or no permission to create CRDs): no throw-away CRD; the "
                                      "API server's status.storedVersions of every CRD is the evidence"}
    try:
        crds = [c for c in list_items(api, CRD_PATH)
                if not ((c.get("spec") or {}).get("group") or "").endswith(CONTROL_GROUP_SUFFIX)]
    except errors.APIForbidden as e:
        return [CheckResult(Verdict.NOT_APPLICABLE, f"this run may not list CustomResourceDefinitions: {e}",
                            evidence=evidence, references=refs)]
    finally:
        if control_ref is not None:
            cluster.release([control_ref], failed=False)
    results, unknown, migrate = [], [], {}
    for crd in crds:
        name = crd["metadata"]["name"]
        judged = judge_crd(crd)
        if not judged["stored"] and _established(crd):
            unknown.append(name)
            continue
        if judged["migrate"]:
            migrate[name] = judged["migrate"]
        if judged["problems"]:
            results.append(CheckResult(
                Verdict.FAIL, f"CustomResourceDefinition {name}: " + "; ".join(judged["problems"]) +
                " — objects may still be stored in it: migrate them before its owner drops the version",
                severity="high", references=refs,
                evidence={**evidence, "crd": name, "stored_versions": judged["stored"], "storage": judged["storage"],
                          "versions": [{k: v.get(k) for k in ("name", "served", "storage", "deprecated")}
                                       for v in (crd.get("spec") or {}).get("versions") or []]},
                repro=f"kubectl get crd {name} -o jsonpath='{{.status.storedVersions}}{{\"\\n\"}}"
                      "{range .spec.versions[*]}{.name} served={.served} storage={.storage} "
                      "deprecated={.deprecated}{\"\\n\"}{end}'",
                remediation=(f"Rewrite every {name.split('.')[0]} object in the storage version "
                             f"{judged['storage']} (a storage version migration: kube-storage-version-migrator, the "
                             "StorageVersionMigration API, or read and write back each object), then set "
                             f"status.storedVersions to [{judged['storage']}]: kubectl patch crd {name} "
                             "--subresource=status --type=merge -p '{\"status\":{\"storedVersions\":[\""
                             f"{judged['storage']}\"]}}}}'")))
    evidence.update(crds=len(crds), needs_migration_later=migrate)
    if unknown:
        evidence["without_stored_versions"] = unknown
    if results:
        return results
    if unknown:
        return [CheckResult(Verdict.INCONCLUSIVE, f"{len(unknown)} established CRD(s) show no status.storedVersions: "
                            f"{', '.join(unknown[:5])}", evidence=evidence, references=refs)]
    return [CheckResult(Verdict.PASS, f"no CustomResourceDefinition ({len(crds)}) stores a version that is unserved "
                        "or deprecated", evidence=evidence, references=refs,
                        repro="kubectl get crd -o custom-columns=NAME:.metadata.name,STORED:.status.storedVersions")]


# --- upgrade.drain ---------------------------------------------------------------------------------------------


def drain_skip_reason(pod: dict) -> str | None:
    """Why ``kubectl drain`` would not evict ``pod`` (None: it would)."""
    meta = pod.get("metadata") or {}
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return "mirror pod"
    if any(o.get("kind") == "DaemonSet" and o.get("controller") for o in meta.get("ownerReferences") or []):
        return "DaemonSet pod"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return "finished pod"
    if meta.get("deletionTimestamp"):
        return "already terminating"
    return None


def controller_of(pod: dict) -> dict | None:
    return next((o for o in (pod.get("metadata") or {}).get("ownerReferences") or [] if o.get("controller")), None)


def _node_schedulable(node: dict) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class _Workloads:
    """Top-level owners of pods (Deployment via ReplicaSet, StatefulSet, ...), read once per namespace/name."""

    PATHS: ClassVar[dict[str, str]] = {"ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
             "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
             "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
             "ReplicationController": "/api/v1/namespaces/{ns}/replicationcontrollers/{name}"}

    def __init__(self, api):
        self.api = api
        self.cache: dict[tuple, dict | None] = {}

    def get(self, kind: str, ns: str, name: str) -> dict | None:
        key = (kind, ns, name)
        if key not in self.cache:
            try:
                self.cache[key] = self.api.raw("GET", self.PATHS[kind].format(ns=ns, name=name))
            except (errors.APINotFound, errors.APIForbidden, KeyError):
                self.cache[key] = None
        return self.cache[key]

    def top(self, pod: dict) -> tuple[str, str, int | None] | None:
        """(kind, name, replicas) of the workload owning ``pod``; None for a bare pod."""
        owner = controller_of(pod)
        ns = pod["metadata"]["namespace"]
        if owner is None:
            return None
        if owner.get("kind") == "ReplicaSet":
            rs = self.get("ReplicaSet", ns, owner["name"])
            dep = controller_of(rs) if rs else None
            if dep and dep.get("kind") == "Deployment":
                d = self.get("Deployment", ns, dep["name"])
                return "Deployment", dep["name"], ((d or {}).get("spec") or {}).get("replicas", 1) if d else None
            return "ReplicaSet", owner["name"], ((rs or {}).get("spec") or {}).get("replicas", 1) if rs else None
        if owner.get("kind") in ("StatefulSet", "ReplicationController"):
            obj = self.get(owner["kind"], ns, owner["name"])
            return owner["kind"], owner["name"], ((obj or {}).get("spec") or {}).get("replicas", 1) if obj else None
        return owner.get("kind"), owner.get("name"), None  # a Job, or a custom controller


def pdb_summary(pdb: dict) -> dict:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    return {"budget": f"{pdb['metadata']['namespace']}/{pdb['metadata']['name']}",
            **{k: spec[k] for k in ("minAvailable", "maxUnavailable") if k in spec},
            "disruptions_allowed": status.get("disruptionsAllowed"), "current_healthy": status.get("currentHealthy"),
            "desired_healthy": status.get("desiredHealthy"), "expected_pods": status.get("expectedPods")}


def drain(api, evict_api, namespaces: set[str] | None, *, exclude: Callable[[str], bool] = lambda ns: False
          ) -> list[CheckResult]:
    """upgrade.drain: one CheckResult per node. ``namespaces``: only pods there (None: every namespace but those
    ``exclude`` names). ``evict_api`` must not retry (a 429 is the answer)."""
    from .disruption import dry_run_evict, evict_repro

    refs = (DRAIN_DOC, PDB_DOC)
    nodes = list_items(api, "/api/v1/nodes")
    if not nodes:
        return [CheckResult(Verdict.INCONCLUSIVE, "the cluster lists no nodes", references=refs)]
    pods = list_items(api, "/api/v1/pods")
    pdbs: dict[str, list[dict]] = {}
    for pdb in list_items(api, "/apis/policy/v1/poddisruptionbudgets"):
        pdbs.setdefault(pdb["metadata"]["namespace"], []).append(pdb)
    workloads = _Workloads(api)
    schedulable = {n["metadata"]["name"] for n in nodes if _node_schedulable(n)}
    in_scope = [p for p in pods if (namespaces is None and not exclude(p["metadata"]["namespace"]))
                or (namespaces is not None and p["metadata"]["namespace"] in namespaces)]
    results = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        others = sorted(schedulable - {name})
        on_node = [p for p in in_scope if (p.get("spec") or {}).get("nodeName") == name]
        skipped: dict[str, int] = {}
        evicted, stalls, unsure, downtime, bare, local_data = [], [], [], {}, [], []
        per_budget: dict[str, list[str]] = {}
        for pod in on_node:
            reason = drain_skip_reason(pod)
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            ns, pname = pod["metadata"]["namespace"], pod["metadata"]["name"]
            pod_labels = pod["metadata"].get("labels") or {}
            budgets = [b for b in pdbs.get(ns, []) if selector_matches((b.get("spec") or {}).get("selector"),
                                                                       pod_labels)]
            for b in budgets:
                per_budget.setdefault(f"{ns}/{b['metadata']['name']}", []).append(f"{ns}/{pname}")
            if controller_of(pod) is None:
                bare.append(f"{ns}/{pname}")
            if any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or []):
                local_data.append(f"{ns}/{pname}")
            accepted, code, message = dry_run_evict(evict_api, ns, pname)
            entry = {"pod": f"{ns}/{pname}", "status": code}
            if accepted:
                evicted.append(entry)
            elif code == 429:
                stalls.append({**entry, "budgets": [pdb_summary(b) for b in budgets] or None,
                               "message": message[:300], "repro": evict_repro(ns, pname)})
            elif code == 500 and "more than one" in message.lower():
                stalls.append({**entry, "budgets": [pdb_summary(b) for b in budgets], "message": message[:300],
                               "why": "more than one PodDisruptionBudget selects the pod: the Eviction API refuses "
                                      "every eviction of it", "repro": evict_repro(ns, pname)})
            elif code == 404:
                skipped["gone meanwhile"] = skipped.get("gone meanwhile", 0) + 1
            else:
                unsure.append({**entry, "message": message[:300]})
            if not budgets:
                top = workloads.top(pod)
                if top is not None and top[2] is not None:
                    key = f"{top[0]} {ns}/{top[1]}"
                    downtime.setdefault(key, {"workload": key, "replicas": top[2], "pods_on_node": 0})
                    downtime[key]["pods_on_node"] += 1
        # budgets whose pods on this node exceed what they allow, with nowhere for replacements to go
        if not others:
            for budget, names in per_budget.items():
                b = next(x for x in pdbs[budget.split("/")[0]] if x["metadata"]["name"] == budget.split("/")[1])
                allowed = (b.get("status") or {}).get("disruptionsAllowed") or 0
                if len(names) > allowed and not any(s["pod"] in names for s in stalls):
                    stalls.append({"pod": names[allowed] if allowed < len(names) else names[-1], "status": None,
                                   "budgets": [pdb_summary(b)],
                                   "why": f"{len(names)} of its pods run on {name}, the budget allows {allowed} "
                                          "disruption(s) and no other schedulable node can take replacements"})
        down = [d for d in downtime.values() if d["replicas"] is not None and d["pods_on_node"] >= d["replicas"] > 0]
        evidence = {"node": name, "evicted_dry_run": len(evicted), "not_evicted": skipped,
                    "other_schedulable_nodes": others, "stalls": stalls,
                    "downtime_while_draining": [{**d, "severity": "low"} for d in down],
                    "unmanaged_pods": bare, "pods_with_emptydir": local_data,
                    "scope": sorted(namespaces) if namespaces is not None else "every namespace (not this plugin's)"}
        if bare:
            evidence["unmanaged_note"] = "kubectl drain refuses these without --force, and then they are gone for good"
        if unsure:
            evidence["unexpected_answers"] = unsure
        common = dict(evidence=evidence, references=refs, repro=f"kubectl drain {name} --ignore-daemonsets "
                      "--delete-emptydir-data --dry-run=server")
        down_note = (f"; {len(down)} workload(s) without a budget go down while it drains (severity low): "
                     + ", ".join(d["workload"] for d in down[:5])) if down else ""
        if stalls:
            def one(s):
                b = (s.get("budgets") or [None])[0]
                what = (f"PodDisruptionBudget {b['budget']} allows {b['disruptions_allowed']} disruption(s) "
                        f"({b['current_healthy']}/{b['expected_pods']} healthy)") if b else "no budget found"
                return f"pod {s['pod']} ({s.get('why') or what})"
            results.append(CheckResult(
                Verdict.FAIL, f"draining node {name} would stall: " + "; ".join(one(s) for s in stalls[:5]) + down_note,
                severity="high", remediation=(
                    "Before the upgrade, make every budget allow at least one disruption when all its pods are "
                    "healthy (maxUnavailable: 1, or minAvailable below the replica count), scale single-pod "
                    "workloads under a budget to 2 replicas, remove duplicate budgets over the same pods, and make "
                    "sure replacements can be scheduled on another node."), **common))
        elif unsure:
            results.append(CheckResult(
                Verdict.INCONCLUSIVE, f"node {name}: {len(unsure)} dry-run eviction(s) answered neither accepted nor "
                f"refused by a budget (e.g. {unsure[0]['pod']}: HTTP {unsure[0]['status']})" + down_note, **common))
        else:
            what = (f"every one of the {len(evicted)} pod(s) a drain evicts is accepted by the Eviction API (dry run)"
                    if evicted else "no pod a drain would evict" + (" in the target namespaces" if namespaces else ""))
            results.append(CheckResult(Verdict.PASS, f"node {name}: {what}{down_note}", severity="high", **common))
    return results


# --- upgrade.webhooks -------------------------------------------------------------------------------------------


def _ns(run_id: str) -> dict:
    return {PROBE_LABEL: "true", **labels.run_labels(run_id)}


def _template(group: str, resource: str, name: str, namespace: str | None, obj_labels: dict, image: str
              ) -> dict | None:
    """A minimal valid object of ``group/resource`` (None when this check cannot build one)."""
    meta = {"name": name, "labels": dict(obj_labels)}
    if namespace:
        meta["namespace"] = namespace
    pod = pod_spec([container("probe", image, ["pause"])], terminationGracePeriodSeconds=1)
    tmpl = {"metadata": {"labels": {PROBE_LABEL: "true"}}, "spec": pod}
    sel = {"matchLabels": {PROBE_LABEL: "true"}}
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    subject = [{"kind": "ServiceAccount", "name": "default", "namespace": namespace or "default"}]
    table = {
        ("", "configmaps"): ("v1", "ConfigMap", {"data": {"probe": "kready"}}),
        ("", "secrets"): ("v1", "Secret", {"type": "Opaque"}),
        ("", "serviceaccounts"): ("v1", "ServiceAccount", {}),
        ("", "services"): ("v1", "Service", {"spec": {"ports": [{"port": 80}], "selector": {PROBE_LABEL: "true"}}}),
        ("", "pods"): ("v1", "Pod", {"spec": pod}),
        ("", "namespaces"): ("v1", "Namespace", {}),
        ("", "persistentvolumeclaims"): ("v1", "PersistentVolumeClaim", {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}}),
        ("apps", "deployments"): ("apps/v1", "Deployment", {"spec": {"replicas": 1, "selector": sel, "template": tmpl}}),
        ("apps", "replicasets"): ("apps/v1", "ReplicaSet", {"spec": {"replicas": 1, "selector": sel, "template": tmpl}}),
        ("apps", "statefulsets"): ("apps/v1", "StatefulSet", {"spec": {"replicas": 1, "selector": sel,
                                                                      "serviceName": name, "template": tmpl}}),
        ("apps", "daemonsets"): ("apps/v1", "DaemonSet", {"spec": {"selector": sel, "template": tmpl}}),
        ("batch", "jobs"): ("batch/v1", "Job", {"spec": {"template": {
            "metadata": tmpl["metadata"], "spec": {**pod, "restartPolicy": "Never"}}}}),
        ("batch", "cronjobs"): ("batch/v1", "CronJob", {"spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {
            "template": {"metadata": tmpl["metadata"], "spec": {**pod, "restartPolicy": "Never"}}}}}}),
        ("policy", "poddisruptionbudgets"): ("policy/v1", "PodDisruptionBudget", {"spec": {"maxUnavailable": 1,
                                                                                          "selector": sel}}),
        ("networking.k8s.io", "networkpolicies"): ("networking.k8s.io/v1", "NetworkPolicy", {"spec": {
            "podSelector": sel, "policyTypes": ["Ingress"]}}),
        ("networking.k8s.io", "ingresses"): ("networking.k8s.io/v1", "Ingress", {"spec": {"defaultBackend": {
            "service": {"name": name, "port": {"number": 80}}}}}),
        ("coordination.k8s.io", "leases"): ("coordination.k8s.io/v1", "Lease", {"spec": {}}),
        ("rbac.authorization.k8s.io", "roles"): ("rbac.authorization.k8s.io/v1", "Role", {"rules": rules}),
        ("rbac.authorization.k8s.io", "rolebindings"): ("rbac.authorization.k8s.io/v1", "RoleBinding", {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": subject}),
        ("rbac.authorization.k8s.io", "clusterroles"): ("rbac.authorization.k8s.io/v1", "ClusterRole",
                                                        {"rules": rules}),
        ("rbac.authorization.k8s.io", "clusterrolebindings"): ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": subject}),
    }
    found = table.get((group, resource))
    if found is None:
        return None
    api_version, kind, rest = found
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **json.loads(json.dumps(rest))}


CLUSTER_SCOPED = {("", "namespaces"), ("rbac.authorization.k8s.io", "clusterroles"),
                  ("rbac.authorization.k8s.io", "clusterrolebindings")}
PREFERRED = [("", "configmaps"), ("", "secrets"), ("", "serviceaccounts"), ("", "services"), ("", "pods"),
             ("apps", "deployments")]


def labels_matching(selector: dict | None) -> dict[str, str] | None:
    """Labels an object needs to match ``selector`` (None: cannot be matched by a simple label set)."""
    out: dict[str, str] = dict((selector or {}).get("matchLabels") or {})
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            if key in out and out[key] not in values:
                return None
            out.setdefault(key, values[0])
        elif op == "Exists":
            out.setdefault(key, "kready")
        elif op == "NotIn" and out.get(key) in values or op == "DoesNotExist" and key in out:
            return None
    return out if selector_matches(selector or {}, out) else None


def rule_candidates(hook: dict, crds: dict[tuple[str, str], dict]) -> list[tuple[str, str, str, str]]:
    """(operation, group, resource, scope) the webhook intercepts that this check can send, best first."""
    found = []
    for rule in hook.get("rules") or []:
        ops = rule.get("operations") or []
        groups = rule.get("apiGroups") or []
        resources = [r for r in rule.get("resources") or [] if "/" not in r or r == "*/*"]
        scope = rule.get("scope") or "*"
        for op in ("CREATE", "UPDATE"):
            if op not in ops and "*" not in ops:
                continue
            for g in groups:
                for r in resources:
                    if r in ("*", "*/*"):
                        cands = [(gg, rr) for gg, rr in PREFERRED if g in ("*", gg)]
                        if g not in ("*", "", "apps"):
                            cands += [(cg, cr) for (cg, cr) in crds if cg == g]
                    elif g == "*":
                        cands = [(gg, rr) for gg, rr in PREFERRED if rr == r] or [(cg, cr) for cg, cr in crds
                                                                                  if cr == r]
                    else:
                        cands = [(g, r)]
                    for gg, rr in cands:
                        cluster_scoped = (gg, rr) in CLUSTER_SCOPED or (crds.get((gg, rr)) or {}).get("scope") == \
                            "Cluster"
                        if scope == "Namespaced" and cluster_scoped or scope == "Cluster" and not cluster_scoped:
                            continue
                        item = (op, gg, rr, "Cluster" if cluster_scoped else "Namespaced")
                        if item not in found:
                            found.append(item)
    found.sort(key=lambda c: (c[0] != "CREATE", (c[1], c[2]) not in PREFERRED,
                              PREFERRED.index((c[1], c[2])) if (c[1], c[2]) in PREFERRED else 99))
    return found


def intercepts_kube_system(hook: dict, kube_system_labels: dict) -> bool:
    """True when the webhook sees namespaced objects in kube-system (its namespaceSelector matches it)."""
    if not selector_matches(hook.get("namespaceSelector") or {}, kube_system_labels):
        return False
    return any((rule.get("scope") or "*") in ("*", "Namespaced") for rule in hook.get("rules") or [])


def classify_call(message: str, hook_name: str, elapsed: float, timeout: float) -> str | None:
    """What went wrong calling ``hook_name`` according to the API server's answer (None: nothing about it)."""
    text = message or ""
    if f'failed calling webhook "{hook_name}"' not in text and f'failed to call webhook "{hook_name}"' not in text:
        return None
    low = re.sub(r"\?timeout=\d+s", "", text.lower())  # the call's own URL names its timeout
    if "no endpoints available" in low:
        return "no ready endpoints behind its Service"
    if re.search(r'service "[^"]*" not found', low):
        return "its Service does not exist"
    if any(w in low for w in ("deadline exceeded", "client.timeout", "i/o timeout", "timed out")) \
            or elapsed >= timeout * 0.9:
        return f"timed out (timeoutSeconds {timeout:g})"
    for words in ("connection refused", "no route to host", "network is unreachable", "connection reset"):
        if words in low:
            return f"unreachable ({words})"
    if "x509" in low or "certificate" in low or "tls:" in low:
        return "TLS/certificate error"
    return "error calling it"


def webhook_calls(text: str) -> dict[str, tuple[float, float]]:
    """name → (calls, seconds) from the API server's admission webhook histogram."""
    out: dict[str, list[float]] = {}
    for lab, value in samples(text, WEBHOOK_COUNT_METRIC):
        out.setdefault(lab.get("name", ""), [0.0, 0.0])[0] += value
    for lab, value in samples(text, WEBHOOK_SUM_METRIC):
        out.setdefault(lab.get("name", ""), [0.0, 0.0])[1] += value
    return {k: (v[0], v[1]) for k, v in out.items()}


def service_ready(api, svc: dict) -> tuple[bool | None, str]:
    """Whether a webhook's Service has ready endpoints: (ready, detail); None when it cannot be read."""
    ns, name = svc.get("namespace"), svc.get("name")
    try:
        api.raw("GET", f"/api/v1/namespaces/{ns}/services/{name}")
    except errors.APINotFound:
        return False, f"Service {ns}/{name} does not exist"
    except errors.APIForbidden:
        return None, f"Service {ns}/{name} cannot be read"
    try:
        slices = list_items(api, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                            labelSelector=f"kubernetes.io/service-name={name}")
    except errors.APIForbidden:
        return None, f"EndpointSlices of {ns}/{name} cannot be read"
    ready = sum(1 for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") is not False)
    return (ready > 0), f"Service {ns}/{name}: {ready} ready endpoint(s)"


def webhooks(api, probe_api, *, run_id: str, image: str, namespaces: list[str] | None) -> list[CheckResult]:
    """upgrade.webhooks: one CheckResult per fail-closed webhook (one pass when there is none). ``namespaces``:
    judge only webhooks that see objects there (None: all). ``probe_api`` must not retry."""
    refs = (WEBHOOK_DOC, WEBHOOK_GOOD_PRACTICES)
    hooks = []
    for kind, path in (("validating", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"),
                       ("mutating", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")):
        for cfg in list_items(api, path):
            for hook in cfg.get("webhooks") or []:
                hooks.append((kind, cfg["metadata"]["name"], hook))
    closed = [(k, c, h) for k, c, h in hooks if (h.get("failurePolicy") or "Fail") == "Fail"]
    all_ns = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in list_items(api, "/api/v1/namespaces")}
    kube_system = all_ns.get("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    if namespaces is not None:
        closed = [(k, c, h) for k, c, h in closed
                  if any(selector_matches(h.get("namespaceSelector") or {}, all_ns.get(ns, {})) for ns in namespaces)
                  or any((r.get("scope") or "*") in ("*", "Cluster") for r in h.get("rules") or [])]
    base = {"webhooks": len(hooks), "fail_closed": len(closed),
            "scope": list(namespaces) if namespaces is not None else "every webhook"}
    if not closed:
        why = ("no admission webhook is registered" if not hooks else
               f"every one of the {len(hooks)} admission webhook(s) has failurePolicy Ignore"
               + (" or sees nothing in the target namespaces" if namespaces is not None else ""))
        return [CheckResult(Verdict.PASS, f"no admission webhook fails closed ({why}): none can block writes while "
                            "its backend restarts", evidence=base, references=refs,
                            repro="kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations -o "
                                  "custom-columns=NAME:.metadata.name,POLICY:.webhooks[*].failurePolicy")]
    crds = {}
    for crd in list_items(api, CRD_PATH):
        spec = crd.get("spec") or {}
        served = [v for v in spec.get("versions") or [] if v.get("served")]
        if served:
            crds[(spec.get("group"), spec["names"]["plural"])] = {
                "scope": spec.get("scope"), "kind": spec["names"]["kind"],
                "version": next((v["name"] for v in served if v.get("storage")), served[0]["name"])}
    results = []
    for kind, cfg_name, hook in closed:
        results.append(_probe_webhook(api, probe_api, kind, cfg_name, hook, all_ns, kube_system, crds, run_id,
                                      image, namespaces, base, refs))
    return results


def _probe_webhook(api, probe_api, kind, cfg_name, hook, all_ns, kube_system, crds, run_id, image, namespaces,
                   base, refs) -> CheckResult:
    name = hook.get("name", "?")
    timeout = float(hook.get("timeoutSeconds") or 10)
    ks = intercepts_kube_system(hook, kube_system)
    what = f"{kind} webhook {name} ({cfg_name}{', intercepts kube-system objects' if ks else ''})"
    cc = hook.get("clientConfig") or {}
    evidence: dict[str, Any] = {**base, "webhook": name, "configuration": cfg_name, "type": kind,
                                "failurePolicy": "Fail", "timeoutSeconds": timeout, "intercepts_kube_system": ks,
                                "side_effects": hook.get("sideEffects"), "rules": hook.get("rules"),
                                "namespaceSelector": hook.get("namespaceSelector"),
                                "objectSelector": hook.get("objectSelector"),
                                "backend": cc.get("service") or {"url": cc.get("url")}}
    severity = "high" if ks else "medium"
    resource = f"{kind}webhookconfiguration"
    common = dict(evidence=evidence, references=refs, severity=severity,
                  repro=f"kubectl get {resource} {cfg_name} -o yaml",
                  remediation=("Give the webhook a backend that survives the upgrade: at least 2 replicas spread "
                               "over nodes with a PodDisruptionBudget, a short timeoutSeconds, and a namespaceSelector "
                               "that leaves kube-system (and the webhook's own namespace) out; or set failurePolicy: "
                               "Ignore where a skipped check is acceptable."))
    blocked: str | None = None
    if cc.get("service"):
        ready, detail = service_ready(api, cc["service"])
        evidence["endpoints"] = detail
        if ready is False:
            blocked = detail
    attempt = _webhook_request(api, probe_api, hook, name, all_ns, crds, run_id, image, namespaces)
    evidence["probe"] = attempt
    problem = attempt.get("problem")
    if blocked or problem:
        why = "; ".join(x for x in (blocked, problem) if x)
        return CheckResult(Verdict.FAIL, f"{what} fails closed and {why}: every write it intercepts is refused, as "
                           "it will be whenever its backend restarts during the upgrade", **common)
    if attempt.get("called"):
        calls = attempt.get("webhook_calls_counted") or 0
        took = round(attempt["webhook_seconds_counted"] / calls, 3) if calls else attempt["elapsed_seconds"]
        slow = took > min(1.0, timeout / 2)
        return CheckResult(Verdict.PASS, f"{what} answered a dry-run {attempt['request']} in {took} s (the API "
                           "server's own count of its calls)" + (" — slow: every write it intercepts waits that long"
                                                                 if slow else ""), **common)
    return CheckResult(Verdict.INCONCLUSIVE, f"{what}: {attempt.get('why') or 'not shown to be called'}", **common)


def _webhook_request(api, probe_api, hook, name, all_ns, crds, run_id, image, namespaces) -> dict:
    """Send one dry-run request ``hook`` intercepts and see it called (metric) or failing (answer)."""
    obj_labels = labels_matching(hook.get("objectSelector"))
    if obj_labels is None:
        return {"why": "its objectSelector cannot be matched by a probe object"}
    obj_labels = {**obj_labels, **{k: v for k, v in _ns(run_id).items() if k not in obj_labels}}
    ns_sel = hook.get("namespaceSelector") or {}
    prefer = list(namespaces or []) + sorted(all_ns)
    matching_ns = [n for n in dict.fromkeys(prefer) if n in all_ns and selector_matches(ns_sel, all_ns[n])
                   and (not labels.is_managed(all_ns[n]) or n in (namespaces or []))]
    candidates = rule_candidates(hook, crds)
    if not candidates:
        return {"why": "its rules name no create or update of a resource this check can send (check it by hand)"}
    tried = []
    for op, group, resource, scope in candidates:
        if scope == "Namespaced" and not matching_ns:
            tried.append(f"{op} {resource}: its namespaceSelector matches no namespace")
            continue
        namespace = matching_ns[0] if scope == "Namespaced" else None
        req = _build_request(api, op, group, resource, namespace, obj_labels, ns_sel, hook.get("objectSelector"),
                             crds, run_id, image)
        if req is None:
            tried.append(f"{op} {group or 'core'}/{resource}: no request could be built")
            continue
        method, path, body, content_type, description = req
        before = read_metrics(api)
        t0 = time.monotonic()
        resp = client.send(probe_api, method, path, body=body, query={"dryRun": "All", "fieldManager":
                                                                      client.FIELD_MANAGER},
                           headers={"Content-Type": content_type} if content_type else None,
                           timeout=float(hook.get("timeoutSeconds") or 10) + 20)
        elapsed = round(time.monotonic() - t0, 3)
        after = read_metrics(api)
        calls_before = webhook_calls(before.body if before.ok else "").get(name, (0.0, 0.0))
        calls_after = webhook_calls(after.body if after.ok else "").get(name, (0.0, 0.0))
        out = {"request": description, "status": resp.status, "elapsed_seconds": elapsed,
               "message": resp.message[:400] if not resp.ok else "",
               "webhook_calls_counted": calls_after[0] - calls_before[0],
               "webhook_seconds_counted": round(calls_after[1] - calls_before[1], 4), "tried_before": tried}
        problem = classify_call(resp.message, name, elapsed, float(hook.get("timeoutSeconds") or 10))
        if problem:
            out.update(problem=problem, called=True)
            return out
        if "does not support dry run" in (resp.message or "") and name in resp.message:
            out["why"] = ("its sideEffects are Unknown or Some, so no dry run reaches it; a real write would be "
                          "needed to see it answer (declare sideEffects: None or NoneOnDryRun if it has none)")
            return out
        if calls_after[0] > calls_before[0]:
            out["called"] = True
            return out
        if resp.ok or f'"{name}" denied' in (resp.message or ""):
            out["why"] = ("the dry-run request was answered but the API server's counter for this webhook did not "
                          "move (matchConditions, another API server instance, or metrics unreadable)")
            return out
        tried.append(f"{description}: HTTP {resp.status} {resp.message[:160]}")
    return {"why": "no request reached it: " + "; ".join(tried[:4]), "tried": tried}


def _build_request(api, op, group, resource, namespace, obj_labels, ns_sel, obj_selector, crds, run_id,
                   image):
    """(method, path, body, content type, description) of a dry-run request, or None."""
    name = f"kready-upgrade-probe-{run_id}"[:63].rstrip("-")
    base = "/api/v1" if group == "" else None
    if op == "CREATE":
        obj = _template(group, resource, name, namespace, obj_labels, image)
        if obj is None and (group, resource) in crds:
            c = crds[(group, resource)]
            obj = {"apiVersion": f"{group}/{c['version']}", "kind": c["kind"],
                   "metadata": {"name": name, "labels": obj_labels, **({"namespace": namespace} if namespace else {})}}
        if obj is None:
            return None
        if resource == "namespaces":
            ns_labels = labels_matching(ns_sel)
            if ns_labels is None:
                return None
            obj["metadata"]["labels"] = {**obj["metadata"]["labels"], **ns_labels}
        version = obj["apiVersion"].rpartition("/")[2]
        base = base or f"/apis/{group}/{version}"
        path = f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"
        where = f" in {namespace}" if namespace else ""
        return "POST", path, obj, None, f"create {obj['kind']}{where}"
    # UPDATE: an annotation on an existing object the webhook sees (dry run: nothing is stored)
    if (group, resource) in crds:
        version = crds[(group, resource)]["version"]
    else:
        tmpl = _template(group, resource, "x", None, {}, image)
        version = tmpl["apiVersion"].rpartition("/")[2] if tmpl else None
    if not version:
        return None
    base = base or f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"
    try:
        items = list_items(api, path, limit=100)
    except errors.APIError:
        return None
    seen_by_hook = [i for i in items if selector_matches(obj_selector or {}, (i.get("metadata") or {}).get("labels"))]
    if not seen_by_hook:
        return None
    target = seen_by_hook[0]["metadata"]["name"]
    patch = {"metadata": {"annotations": {PROBE_LABEL: str(int(time.time()))}}}
    return ("PATCH", f"{path}/{target}", patch, "application/merge-patch+json",
            f"update of {resource}/{target}" + (f" in {namespace}" if namespace else ""))


# --- upgrade.version-skew ---------------------------------------------------------------------------------------


def image_version(image: str | None) -> str | None:
    """``registry.k8s.io/kube-proxy:v1.36.2`` → ``v1.36.2`` (None for a digest-only or unversioned image)."""
    if not image or "@" in image.rpartition(":")[2]:
        return None
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    return tag if re.match(r"v?\d+\.\d+", tag or "") else None


def component_versions(api, cp=None) -> dict[str, Any]:
    """What this run can see of each component's version: API server (/version), kubelets (Node status),
    kube-proxy / controller-manager / scheduler (kube-system pods' images, Node status, or the control plane's
    binaries)."""
    seen: dict[str, Any] = {"apiserver": [], "kubelet": {}, "kube-proxy": {}, "kube-controller-manager": [],
                            "kube-scheduler": [], "sources": {}}
    version = api.raw("GET", "/version")
    seen["apiserver"].append({"instance": "the one answering /version", "version": version.get("gitVersion")})
    seen["sources"]["apiserver"] = "/version"
    nodes = list_items(api, "/api/v1/nodes")
    for n in nodes:
        info = (n.get("status") or {}).get("nodeInfo") or {}
        seen["kubelet"][n["metadata"]["name"]] = info.get("kubeletVersion")
        if info.get("kubeProxyVersion"):
            seen["kube-proxy"][n["metadata"]["name"]] = info["kubeProxyVersion"]
            seen["sources"]["kube-proxy"] = "Node status.nodeInfo.kubeProxyVersion"
    try:
        system_pods = list_items(api, "/api/v1/namespaces/kube-system/pods")
    except errors.APIForbidden:
        system_pods = []
    try:
        leases = list_items(api, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
                            labelSelector="apiserver.kubernetes.io/identity=kube-apiserver")
        seen["apiserver_instances"] = len(leases)
    except errors.APIError:
        pass
    for pod in system_pods:
        meta = pod.get("metadata") or {}
        lab = meta.get("labels") or {}
        image = next(iter(c.get("image") for c in (pod.get("spec") or {}).get("containers") or []), None)
        v = image_version(image)
        comp = lab.get("component") or lab.get("k8s-app")
        if comp == "kube-proxy" and v:
            seen["kube-proxy"][(pod.get("spec") or {}).get("nodeName") or meta["name"]] = v
            seen["sources"]["kube-proxy"] = "kube-system pods' images"
        elif comp in ("kube-controller-manager", "kube-scheduler") and v:
            seen[comp].append({"instance": meta["name"], "version": v})
            seen["sources"][comp] = "kube-system pods' images"
        elif comp == "kube-apiserver" and v:
            seen.setdefault("apiserver_pods", []).append({"instance": meta["name"], "version": v})
    if cp is not None:
        for comp in ("kube-controller-manager", "kube-scheduler", "kube-proxy"):
            if seen[comp]:
                continue
            try:
                proc = cp.run([comp, "--version"], timeout=30)
            except (OSError, errors.KreadyError):
                continue
            out = (proc.stdout or b"").decode("utf-8", "replace").strip()
            m = re.search(r"v\d+\.\d+\.\d+\S*", out)
            if proc.returncode == 0 and m:
                if comp == "kube-proxy":
                    seen[comp]["control-plane node"] = m.group(0)
                else:
                    seen[comp].append({"instance": "control-plane node", "version": m.group(0)})
                seen["sources"][comp] = f"`{comp} --version` on the control-plane node"
    return seen


def judge_skew(target: str, seen: dict, *, table: dict | None = None, today: dt.date | None = None
               ) -> tuple[Verdict, str, dict]:
    """The version-skew policy for an upgrade to ``target`` over what ``component_versions`` saw."""
    table = table or release_table()
    policy = table["skew_policy"]
    today = today or dt.date.today()
    tgt = minor_of(target)
    evidence: dict[str, Any] = {"target": target, "seen": seen}
    api_versions = [minor_of(a["version"]) for a in seen.get("apiserver", []) + seen.get("apiserver_pods", [])]
    api_versions = [v for v in api_versions if v]
    kubelets = {n: minor_of(v) for n, v in (seen.get("kubelet") or {}).items()}
    if not api_versions or not any(kubelets.values()):
        return Verdict.INCONCLUSIVE, "the API server's or the kubelets' versions could not be read", evidence
    current = max(api_versions)
    oldest_api = min(api_versions)
    evidence["current"] = show_minor(current)
    problems: list[str] = []
    notes: list[str] = []
    if tgt < current:
        problems.append(f"the target {target} is older than the control plane ({show_minor(current)}): downgrades "
                        "are not supported")
    elif tgt[1] - current[1] > policy.get("minors_per_upgrade", 1):
        problems.append(f"{show_minor(current)} → {target} skips minor versions: upgrade to "
                        f"{current[0]}.{current[1] + 1} first (one minor at a time)")
    if current[1] - oldest_api[1] > policy.get("kube_apiserver_instances", 1):
        problems.append(f"API server instances differ by more than one minor ({show_minor(oldest_api)} and "
                        f"{show_minor(current)})")
    if tgt > current and oldest_api < current:
        problems.append(f"an API server instance is still at {show_minor(oldest_api)}: every instance must be at "
                        f"{show_minor(current)} before the upgrade")
    older = policy.get("kubelet_older", 3)
    for comp, key, limit in (("kubelet", "kubelet", older), ("kube-proxy", "kube-proxy",
                                                                policy.get("kube_proxy_older", 3))):
        for node, raw in sorted((seen.get(key) or {}).items()):
            v = minor_of(raw)
            if v is None:
                notes.append(f"{comp} on {node}: version unknown ({raw!r})")
                continue
            if v > oldest_api:
                problems.append(f"{comp} on {node} is {raw}, newer than the API server ({show_minor(oldest_api)})")
            base = max(tgt, current)
            if base[1] - v[1] > limit:
                problems.append(f"{comp} on {node} is {raw}: more than {limit} minors older than {show_minor(base)}; "
                                f"upgrade it to {base[0]}.{base[1] - limit} or newer before the control plane")
    for comp in ("kube-controller-manager", "kube-scheduler"):
        for inst in seen.get(comp) or []:
            v = minor_of(inst["version"])
            if v is None:
                continue
            if v > oldest_api:
                problems.append(f"{comp} ({inst['instance']}) is {inst['version']}, newer than the API server")
            elif tgt > current and v < current:
                problems.append(f"{comp} ({inst['instance']}) is {inst['version']}: it must be at "
                                f"{show_minor(current)} before the API server goes to {target}")
            elif current[1] - v[1] > policy.get("control_plane_older", 1):
                problems.append(f"{comp} ({inst['instance']}) is {inst['version']}, more than one minor older than "
                                "the API server")
    not_visible = [c for c in ("kube-proxy", "kube-controller-manager", "kube-scheduler") if not seen.get(c)]
    if not_visible:
        notes.append("not visible to this run (managed, replaced or host processes without control-plane access): "
                     + ", ".join(not_visible))
    if seen.get("apiserver_instances", 1) > 1 and not seen.get("apiserver_pods"):
        notes.append(f"{seen['apiserver_instances']} API server instances; only the one answering /version was read")
    window = (table.get("releases") or {}).get(target)
    if window is None:
        notes.append(f"{target} is not in the shipped release table (retrieved {table.get('retrieved')}); its support "
                     "window is not known here")
    else:
        evidence["target_support"] = window
        eol = dt.date.fromisoformat(window["end_of_life"]) if window.get("end_of_life") else None
        maint = dt.date.fromisoformat(window["maintenance"]) if window.get("maintenance") else None
        if eol and today > eol:
            problems.append(f"{target} reached end of life on {eol}: no more patch releases, security fixes included")
        elif maint and today >= maint:
            notes.append(f"{target} is in maintenance mode since {maint} (end of life {eol})")
        elif eol:
            notes.append(f"{target} is supported until {eol} ({(eol - today).days} days from now)")
    evidence["notes"] = notes
    evidence["problems"] = problems
    judged = f"API server {show_minor(current)}, {len(kubelets)} kubelet(s)" + "".join(
        f", {c}" for c in ("kube-proxy", "kube-controller-manager", "kube-scheduler") if seen.get(c)) + (
        f"; not visible here: {', '.join(not_visible)}" if not_visible else "")
    if problems:
        return Verdict.FAIL, f"upgrade to {target} is outside the version-skew policy: " + "; ".join(problems[:6]), \
            evidence
    return Verdict.PASS, f"the upgrade {show_minor(current)} → {target} is within the version-skew policy ({judged})" + \
        (f"; {notes[-1]}" if window else ""), evidence


def version_skew(api, target: str, cp=None, *, today: dt.date | None = None) -> CheckResult:
    seen = component_versions(api, cp)
    verdict, summary, evidence = judge_skew(target, seen, today=today)
    return CheckResult(verdict, summary, evidence=evidence, severity="high", references=(SKEW_POLICY, RELEASES),
                       repro="kubectl version; kubectl get nodes -o custom-columns=NAME:.metadata.name,"
                             "KUBELET:.status.nodeInfo.kubeletVersion; kubectl -n kube-system get pods -o "
                             "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image",
                       remediation=None if verdict is not Verdict.FAIL else (
                           "Follow the supported order: every kube-apiserver at the current minor, then one minor "
                           "up; controller-manager and scheduler next; kubelets and kube-proxy last, never newer "
                           "than the API server and at most three minors behind it."))


# --- the cluster-level entry points the suite calls ----------------------------------------------------------------


def plugin_namespace(ns_labels: dict | None) -> bool:
    """A throw-away namespace of some run of this plugin (not what --kready-apply created): never a target."""
    from ..session import APPLIED_LABEL

    return labels.is_managed(ns_labels) and (ns_labels or {}).get(APPLIED_LABEL) != "true"


def _forbidden(check: str, e: errors.APIError, refs: tuple[str, ...]) -> list[CheckResult]:
    return [CheckResult(Verdict.NOT_APPLICABLE, f"this run may not read what {check} needs: {str(e)[:200]}",
                        references=refs)]


def check_drain(cluster) -> list[CheckResult]:
    """upgrade.drain over every node: pods of ``--kready-namespaces`` only when given, else every namespace but
    the plugin's own throw-away ones."""
    named = set(cluster.settings.namespaces) if cluster.settings.namespaces is not None else None
    api = cluster.api_client()
    evict = cluster.api_client(retries=False)
    try:
        ours = set() if named is not None else {
            n["metadata"]["name"] for n in list_items(api, "/api/v1/namespaces")
            if plugin_namespace(n["metadata"].get("labels"))}
        return drain(api, evict, named, exclude=lambda ns: ns in ours)
    except (errors.APIForbidden, errors.APIUnauthorized) as e:
        return _forbidden(DRAIN_CHECK, e, (DRAIN_DOC,))
    finally:
        evict.close()


def check_webhooks(cluster) -> list[CheckResult]:
    api = cluster.api_client()
    probe = cluster.api_client(retries=False)
    try:
        return webhooks(api, probe, run_id=cluster.run_id, image=cluster.settings.image,
                        namespaces=list(cluster.settings.namespaces) if cluster.settings.namespaces is not None
                        else None)
    except (errors.APIForbidden, errors.APIUnauthorized) as e:
        return _forbidden(WEBHOOKS_CHECK, e, (WEBHOOK_DOC,))
    finally:
        probe.close()


def check_version_skew(cluster, target: str) -> CheckResult:
    try:
        return version_skew(cluster.api_client(), target, cluster.control_plane)
    except (errors.APIForbidden, errors.APIUnauthorized) as e:
        return _forbidden(SKEW_CHECK, e, (SKEW_POLICY,))[0]


# --- upgrade.backup --------------------------------------------------------------------------------------------


def backup(cluster, namespace: str) -> CheckResult:
    """upgrade.backup: the etcd snapshot-and-restore drill, before the upgrade."""
    from . import etcd

    result = etcd.run_drill(cluster.api_client(), cluster.no_retry_client_factory(retry_deadline=5),
                            cluster.control_plane, namespace, cluster.run_id)
    result.summary = f"before the upgrade: {result.summary}"
    result.references = tuple(result.references) + (ETCD_BACKUP_DOC,)
    return result


# --- upgrade.rehearsal ----------------------------------------------------------------------------------------------

def rehearse(cluster, namespace: str) -> list[CheckResult]:
    """The in-place upgrade of ``--kready-upgrade-rehearsal`` (pytest_kready.rehearsal) on ``cluster``'s control
    plane: the ``upgrade.rehearsal`` result, and ``upgrade.version-skew`` judged in the mid-state (new control
    plane, old node), recorded as that check's variant ``mid-upgrade``."""
    from .. import rehearsal

    old, new = cluster.settings.upgrade_rehearsal
    result, mid = rehearsal.run(
        cluster.api_client(), cluster.no_retry_client_factory(), cluster.control_plane, namespace, cluster.run_id,
        cluster.settings.image, old=old, new=new,
        skew_check=lambda: check_version_skew(cluster, rehearsal.minor_of(new)))
    if mid is None:
        return [result]
    mid = dataclasses.replace(mid, check_id="upgrade.version-skew", variant="mid-upgrade",
                              summary=f"mid-upgrade (control plane {new}, node {old}): {mid.summary}")
    return [result, mid]
