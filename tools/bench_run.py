#!/usr/bin/env python3
"""Benchmark whole runs of the shipped suites (issue 14, items 1, 2 and 6). Each run is ``pytest`` in a subprocess
(argument lists, no shell) with ``--kready-json`` and ``--kready-timings``; every run prints one JSON line, then
the summary gives median, min and max, and the per-check table (pytest's setup/call/teardown per test, the time
in deadline waits, the plugin's phases, and the time outside pytest's durations: collection, the report hooks
between a test's phases and between tests, the reports written at the end) from the timings files.

``fresh`` (item 1): ``pytest --kready --kready-provider=local --kready-mode=disruptive`` with the binaries cached
and no cluster on the slot, for each ``--profile``: the run starts its cluster, applies a one-namespace team
directory (``--kready-apply``: a Namespace, a Deployment of 1 agnhost replica, a Service, a default-deny ingress
NetworkPolicy) and checks that one namespace (``--kready-namespaces``); ``--target default`` checks the cluster's
``default`` namespace instead and applies nothing. Measured: ``to_last_finding_s`` (subprocess start → the end of
the last test's call, i.e. the last verdict; cluster start included, the run's teardown not), ``wall_s``
(subprocess start → exit) and the phases.

``readonly`` (item 2): ``pytest --kready --kready-provider=local --kready-mode=readonly`` against a running
cluster on the slot (the one there, or one started here and torn down at the end) with N target namespaces made
here (``--namespaces``, repeatable; default 50 and 12), each holding a Deployment (``--replicas``, pause image), a
Service, a ServiceAccount, a Role and RoleBinding and a NetworkPolicy, all Deployments available before the
first run; ``--kready-namespaces`` names exactly those N.

    python tools/bench_run.py fresh [--profile baseline --profile hardened] [--target team|default]
                                    [--runs 3] [--slot 6] [--out DIR] [--json FILE] [--top 25]
    python tools/bench_run.py readonly [--namespaces 50 --namespaces 12] [--replicas 1]
                                       [--runs 3] [--slot 7] [--out DIR] [--json FILE] [--top 25]
    python tools/bench_run.py table TIMINGS.json [TIMINGS.json ...] [--top 25]   # the table of earlier runs

Everything goes under ``--out`` (default ``/tmp/kready-bench-run-<time>``): per run the findings JSON, the timings
JSON and pytest's output. Namespaces made here carry ``app.kubernetes.io/managed-by=kready-bench`` and are deleted
at the end; a cluster started here, or left on the slot by a run that was killed, is torn down in ``finally``
(also on an error, Ctrl-C or SIGTERM). Slots 6 and 7 by default (the project's tests use 0-4).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (BENCH_LABELS, BENCH_SELECTOR, check_slot, free_slot, sigterm_unwinds,  # noqa: E402
                          slot_cluster, stats, stats_line)

from pytest_kready.access import ClusterAccess  # noqa: E402
from pytest_kready.client import new_api_client  # noqa: E402
from pytest_kready.local.bins import bin_dir as default_bin_dir  # noqa: E402
from pytest_kready.waits import wait_for  # noqa: E402

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
PAUSE = "registry.k8s.io/pause:3.10.2"
RUN_KEYS = ("to_last_finding_s", "wall_s", "in_run_s", "startup_s", "tests_s", "between_phases_s", "between_tests_s",
            "after_tests_s", "cluster_create_s", "apply_s", "cleanup_s")
SESSION_PHASES = ("cluster.create", "preflight", "sweep", "prepare", "apply", "check-namespaces", "cleanup",
                  "cluster.destroy", "cleanup.objects")


# --- one pytest run ---------------------------------------------------------------------------------------------
def run_pytest(args: list[str], *, slot: int, out: Path, name: str, timeout: float) -> dict:
    """``pytest --kready <args>`` in a subprocess with findings and timings files in ``out``; what it measured."""
    findings, timings_file, log = out / f"{name}.findings.json", out / f"{name}.timings.json", out / f"{name}.log"
    argv = [sys.executable, "-m", "pytest", "--kready", *args, f"--kready-json={findings}",
            f"--kready-timings={timings_file}", "-p", "no:cacheprovider", "-q", "-rN"]
    env = {**os.environ, "KREADY_LOCAL_SLOT": str(slot)}
    t0 = time.time()
    with log.open("w") as fh:
        proc = subprocess.Popen(argv, cwd=out, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException:  # timeout, Ctrl-C, SIGTERM: the run's own cleanup first (SIGTERM), then kill
            _stop(proc)
            raise
    wall = time.time() - t0
    result = {"name": name, "exit_status": rc, "wall_s": round(wall, 2), "log": str(log)}
    if timings_file.is_file():
        result.update(measure(json.loads(timings_file.read_text()), t0))
        result["timings"] = str(timings_file)
    if findings.is_file():
        doc = json.loads(findings.read_text())
        result["verdicts"] = doc.get("summary", {}).get("verdicts")
        result["findings"] = str(findings)
    return result


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the plugin cleans up on SIGTERM
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def measure(doc: dict, t0: float) -> dict:
    """From a timings file: time to the last verdict, time in the run, the session's phases."""
    tests = doc.get("tests") or []
    verdicts = [t["started_at"] + t["setup_s"] + t["call_s"] for t in tests if t.get("started_at") is not None]
    first = min((t["started_at"] for t in tests if t.get("started_at") is not None), default=None)
    phases = session_phases(doc)
    return {
        "to_last_finding_s": round(max(verdicts) - t0, 2) if verdicts else None,
        "in_run_s": doc.get("run", {}).get("duration_s"),
        "startup_s": round(first - t0, 2) if first is not None else None,  # interpreter, plugins, collection
        "tests": len(tests),
        **outside_tests(doc),
        "cluster_create_s": phases.get("cluster.create"), "apply_s": phases.get("apply"),
        "cleanup_s": phases.get("cleanup"),
        "phases": phases,
    }


