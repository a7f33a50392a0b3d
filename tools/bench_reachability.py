#!/usr/bin/env python3
"""Speed and stability of the reachability engine on a running local cluster (docs/network.md reports the numbers).

Speed: the same matrix probed by the engine (one exec per source pod, every target at once, at least three rounds
counted after the settle window, each target shown alive over localhost in every round) and by one
``kubectl exec ... /agnhost connect`` per pair (the peers' way: one sample per pair), with 1 and 3 kubectl workers
(upstream's e2e used 3):

* A: 3 namespaces × 3 pods × 2 ports, every pod a source (upstream's shape: 9 × 8 × 2 = 144 pairs);
* B: 10 namespaces × 3 pods × 2 ports, one probe pod per namespace (10 × 30 × 2 = 600 pairs).

Both under a policy set so that the expected grid mixes allowed and denied cells; times are taken once every pod
is ready. Stability: ``--repeat`` matrices (default 200) on A, switching policy scenario every ``--switch`` runs,
each compared cell by cell with its expectation.

    python tools/bench_reachability.py [--slot 0] [--repeat 200] [--switch 5] [--json out.json]

Creates namespaces ``bench-*`` labelled ``app.kubernetes.io/managed-by=kready-bench`` and deletes them at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_kready.client import new_api_client  # noqa: E402
from pytest_kready.local.bins import bin_dir  # noqa: E402
from pytest_kready.local.layout import Layout  # noqa: E402
from pytest_kready.providers.base import ClusterAccess  # noqa: E402
from pytest_kready.reachability import Engine, Lab, Model, TruthTable  # noqa: E402

LABELS = {"app.kubernetes.io/managed-by": "kready-bench"}


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
    result = lab.observe(expected)
    return {"pairs": result.observed.counts()["cells"], "seconds": round(result.seconds, 2), "rounds": result.rounds,
            "counted_rounds": len(result.counted), "wrong_cells": len(result.wrong), "stable": result.stable}


def apply_scenario(lab: Lab, policies) -> None:
    lab.remove_policies()
    for ns, policy in policies:
        lab.apply(policy, namespace=ns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slot", type=int, default=0, help="local cluster slot (default 0)")
    ap.add_argument("--repeat", type=int, default=200, help="matrices in the stability run (default 200)")
    ap.add_argument("--switch", type=int, default=5, help="change the policy scenario every N matrices (default 5)")
    ap.add_argument("--skip-kubectl", action="store_true", help="do not run the one-exec-per-pair baseline")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the namespaces are deleted in `finally`

    layout = Layout(slot=args.slot)
    kubeconfig = layout.kubeconfig
    kubectl = str(bin_dir() / "kubectl")
    access = ClusterAccess(kubeconfig)
    api = new_api_client(access)
    engine = Engine(api, exec_client_factory=lambda: new_api_client(access), labels=LABELS)
    made: list[str] = []
    tag = uuid.uuid4().hex[:5]

    def make_namespace(logical: str, labels: dict) -> str:
        name = f"bench-{tag}-{logical}"
        made.append(name)
        return engine.create_namespace(name, labels)

    report: dict = {"cluster": layout.name}
    try:
        # --- A: 3 × 3 × 2, every pod a source ------------------------------------------------------------------
        t0 = time.monotonic()
        lab_a = Lab.deploy(engine, Model.grid(["x", "y", "z"], ["a", "b", "c"], ports=[8080, 8081]), make_namespace)
        report["A_deploy_seconds"] = round(time.monotonic() - t0, 1)
        name, policies, expected = scenarios(lab_a)[2]
        apply_scenario(lab_a, policies)
        lab_a.observe(expected)  # let the policies settle before timing
        report["A"] = {"scenario": name, "engine": engine_matrix(lab_a, expected)}
        if not args.skip_kubectl:
            for workers in (1, 3):
                report["A"][f"kubectl_{workers}"] = kubectl_matrix(kubectl, kubeconfig, lab_a, expected, workers)
        print(json.dumps({"A": report["A"]}), flush=True)

        # --- B: 10 namespaces × 3 pods × 2 ports, one probe pod per namespace ----------------------------------
        names = [f"n{i}" for i in range(10)]
        t0 = time.monotonic()
        lab_b = Lab.deploy(engine, Model.grid(names, ["a", "b", "c"], ports=[8080, 8081], sources="namespace"),
                           make_namespace)
        report["B_deploy_seconds"] = round(time.monotonic() - t0, 1)
        expected_b = lab_b.expect(True)
        for ns in names[::2]:  # every other namespace denies ingress from the others
            lab_b.apply(netpol("deny", DENY_INGRESS), namespace=ns)
            lab_b.apply(netpol("same-ns", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
                        namespace=ns)
            expected_b.deny(to=ns).allow(frm=ns, to=ns)
        lab_b.observe(expected_b)
        report["B"] = {"scenario": "5 of 10 namespaces: deny ingress from other namespaces",
                       "engine": engine_matrix(lab_b, expected_b)}
        if not args.skip_kubectl:
            for workers in (1, 3):
                report["B"][f"kubectl_{workers}"] = kubectl_matrix(kubectl, kubeconfig, lab_b, expected_b, workers)
        print(json.dumps({"B": report["B"]}), flush=True)

        # --- stability ---------------------------------------------------------------------------------------------
        runs = []
        plans = scenarios(lab_a)
        for i in range(args.repeat):
            name, policies, expected = plans[(i // args.switch) % len(plans)]
            if i % args.switch == 0:
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
        report["stability"] = {
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
        print(json.dumps({"stability": report["stability"]}), flush=True)
    finally:
        for name in made:
            try:
                api.raw("DELETE", f"/api/v1/namespaces/{name}")
            except Exception:  # noqa: BLE001 - best effort
                pass
        engine.close()

    for case in ("A", "B"):
        data = report.get(case, {})
        eng = data.get("engine", {}).get("seconds")
        for workers in (1, 3):
            kc = data.get(f"kubectl_{workers}", {}).get("seconds")
            if eng and kc:
                data[f"ratio_kubectl_{workers}"] = round(kc / eng, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report.get("stability", {}).get("wrong_cells", 1) == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
