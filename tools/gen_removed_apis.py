#!/usr/bin/env python3
"""Development tool: write the table of Kubernetes API versions removed per release as package data
(``pytest_kready/checks/data/removed-apis.yaml``), used by ``upgrade.removed-apis``.

Sources, both named in the output:

* the API types of the pinned Kubernetes version: every ``zz_generated.prerelease-lifecycle.go`` of the Go modules
  ``k8s.io/api``, ``k8s.io/apiextensions-apiserver`` and ``k8s.io/kube-aggregator`` (``APILifecycleDeprecated``,
  ``APILifecycleRemoved``, ``APILifecycleReplacement``): what the API server itself reports as ``removed_release``;
* the Kubernetes Deprecated API Migration Guide (https://kubernetes.io/docs/reference/using-api/deprecation-guide/)
  for the removed APIs whose types are no longer in those modules (``GUIDE_ONLY`` below, transcribed by hand).

    tools/gen_removed_apis.py              # (re)write the table from the module cache ($GOMODCACHE)
    tools/gen_removed_apis.py --check      # exit 1 (with a diff) when the committed table is not what the modules give
    tools/gen_removed_apis.py --version v0.36.2 --output F

Run by hand after changing the pinned Kubernetes version; commit the output. A lifecycle file this tool does not
understand is an error, never a silently shorter table.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "pytest_kready" / "checks" / "data" / "removed-apis.yaml"
DEFAULT_VERSION = "v0.36.2"  # the staging modules of Kubernetes v1.36.2 (the local provider's pinned version)
MODULES = (("k8s.io/api", ""), ("k8s.io/apiextensions-apiserver", "pkg/apis"),
           ("k8s.io/kube-aggregator", "pkg/apis"))
GUIDE = "https://kubernetes.io/docs/reference/using-api/deprecation-guide/"

# Kinds that are not a resource of their own (a subresource's body, a review sent to a webhook, discovery):
# (resource, subresource), or None to leave the kind out.
SPECIAL_KINDS: dict[str, tuple[str, str] | None] = {
    "Eviction": ("pods", "eviction"),
    "DeploymentRollback": ("deployments", "rollback"),
    "Scale": None,  # the scale subresource of several kinds
    "AdmissionReview": None,  # sent to webhooks, never requested from the API server
    "ConversionReview": None,  # sent to CRD conversion webhooks, likewise
    "APIGroupDiscovery": None,  # an Accept type of discovery, not a resource
}

# Removed APIs of the deprecation guide whose Go types the modules of the pinned version no longer hold.
GUIDE_ONLY = (
    dict(group="autoscaling", version="v2beta1", kind="HorizontalPodAutoscaler", resource="horizontalpodautoscalers",
         deprecated="1.22", removed="1.25", replacement="autoscaling/v2"),
    dict(group="autoscaling", version="v2beta2", kind="HorizontalPodAutoscaler", resource="horizontalpodautoscalers",
         deprecated="1.23", removed="1.26", replacement="autoscaling/v2"),
    dict(group="policy", version="v1beta1", kind="PodSecurityPolicy", resource="podsecuritypolicies",
         deprecated="1.21", removed="1.25", replacement=None),
    dict(group="extensions", version="v1beta1", kind="PodSecurityPolicy", resource="podsecuritypolicies",
         deprecated="1.11", removed="1.16", replacement="policy/v1beta1"),
)

_FUNC = re.compile(r"func \(in \*(\w+)\) APILifecycle(Introduced|Deprecated|Removed|Replacement)\(\)[^{]*\{\s*"
                   r"return ([^\n]+)\n")
_VERSION = re.compile(r"(\d+), (\d+)")
_GVK = re.compile(r'schema\.GroupVersionKind\{Group: "([^"]*)", Version: "([^"]*)", Kind: "([^"]*)"\}')
_GROUP_NAME = re.compile(r'GroupName\s*=\s*"([^"]*)"')


class LifecycleError(Exception):
    """A lifecycle file is not shaped as this tool expects (one line)."""


def guess_resource(kind: str) -> str:
    """The resource name the API server uses for ``kind`` (its own guess: lower case, plural)."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def group_name(version_dir: Path) -> str:
    """The API group of a version package (``GroupName`` in its ``register.go`` or its group's)."""
    for candidate in (version_dir / "register.go", version_dir.parent / "register.go", version_dir / "doc.go"):
        if candidate.is_file():
            m = _GROUP_NAME.search(candidate.read_text())
            if m:
                return m.group(1)
    text = (version_dir / "doc.go").read_text() if (version_dir / "doc.go").is_file() else ""
    m = re.search(r"\+groupName=([\w.]*)", text)
    if m:
        return m.group(1)
    raise LifecycleError(f"{version_dir}: no GroupName in register.go or +groupName in doc.go")