def outside_tests(doc: dict) -> dict[str, float]:
    """Where the run's time is not in pytest's durations: before the first test (collection), between a test's
    phases and between tests (pytest's and the plugins' report hooks: findings, waivers, redaction, terminal
    output), after the last (the reports built and written)."""
    tests = sorted((t for t in doc.get("tests") or [] if t.get("started_at") is not None),
                   key=lambda t: t["started_at"])
    run = doc.get("run") or {}
    if not tests or run.get("started_at") is None:
        return {}
    gaps = sum(max(0.0, b["started_at"] - a["stopped_at"]) for a, b in zip(tests, tests[1:], strict=False))
    inside = sum(max(0.0, t["stopped_at"] - t["started_at"] - t["setup_s"] - t["call_s"] - t["teardown_s"])
                 for t in tests)
    return {"tests_s": round(sum(t["setup_s"] + t["call_s"] + t["teardown_s"] for t in tests), 2),
            "collection_s": round(tests[0]["started_at"] - run["started_at"], 2),
            "between_phases_s": round(inside, 2),  # a test's setup → call → teardown: the reports of each
            "between_tests_s": round(gaps, 2),
            "after_tests_s": round(run["finished_at"] - tests[-1]["stopped_at"], 2)}


def session_phases(doc: dict) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for p in doc.get("phases") or []:
        if p["name"] in SESSION_PHASES or p["name"].startswith("cluster.create."):
            out[p["name"]] += p["seconds"]
    return {k: round(v, 2) for k, v in out.items()}


# --- the per-check table ----------------------------------------------------------------------------------------
def per_test(doc: dict) -> dict[str, dict]:
    """Per test: pytest's setup/call/teardown, and inside them the time in waits, fixtures and session phases."""
    rows: dict[str, dict] = {}
    for t in doc.get("tests") or []:
        rows[t["nodeid"]] = {"check": t.get("check_id") or "-", "setup": t["setup_s"], "call": t["call_s"],
                             "teardown": t["teardown_s"], "total": t["setup_s"] + t["call_s"] + t["teardown_s"],
                             "outcome": t.get("outcome"), "wait": 0.0, "session": 0.0,
                             "parts": defaultdict(float)}
    for p in doc.get("phases") or []:
        row = rows.get(p.get("nodeid"))
        if row is None:
            continue
        name = p["name"]
        if name == "wait":
            row["wait"] += p["seconds"]
            row["parts"][f"wait: {_what(p.get('what') or '?')}"] += p["seconds"]
        elif name.startswith("fixture."):
            fixture = p.get("fixture")
            if fixture != "kready_cluster":  # the session's phases say more about that one
                row["parts"][f"{fixture} {name.split('.')[1]}"] += p["seconds"]
        elif name in SESSION_PHASES[:7]:  # the outer ones (cluster.destroy is inside cleanup)
            row["session"] += p["seconds"]
            row["parts"][name] += p["seconds"]
        elif not name.startswith("cluster.create."):
            row["parts"][name] += p["seconds"]  # reach.observe, phases checks mark themselves
    return rows


