"""Waivers (``--kready-waivers FILE``): exceptions a team accepted, each with a check id (glob), a scope, a reason,
an owner and an end date::

    waivers:
    - check: images.mutable-tag        # a check id; globs allowed (pod-security.*)
      namespace: shop                  # optional: omit for every namespace and for cluster-level findings
      object: Deployment/web           # optional: Kind/name of the object the finding is about
      reason: vendor image, pinned by digest in Q1
      owner: team-shop
      expires: 2027-01-31              # the last day it holds (UTC)

A waiver in force turns a matching failing or inconclusive finding into ``waived`` (never ``pass``); the test is
reported as an expected failure (xfailed) with the waiver as reason. An expired waiver waives nothing and fails
the run, naming it. A waiver that waived nothing is listed as unused. A malformed file is a one-line usage error.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import re
from pathlib import Path
from typing import Any

import yaml

FIELDS = ("check", "namespace", "object", "reason", "owner", "expires")
REQUIRED = ("check", "reason", "owner", "expires")
_CHECK = re.compile(r"^[A-Za-z0-9.*?\[\]_-]+$")
_OBJECT = re.compile(r"^[A-Z][A-Za-z0-9]*/[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")
_NAMESPACE = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?|\(new-namespace\))$")


class WaiverError(ValueError):
    """A waivers file that cannot be used; its text is one line naming the file, the waiver and the problem."""


@dataclasses.dataclass(frozen=True)
class Waiver:
    check: str
    reason: str
    owner: str
    expires: _dt.date
    namespace: str | None = None
    object: str | None = None  # Kind/name
    source: str = ""  # file:line

    def expired(self, today: _dt.date | None = None) -> bool:
        return self.expires < (today or utc_today())

    def matches(self, finding: dict[str, Any]) -> bool:
        """Whether this waiver covers ``finding`` (a v1 record): its check id matches the glob, and its namespace and
        object, where the waiver names them."""
        if not fnmatch.fnmatchcase(finding["check_id"], self.check):
            return False
        if self.namespace is not None:
            ns = finding.get("namespace") or (finding.get("object") or {}).get("namespace")
            if self.namespace != ns and self.namespace != finding.get("target_key"):
                return False
        if self.object is not None:
            obj = finding.get("object") or {}
            kind, _, name = self.object.partition("/")
            if obj.get("kind") != kind or obj.get("name") != name:
                return False
        return True

    def record(self, *, today: _dt.date | None = None, used: int = 0) -> dict[str, Any]:
        """The waiver as the reports list it."""
        return {"check": self.check, "namespace": self.namespace, "object": self.object, "reason": self.reason,
                "owner": self.owner, "expires": self.expires.isoformat(), "source": self.source,
                "status": "expired" if self.expired(today) else "in-force", "used": used}

    def line(self) -> str:
        scope = "/".join(p for p in (self.namespace, self.object) if p) or "everywhere"
        return f"{self.check} in {scope} ({self.owner}, until {self.expires.isoformat()}): {self.reason}"


def utc_today() -> _dt.date:
    return _dt.datetime.now(_dt.timezone.utc).date()


def load(path: Path) -> list[Waiver]:
    """The waivers of ``path``; ``WaiverError`` (one line) when the file is missing or malformed."""
    where = f"--kready-waivers={path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WaiverError(f"{where}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise WaiverError(f"{where}: not YAML{at} ({problem})") from None
    if data is None:
        raise WaiverError(f"{where}: the file is empty; write 'waivers:' and a list of waivers")
    if not isinstance(data, dict) or set(data) != {"waivers"}:
        raise WaiverError(f"{where}: the file must be a mapping with one key, 'waivers', holding a list")
    items = data["waivers"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise WaiverError(f"{where}: 'waivers' must be a list of waivers")
    nodes = _item_nodes(root)
    out = []
    for i, item in enumerate(items):
        line = nodes[i].start_mark.line + 1 if i < len(nodes) else 0
        out.append(_waiver(item, f"{where}: waiver {i + 1} (line {line})", f"{Path(path).name}:{line}"))
    return out


def _item_nodes(root) -> list:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == "waivers" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []


def _waiver(item: Any, where: str, source: str) -> Waiver:
    if not isinstance(item, dict):
        raise WaiverError(f"{where}: a waiver is a mapping of {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in item if k not in FIELDS)
    if unknown:
        raise WaiverError(f"{where}: unknown field {unknown[0]!r}; a waiver has {', '.join(FIELDS)}")
    missing = [k for k in REQUIRED if item.get(k) in (None, "")]
    if missing:
        raise WaiverError(f"{where}: missing {', '.join(missing)} (every waiver needs a check, a reason, an owner "
                          "and an expiry date)")
    check = str(item["check"]).strip()
    if not _CHECK.match(check):
        raise WaiverError(f"{where}: check {check!r} is not a check id or glob (e.g. pod-security.*)")
    expires = item["expires"]
    if isinstance(expires, _dt.datetime):
        expires = expires.date()
    if not isinstance(expires, _dt.date):
        try:
            expires = _dt.date.fromisoformat(str(expires).strip())
        except ValueError:
            raise WaiverError(f"{where}: expires {item['expires']!r} is not a date; write YYYY-MM-DD") from None
    namespace = item.get("namespace")
    if namespace is not None:
        namespace = str(namespace).strip()
        if not _NAMESPACE.match(namespace):
            raise WaiverError(f"{where}: namespace {namespace!r} is not a namespace name")
    obj = item.get("object")
    if obj is not None:
        obj = str(obj).strip()
        if not _OBJECT.match(obj):
            raise WaiverError(f"{where}: object {obj!r}: write Kind/name, e.g. Deployment/web")
    reason, owner = str(item["reason"]).strip(), str(item["owner"]).strip()
    if not reason or not owner:
        raise WaiverError(f"{where}: reason and owner must not be blank")
    return Waiver(check=check, reason=reason, owner=owner, expires=expires, namespace=namespace, object=obj,
                  source=source)


def find(waivers: list[Waiver], finding: dict[str, Any], *, today: _dt.date | None = None) -> Waiver | None:
    """The first waiver in force covering ``finding`` when it fails or is inconclusive, else None."""
    if finding.get("verdict") not in ("fail", "inconclusive"):
        return None
    for w in waivers:
        if not w.expired(today) and w.matches(finding):
            return w
    return None


def reason(w: Waiver) -> str:
    """The xfail reason of a waived test: ``waived: <check> in <scope> (<owner>, until <date>): <reason>``."""
    return f"waived: {w.line()}"


def listing(waivers: list[Waiver], findings: list[dict[str, Any]], *,
            today: _dt.date | None = None) -> list[dict[str, Any]]:
    """Every waiver with its status and how many findings it waived (findings carry the waiver's source)."""
    used: dict[str, int] = {}
    for f in findings:
        if f.get("verdict") == "waived" and f.get("waiver"):
            used[f["waiver"]["source"]] = used.get(f["waiver"]["source"], 0) + 1
    return [w.record(today=today, used=used.get(w.source, 0)) for w in waivers]
