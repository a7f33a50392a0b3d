"""Where an object came from: the ``--kready-apply`` manifest file and the line its document starts on.

The files are read again here, at the end of the run, with PyYAML's composer (which keeps each node's line), in
the same file order as ``client.manifest_files``; nothing about applying changes. A file that cannot be read now
is skipped (the run already applied it or stopped)."""

from __future__ import annotations

from pathlib import Path

import yaml

Key = tuple[str, "str | None", str]  # kind, namespace (None: not given), name


def _scalar(node, key: str) -> str | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if getattr(k, "value", None) == key and isinstance(v, yaml.ScalarNode):
            return str(v.value)
    return None


def _child(node, key: str):
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if getattr(k, "value", None) == key:
            return v
    return None


def index(paths: list[Path]) -> dict[Key, tuple[Path, int]]:
    """``{(kind, namespace or None, name): (file, line)}`` of every object in the manifests under ``paths``."""
    from ..client import manifest_files

    out: dict[Key, tuple[Path, int]] = {}
    for path in paths:
        try:
            files = manifest_files(Path(path))
        except OSError:
            continue
        for file in files:
            try:
                docs = list(yaml.compose_all(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            for doc in docs:
                kind = _scalar(doc, "kind")
                items = _child(doc, "items")
                nodes = list(items.value) if kind and kind.endswith("List") and isinstance(items, yaml.SequenceNode) \
                    else [doc]
                for node in nodes:
                    meta = _child(node, "metadata")
                    k, name = _scalar(node, "kind"), _scalar(meta, "name")
                    if k and name:
                        out.setdefault((k, _scalar(meta, "namespace"), name), (file, node.start_mark.line + 1))
    return out


def locate(idx: dict[Key, tuple[Path, int]], kind: str, namespace: str | None, name: str) -> tuple[Path, int] | None:
    """The file and line of an object; a namespaced object written without ``metadata.namespace`` was applied to
    ``default``."""
    hit = idx.get((kind, namespace, name))
    if hit is None and namespace in (None, "default"):
        hit = idx.get((kind, None, name))
    return hit
