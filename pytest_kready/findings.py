"""Findings: what a check concluded about a target, with the evidence to believe it.

A test records findings through the ``kready_finding`` fixture (stored on its item); a check module returns a
``CheckResult`` the suite records. After the test body the findings decide the reported outcome (fail, the
``inconclusive`` category, waived as an expected failure, not-applicable as skipped, pass): that, the waivers and
every report (terminal summary, ``--kready-json``, SARIF, JUnit, HTML) are in ``pytest_kready.reports``.

Secret values never appear in evidence: ``redact`` blanks Secret data, credential-like fields, bearer tokens and
registered values.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import enum
import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


FINDINGS_KEY = pytest.StashKey[list]()
REPORTS_KEY = pytest.StashKey[dict]()
SECRETS_KEY = pytest.StashKey[set]()
USER_PROPERTY = "kready_finding"
VERDICT_PROPERTY = "kready_verdict"
SEVERITIES = ("critical", "high", "medium", "low", "info")
REDACTED = "<redacted>"
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not-applicable"

    def __str__(self) -> str:
        return self.value


class Inconclusive(Exception):
    """Raised (via ``kready_finding.inconclusive``) when a check could not decide; reported as INCONCLUSIVE."""


@dataclasses.dataclass
class Finding:
    check_id: str
    verdict: Verdict
    summary: str = ""
    target_namespace: str | None = None
    severity: str = "medium"
    request: Any = None
    response: Any = None
    repro: str | None = None  # a kubectl command that shows the same thing
    remediation: str | None = None
    references: tuple[str, ...] = ()
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    nodeid: str | None = None
    recorded_at: float = dataclasses.field(default_factory=time.time)
    scope: str | None = None  # "cluster" to file it under the cluster (reports.model decides when None)
    object: dict[str, Any] | None = None  # {kind, namespace, name} of the object it is about, if the check knows
    waiver: dict[str, Any] | None = None  # set by the reporter when a waiver in force covers it
    variant: str | None = None  # which variant of the check; None: the test id's parameters (reports.model)

    def __post_init__(self):
        self.verdict = Verdict(self.verdict)
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}: choose one of {', '.join(SEVERITIES)}")
        self.references = tuple(self.references)

    def to_dict(self, secrets: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        # fields as they are: redact_finding makes the JSON-safe copy (dataclasses.asdict's deep copy is wasted)
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["verdict"] = self.verdict.value
        data["references"] = list(self.references)
        return redact_finding(data, secrets)

    def line(self) -> str:
        target = f" [{self.target_namespace}]" if self.target_namespace else ""
        return f"{self.verdict.value.upper()} {self.check_id}{target}: {self.summary}".rstrip(": ")


@dataclasses.dataclass
class CheckResult:
    """What a check module decided about one target: the one type every ``pytest_kready.checks`` module returns.
    A suite records it with ``result.record(kready_finding)``; evidence, repro and remediation are the module's."""

    verdict: Verdict
    summary: str
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    target_namespace: str | None = None
    severity: str = "medium"
    repro: str | None = None
    remediation: str | None = None
    references: tuple[str, ...] = ()
    request: Any = None
    response: Any = None
    scope: str | None = None  # optional: "cluster"; otherwise pytest_kready.reports.model places the finding
    object: dict[str, Any] | None = None  # optional: {kind, namespace, name} of the object the result is about
    check_id: str | None = None  # optional: another check's id than the recording test's (a check judged in passing)
    variant: str | None = None  # optional: which variant of the check (else from the test id's parameters)

    def __post_init__(self):
        self.verdict = Verdict(self.verdict)

    def record(self, kready_finding) -> Finding:
        extra = {k: v for k, v in (("scope", self.scope), ("object", self.object), ("check_id", self.check_id),
                                   ("variant", self.variant)) if v is not None}
        return kready_finding(self.verdict, self.summary, target_namespace=self.target_namespace,
                              severity=self.severity, evidence=self.evidence, repro=self.repro,
                              remediation=self.remediation, references=self.references, request=self.request,
                              response=self.response, **extra)


# --- redaction ---------------------------------------------------------------------------------------

