#!/usr/bin/env python3
"""Print the shared libraries (and the dynamic loader) that ELF files inside a root file system need.

Development tool used by tools/build-kind-images.sh to copy iptables, conntrack and nft with their libraries
from the node's Debian root file system into the kube-proxy image. Libraries are looked up inside ROOT only
(Debian's multiarch directories), recursively, through `readelf -d` (binutils); one absolute path (as seen
inside ROOT) per line, sorted, including the files given, as "REAL<TAB>PATH": PATH is the name the loader
looks for, REAL the file it resolves to inside ROOT (symbolic links followed within ROOT, absolute ones too).

    elf_deps.py ROOT /usr/sbin/xtables-nft-multi /usr/lib/x86_64-linux-gnu/xtables/libxt_mark.so ...
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

SEARCH = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib", "/usr/lib64", "/lib64"]


def resolve(root: str, path: str) -> str:
    """PATH (absolute, inside ROOT) with every symbolic link followed inside ROOT."""
    parts = [p for p in path.split("/") if p]
    cur = ""
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            cur = cur.rsplit("/", 1)[0]
            continue
        if part == ".":
            continue
        nxt = f"{cur}/{part}"
        if os.path.islink(root + nxt):
            hops += 1
            if hops > 40:
                raise SystemExit(f"elf_deps: too many links at {path}")
            target = os.readlink(root + nxt)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                cur = ""
            continue
        cur = nxt
    return cur or "/"


def needed(path: str) -> tuple[list[str], str | None]:
    out = subprocess.run(["readelf", "-d", "-l", "-W", path], check=True, capture_output=True, text=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    m = re.search(r"Requesting program interpreter: ([^\]]+)\]", out)
    return libs, (m.group(1) if m else None)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[0].rstrip("/")
    todo = list(argv[1:])
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        libs, interp = needed(root + resolve(root, rel))
        if interp:
            todo.append(interp)
        for lib in libs:
            for d in SEARCH:
                cand = f"{d}/{lib}"
                if not os.path.islink(root + d) and os.path.exists(root + resolve(root, cand)):
                    todo.append(cand)
                    break
            else:
                print(f"elf_deps: {lib} (needed by {rel}) not found under {root}", file=sys.stderr)
                return 1
    for p in sorted(seen):
        print(f"{resolve(root, p)}\t{p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
