#!/usr/bin/env python3
"""Benchmark the local provider with cached binaries and images: start → node Ready with a pod Running, and
teardown. Prints one JSON line per run and a summary; numbers go to the README.

    python tools/bench_local_cluster.py [--runs 3] [--bin-dir DIR] [--slot N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config  # noqa: E402
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed  # noqa: E402

from pytest_kready.local.bins import bin_dir as default_bin_dir  # noqa: E402
from pytest_kready.local.cluster import LocalCluster  # noqa: E402
from pytest_kready.local.layout import Layout  # noqa: E402


def one_run(bin_dir: Path, slot: int) -> dict:
    cluster = LocalCluster(bin_dir, layout=Layout(slot=slot))
    t0 = time.monotonic()
    cluster.up()
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    core.create_namespaced_pod("default", {"metadata": {"name": "bench"}, "spec": {"containers": [{
        "name": "c", "image": "registry.k8s.io/pause:3.10.2", "imagePullPolicy": "Never"}]}})
    Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.1), retry=retry_if_result(lambda r: not r))(
        lambda: core.read_namespaced_pod("bench", "default").status.phase == "Running")
    ready = time.monotonic() - t0
    t1 = time.monotonic()
    cluster.down()
    down = time.monotonic() - t1
    left = cluster.leftovers()
    return {"start_to_pod_running_s": round(ready, 2), "teardown_s": round(down, 2), "leftovers": len(left),
            **{f"phase_{k}_s": round(v, 2) for k, v in cluster.timings.items()}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin-dir", type=Path, default=None)
    ap.add_argument("--slot", type=int, default=0, help="local cluster slot (0-9) to use")
    args = ap.parse_args()
    results = []
    for _ in range(args.runs):
        r = one_run(args.bin_dir or default_bin_dir(), args.slot)
        print(json.dumps(r), flush=True)
        results.append(r)
    for key in ("start_to_pod_running_s", "teardown_s"):
        vals = [r[key] for r in results]
        print(f"{key}: median {statistics.median(vals):.2f} min {min(vals):.2f} max {max(vals):.2f} (n={len(vals)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
