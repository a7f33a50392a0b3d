#!/usr/bin/env python3
"""Speed and stability of the reachability engine on a running local cluster (issue 14, item 5; docs/network.md
reports the numbers).

Speed: the same matrix probed by the engine (one exec per source pod, every target at once, at least three rounds
counted after the settle window, each target shown alive over localhost in every round) and by one
``kubectl exec ... /agnhost connect`` per pair (upstream's way: one sample per pair, 3 pairs at a time; ``--workers
1,3`` adds the sequential form), TCP by pod IP, on the same deployed lab, ``--runs`` times; the ratio is taken
within each run:

* A: 3 namespaces × 3 pods × ``--ports`` (default 1: 8080), every pod a source (upstream's shape: 9 × 8 = 72 pairs
  per port);
* B: ``--b-namespaces`` (default 10) × 3 pods × ``--ports``, every pod a source (30 × 29 = 870 pairs per port;
  ``--b-sources namespace``: one probe pod per namespace, 10 × 30 = 300, the shape of the README's older figures).

Both under a policy set so that the expected grid mixes allowed and denied cells; times are taken once every pod
is ready and the policies have settled. Stability: ``--repeat`` matrices (default 200; 0 skips) on A, switching
policy scenario every ``--switch`` runs, each compared cell by cell with its expectation.

    python tools/bench_reachability.py [--slot 6] [--runs 3] [--ports 1] [--workers 3] [--b-namespaces 10]
                                       [--b-sources pods|namespace] [--repeat 200] [--switch 5] [--json out.json]

Uses the local cluster running on ``--slot`` (left running), or starts one there and tears it down at the end.
Creates namespaces ``bench-*`` labelled ``app.kubernetes.io/managed-by=kready-bench`` and deletes them at the end,
also on an error, Ctrl-C or SIGTERM. Exit status 1 when any matrix had a wrong cell.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import BENCH_LABELS, check_slot, sigterm_unwinds, slot_cluster, stats, stats_line  # noqa: E402

from pytest_kready.client import new_api_client  # noqa: E402
from pytest_kready.local.bins import bin_dir  # noqa: E402
from pytest_kready.providers.base import ClusterAccess  # noqa: E402
from pytest_kready.reachability import Engine, Lab, Model, TruthTable  # noqa: E402

LABELS = BENCH_LABELS


def netpol(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


DENY_INGRESS = {"podSelector": {}, "policyTypes": ["Ingress"]}
DENY_EGRESS = {"podSelector": {}, "policyTypes": ["Egress"]}


def scenarios(lab: Lab) -> list[tuple[str, list[tuple[str, dict]], TruthTable]]:
    """(name, [(namespace, policy)], expectation) on the 3 × 3 lab."""
    allow_y = netpol("allow-from-y", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": lab.namespace_selector("y")}]}]})
    one_port = netpol("allow-8080-to-a", {"podSelector": lab.pod_selector("a"), "ingress": [{"ports": [
        {"protocol": "TCP", "port": 8080}]}]})
    return [
        ("no policy", [], lab.expect(True)),
        ("default deny ingress in x", [("x", netpol("deny", DENY_INGRESS))], lab.expect(True).deny(to="x")),
        ("x: deny ingress, allow from y", [("x", netpol("deny", DENY_INGRESS)), ("x", allow_y)],
         lab.expect(True).deny(to="x").allow(frm="y", to="x")),
        ("z: deny egress", [("z", netpol("deny-egress", DENY_EGRESS))], lab.expect(True).deny(frm="z")),
        ("y: deny ingress, allow TCP 8080 to y/a", [("y", netpol("deny", DENY_INGRESS)), ("y", one_port)],
         lab.expect(True).deny(to="y").allow(to="y/a", port=8080)),
    ]


def kubectl_matrix(kubectl: str, kubeconfig: Path, lab: Lab, expected: TruthTable, workers: int) -> dict:
    """One ``kubectl exec`` per pair, one sample each; returns time and wrong cells against ``expected``."""
    sources = {s.key: s for s in lab.sources}
    cells = list(expected.cells())

    def one(cell):
        row, col = cell
        src = sources[row]
        proc = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "exec", "-n", src.namespace, src.pod, "--",
                               "/agnhost", "connect", f"{col.host}:{col.port}", "--timeout=2s"],
                              capture_output=True, timeout=60)
        return cell, proc.returncode == 0

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        observed = dict(pool.map(one, cells))
    seconds = time.monotonic() - start
    wrong = sum(1 for cell in cells if observed[cell] != expected.get(*cell))
    return {"pairs": len(cells), "seconds": round(seconds, 2), "wrong_cells": wrong, "workers": workers}


def engine_matrix(lab: Lab, expected: TruthTable) -> dict:
    """``seconds``: the whole ``Lab.observe`` call (what the ratio uses); ``sampling_seconds``: the rounds only
    (without taking the kept probe sessions and the aliveness plan)."""
    t0 = time.monotonic()
    result = lab.observe(expected)
    seconds = time.monotonic() - t0
    return {"pairs": result.observed.counts()["cells"], "seconds": round(seconds, 2),
            "sampling_seconds": round(result.seconds, 2), "rounds": result.rounds,
            "counted_rounds": len(result.counted), "wrong_cells": len(result.wrong), "stable": result.stable}


def apply_scenario(lab: Lab, policies) -> None:
    lab.remove_policies()
    for ns, policy in policies:
        lab.apply(policy, namespace=ns)


def speed(lab: Lab, expected: TruthTable, kubectl: str, kubeconfig: Path, workers: list[int]) -> dict:
    """One run: the engine's matrix, then the same cells with one ``kubectl exec`` per pair; the ratios."""
    out: dict = {"engine": engine_matrix(lab, expected)}
    for w in workers:
        out[f"kubectl_{w}"] = kc = kubectl_matrix(kubectl, kubeconfig, lab, expected, w)
        if out["engine"]["seconds"]:
            out[f"ratio_kubectl_{w}"] = round(kc["seconds"] / out["engine"]["seconds"], 1)
    return out


