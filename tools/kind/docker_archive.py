#!/usr/bin/env python3
"""Merge OCI image layout tarballs (tools/make_oci_image.py's output) into one `docker save`-style archive.

Development tool used by tools/build-kind-images.sh. `kind build node-image --type file` reads the image
archives of a Kubernetes server tarball (kubernetes/server/bin/<component>.tar) with its own parser, which
knows only the Docker archive format (manifest.json with RepoTags), and compares those tags as plain strings
with the image names it needs. So every name here is written fully qualified (registry.k8s.io/...,
docker.io/kindest/...), exactly as kubeadm and kind spell them. The same archive loads with `docker load` and
`ctr images import` (gzip layers are accepted by both). A legacy `repositories` file comes first and names
every image: kind's parser reads only the first image's names from manifest.json, but all from `repositories`.

    docker_archive.py -o kube-proxy.tar IN.tar[=NAME[,NAME...]] ...

Each input is an OCI layout tarball with one single-platform image; its names are the io.containerd.image.name
annotations of its index.json unless =NAME,... gives them. Output is deterministic (sorted, mtime 0).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile


def read_oci(path: str) -> tuple[list[str], bytes, list[tuple[str, bytes]]]:
    with tarfile.open(path) as t:
        def blob(digest: str) -> bytes:
            algo, hexd = digest.split(":", 1)
            return t.extractfile(f"blobs/{algo}/{hexd}").read()

        index = json.load(t.extractfile("index.json"))
        manifests = index.get("manifests", [])
        if not manifests:
            raise SystemExit(f"{path}: index.json lists no manifest")
        names: list[str] = []
        for m in manifests:
            ann = m.get("annotations", {})
            n = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
            if n and n not in names:
                names.append(n)
        digests = {m["digest"] for m in manifests}
        if len(digests) != 1:
            raise SystemExit(f"{path}: expected one image, index.json names {len(digests)} manifests")
        manifest = json.loads(blob(manifests[0]["digest"]))
        if "layers" not in manifest:
            raise SystemExit(f"{path}: {manifests[0]['digest']} is not an image manifest (an index?)")
        config = blob(manifest["config"]["digest"])
        layers = [(layer["digest"].split(":", 1)[1], blob(layer["digest"])) for layer in manifest["layers"]]
        return names, config, layers


def add(out: tarfile.TarFile, name: str, data: bytes, done: set[str]) -> None:
    if name in done:
        return
    done.add(name)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    out.addfile(info, io.BytesIO(data))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("inputs", nargs="+", metavar="OCI.tar[=NAME,...]")
    a = p.parse_args(argv)
    entries = []
    files: dict[str, bytes] = {}
    for spec in a.inputs:
        path, _, override = spec.partition("=")
        names, config, layers = read_oci(path)
        if override:
            names = [n for n in override.split(",") if n]
        if not names:
            raise SystemExit(f"{path}: no image name (give one as {path}=NAME)")
        for n in names:
            if ":" not in n.rsplit("/", 1)[-1]:
                raise SystemExit(f"{n}: a name needs a tag")
        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        files[cfg_name] = config
        layer_names = []
        for hexd, data in layers:
            files[f"{hexd}/layer.tar"] = data
            layer_names.append(f"{hexd}/layer.tar")
        entries.append({"Config": cfg_name, "RepoTags": names, "Layers": layer_names})
    tmp = a.output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        done: set[str] = set()
        # the legacy `repositories` file first: kind reads whichever of it and manifest.json comes first, and
        # takes every name from `repositories` but only the first image's names from manifest.json
        repos: dict[str, dict[str, str]] = {}
        for e in entries:
            for n in e["RepoTags"]:
                repo, tag = n.rsplit(":", 1)
                repos.setdefault(repo, {})[tag] = e["Config"][: -len(".json")]
        add(out, "repositories", json.dumps(repos, sort_keys=True).encode(), done)
        add(out, "manifest.json", json.dumps(entries, sort_keys=True).encode(), done)
        for name in sorted(files):
            add(out, name, files[name], done)
    os.replace(tmp, a.output)
    for e in entries:
        print(" ".join(e["RepoTags"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
