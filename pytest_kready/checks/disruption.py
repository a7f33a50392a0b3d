"""disruption.pdb, disruption.pdb-eviction and probes.separate.

``disruption.pdb``: every Deployment and StatefulSet with more than one replica in the target namespaces has
exactly one PodDisruptionBudget selecting its pods, the budget protects something (it does not allow every pod to
go), and the Eviction API, asked with a server-side dry run for one of its ready pods, answers as the budget
says: refused (429) when the budget allows no disruption now, accepted when it allows some. Dry runs change
nothing, so this runs in readonly mode too. A dry run cannot consume budget, so for a budget that currently
allows disruptions the refusal itself is shown on the reference budget of ``disruption.pdb-eviction``.

``disruption.pdb-eviction``: in a throw-away namespace, two pods under a budget that allows one disruption
(control: the dry-run eviction is accepted), then the same budget changed to allow none (the dry-run eviction must
be refused with 429). A cluster whose Eviction API ignores budgets fails; one that refuses the control is
inconclusive (it refuses everything, so a refusal proves nothing).

``probes.separate``: every serving container (one that declares a port, or the first container of a workload a
Service selects) of the target Deployments, StatefulSets and DaemonSets has a readinessProbe, and its livenessProbe
(when it has one) is not the same check on the same endpoint. A liveness probe that fails whenever readiness does
restarts pods that only needed to be taken out of the Service (and turns overload into a restart storm).
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..findings import CheckResult, Verdict
from ..waits import WaitTimeout, wait_for
from ..kube import (container, create, get, list_items, merge_patch, object_meta, pod_ready,
                              pod_spec, selector_matches, selector_string, service_selects)

PDB_CHECK_ID = "disruption.pdb"
EVICTION_CHECK_ID = "disruption.pdb-eviction"
PROBES_CHECK_ID = "probes.separate"
PDB_REFERENCES = (
    "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/",
    "https://kubernetes.io/docs/tasks/run-application/configure-pdb/",
    "https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/",
)
PROBE_REFERENCES = (
    "https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
    "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
)
WORKLOAD_KINDS = (("apps/v1", "Deployment", "deployments"), ("apps/v1", "StatefulSet", "statefulsets"))
PROBED_KINDS = WORKLOAD_KINDS + (("apps/v1", "DaemonSet", "daemonsets"),)


# --- workloads -------------------------------------------------------------------------------------------


def list_workloads(api, namespace: str, kinds=WORKLOAD_KINDS) -> list[tuple[str, dict]]:
    """(kind, object) of the workloads in ``namespace``."""
    found = []
    for api_version, kind, plural in kinds:
        for obj in list_items(api, f"/apis/{api_version}/namespaces/{namespace}/{plural}"):
            found.append((kind, obj))
    return found


def template_labels(obj: dict) -> dict:
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def pdb_yaml(namespace: str, name: str, kind: str, obj: dict) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or template_labels(obj)
    match = "".join(f"\n      {k}: \"{v}\"" for k, v in sorted(labels.items()))
    return (f"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"spec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:{match}")


def dry_run_evict(api, namespace: str, pod: str) -> tuple[bool, int, str]:
    """Ask the Eviction API (server-side dry run, nothing happens) to evict ``pod``: (accepted, status, message).
    ``api`` must not retry 429 (a refused eviction is an answer, not a hiccup)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace},
            "deleteOptions": {"dryRun": ["All"]}}
    try:
        api.raw("POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", body=body, query={"dryRun": "All"})
    except errors.APIError as e:
        return False, e.status, str(e)
    return True, 201, "accepted"


def evict_repro(namespace: str, pod: str) -> str:
    return (f"kubectl create --raw /api/v1/namespaces/{namespace}/pods/{pod}/eviction?dryRun=All -f - <<'EOF'\n"
            f'{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"{namespace}"}}}}'
            "\nEOF")