def summarize(runs: list[dict], workers: list[int]) -> dict:
    keys = [("engine_s", lambda r: r["engine"]["seconds"])]
    for w in workers:
        keys += [(f"kubectl_{w}_s", lambda r, w=w: r.get(f"kubectl_{w}", {}).get("seconds")),
                 (f"ratio_kubectl_{w}", lambda r, w=w: r.get(f"ratio_kubectl_{w}"))]
    out = {}
    for name, get in keys:
        vals = [v for v in map(get, runs) if v is not None]
        if vals:
            out[name] = stats(vals)
            print("  " + stats_line(name, vals, unit="x" if name.startswith("ratio") else "s"), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slot", type=int, default=6, help="local cluster slot (default 6; started here if none runs)")
    ap.add_argument("--runs", type=int, default=3, help="speed runs on each deployed lab (default 3)")
    ap.add_argument("--ports", type=int, default=1, choices=(1, 2), help="TCP ports per pod: 8080[, 8081] (default 1)")
    ap.add_argument("--workers", default="3", help="kubectl exec workers, comma list (default 3, upstream's; "
                    "1 is sequential)")
    ap.add_argument("--b-namespaces", type=int, default=10, help="namespaces of lab B (default 10; 0: no lab B)")
    ap.add_argument("--b-sources", choices=("pods", "namespace"), default="pods",
                    help="lab B's sources: every pod (default, A's shape) or one probe pod per namespace")
    ap.add_argument("--repeat", type=int, default=200, help="matrices in the stability run (default 200; 0: none)")
    ap.add_argument("--switch", type=int, default=5, help="change the policy scenario every N matrices (default 5)")
    ap.add_argument("--skip-kubectl", action="store_true", help="do not run the one-exec-per-pair baseline")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    sigterm_unwinds()  # unwind: the namespaces are deleted and a cluster started here torn down in `finally`
    check_slot(args.slot)
    workers = [] if args.skip_kubectl else [int(w) for w in args.workers.split(",") if w.strip()]
    ports = [8080, 8081][:args.ports]

    with slot_cluster(args.slot) as (cluster, started):
        report: dict = {"cluster": cluster.layout.name, "started_here": started, "ports": ports, "runs": {}}
        bad = bench(args, cluster.kubeconfig, workers, ports, report)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if bad else 0


def bench(args, kubeconfig: Path, workers: list[int], ports: list[int], report: dict) -> int:
    """Deploy lab A (and B), time them ``--runs`` times, run the stability series; wrong cells found."""
    kubectl = str(bin_dir() / "kubectl")
    access = ClusterAccess(kubeconfig)
    api = new_api_client(access)
    engine = Engine(api, exec_client_factory=lambda: new_api_client(access), labels=LABELS)
    made: list[str] = []
    tag = uuid.uuid4().hex[:5]
    wrong = 0

    def make_namespace(logical: str, labels: dict) -> str:
        name = f"bench-{tag}-{logical}"
        made.append(name)
        return engine.create_namespace(name, labels)

    def timed(case: str, lab: Lab, expected: TruthTable, scenario: str) -> None:
        nonlocal wrong
        lab.observe(expected)  # let the policies settle (and the probe sessions open) before timing
        runs = []
        for i in range(args.runs):
            r = speed(lab, expected, kubectl, kubeconfig, workers)
            wrong += r["engine"]["wrong_cells"]
            print(json.dumps({"case": case, "run": i + 1, "scenario": scenario, **r}), flush=True)
            runs.append(r)
        print(f"{case}: {runs[0]['engine']['pairs']} pairs, {args.runs} run(s)", flush=True)
        report[case] = {"scenario": scenario, "pairs": runs[0]["engine"]["pairs"], "summary": summarize(runs, workers)}
        report["runs"][case] = runs

    try:
        # --- A: 3 namespaces × 3 pods × ports, every pod a source (upstream's shape: 9 × 8 pairs per port) ---------
        t0 = time.monotonic()
        lab_a = Lab.deploy(engine, Model.grid(["x", "y", "z"], ["a", "b", "c"], ports=ports), make_namespace)
        report["A_deploy_seconds"] = round(time.monotonic() - t0, 1)
        name, policies, expected = scenarios(lab_a)[2]
        apply_scenario(lab_a, policies)
        timed("A", lab_a, expected, name)

        # --- B: N namespaces × 3 pods × ports ------------------------------------------------------------------------
        if args.b_namespaces:
            names = [f"n{i}" for i in range(args.b_namespaces)]
            t0 = time.monotonic()
            lab_b = Lab.deploy(engine, Model.grid(names, ["a", "b", "c"], ports=ports, sources=args.b_sources),
                               make_namespace)
            report["B_deploy_seconds"] = round(time.monotonic() - t0, 1)
            expected_b = lab_b.expect(True)
            for ns in names[::2]:  # every other namespace denies ingress from the others
                lab_b.apply(netpol("deny", DENY_INGRESS), namespace=ns)
                lab_b.apply(netpol("same-ns", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
                            namespace=ns)
                expected_b.deny(to=ns).allow(frm=ns, to=ns)
            timed("B", lab_b, expected_b, f"{len(names[::2])} of {len(names)} namespaces: deny ingress from others")

        # --- stability ---------------------------------------------------------------------------------------------
        if args.repeat:
            report["stability"] = stability(lab_a, args.repeat, args.switch)
            wrong += report["stability"]["wrong_cells"]
            print(json.dumps({"stability": report["stability"]}), flush=True)
    finally:
        for name in made:
            try:
                api.raw("DELETE", f"/api/v1/namespaces/{name}")
            except Exception:  # noqa: BLE001 - best effort
                pass
        engine.close()
        api.close()
    return wrong


def stability(lab_a: Lab, repeat: int, switch: int) -> dict:
    runs = []
    plans = scenarios(lab_a)
    for i in range(repeat):
        name, policies, expected = plans[(i // switch) % len(plans)]
        if i % switch == 0:
            apply_scenario(lab_a, policies)
        result = lab_a.observe(expected)
        first_wrong = sum(1 for cell in expected.cells() if result.history[cell][0] != expected.get(*cell))
        flapping = sum(1 for cell in expected.cells() if len(set(result.history[cell])) > 1)
        runs.append({"scenario": name, "seconds": result.seconds, "rounds": result.rounds,
                     "wrong_cells": len(result.wrong), "first_round_wrong": first_wrong, "flapping": flapping,
                     "stable": result.stable, "cells": result.observed.counts()["cells"]})
        if result.wrong:
            print(result.report(), file=sys.stderr)
    secs = sorted(r["seconds"] for r in runs)
    return {
        "matrices": len(runs), "cells_per_matrix": runs[0]["cells"] if runs else 0,
        "wrong_cells": sum(r["wrong_cells"] for r in runs),
        "unstable_matrices": sum(1 for r in runs if not r["stable"]),
        "first_round_wrong_cells": sum(r["first_round_wrong"] for r in runs),
        "flapping_cells": sum(r["flapping"] for r in runs),
        "rounds_max": max(r["rounds"] for r in runs) if runs else 0,
        "seconds_median": round(secs[len(secs) // 2], 2) if secs else 0,
        "seconds_max": round(secs[-1], 2) if secs else 0,
        "seconds_total": round(sum(secs), 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
