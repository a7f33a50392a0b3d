#!/usr/bin/env python3
"""Benchmark the local provider with cached binaries and images (issue 14, items 3 and 4):

* start → a usable API with a pod Running (``start_to_pod_running_s``: ``up(wait_addons=False)``, as a run starts
  it), then → CoreDNS and the volume provisioner Ready (``start_to_addons_ready_s``), and the start steps
  ``LocalCluster.timings`` measures (``phase_*_s``: cleanup of the slot, API server, images, node Ready, add-ons,
  the whole ``up``);
* ``--drill``: the etcd snapshot-and-restore drill of ``etcd.snapshot-restore`` (pytest_kready/checks/etcd.py,
  ``run_drill``: marker A, snapshot, marker B, restore through ``LocalControlPlane.restore_etcd``, API back, A there
  and B gone) on that cluster: ``drill_s`` (the whole drill), ``restore_call_s`` (``restore_etcd``: stop the
  control plane, ``etcdutl snapshot restore``, start etcd, the API server and the controllers; ``restore_<step>_s``:
  its steps), ``restore_api_s`` (restore started → API ready), ``restore_to_change_gone_s`` (restore started → both
  markers read back), ``snapshot_s``;
* teardown (``teardown_s``; after the drill when ``--drill``) and what it left (``leftovers``: must be 0).

Prints one JSON line per run and a summary (median, min, max); numbers go to the README.

    python tools/bench_local_cluster.py [--runs 3] [--slot 6] [--profile baseline|hardened] [--drill]
                                        [--bin-dir DIR] [--json out.json]

The cluster runs on its own slot (default 6; the project's tests use 0-4) and is torn down in ``finally``, also on
an error, Ctrl-C or SIGTERM; a cluster left on the slot by a killed earlier run is removed first, one that someone
still uses is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import BENCH_LABELS, check_slot, free_slot, sigterm_unwinds, stats, stats_line  # noqa: E402
from kubernetes import client, config  # noqa: E402
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed  # noqa: E402

from pytest_kready import labels  # noqa: E402
from pytest_kready.access import ClusterAccess  # noqa: E402
from pytest_kready.checks import etcd as etcd_check  # noqa: E402
from pytest_kready.client import new_api_client  # noqa: E402
from pytest_kready.local.bins import bin_dir as default_bin_dir  # noqa: E402
from pytest_kready.local.cluster import LocalCluster  # noqa: E402
from pytest_kready.local.layout import Layout  # noqa: E402
from pytest_kready.providers.local import LocalControlPlane  # noqa: E402

PAUSE = "registry.k8s.io/pause:3.10.2"
KEYS = ("start_to_pod_running_s", "start_to_addons_ready_s", "drill_s", "restore_call_s", "restore_api_s", "restore_to_change_gone_s",
        "snapshot_s", "restore_stop_s", "restore_etcdutl_and_rest_s", "restore_etcd_start_s",
        "restore_apiserver_start_s", "restore_controllers_start_s", "teardown_s")


class RestoreSteps:
    """Seconds per step of ``LocalCluster.restore_etcd``, measured from outside by wrapping this one cluster
    object's process stop and component starts (nothing in pytest_kready/local is changed)."""

    # etcd_start: etcd's start to its health (the API server starts beside it); apiserver_start: from then to the
    # API server's /readyz
    WRAPPED = (("procs", "stop", "stop"), ("procs", "stop_many", "stop"), ("cluster", "_wait_etcd", "etcd_start"),
               ("cluster", "_wait_apiserver", "apiserver_start"),
               ("cluster", "_start_controllers", "controllers_start"))

    def __init__(self, cluster: LocalCluster):
        self.seconds: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        for owner_name, attr, step in self.WRAPPED:
            owner = cluster if owner_name == "cluster" else cluster.procs
            if hasattr(owner, attr):
                setattr(owner, attr, self._timed(getattr(owner, attr), step))

    def _timed(self, fn, step: str):
        def wrapper(*args, **kwargs):
            t = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.monotonic() - t
                self.seconds[step] = self.seconds.get(step, 0.0) + took
                if step == "stop" and args:
                    names = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
                    self.stopped["+".join(map(str, names))] = round(took, 2)
        return wrapper


