#!/usr/bin/env python3
"""Development tool: write the Pod Security Admission controls of the pinned Kubernetes version as package data.

Reads the policy registry of the ``k8s.io/pod-security-admission`` Go module of the pinned version (the staging
module the Kubernetes build downloads: ``$GOMODCACHE/k8s.io/pod-security-admission@v0.<minor>.<patch>/policy``):
every ``check_*.go`` registers one check with ``addCheck(F)`` (older releases: ``checks = append(checks, F)``),
and ``func F() Check`` names its ID, level and versions. The output lists each check's ID, level, the policy
version it applies from, its revisions (minimum version, the checks a revision overrides) and the fields its doc
comment restricts; ``pytest_kready.checks.pod_security`` derives the controls its attack pods must cover from it.

    tools/gen_psa_controls.py                 # (re)write pytest_kready/checks/data/psa-controls-v<minor>.json
    tools/gen_psa_controls.py --check         # exit 1 (with a diff) when the committed file is not what the
                                              # module gives; exit 2 when the module is not in the cache
    tools/gen_psa_controls.py --download      # fetch the module first (go mod download, Go module proxy)
    tools/gen_psa_controls.py --policy-dir D --kubernetes-version v1.36.2 --output F   # any checkout

Run by hand after changing the pinned version (the local provider's Kubernetes version); commit the output.
Anything in the registry this tool does not understand is an error, never a silently shorter list.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = "k8s.io/pod-security-admission"
REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "pytest_kready" / "checks" / "data"
GO_DEADLINE = 300  # seconds for `go env` / `go mod download`


class RegistryError(Exception):
    """The policy registry is not shaped as this tool expects (a one-line message)."""


# --- versions and paths ----------------------------------------------------------------------------------------


def pinned_kubernetes_version() -> str:
    sys.path.insert(0, str(REPO))
    try:
        from pytest_kready.checks.pod_security import PINNED_K8S_VERSION
    finally:
        sys.path.pop(0)
    return PINNED_K8S_VERSION


def parse_version(version: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def module_version(kubernetes_version: str) -> str:
    """v1.36.2 → v0.36.2: Kubernetes publishes its staging modules as v0.<minor>.<patch>."""
    major, minor, patch = parse_version(kubernetes_version)
    if major != 1:
        raise ValueError(f"unexpected Kubernetes major version in {kubernetes_version}")
    return f"v0.{minor}.{patch}"


def data_file(kubernetes_version: str, data_dir: Path = DATA_DIR) -> Path:
    _, minor, _ = parse_version(kubernetes_version)
    return data_dir / f"psa-controls-v1.{minor}.json"


def gomodcache() -> Path:
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=GO_DEADLINE,
                             check=True).stdout.strip()
        if out:
            return Path(out)
    except (OSError, subprocess.SubprocessError):
        pass
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    return Path(gopath.split(os.pathsep)[0]) / "pkg" / "mod"


def module_dir(version: str) -> Path:
    return gomodcache() / f"{MODULE}@{version}"


def download(version: str) -> Path:
    """``go mod download -json`` of the module (outside any main module, through the Go module proxy)."""
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{version}"], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=GO_DEADLINE, check=False)
    try:
        info = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        why = info.get("Error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RegistryError(f"go mod download {MODULE}@{version} failed: {why}")
    return Path(info["Dir"])


# --- reading the registry --------------------------------------------------------------------------------------

_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_REGISTER = re.compile(r"\baddCheck\(\s*(\w+)\s*\)|\bchecks\s*=\s*append\(\s*checks\s*,\s*(\w+)\s*\)")
_CONST = re.compile(r"\b(\w+)\s+(?:CheckID\s+)?=\s*(?:CheckID\()?\"([^\"]+)\"\)?")
_LEVEL = {"api.LevelBaseline": "baseline", "api.LevelRestricted": "restricted"}


def _strip_comments(src: str) -> str:
    """Go source without comments (string literals kept), so braces and keys in comments cannot mislead."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c in "\"`":
            end = c
            j = i + 1
            while j < n and src[j] != end:
                j += 2 if (src[j] == "\\" and end == '"') else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _block(src: str, start: int) -> str:
    """The text between the brace at or after ``start`` and its matching closing brace."""
    open_at = src.index("{", start)
    depth = 0
    for i in range(open_at, len(src)):
        if src[i] == "{":
            depth += 1
        elif src[i] == "}":
            depth -= 1
            if depth == 0:
                return src[open_at + 1:i]
    raise RegistryError("unbalanced braces")