def merged(docs: list[dict]) -> dict[str, dict]:
    """The per-test rows of several runs: the median of each number, the waits and fixtures of the first run."""
    runs = [per_test(d) for d in docs]
    out: dict[str, dict] = {}
    for nodeid in dict.fromkeys(n for r in runs for n in r):
        seen = [r[nodeid] for r in runs if nodeid in r]
        row = dict(seen[0])
        for key in ("setup", "call", "teardown", "total", "wait", "session"):
            row[key] = statistics.median(s[key] for s in seen)
        row["runs"] = len(seen)
        out[nodeid] = row
    return out


def _short(nodeid: str) -> str:
    return nodeid.rsplit("/", 1)[-1].replace(".py::", "::")


def table(docs: list[dict], top: int) -> list[str]:
    rows = merged(docs)
    lines = [f"per check (median of {len(docs)} run(s); seconds; 'session' = cluster start/preflight/sweep/apply/"
             "cleanup falling in that test; 'wait' = deadline waits, overlapping ones counted each)",
             f"{'test':58} {'check':30} {'setup':>6} {'call':>6} {'tear':>6} {'total':>6} {'wait':>6} {'sess':>6}  "
             "largest parts: waits, fixtures, phases"]
    for nodeid, r in sorted(rows.items(), key=lambda kv: -kv[1]["total"])[:top]:
        extra = sorted(r["parts"].items(), key=lambda kv: -kv[1])[:3]
        notes = "; ".join(f"{k[:44]} {v:.1f}" for k, v in extra if v >= 0.05)
        lines.append(f"{_short(nodeid)[:58]:58} {r['check'][:30]:30} {r['setup']:6.1f} {r['call']:6.1f} "
                     f"{r['teardown']:6.1f} {r['total']:6.1f} {r['wait']:6.1f} {r['session']:6.1f}  {notes}")
    total = sum(r["total"] for r in rows.values())
    lines.append(f"{'all ' + str(len(rows)) + ' tests':58} {'':30} {'':6} {'':6} {'':6} {total:6.1f}")
    outside: dict[str, list[float]] = defaultdict(list)
    for d in docs:
        for k, v in outside_tests(d).items():
            outside[k].append(v)
    if outside:
        lines.append("outside the tests (median): " + "; ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {statistics.median(v):.1f}" for k, v in outside.items()
            if k != "tests_s") + f" (in-run {statistics.median(d['run']['duration_s'] for d in docs):.1f})")
    phase_values: dict[str, list[float]] = defaultdict(list)
    for d in docs:
        for k, v in session_phases(d).items():
            phase_values[k].append(v)
    if phase_values:
        lines.append("plugin phases (median, min-max): " + "; ".join(
            f"{k} {stats(v)['median']:.1f} ({stats(v)['min']:.1f}-{stats(v)['max']:.1f})"
            for k, v in sorted(phase_values.items(), key=lambda kv: -statistics.median(kv[1]))))
    waits: dict[str, float] = defaultdict(float)
    for d in docs:
        for p in d.get("phases") or []:
            if p["name"] == "wait":
                waits[_what(p.get("what") or "?")] += p["seconds"] / len(docs)
    if waits:
        lines.append("waits by kind (per run, summed; overlapping waits each counted): " + "; ".join(
            f"{k} {v:.1f}" for k, v in sorted(waits.items(), key=lambda kv: -kv[1])[:12]))
    return lines


RUN_NAME = re.compile(r"\bkr-([a-z0-9-]*?)-?\d{8}-[0-9a-f]{6}(?:-gw\d+)?-\d+")  # a run's namespace