def check_pdbs(api, evict_api, namespace: str) -> list[CheckResult]:
    """disruption.pdb for one namespace: one CheckResult per workload with more than one replica."""
    workloads = [(k, o) for k, o in list_workloads(api, namespace) if ((o.get("spec") or {}).get("replicas", 1) or 0) > 1]
    if not workloads:
        return []
    pdbs = list_items(api, f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets")
    pods = list_items(api, f"/api/v1/namespaces/{namespace}/pods")
    results = []
    for kind, obj in workloads:
        results.append(_check_workload_pdb(evict_api, namespace, kind, obj, pdbs, pods))
    return results


def _check_workload_pdb(evict_api, namespace: str, kind: str, obj: dict, pdbs: list[dict],
                        pods: list[dict]) -> CheckResult:
    name = obj["metadata"]["name"]
    replicas = obj["spec"].get("replicas", 1)
    what = f"{kind} {namespace}/{name} ({replicas} replicas)"
    labels = template_labels(obj)
    matching = [p for p in pdbs if selector_matches((p.get("spec") or {}).get("selector"), labels)]
    evidence: dict[str, Any] = {"workload": f"{kind}/{name}", "replicas": replicas,
                                "pod_labels": labels, "pdbs": [p["metadata"]["name"] for p in matching]}
    common = dict(target_namespace=namespace, references=PDB_REFERENCES, evidence=evidence)
    if not matching:
        return CheckResult(Verdict.FAIL, f"{what} has no PodDisruptionBudget: a node drain may take all its pods at once",
                      repro=f"kubectl -n {namespace} get pdb -o wide", severity="medium",
                      remediation="Create a PodDisruptionBudget selecting its pods, e.g.\n"
                                  + pdb_yaml(namespace, name, kind, obj), **common)
    if len(matching) > 1:
        return CheckResult(Verdict.FAIL, f"{what} is selected by {len(matching)} PodDisruptionBudgets "
                      f"({', '.join(evidence['pdbs'])}): the Eviction API refuses every eviction of its pods (500), "
                      "so node drains stall", repro=f"kubectl -n {namespace} get pdb -o wide",
                      remediation="Keep exactly one PodDisruptionBudget per workload.", **common)
    pdb = matching[0]
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    allowed = status.get("disruptionsAllowed", 0)
    evidence["budget"] = {k: spec[k] for k in ("minAvailable", "maxUnavailable") if k in spec}
    evidence["status"] = {k: status.get(k) for k in ("disruptionsAllowed", "currentHealthy", "desiredHealthy",
                                                      "expectedPods", "observedGeneration")}
    pdb_name = pdb["metadata"]["name"]
    if (status.get("observedGeneration") or 0) < (pdb["metadata"].get("generation") or 0):
        return CheckResult(Verdict.INCONCLUSIVE, f"{what}: PodDisruptionBudget {pdb_name} has no current status "
                      "(is the disruption controller running?)", **common)
    if status.get("desiredHealthy", 0) == 0 and status.get("expectedPods", 0) > 0:
        return CheckResult(Verdict.FAIL, f"{what}: PodDisruptionBudget {pdb_name} lets every pod go at once "
                      f"({evidence['budget']}): it never refuses an eviction",
                      repro=f"kubectl -n {namespace} get pdb {pdb_name} -o yaml",
                      remediation="Set maxUnavailable: 1 (or minAvailable below the replica count but above 0).",
                      **common)
    ready = [p for p in pods if selector_matches(pdb["spec"].get("selector"), (p["metadata"].get("labels") or {}))
             and pod_ready(p)]
    if not ready:
        return CheckResult(Verdict.INCONCLUSIVE, f"{what}: no ready pod to ask the Eviction API about", **common)
    pod = ready[0]["metadata"]["name"]
    accepted, code, message = dry_run_evict(evict_api, namespace, pod)
    evidence["dry_run_eviction"] = {"pod": pod, "accepted": accepted, "status": code, "message": message[:300]}
    repro = evict_repro(namespace, pod)
    if allowed == 0:
        if accepted:
            return CheckResult(Verdict.FAIL, f"{what}: the Eviction API accepted evicting pod {pod} although "
                          f"PodDisruptionBudget {pdb_name} allows no disruption now", repro=repro, severity="high",
                          remediation="The API server must enforce PodDisruptionBudgets on evictions; check for "
                                      "admission webhooks or a modified API server.", **common)
        if code != 429:
            return CheckResult(Verdict.INCONCLUSIVE, f"{what}: the dry-run eviction of {pod} failed with {code}, not "
                          f"the budget's 429: {message[:200]}", repro=repro, **common)
        evidence["blocks_drain"] = status.get("currentHealthy", 0) >= status.get("expectedPods", 0)
        note = (" (it allows none even with every pod healthy: node drains will wait until you scale up)"
                if evidence["blocks_drain"] else "")
        return CheckResult(Verdict.PASS, f"{what}: PodDisruptionBudget {pdb_name}; an eviction that would breach it is "
                      f"refused (429){note}", repro=repro, **common)
    if not accepted:
        return CheckResult(Verdict.INCONCLUSIVE, f"{what}: PodDisruptionBudget {pdb_name} allows {allowed} disruption(s) "
                      f"but the dry-run eviction of {pod} was refused ({code}): {message[:200]}", repro=repro,
                      **common)
    evidence["breach_refusal"] = (f"evicting {allowed + 1} pods at once would breach the budget; a dry run cannot "
                                  f"consume budget, so the refusal is shown on the reference budget "
                                  f"({EVICTION_CHECK_ID})")
    return CheckResult(Verdict.PASS, f"{what}: PodDisruptionBudget {pdb_name} allows {allowed} disruption(s) of "
                  f"{status.get('currentHealthy')} healthy pods; the dry-run eviction answers accordingly",
                  repro=repro, **common)


# --- the reference budget --------------------------------------------------------------------------------


def reference_budget(api, evict_api, namespace: str, run_id: str, image: str, *, timeout: float = 90) -> CheckResult:
    """Two pods; a budget allowing one disruption (dry-run eviction accepted), then none (must be refused)."""
    app = {"app.kubernetes.io/name": "guarded"}
    create(api, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": object_meta(run_id, "guarded",
                                                                                        extra_labels=app),
                 "spec": {"replicas": 2, "selector": {"matchLabels": app},
                          "template": {"metadata": {"labels": dict(app)},
                                       "spec": pod_spec([container("pause", image, ["pause"])],
                                                        terminationGracePeriodSeconds=1)}}}, namespace)
    pdb_path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/guarded"
    create(api, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": object_meta(run_id, "guarded", extra_labels=app),
                 "spec": {"maxUnavailable": 1, "selector": {"matchLabels": app}}}, namespace)
    evidence: dict[str, Any] = {"workload": "Deployment/guarded (2 replicas)"}
    common = dict(target_namespace=namespace, references=PDB_REFERENCES, evidence=evidence)

    def budget(allowed: int):
        def check():
            pdb = api.raw("GET", pdb_path)
            st = pdb.get("status") or {}
            fresh = (st.get("observedGeneration") or 0) >= pdb["metadata"].get("generation", 0)
            return pdb if fresh and st.get("currentHealthy") == 2 and st.get("disruptionsAllowed") == allowed \
                else None
        return wait_for(check, timeout=timeout, interval=0.5, max_interval=2,
                        what=f"PodDisruptionBudget guarded: 2 healthy pods, {allowed} disruption(s) allowed",
                        describe=lambda _: str((get(api, pdb_path) or {}).get("status")))

    try:
        budget(1)
    except WaitTimeout as e:
        return CheckResult(Verdict.INCONCLUSIVE, f"reference budget not in place: {e}", **common)
    pods = [p for p in list_items(api, f"/api/v1/namespaces/{namespace}/pods",
                                  labelSelector=selector_string({"matchLabels": app})) if pod_ready(p)]
    pod = pods[0]["metadata"]["name"]
    accepted, code, message = dry_run_evict(evict_api, namespace, pod)
    evidence["control"] = {"budget": {"maxUnavailable": 1}, "pod": pod, "accepted": accepted, "status": code,
                           "message": message[:300]}
    if not accepted:
        return CheckResult(Verdict.INCONCLUSIVE, f"the Eviction API refused a dry-run eviction the budget allows "
                      f"({code}: {message[:200]}): it refuses everything, so a refusal would prove nothing",
                      repro=evict_repro(namespace, pod), **common)
    merge_patch(api, pdb_path, {"spec": {"maxUnavailable": 0}})
    try:
        budget(0)
    except WaitTimeout as e:
        return CheckResult(Verdict.INCONCLUSIVE, f"reference budget not updated: {e}", **common)
    accepted, code, message = dry_run_evict(evict_api, namespace, pod)
    evidence["breach"] = {"budget": {"maxUnavailable": 0}, "pod": pod, "accepted": accepted, "status": code,
                          "message": message[:300]}
    repro = evict_repro(namespace, pod)
    if accepted:
        return CheckResult(Verdict.FAIL, "the Eviction API accepted an eviction that breaches a PodDisruptionBudget "
                      "(0 disruptions allowed)", repro=repro, severity="high",
                      remediation="The API server must enforce PodDisruptionBudgets on evictions; look for an "
                                  "admission webhook or API server change that bypasses them.", **common)
    if code != 429:
        return CheckResult(Verdict.INCONCLUSIVE, f"the breaching dry-run eviction failed with {code}, not 429: "
                      f"{message[:200]}", repro=repro, **common)
    return CheckResult(Verdict.PASS, "an eviction that would breach a PodDisruptionBudget is refused (429); one the "
                  "budget allows is accepted", repro=repro, **common)