def _entries(block: str) -> list[str]:
    """The top-level ``{...}`` entries of a composite literal's body."""
    out, depth, start = [], 0, None
    for i, c in enumerate(block):
        if c == "{":
            if depth == 0:
                start = i + 1
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start is not None:
                out.append(block[start:i])
    return out


def _restricted_fields(raw: str) -> list[str]:
    """The field paths the doc comments list under "Restricted Fields:" (in order, without duplicates)."""
    fields: list[str] = []
    for comment in re.findall(r"/\*(.*?)\*/", raw, re.S):
        for section in re.findall(r"(?:\*\*)?Restricted Fields:(?:\*\*)?(.*?)(?=(?:\*\*)?Allowed Values|\Z)",
                                  comment, re.S):
            for line in section.splitlines():
                line = re.sub(r"//.*", "", line).strip().lstrip("*").strip()
                if re.fullmatch(r"(spec|metadata)\.\S+", line) and line not in fields:
                    fields.append(line)
    return fields


def read_registry(policy_dir: Path, kubernetes_version: str) -> list[dict]:
    """Every check the registry in ``policy_dir`` registers, with what applies at ``kubernetes_version``."""
    policy_dir = Path(policy_dir)
    files = sorted(p for p in policy_dir.glob("check_*.go") if not p.name.endswith("_test.go"))
    if not files:
        raise RegistryError(f"no check_*.go files in {policy_dir}")
    registry_src = "".join(_strip_comments(p.read_text()) for p in policy_dir.glob("*.go")
                           if not p.name.endswith("_test.go"))
    if not re.search(r"\bfunc addCheck\(|\bchecks\s*=\s*append\(", registry_src):
        raise RegistryError(f"{policy_dir}: neither addCheck nor checks = append(...) found: the registry changed "
                            "shape, update tools/gen_psa_controls.py")
    consts = dict(_CONST.findall(registry_src))
    _, minor, _ = parse_version(kubernetes_version)
    checks = []
    for path in files:
        raw = path.read_text()
        src = _strip_comments(raw)
        names = [a or b for a, b in _REGISTER.findall(src)]
        if not names:
            raise RegistryError(f"{path.name}: registers no check (no addCheck(...)): update the generator")
        for name in names:
            m = re.search(rf"\bfunc\s+{re.escape(name)}\s*\(\s*\)\s*Check\s*\{{", src)
            if not m:
                raise RegistryError(f"{path.name}: registers {name} but has no func {name}() Check")
            body = _block(src, m.end() - 1)
            checks.append(_check(path, name, body, consts, raw, minor))
    ids = [c["id"] for c in checks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RegistryError(f"check IDs registered twice: {', '.join(dupes)}")
    order = {"baseline": 0, "restricted": 1}
    return sorted(checks, key=lambda c: (order[c["level"]], c["id"]))


def _check(path: Path, name: str, body: str, consts: dict, raw: str, minor: int) -> dict:
    where = f"{path.name}: {name}()"
    m = re.search(r"\bID:\s*(\"[^\"]*\"|\w+(?:\.\w+)?)", body)
    if not m:
        raise RegistryError(f"{where}: no ID")
    token = m.group(1)
    check_id = token.strip('"') if token.startswith('"') else consts.get(token.split(".")[-1])
    if not check_id:
        raise RegistryError(f"{where}: ID {token} is not a string constant of the policy package")
    m = re.search(r"\bLevel:\s*([\w.]+)", body)
    if not m or m.group(1) not in _LEVEL:
        raise RegistryError(f"{where}: level {m.group(1) if m else 'missing'} is neither baseline nor restricted")
    level = _LEVEL[m.group(1)]
    m = re.search(r"\bVersions:\s*\[\]VersionedCheck\s*\{", body)
    if not m:
        raise RegistryError(f"{where}: no Versions: []VersionedCheck{{...}}")
    revisions = []
    for entry in _entries(_block(body, m.end() - 1)):
        v = re.search(r"\bMinimumVersion:\s*api\.MajorMinorVersion\(\s*(\d+)\s*,\s*(\d+)\s*\)", entry)
        if v is None and re.search(r"\bMinimumVersion:", entry):
            raise RegistryError(f"{where}: a MinimumVersion this tool cannot read")
        overrides = []
        o = re.search(r"\bOverrideCheckIDs:\s*\[\]CheckID\s*\{([^}]*)\}", entry)
        if o:
            for item in filter(None, (s.strip() for s in o.group(1).split(","))):
                value = item.strip('"') if item.startswith('"') else consts.get(item.split(".")[-1])
                if not value:
                    raise RegistryError(f"{where}: override {item} is not a string constant")
                overrides.append(value)
        revisions.append({"minimum_version": f"v{v.group(1)}.{v.group(2)}" if v else None,
                          "overrides": overrides})
    if not revisions:
        raise RegistryError(f"{where}: no versions")
    experimental = len(revisions) == 1 and revisions[0]["minimum_version"] is None
    if not experimental and any(r["minimum_version"] is None for r in revisions):
        raise RegistryError(f"{where}: a revision without MinimumVersion among versioned ones")
    applying = [r for r in revisions if r["minimum_version"] and parse_version(r["minimum_version"])[:2] <= (1, minor)]
    return {
        "id": check_id,
        "level": level,
        "file": f"policy/{path.name}",
        "function": name,
        "experimental": experimental,
        "applies_from": None if experimental else revisions[0]["minimum_version"],
        "applies_to_pinned_version": bool(applying) and not experimental,
        "revision_at_pinned_version": applying[-1]["minimum_version"] if applying else None,
        "overrides_at_pinned_version": applying[-1]["overrides"] if applying else [],
        "revisions": revisions,
        "restricted_fields": _restricted_fields(raw),
    }


def document(policy_dir: Path, kubernetes_version: str) -> dict:
    _, minor, _ = parse_version(kubernetes_version)
    return {
        "generated_by": "tools/gen_psa_controls.py (do not edit by hand; run it again)",
        "module": MODULE,
        "module_version": module_version(kubernetes_version),
        "kubernetes_version": kubernetes_version,
        "policy_version": f"v1.{minor}",
        "checks": read_registry(policy_dir, kubernetes_version),
    }


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


# --- command line ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kubernetes-version", default=None,
                   help="default: the pinned version (pytest_kready.checks.pod_security.PINNED_K8S_VERSION)")
    p.add_argument("--policy-dir", type=Path, default=None,
                   help="the module's policy/ directory (default: in the Go module cache)")
    p.add_argument("--output", type=Path, default=None,
                   help="default: pytest_kready/checks/data/psa-controls-v1.<minor>.json")
    p.add_argument("--check", action="store_true", help="compare with the output file instead of writing it")
    p.add_argument("--download", action="store_true", help="go mod download the module when it is not cached")
    args = p.parse_args(argv)
    version = args.kubernetes_version or pinned_kubernetes_version()
    mod_version = module_version(version)
    policy_dir = args.policy_dir
    try:
        if policy_dir is None:
            mdir = module_dir(mod_version)
            if not mdir.is_dir() and args.download:
                mdir = download(mod_version)
            if not mdir.is_dir():
                print(f"gen_psa_controls: {MODULE}@{mod_version} is not in the Go module cache ({mdir}); the "
                      f"Kubernetes build (tools/build-local-binaries.sh) downloads it, or run "
                      f"`tools/gen_psa_controls.py --download`", file=sys.stderr)
                return 2
            policy_dir = mdir / "policy"
        text = render(document(policy_dir, version))
    except (RegistryError, OSError, ValueError, subprocess.SubprocessError) as e:
        print(f"gen_psa_controls: {e}", file=sys.stderr)
        return 1
    out = args.output or data_file(version)
    if args.check:
        old = out.read_text() if out.is_file() else ""
        if old == text:
            print(f"{out}: up to date with {MODULE}@{mod_version}")
            return 0
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(out),
                                                   f"{MODULE}@{mod_version}/policy"))
        print(f"gen_psa_controls: {out} differs from the registry of {MODULE}@{mod_version}: run "
              "tools/gen_psa_controls.py and commit the result", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