def _what(what: str) -> str:
    """A wait's 'what' without what changes every run: a run's namespace keeps its prefix (``kr-rollout``), other
    generated names (volumes, uids) go."""
    words = [w for w in RUN_NAME.sub(r"kr-\1", what).split() if sum(c.isdigit() for c in w) < 4]
    return " ".join(words)[:50]


# --- item 1: a fresh cluster each run -----------------------------------------------------------------------------
def team_dir(root: Path, namespace: str) -> Path:
    """A team's manifests for ``--kready-apply``: Namespace, Deployment (1 agnhost), Service, NetworkPolicy."""
    team = root / "team"
    team.mkdir(parents=True, exist_ok=True)
    labels = {"app": "web"}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                      "name": "web", "image": AGNHOST, "imagePullPolicy": "IfNotPresent",
                      "args": ["netexec", "--http-port=8080"], "ports": [{"containerPort": 8080, "name": "http"}],
                      "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 2},
                      "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                    "limits": {"cpu": "200m", "memory": "64Mi"}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "default-deny-ingress", "namespace": namespace},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ]
    for i, obj in enumerate(objects):
        (team / f"{i}-{obj['kind'].lower()}.yaml").write_text(json.dumps(obj, indent=1) + "\n")
    return team


def fresh(args, out: Path) -> list[dict]:
    results = []
    bin_dir = default_bin_dir()
    for profile in args.profile or ["baseline", "hardened"]:
        for i in range(args.runs):
            name = f"fresh-{profile}-{i + 1}"
            extra = [f"--kready-profile={profile}", "--kready-mode=disruptive", "--kready-provider=local"]
            if args.target == "team":
                ns = "bench-team"
                extra += [f"--kready-apply={team_dir(out, ns)}", f"--kready-namespaces={ns}"]
            else:
                extra += ["--kready-namespaces=default"]
            free_slot(args.slot, bin_dir=bin_dir)  # no cluster running: the run starts its own
            try:
                r = run_pytest(extra, slot=args.slot, out=out, name=name, timeout=args.timeout)
            finally:
                free_slot(args.slot, bin_dir=bin_dir)  # what a killed or failed run left
            r.update(case="fresh", profile=profile, target=args.target, run=i + 1)
            print(json.dumps(r), flush=True)
            results.append(r)
    return results


# --- item 2: readonly against a running cluster with N namespaces --------------------------------------------
def namespace_objects(ns: str, replicas: int) -> list[tuple[str, dict]]:
    labels = {"app": "svc"}
    return [
        (f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                    {"name": "c", "image": PAUSE, "imagePullPolicy": "Never",
                     "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}}}}),
        (f"/api/v1/namespaces/{ns}/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}),
        (f"/api/v1/namespaces/{ns}/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app"}}),
        (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["get", "list"]}]}),
        (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}),
        (f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-ingress"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
    ]


def make_namespaces(api, names: list[str], replicas: int, made: list[str]) -> None:
    for ns in names:
        made.append(ns)
        api.raw("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": ns, "labels": dict(BENCH_LABELS)}})
    for ns in names:
        wait_for(lambda ns=ns: api.raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default"), timeout=60,
                 interval=0.2, retry_on=(Exception,), what=f"default ServiceAccount in {ns}")
        for path, obj in namespace_objects(ns, replicas):
            api.raw("POST", path, body=obj)

    def available():
        items = api.raw("GET", "/apis/apps/v1/deployments")["items"]
        ours = [d for d in items if d["metadata"]["namespace"] in set(names) and d["metadata"]["name"] == "svc"]
        return len(ours) == len(names) and all((d.get("status") or {}).get("availableReplicas", 0) >= replicas
                                               for d in ours)

    wait_for(available, timeout=600, interval=1, what=f"{len(names)} Deployments available")


def delete_namespaces(api, made: list[str]) -> None:
    for ns in made:
        try:
            api.raw("DELETE", f"/api/v1/namespaces/{ns}")
        except Exception:  # noqa: BLE001 - best effort; the label finds the rest
            pass
    try:
        wait_for(lambda: not api.raw("GET", "/api/v1/namespaces", query={"labelSelector": BENCH_SELECTOR})[
            "items"], timeout=180, interval=1, what="benchmark namespaces gone")
    except Exception as e:  # noqa: BLE001
        print(f"warning: {e}", file=sys.stderr)