# --- probes ----------------------------------------------------------------------------------------------


def probe_endpoint(probe: dict | None, c: dict) -> tuple | None:
    """What a probe checks, comparable across probes: (kind, details...) with named ports resolved."""
    if not probe:
        return None
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or [] if p.get("name")}

    def port(v):
        return ports.get(v, v) if isinstance(v, str) else v

    if "httpGet" in probe:
        h = probe["httpGet"]
        return ("httpGet", (h.get("scheme") or "HTTP").upper(), h.get("host") or "", port(h.get("port")),
                (h.get("path") or "/").rstrip("/") or "/")
    if "tcpSocket" in probe:
        return ("tcpSocket", probe["tcpSocket"].get("host") or "", port(probe["tcpSocket"].get("port")))
    if "grpc" in probe:
        return ("grpc", probe["grpc"].get("port"), probe["grpc"].get("service") or "")
    if "exec" in probe:
        return ("exec", tuple(probe["exec"].get("command") or ()))
    return ("other", str(sorted(probe)))


def describe_endpoint(e: tuple | None) -> str:
    if e is None:
        return "none"
    if e[0] == "httpGet":
        return f"httpGet {e[1].lower()}://{e[2] or '<pod>'}:{e[3]}{e[4]}"
    if e[0] == "tcpSocket":
        return f"tcpSocket {e[1] or '<pod>'}:{e[2]}"
    if e[0] == "grpc":
        return f"grpc :{e[1]} service {e[2]!r}"
    if e[0] == "exec":
        return "exec " + " ".join(e[1])
    return str(e)