def lifecycle_entries(module_dir: Path, source: str) -> list[dict]:
    entries = []
    for path in sorted(module_dir.rglob("zz_generated.prerelease-lifecycle.go")):
        text = path.read_text()
        kinds: dict[str, dict[str, str]] = {}
        for m in _FUNC.finditer(text):
            kinds.setdefault(m.group(1), {})[m.group(2)] = m.group(3).strip()
        if "APILifecycle" in text and not kinds:
            raise LifecycleError(f"{path}: lifecycle functions not understood")
        version = path.parent.name
        group = group_name(path.parent)
        for kind, funcs in sorted(kinds.items()):
            if kind.endswith("List") or "Removed" not in funcs:
                continue
            if kind in SPECIAL_KINDS and SPECIAL_KINDS[kind] is None:
                continue
            resource, subresource = SPECIAL_KINDS.get(kind) or (guess_resource(kind), "")
            removed, deprecated = _VERSION.fullmatch(funcs["Removed"]), _VERSION.fullmatch(funcs.get("Deprecated", ""))
            if not removed:
                raise LifecycleError(f"{path}: {kind}.APILifecycleRemoved returns {funcs['Removed']!r}")
            replacement = None
            if "Replacement" in funcs:
                gvk = _GVK.fullmatch(funcs["Replacement"])
                if not gvk:
                    raise LifecycleError(f"{path}: {kind}.APILifecycleReplacement returns {funcs['Replacement']!r}")
                replacement = f"{gvk.group(1)}/{gvk.group(2)}" if gvk.group(1) else gvk.group(2)
            entries.append(dict(group=group, version=version, kind=kind, resource=resource, subresource=subresource,
                                deprecated=f"{deprecated.group(1)}.{deprecated.group(2)}" if deprecated else None,
                                removed=f"{removed.group(1)}.{removed.group(2)}", replacement=replacement,
                                source=source))
    return entries


def gomodcache() -> Path:
    env = os.environ.get("GOMODCACHE")
    if env:
        return Path(env)
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60,
                             check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return Path(out) if out else Path.home() / "go" / "pkg" / "mod"


def build(version: str, cache: Path) -> str:
    entries: list[dict] = []
    for module, sub in MODULES:
        module_dir = cache / f"{module}@{version}" / sub
        if not module_dir.is_dir():
            raise FileNotFoundError(f"{module}@{version} is not in the module cache ({module_dir}); run "
                                    f"`go mod download {module}@{version}` first")
        entries += lifecycle_entries(module_dir, f"{module}@{version}")
    known = {(e["group"], e["version"], e["resource"]) for e in entries}
    entries += [dict(e, subresource="", source=GUIDE) for e in GUIDE_ONLY
                if (e["group"], e["version"], e["resource"]) not in known]
    entries.sort(key=lambda e: (tuple(int(x) for x in e["removed"].split(".")), e["group"], e["version"],
                                e["resource"], e["subresource"]))
    lines = [
        "# Kubernetes API versions removed per release: what upgrade.removed-apis (pytest_kready/checks/upgrade.py)",
        "# looks up for a requested deprecated API the API server reports without a removed_release, and where it",
        "# finds the replacement to name. Written by tools/gen_removed_apis.py; do not edit by hand.",
        "sources:",
        f"  - {GUIDE}",
        *[f"  - {module}@{version} (zz_generated.prerelease-lifecycle.go: APILifecycleDeprecated, "
          "APILifecycleRemoved, APILifecycleReplacement)" for module, _ in MODULES],
        f"pinned_modules: {version}",
        "apis:",
    ]
    for e in entries:
        fields = [f"group: {_q(e['group'])}", f"version: {e['version']}", f"resource: {e['resource']}"]
        if e["subresource"]:
            fields.append(f"subresource: {e['subresource']}")
        fields += [f"kind: {e['kind']}", f"deprecated: {_q(e['deprecated'])}", f"removed: {_q(e['removed'])}",
                   f"replacement: {_q(e['replacement'])}", f"source: {_q(e['source'])}"]
        lines.append("  - {" + ", ".join(fields) + "}")
    return "\n".join(lines) + "\n"


def _q(value) -> str:
    return "null" if value is None else f'"{value}"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="staging module version, e.g. v0.36.2")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with the committed table instead of writing")
    args = parser.parse_args(argv)
    try:
        text = build(args.version, gomodcache())
    except FileNotFoundError as e:
        print(f"gen_removed_apis: {e}", file=sys.stderr)
        return 2
    except LifecycleError as e:
        print(f"gen_removed_apis: {e}", file=sys.stderr)
        return 1
    if args.check:
        old = args.output.read_text() if args.output.is_file() else ""
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       str(args.output), "from the modules"))
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({text.count(chr(10) + '  - {')} APIs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