def readonly(args, out: Path) -> list[dict]:
    results = []
    tag = uuid.uuid4().hex[:5]
    with slot_cluster(args.slot) as (cluster, started):
        print(json.dumps({"cluster": cluster.layout.name, "slot": args.slot, "started_here": started}), flush=True)
        access = ClusterAccess(cluster.kubeconfig)
        api = new_api_client(access)
        made: list[str] = []
        try:
            have: list[str] = []
            for n in sorted(set(args.namespaces or [50, 12])):
                want = [f"bench-ro-{tag}-{i:03d}" for i in range(n)]
                t = time.monotonic()
                make_namespaces(api, [ns for ns in want if ns not in have], args.replicas, made)
                have = sorted(set(have) | set(want))
                print(json.dumps({"namespaces": n, "made_in_s": round(time.monotonic() - t, 1)}), flush=True)
                for i in range(args.runs):
                    name = f"readonly-{n}ns-{i + 1}"
                    r = run_pytest(["--kready-provider=local", "--kready-mode=readonly",
                                    f"--kready-namespaces={','.join(want)}"],
                                   slot=args.slot, out=out, name=name, timeout=args.timeout)
                    r.update(case="readonly", namespaces=n, run=i + 1)
                    print(json.dumps(r), flush=True)
                    results.append(r)
        finally:
            if not started:
                delete_namespaces(api, made)  # a cluster started here goes with its namespaces
            api.close()
    return results


# --- output -----------------------------------------------------------------------------------------------------
def summarize(results: list[dict], top: int) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        key = f"fresh {r['profile']} ({r['target']})" if r["case"] == "fresh" else f"readonly {r['namespaces']} ns"
        groups[key].append(r)
    summary = {}
    for key, runs in groups.items():
        print(f"\n== {key}: {len(runs)} run(s), exit status {sorted({r['exit_status'] for r in runs})}, "
              f"verdicts {runs[-1].get('verdicts')}")
        summary[key] = {}
        for k in RUN_KEYS:
            vals = [r.get(k) for r in runs if r.get(k) is not None]
            if vals:
                summary[key][k] = stats(vals)
                print("  " + stats_line(k, vals))
        docs = [json.loads(Path(r["timings"]).read_text()) for r in runs if r.get("timings")]
        if docs:
            for line in table(docs, top):
                print("  " + line)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="case", required=True)
    for name, slot in (("fresh", 6), ("readonly", 7)):
        p = sub.add_parser(name)
        p.add_argument("--runs", type=int, default=3)
        p.add_argument("--slot", type=int, default=slot, help=f"local cluster slot (default {slot})")
        p.add_argument("--out", type=Path, help="directory for the runs' files (default: a new one in /tmp)")
        p.add_argument("--json", type=Path, help="also write every run and the summary here")
        p.add_argument("--top", type=int, default=25, help="rows of the per-check table (default 25)")
        p.add_argument("--timeout", type=float, default=1800, help="seconds one pytest run may take")
    sub.choices["fresh"].add_argument("--profile", action="append", choices=("baseline", "hardened"),
                                      help="repeatable (default: baseline and hardened)")
    sub.choices["fresh"].add_argument("--target", choices=("team", "default"), default="team")
    sub.choices["readonly"].add_argument("--namespaces", type=int, action="append",
                                         help="target namespaces, repeatable (default: 50 and 12)")
    sub.choices["readonly"].add_argument("--replicas", type=int, default=1, help="pods per namespace (default 1)")
    t = sub.add_parser("table", help="the per-check table of earlier runs' timings files")
    t.add_argument("files", type=Path, nargs="+")
    t.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    if args.case == "table":
        for line in table([json.loads(f.read_text()) for f in args.files], args.top):
            print(line)
        return 0
    sigterm_unwinds()
    check_slot(args.slot)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"kready-bench-run-{time.strftime('%H%M%S')}-"))
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"out": str(out)}), flush=True)
    results = fresh(args, out) if args.case == "fresh" else readonly(args, out)
    summary = summarize(results, args.top)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2) + "\n")
    return 0 if all(r.get("timings") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
