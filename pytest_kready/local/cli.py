"""`kready-local up|down|status`: the local provider's cluster by hand (also `python -m pytest_kready.local.cli`).

    kready-local up [--bin-dir DIR] [--profile baseline|hardened]   start; prints the kubeconfig path
    kready-local down                                                stop and remove everything
    kready-local status                                              what of the cluster is on the host, and who
                                                                     started it

A cluster started with `up` is recorded as started by hand: `pytest --kready --kready-provider=local` attaches
to it (not ephemeral: no etcd restore drill unless --kready-allow-etcd-restore) and leaves it running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import ownership
from ..errors import KreadyError
from ..ownership import Ownership
from .bins import bin_dir
from .cluster import LocalCluster
from .layout import NOT_ROOT, Layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kready-local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--bin-dir", type=Path, default=None, help="binaries laid out like kubernetes/server/bin (env KREADY_LOCAL_BIN_DIR)")
    parser.add_argument("--profile", choices=("baseline", "hardened"), default="baseline")
    parser.add_argument("--slot", type=int, default=None, help="run several clusters side by side, one per slot 0-9 (env KREADY_LOCAL_SLOT)")
    args = parser.parse_args(argv)
    if args.command in ("up", "down") and os.geteuid() != 0:
        print(f"kready-local: {NOT_ROOT}", file=sys.stderr)
        return 2

    layout = Layout(slot=args.slot) if args.slot is not None else Layout.from_env()
    cluster = LocalCluster(args.bin_dir or bin_dir(), profile=args.profile, layout=layout)
    try:
        if args.command == "up":
            kubeconfig = cluster.up(owner=Ownership.this_process(ownership.MANUAL, "local", layout.name))
            print(json.dumps({k: round(v, 2) for k, v in cluster.timings.items()}), file=sys.stderr)
            print(kubeconfig)
        elif args.command == "down":
            cluster.down()
            left = cluster.leftovers()
            if left:
                print("left behind: " + "; ".join(left), file=sys.stderr)
                return 1
        else:
            left = cluster.leftovers()
            if not left:
                print("nothing of the local cluster is on this host")
            else:
                record = cluster.ownership()
                if record is not None:
                    state = " (gone: the next run removes it)" if record.stale() else ""
                    print(f"started by {record.describe()}{state}")
                print("\n".join(left))
    except KreadyError as err:
        print(f"kready-local: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        cluster.down()
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