def check_probes(api, namespace: str) -> list[CheckResult]:
    """probes.separate for one namespace: one CheckResult per workload it judges."""
    workloads = list_workloads(api, namespace, PROBED_KINDS)
    if not workloads:
        return []
    services = list_items(api, f"/api/v1/namespaces/{namespace}/services")
    results = []
    for kind, obj in workloads:
        r = judge_probes(namespace, kind, obj, services)
        if r is not None:
            results.append(r)
    return results


def judge_probes(namespace: str, kind: str, obj: dict, services: list[dict]) -> CheckResult | None:
    name = obj["metadata"]["name"]
    pod = (obj.get("spec") or {}).get("template") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    selected_by = [s["metadata"]["name"] for s in services if service_selects(s, template_labels(obj))]
    serving = [c for c in containers if c.get("ports")]
    if not serving and selected_by and containers:
        serving = containers[:1]
    if not serving:
        return None  # no port and no Service: nothing sends it traffic, readiness decides nothing
    problems, seen = [], []
    for c in serving:
        ready = probe_endpoint(c.get("readinessProbe"), c)
        live = probe_endpoint(c.get("livenessProbe"), c)
        seen.append({"container": c["name"], "readiness": describe_endpoint(ready),
                     "liveness": describe_endpoint(live)})
        if ready is None:
            problems.append(f"container {c['name']} has no readinessProbe (it gets traffic before it can serve "
                            "and until it has stopped)")
        elif live is not None and live == ready:
            problems.append(f"container {c['name']}: liveness and readiness are the same check "
                            f"({describe_endpoint(ready)})")
    what = f"{kind} {namespace}/{name}"
    evidence = {"workload": f"{kind}/{name}", "containers": seen, "selected_by_services": selected_by}
    repro = (f"kubectl -n {namespace} get {kind.lower()} {name} -o jsonpath='{{range .spec.template.spec.containers[*]}}"
             "{.name}{\"\\t\"}{.readinessProbe}{\"\\t\"}{.livenessProbe}{\"\\n\"}{end}'")
    common = dict(target_namespace=namespace, references=PROBE_REFERENCES, evidence=evidence, repro=repro)
    if problems:
        return CheckResult(Verdict.FAIL, f"{what}: " + "; ".join(problems), severity="medium",
                      remediation="Add a readinessProbe that reports whether the container can take traffic now "
                                  "(e.g. /readyz, failing during start-up, overload and shutdown), and keep the "
                                  "livenessProbe on a separate endpoint that fails only when a restart helps "
                                  "(e.g. /healthz or /livez), with a higher failureThreshold.", **common)
    return CheckResult(Verdict.PASS, f"{what}: readiness present and distinct from liveness", severity="medium", **common)