def drill(cluster: LocalCluster) -> dict:
    """``etcd.snapshot-restore``'s drill on ``cluster``, in a namespace of its own (labelled; gone with the
    cluster), with the restore's steps timed."""
    steps = RestoreSteps(cluster)
    access = ClusterAccess(cluster.kubeconfig)
    api = new_api_client(access)
    run_id = labels.new_run_id()
    ns = f"bench-etcd-{run_id}"
    try:
        api.raw("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": ns, "labels": dict(BENCH_LABELS)}})
        t0 = time.monotonic()
        result = etcd_check.run_drill(api, lambda: new_api_client(access, retry_attempts=1, retry_deadline=5),
                                      LocalControlPlane(cluster), ns, run_id)
        seconds = time.monotonic() - t0
    finally:
        api.close()
    ev = result.evidence or {}
    restore = {f"restore_{k}_s": round(v, 2) for k, v in steps.seconds.items()}
    if ev.get("restore_call_seconds") is not None:  # what is left of the call: etcdutl snapshot restore
        restore["restore_etcdutl_and_rest_s"] = round(ev["restore_call_seconds"] - sum(steps.seconds.values()), 2)
    return {"drill_verdict": result.verdict.value, "drill_s": round(seconds, 2), **restore,
            "restore_stop_per_component_s": dict(steps.stopped),
            "snapshot_s": ev.get("snapshot_seconds"), "restore_call_s": ev.get("restore_call_seconds"),
            "restore_api_s": ev.get("api_ready_seconds"),
            "restore_to_change_gone_s": ev.get("restore_seconds"),
            **({} if result.verdict.value == "pass" else {"drill_summary": result.summary})}


def one_run(bin_dir: Path, slot: int, profile: str, with_drill: bool) -> dict:
    cluster = LocalCluster(bin_dir, profile=profile, layout=Layout(slot=slot))
    out: dict = {"profile": profile}
    try:
        t0 = time.monotonic()
        cluster.up(wait_addons=False)  # as a run starts it: CoreDNS and the provisioner are waited for below
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = client.CoreV1Api(api)
        # refused until the controller manager has made the namespace's default ServiceAccount: part of the start
        Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.1), reraise=True,
                 retry=retry_if_exception_type(client.exceptions.ForbiddenException))(
            lambda: core.create_namespaced_pod("default", {"metadata": {"name": "bench"}, "spec": {
                "containers": [{"name": "c", "image": PAUSE, "imagePullPolicy": "Never"}]}}))
        Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.1), retry=retry_if_result(lambda r: not r))(
            lambda: core.read_namespaced_pod("bench", "default").status.phase == "Running")
        out["start_to_pod_running_s"] = round(time.monotonic() - t0, 2)
        cluster.wait_addons()
        out["start_to_addons_ready_s"] = round(time.monotonic() - t0, 2)
        api.close()
        out.update({f"phase_{k}_s": round(v, 2) for k, v in cluster.timings.items()})
        if with_drill:
            out.update(drill(cluster))
    finally:
        t1 = time.monotonic()
        cluster.down()
        out["teardown_s"] = round(time.monotonic() - t1, 2)
        out["leftovers"] = len(cluster.leftovers())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin-dir", type=Path, default=None)
    ap.add_argument("--slot", type=int, default=6, help="local cluster slot (0-9; default 6)")
    ap.add_argument("--profile", default="baseline", choices=("baseline", "hardened"))
    ap.add_argument("--drill", action="store_true", help="also run the etcd snapshot-and-restore drill")
    ap.add_argument("--json", type=Path, help="also write every run and the summary here")
    args = ap.parse_args(argv)
    sigterm_unwinds()
    check_slot(args.slot)
    bin_dir = args.bin_dir or default_bin_dir()
    free_slot(args.slot, bin_dir=bin_dir)
    results = []
    for _ in range(args.runs):
        r = one_run(bin_dir, args.slot, args.profile, args.drill)
        print(json.dumps(r), flush=True)
        results.append(r)
    summary = {}
    for key in KEYS:
        vals = [r[key] for r in results if r.get(key) is not None]
        if vals:
            summary[key] = stats(vals)
            print(stats_line(key, vals))
    bad = [r for r in results if r["leftovers"] or r.get("drill_verdict", "pass") != "pass"]
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
