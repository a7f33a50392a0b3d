"""Reference cluster profiles (baseline, hardened), defined once and used by the local provider and the kind
configs alike.

A profile is a directory holding ``profile.yaml`` plus the files it names: files the API server reads (placed
at ``{conf}`` on the control-plane node), API server arguments, cluster-wide manifests applied after the API
serves, and reference namespace manifests users can copy.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from pathlib import Path

import yaml

from ..resources import profiles_dir

NAMES = ("baseline", "hardened")
KEY_PLACEHOLDER = "__KREADY_ENCRYPTION_KEY__"


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    directory: Path
    apiserver_args: dict[str, str]
    apiserver_files: tuple[Path, ...]
    cluster_manifests: tuple[Path, ...]
    namespace_manifests: tuple[Path, ...]

    def rendered_args(self, *, conf: str, logdir: str) -> dict[str, str]:
        return {k: v.format(conf=conf, logdir=logdir) for k, v in self.apiserver_args.items()}

    def write_files(self, dest: Path, *, encryption_key: str | None = None) -> dict[str, Path]:
        """Copy the API server files into ``dest``, with a fresh encryption key where the template asks for one."""
        dest.mkdir(parents=True, exist_ok=True)
        key = encryption_key or base64.b64encode(secrets.token_bytes(32)).decode()
        out = {}
        for src in self.apiserver_files:
            text = src.read_text().replace(KEY_PLACEHOLDER, key)
            target = dest / src.name
            target.write_text(text)
            target.chmod(0o600)
            out[src.name] = target
        return out


def load_profile(name: str) -> Profile:
    if name not in NAMES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(NAMES)}")
    directory = profiles_dir() / name
    spec = yaml.safe_load((directory / "profile.yaml").read_text())
    api = spec.get("apiserver") or {}
    return Profile(
        name=name,
        directory=directory,
        apiserver_args={str(k): str(v) for k, v in (api.get("args") or {}).items()},
        apiserver_files=tuple(directory / f for f in api.get("files") or ()),
        cluster_manifests=tuple(directory / f for f in spec.get("cluster_manifests") or ()),
        namespace_manifests=tuple(directory / f for f in spec.get("namespace_manifests") or ()),
    )
