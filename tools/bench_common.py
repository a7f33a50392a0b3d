"""What the benchmark scripts share (tools/bench_*.py): statistics of repeated runs, the label on what they
create, SIGTERM as an exception (so their ``finally`` blocks clean up), and local clusters on their own slots.

Benchmarks use slots 6 and 7 by default; the project's tests use 0-4.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_kready.local.bins import bin_dir as default_bin_dir  # noqa: E402
from pytest_kready.local.cluster import LocalCluster  # noqa: E402
from pytest_kready.local.layout import Layout  # noqa: E402

BENCH_LABELS = {"app.kubernetes.io/managed-by": "kready-bench"}  # on every namespace a benchmark creates
BENCH_SELECTOR = "app.kubernetes.io/managed-by=kready-bench"
TEST_SLOTS = range(0, 5)  # the project's own tests


def stats(values: list[float]) -> dict:
    """``{"median", "min", "max", "n"}`` of ``values`` (empty: n 0)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def stats_line(name: str, values: list[float], unit: str = "s") -> str:
    s = stats(values)
    if not s["n"]:
        return f"{name}: no value"
    return f"{name}: median {s['median']:.2f} {unit} (min {s['min']:.2f}, max {s['max']:.2f}, n={s['n']})"


def sigterm_unwinds() -> None:
    """SIGTERM raises SystemExit(143): ``finally`` blocks run and tear down what the benchmark made."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def check_slot(slot: int) -> None:
    if slot in TEST_SLOTS:
        print(f"warning: slot {slot} is one the project's tests use (0-4); benchmarks default to 6 and 7",
              file=sys.stderr)


def free_slot(slot: int, *, bin_dir: Path | None = None) -> None:
    """Make sure nothing runs on ``slot``: remove a cluster whose maker is gone (or a half-removed one); refuse a
    cluster someone still uses (a live run or harness, or one started by hand)."""
    cluster = LocalCluster(bin_dir or default_bin_dir(), layout=Layout(slot=slot))
    record = cluster.ownership()
    if record is not None and not record.stale() and not record.is_mine():
        raise SystemExit(f"slot {slot}: a local cluster started by {record.describe()} is there; stop it "
                         f"(kready-local down --slot {slot}) or use another slot")
    if record is None and cluster.running_profile() is not None:
        raise SystemExit(f"slot {slot}: an unrecorded local cluster is running; stop it (kready-local down "
                         f"--slot {slot}) or use another slot")
    if record is not None or cluster.leftovers():
        cluster.down()


@contextlib.contextmanager
def slot_cluster(slot: int, *, profile: str = "baseline", bin_dir: Path | None = None
                 ) -> Iterator[tuple[LocalCluster, bool]]:
    """A running local cluster on ``slot``: the one already there (left running), or one started here (as the
    test harness, this process) and torn down at the end, whatever happens. Yields ``(cluster, started_here)``."""
    cluster = LocalCluster(bin_dir or default_bin_dir(), profile=profile, layout=Layout(slot=slot))
    record = cluster.ownership()
    running = cluster.running_profile()
    if running is not None and (record is None or not record.stale()):
        if running != profile:
            raise SystemExit(f"slot {slot} runs a {running} cluster; this benchmark wants {profile}")
        yield cluster, False
        return
    try:
        cluster.up()  # removes whatever a killed cluster left first
        yield cluster, True
    finally:
        cluster.down()