_SENSITIVE_KEYS = {
    "token", "password", "passwd", "client-key-data", "client-key", "client_key", "authorization", "secret",
    "private-key", "privatekey", "api_key", "apikey", "bearer", "id-token", "refresh-token",
    "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token", "x-access-token",
}
# a header, env var or flag whose *name* says its value is a credential (Authorization, Cookie, X-Api-Key,
# DB_PASSWORD, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, SSH_KEY, ...)
CREDENTIAL_NAME = re.compile(r"(?i)(auth|cookie|token|passw|passphrase|secret|credential|key|(^|[-_.])pass($|[-_.]))")
_CRED_WORDS = r"(?:password|passwd|passphrase|token|secret|api[-_]?key|access[-_]?key|private[-_]?key|credential)"
_CRED = re.compile(_CRED_WORDS, re.I)  # a credential word anywhere: the prefilter of the patterns built on it
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_BASIC = re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{6,}")
# `Authorization: Basic ...`, `Cookie=...`, `'X-Api-Key': '...'`: the rest of the value (to a quote or the line's end)
_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization)(['\"]?\s*[:=]\s*['\"]?)(?!\s*<redacted>)"
                     r"((?:basic|bearer|token|digest|negotiate|aws4-hmac-sha256|apikey)\s+[^\r\n'\"]+"
                     r"|[A-Za-z0-9._~+/=-]{8,})")
_OTHER_HEADER = re.compile(r"(?i)\b(set-cookie|cookie|x-api-key|api-key|x-auth-token|x-access-token)"
                           r"(['\"]?\s*[:=]\s*['\"]?)(?!\s*<redacted>)([^\r\n'\"]{3,})")
# `--password=x`, `DB_PASSWORD=x`
_ASSIGN = re.compile(r"(?i)(?<![\w.-])(-{0,2}[\w.-]{0,40}" + _CRED_WORDS + r"[\w.-]{0,40})(=)(?!\s*<redacted>)"
                     r"([^\s'\",;}\]]{3,})")
# `--password x`, `--token x`
_FLAG = re.compile(r"(?i)(?<![\w.-])(--[\w-]{0,40}" + _CRED_WORDS + r"[\w-]{0,40})(\s+)(?!-|<redacted>)([^\s'\",;}\]]{3,})")
# `'password': 'x'`, `"token": "x"` (dict reprs, JSON text); not `secretName`-like references
_QUOTED = re.compile(r"(?i)(['\"])([\w.-]{0,40}" + _CRED_WORDS + r"[\w.-]{0,40})(?<!name)(?<!ref)(?<!path)(?<!file)\1"
                     r"(\s*:\s*)(['\"])(?!\s*<redacted>)([^'\"]{3,}?)\4")
# `curl -u user:pass`, `--user user:pass`, `https://user:pass@host`
_USERINFO = re.compile(r"(?i)((?:^|\s)(?:-u|--user)[=\s]+[^\s:'\"]+:)([^\s'\"]{3,})")
_URL_USERINFO = re.compile(r"(://[^/\s:@'\"]+:)([^/\s@'\"]{3,})(@)")
# a text none of the form-based patterns can match skips them (most strings): one cheap search first
_HINTS = ("bearer", "basic", "authoriz", "cookie", "api-key", "x-auth", "x-access", "passw", "passphrase", "token",
          "secret", "apikey", "api_key", "access", "private", "credential", "-u", "--user", "://", "eyj")
_TRIVIAL = {"true", "false", "null", "none", "yes", "no", "on", "off", "enabled", "disabled"}


class _Known:
    """Every secret value this process has seen (Secret data it read, tokens it minted, values under
    credential-like names, values checks registered): the run-wide registry ``redact`` blanks everywhere."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self._matcher: _Literals | None = None
        self.generation = 0  # bumped whenever values change: what was scrubbed before may need scrubbing again
        self._history: list[tuple[int, str]] = []  # (generation it brought, value) since the last clear
        self._cleared_at = 0
        self._since: dict[tuple[int, bool], _Literals] = {}  # added_since's matchers, this generation

    def add(self, value: str | bytes | None, *, explicit: bool = True) -> None:
        if not explicit and not _registrable(value):
            return
        for v in _variants(value):
            with self.lock:
                if v not in self.values:
                    self.values.add(v)
                    self._matcher = None
                    self.generation += 1
                    self._history.append((self.generation, v))
                    self._since = {}

    def matcher(self) -> _Literals | None:
        with self.lock:
            if self._matcher is None and self.values:
                self._matcher = _Literals(self.values)
            return self._matcher

    def added_since(self, generation: int, *, as_json: bool = False) -> _Literals | None | bool:
        """What finds the values learnt after ``generation`` (a text without them that was clean then is clean
        now): ``None`` when there are none, ``False`` when the registry was emptied since (scrub again).
        ``as_json``: each value as it appears inside a JSON string (``json.dumps``' escapes)."""
        with self.lock:
            if generation < self._cleared_at:
                return False
            if generation >= self.generation:
                return None
            key = (generation, as_json)
            if key not in self._since:
                start = bisect.bisect_right(self._history, generation, key=lambda e: e[0])
                values = [v for _, v in self._history[start:]]
                self._since[key] = _Literals(json.dumps(v)[1:-1] for v in values) if as_json else _Literals(values)
            return self._since[key]

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
            self._matcher = None
            self.generation += 1
            self._history, self._cleared_at, self._since = [], self.generation, {}


class _Literals:
    """Where any of many literal strings (the secret values a run knows) occurs in a text, leftmost and longest
    first, as one alternation of them all would match. One regex of them all is what this replaces: sre's parser
    is Python, and compiling 200 ServiceAccount tokens took 0.4 s, again after every token a run minted. Here a
    small regex of the values' first ``HEAD`` characters finds where one may start and ``startswith`` confirms
    the longest value there."""

    HEAD = 16

    def __init__(self, words: Iterable[str]):
        by_head: dict[str, list[str]] = {}
        for w in set(words):
            if w:
                by_head.setdefault(w[: self.HEAD], []).append(w)
        for group in by_head.values():
            group.sort(key=len, reverse=True)
        self._by_head = by_head
        self._head_lengths = sorted({len(h) for h in by_head}, reverse=True)
        try:
            self._heads = _literal_trie(set(by_head)) if by_head else None
        except (RecursionError, re.error, OverflowError):  # never let redaction crash the reporter
            self._heads = re.compile("|".join(re.escape(h) for h in sorted(by_head, key=len, reverse=True)))

    def _next(self, text: str, pos: int) -> tuple[int, int] | None:
        if self._heads is None:
            return None
        while (m := self._heads.search(text, pos)) is not None:
            i = m.start()
            for n in self._head_lengths:
                for w in self._by_head.get(text[i:i + n], ()):
                    if text.startswith(w, i):
                        return i, i + len(w)
            pos = i + 1
        return None

    def search(self, text: str) -> bool:
        return self._next(text, 0) is not None

    def sub(self, repl: str, text: str) -> str:
        out, pos = [], 0
        while (span := self._next(text, pos)) is not None:
            out += (text[pos:span[0]], repl)
            pos = span[1]
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)


_KNOWN = _Known()


def _literal_trie(words: set[str]) -> re.Pattern:
    """One regex matching any of ``words`` (longest first), factored by common prefixes: a plain alternation of
    hundreds of literals is slow in Python's ``re``; a trie is near-linear in the text."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        ends = "" in node
        alts = []
        for ch in sorted(k for k in node if k):
            chain, child = [ch], node[ch]
            while len(child) == 1 and "" not in child:  # a run of single children: no recursion per character
                ((nxt, child),) = child.items()
                chain.append(nxt)
            alts.append(re.escape("".join(chain)) + build(child))
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return re.compile(build(trie))


_WORDLIKE = re.compile(r"[a-z][a-z._-]*")


def _registrable(value: str | bytes | None) -> bool:
    """Whether a value the run *found* (a Secret's data, an env var or header under a credential-like name) is
    blanked everywhere in text. Not: short values (< 6), lowercase words and identifiers under 16 characters
    (``admin``, ``postgres``, ``default``: blanking every occurrence would mangle the reports; the structured
    evidence still blanks them where they stand), file paths and ``$(VAR)`` references."""
    if value is None:
        return False
    text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
    if len(text) < 6 or text.startswith(("/", "$(")):
        return False
    return not (_WORDLIKE.fullmatch(text) and len(text) < 16)


def _variants(value: str | bytes | None) -> set[str]:
    """The forms a secret value can take in output: itself, base64, repr-escaped, its long lines, and for an
    ``Authorization`` value its credential (after ``Basic``/``Bearer``) and Basic's decoded ``user:password``."""
    if value is None:
        return set()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = str(value)
    stripped = value.strip()
    if len(stripped) < 4 or stripped.lower() in _TRIVIAL or (stripped.isdigit() and len(stripped) < 6):
        return set()
    out = {stripped, value} if len(value) >= 4 else {stripped}
    out.add(base64.b64encode(stripped.encode()).decode())
    escaped = stripped.encode("unicode_escape").decode("ascii", "replace")
    out.add(escaped)
    for line in stripped.splitlines():
        if len(line.strip()) >= 12:
            out.add(line.strip())
    scheme, _, cred = stripped.partition(" ")
    if cred and scheme.lower() in ("basic", "bearer", "token", "digest") and len(cred.strip()) >= 4:
        cred = cred.strip()
        out.add(cred)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(cred, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            if decoded:
                out.add(decoded)
                user, _, password = decoded.partition(":")
                if _registrable(password):
                    out.add(password)
    return {v for v in out if len(v) >= 4}


def register_secret(value: str | bytes | None, *, explicit: bool = True) -> None:
    """Remember ``value`` as secret for the rest of the process: every output blanks it (also base64-encoded).
    ``explicit=False``: a value the run found rather than was told, kept only when ``_registrable``."""
    _KNOWN.add(value, explicit=explicit)


def known_secrets() -> frozenset[str]:
    with _KNOWN.lock:
        return frozenset(_KNOWN.values)


def forget_secrets() -> None:
    """Empty the registry (a new run in the same process)."""
    _KNOWN.clear()


def harvest(obj: Any) -> None:
    """Register the secrets in an API answer: the values of Secrets (``data`` decoded, ``stringData``), minted
    tokens (TokenRequest ``status.token``), ``{name, value}`` pairs whose name looks like a credential (env vars,
    ``httpGet.httpHeaders``), and string values under credential keys."""
    _harvest(obj, secret_obj=False, depth=0)


def _harvest(obj: Any, *, secret_obj: bool, depth: int) -> None:
    if depth > 40:
        return
    if isinstance(obj, list):
        for v in obj:
            _harvest(v, secret_obj=secret_obj, depth=depth + 1)
        return
    if not isinstance(obj, dict):
        return
    kind = obj.get("kind")
    if secret_obj or kind == "Secret":
        for key in ("data", "stringData"):
            for v in (obj.get(key) or {}).values() if isinstance(obj.get(key), dict) else ():
                if not isinstance(v, str):
                    continue
                if key == "data":
                    try:
                        decoded = base64.b64decode(v, validate=True)
                    except ValueError:
                        decoded = v.encode()
                    register_secret(decoded, explicit=False)
                    register_secret(v, explicit=False)
                else:
                    register_secret(v, explicit=False)
    if kind == "TokenRequest":
        register_secret(((obj.get("status") or {}).get("token")))
    name, value = obj.get("name"), obj.get("value")
    if isinstance(name, str) and isinstance(value, str) and CREDENTIAL_NAME.search(name):
        register_secret(value, explicit=False)
    for k, v in obj.items():
        if isinstance(v, str) and k.lower() in _SENSITIVE_KEYS:
            register_secret(v, explicit=False)
        elif isinstance(v, (dict, list)):
            _harvest(v, secret_obj=(kind == "SecretList" and k == "items"), depth=depth + 1)


def _plain(value: Any) -> Any:
    """JSON-safe copy: models via ``to_dict`` (a ``V1Secret`` stays recognisable as kind Secret)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and not hasattr(value, "to_dict"):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        data = _plain(to_dict())
        name = type(value).__name__
        if isinstance(data, dict) and name in ("V1Secret", "V1SecretList") and not data.get("kind"):
            data["kind"] = name[2:]
        return data
    return str(value)


class _ScrubMemo:
    """What ``_scrub_text`` returned for a text: a run redacts the same strings over and over (one pod spec per
    target namespace, each finding at record time and again at the end), and the regexes are the reporter's
    largest cost. An answer stays good while the registry grows by values that are not in the text (most: a run
    mints a token per ServiceAccount it acts as). Texts up to 4 KiB, at most 100,000 of them."""

    MAX_TEXT, MAX_ENTRIES = 4096, 100_000

    def __init__(self):
        self.done: dict[str, tuple[str, int]] = {}  # text -> (clean, generation it was clean at)

    def get(self, text: str, generation: int) -> str | None:
        entry = self.done.get(text)
        if entry is None:
            return None
        clean, at = entry
        if at != generation:
            since = _KNOWN.added_since(at)
            if since is False or (since is not None and since.search(text)):
                return None
            self.done[text] = (clean, generation)
        return clean

    def put(self, text: str, clean: str, generation: int) -> None:
        if len(text) > self.MAX_TEXT:
            return
        if len(self.done) >= self.MAX_ENTRIES:
            self.done = {}
        self.done[text] = (clean, generation)


_MEMO = _ScrubMemo()


def _learn(secrets: set[str] | frozenset[str]) -> None:
    """A value passed in as secret is secret for the rest of the run too."""
    for value in secrets:
        if value not in _KNOWN.values:
            _KNOWN.add(value)


def _scrub_text(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    if not text:
        return text
    _learn(secrets)
    generation = _KNOWN.generation
    clean = _MEMO.get(text, generation)
    if clean is None:
        clean = _scrub_uncached(text)
        _MEMO.put(text, clean, generation)
    return clean


# Where a credential word ends in a text, and what must follow it for _QUOTED, _ASSIGN or _FLAG to match there:
# the word's rest and up to 40 name characters, then the quote and colon, the `=`, or the space. Those patterns
# try every position of a text and backtrack through their bounded repetitions: 0.1-0.3 ms per kilobyte, and a pod
# spec in a repro has `automountServiceAccountToken` in it. Finding the words with `str.find` and trying only
# what follows them (anchored) tells in a few microseconds that they cannot match.
_CRED_STEMS = ("passw", "passphrase", "token", "secret", "key", "credential")  # _CRED_WORDS end with one of these
_AFTER_QUOTED = re.compile(r"[\w.-]{0,45}['\"]\s*:\s*['\"]")
_AFTER_ASSIGN = re.compile(r"[\w.-]{0,45}=")
_AFTER_FLAG = re.compile(r"[\w-]{0,45}\s")


_ANYWHERE = (-1,)  # a text that is not ASCII: its lowercase may not line up with it, so the patterns run as they are


def _credential_word_ends(text: str) -> list[int] | tuple[int, ...] | None:
    """Where each occurrence of a credential word's stem ends in ``text``; ``None`` when there is none."""
    if not text.isascii():
        return _ANYWHERE if _CRED.search(text) else None
    low = text.lower()
    ends = []
    for stem in _CRED_STEMS:
        i = low.find(stem)
        while i >= 0:
            ends.append(i + len(stem))
            i = low.find(stem, i + 1)
    return ends or None


def _followed(text: str, ends: list[int] | tuple[int, ...], after: re.Pattern) -> bool:
    return ends is _ANYWHERE or any(after.match(text, e) for e in ends)


def _scrub_uncached(text: str) -> str:
    known = _KNOWN.matcher()
    if known is not None:
        text = known.sub(REDACTED, text)
    low = text.lower()
    if not any(h in low for h in _HINTS):
        return text
    # each pattern only where the literals it cannot match without are there (the bounded repetitions of the
    # credential-word patterns backtrack at every position: most texts with a hint have no `=` or quote after all)
    if "bearer" in low:
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    if "basic" in low:
        text = _BASIC.sub(lambda m: m.group(1) + REDACTED, text)
    if "authorization" in low:
        text = _HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if any(h in low for h in ("cookie", "api-key", "x-auth-token", "x-access-token")):
        text = _OTHER_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    ends = _credential_word_ends(text)
    if ends and ("'" in text or '"' in text) and ":" in text and _followed(text, ends, _AFTER_QUOTED):
        text = _QUOTED.sub(lambda m: m.group(1) + m.group(2) + m.group(1) + m.group(3) + m.group(4) + REDACTED
                           + m.group(4), text)
    if ends and "=" in text and _followed(text, ends, _AFTER_ASSIGN):
        text = _ASSIGN.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if ends and "--" in text and _followed(text, ends, _AFTER_FLAG):
        text = _FLAG.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if "-u" in low:  # `-u` and `--user`
        text = _USERINFO.sub(lambda m: m.group(1) + REDACTED, text)
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    if "eyj" in low:
        text = _JWT.sub(REDACTED, text)
    return text


def redact_text(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """``text`` with every known secret value (and ``secrets``), bearer/basic credentials, JWTs, credential
    headers, ``--password=...``-like assignments and URL passwords blanked."""
    return _scrub_text(text, frozenset(secrets))


def redact(value: Any, secrets: set[str] | frozenset[str] = frozenset()) -> Any:
    """A JSON-safe copy of ``value`` with no Secret values in it.

    Blanks the values of ``data``/``stringData`` in Secrets (keys kept), string values of credential-like keys
    (token, password, client-key-data, authorization, ...), the ``value`` of ``{name, value}`` pairs whose name
    looks like a credential (env vars, probe ``httpHeaders``), bearer tokens and JWTs in any string, and every
    occurrence of the registered ``secrets`` and of every value the run has learnt is secret (also base64).
    """
    return _redact(_plain(value), frozenset(secrets), secret_obj=False)


IDENTITY_FIELDS = ("check_id", "verdict", "severity", "nodeid", "recorded_at")


def redact_finding(data: dict, secrets: set[str] | frozenset[str] = frozenset()) -> dict:
    """``redact`` for a finding's dict: its identity (check id, verdict, node id, ...) is kept as it is."""
    out = redact(data, secrets)
    for key in IDENTITY_FIELDS:
        if key in data:
            out[key] = _plain(data[key])
    return out


def _redact(value: Any, secrets: frozenset[str], *, secret_obj: bool) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, list):
        return [_redact(v, secrets, secret_obj=secret_obj) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("kind")
    is_secret = secret_obj or kind == "Secret"
    credential_pair = isinstance(value.get("name"), str) and CREDENTIAL_NAME.search(value["name"]) is not None
    out: dict[str, Any] = {}
    for k, v in value.items():
        if is_secret and k in ("data", "stringData") and isinstance(v, dict):
            out[k] = {dk: REDACTED for dk in v}
        elif k.lower() in _SENSITIVE_KEYS and isinstance(v, (str, bytes)) and v:
            out[k] = REDACTED
        elif credential_pair and k == "value" and isinstance(v, str) and v:
            out[k] = REDACTED
        elif kind == "SecretList" and k == "items":
            out[k] = [_redact(i, secrets, secret_obj=True) for i in v or []]
        else:
            out[k] = _redact(v, secrets, secret_obj=False)
    return out


def _scrub_object(obj: Any, secrets: frozenset[str], depth: int = 0) -> Any:
    """Blank secrets in place in pytest's report objects (failure representations: traceback lines, ``-l``
    locals, crash message, sections), returning the (possibly new) object."""
    if isinstance(obj, str):
        return _scrub_text(obj, secrets)
    if depth > 30 or obj is None or isinstance(obj, (bool, int, float, Path)):
        return obj
    if isinstance(obj, list):
        obj[:] = [_scrub_object(v, secrets, depth + 1) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return type(obj)(*(_scrub_object(v, secrets, depth + 1) for v in obj)) if hasattr(obj, "_fields") \
            else tuple(_scrub_object(v, secrets, depth + 1) for v in obj)
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _scrub_object(obj[k], secrets, depth + 1)
        return obj
    if type(obj).__module__.startswith("_pytest") and hasattr(obj, "__dict__"):
        for name, v in list(vars(obj).items()):
            object.__setattr__(obj, name, _scrub_object(v, secrets, depth + 1))
    return obj


def still_clean(record: Any, generation: int) -> bool:
    """Whether ``record`` (JSON-safe), redacted when the registry was at ``generation``, is redacted now too: no
    value learnt since is in it (looked for in its JSON text, each value escaped as JSON writes it, which is
    exact: JSON escapes character by character). A run's findings are redacted when their test ends and written
    at its end; most runs learn only tokens meanwhile, which no finding holds."""
    since = _KNOWN.added_since(generation, as_json=True)
    if since is None:
        return True
    if since is False:
        return False
    return not since.search(json.dumps(record, default=str))


def redaction_generation() -> int:
    """Changes whenever the run learns a secret: a value redacted at one generation is clean while it lasts."""
    return _KNOWN.generation


def scrub_report(report: pytest.TestReport, secrets: set[str] | frozenset[str] = frozenset(), *,
                 clean: tuple[int, set[int]] | None = None) -> None:
    """Blank every secret in what pytest, JUnit and pytest-html show of ``report``: the failure text (with
    ``-l`` locals), captured output and log sections, user properties and pytest-html extras. ``clean``:
    ``(generation, ids)`` of user-property values redacted with these ``secrets`` at that generation (the
    findings the reporter just attached): left as they are while the generation is the same."""
    secrets = frozenset(secrets)
    report.longrepr = _scrub_object(report.longrepr, secrets)
    report.sections = [(title, _scrub_text(content, secrets)) for title, content in report.sections]
    _learn(secrets)
    done = clean[1] if clean is not None and clean[0] == _KNOWN.generation else set()
    report.user_properties = [
        (name, value if id(value) in done
         else redact_finding(value, secrets) if name == USER_PROPERTY and isinstance(value, dict)
         else redact(value, secrets) if not isinstance(value, str) else _scrub_text(value, secrets))
        for name, value in report.user_properties]
    extras = getattr(report, "extras", None)
    if extras:
        for extra in extras:
            if isinstance(extra, dict) and isinstance(extra.get("content"), str) \
                    and extra.get("format_type") in ("json", "text", "html", "url"):
                extra["content"] = _scrub_text(extra["content"], secrets)


class RedactingFilter(logging.Filter):
    """A logging filter blanking secrets in records (pytest's live log and --log-file handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to logging
            return True
        clean = _scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


# --- recording ---------------------------------------------------------------------------------------


def check_id_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("kready_check")
    if marker and marker.args:
        return str(marker.args[0])
    return item.nodeid


def findings_of(item: pytest.Item) -> list[Finding]:
    return item.stash.setdefault(FINDINGS_KEY, [])


def record(item: pytest.Item, finding: Finding) -> Finding:
    """Store ``finding`` on ``item`` and announce it through the ``pytest_kready_finding`` hook."""
    finding.nodeid = finding.nodeid or item.nodeid
    findings_of(item).append(finding)
    item.config.hook.pytest_kready_finding(finding=finding, item=item)
    return finding


class FindingRecorder:
    """What the ``kready_finding`` fixture returns: ``kready_finding(verdict, summary, **fields)`` records one."""

    def __init__(self, item: pytest.Item):
        self.item = item

    @property
    def check_id(self) -> str:
        return check_id_of(self.item)

    def __call__(self, verdict: Verdict | str, summary: str = "", **fields: Any) -> Finding:
        fields.setdefault("check_id", self.check_id)
        return record(self.item, Finding(verdict=Verdict(verdict), summary=summary, **fields))

    def record(self, results: CheckResult | Iterable[CheckResult]) -> list[Finding]:
        """Record what a check module decided: one ``CheckResult`` or several (one per target)."""
        if isinstance(results, CheckResult):
            results = [results]
        return [r.record(self) for r in results]

    def passed(self, summary: str = "", **fields: Any) -> Finding:
        return self(Verdict.PASS, summary, **fields)

    def failed(self, summary: str, **fields: Any) -> Finding:
        """Record a failure and carry on (the test is failed at its end, with every failure listed)."""
        return self(Verdict.FAIL, summary, **fields)

    def inconclusive(self, reason: str, **fields: Any) -> None:
        """Record an inconclusive finding and stop the test: it is reported INCONCLUSIVE (a failure)."""
        self(Verdict.INCONCLUSIVE, reason, **fields)
        raise Inconclusive(reason)

    def not_applicable(self, reason: str, **fields: Any) -> None:
        """Record a not-applicable finding and skip the test with ``reason``."""
        self(Verdict.NOT_APPLICABLE, reason, **fields)
        pytest.skip(f"not-applicable: {reason}")

    def secret(self, value: str | bytes) -> None:
        """Register a value that must never appear in evidence (it is blanked wherever it occurs)."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        self.item.stash.setdefault(SECRETS_KEY, set()).add(value)
        register_secret(value)


# --- reporting: pytest_kready.reports (the plugin object, outcomes, JSON, SARIF, JUnit, summary) ----------

_MOVED = ("FindingsReporter", "is_check", "one_line", "REASON_PROPERTY")


def __getattr__(name: str):
    """The reporting code moved to ``pytest_kready.reports.reporter``; its names stay importable from here."""
    if name in _MOVED:
        from .reports import reporter

        return getattr(reporter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
