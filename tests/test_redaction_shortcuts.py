"""The redaction's shortcuts blank exactly what the plain patterns blank.

``findings._Literals`` (many known secret values found through a regex of their first characters) must find what
one regex of all the values finds, leftmost and longest first; the credential-word prefilter of ``_QUOTED``,
``_ASSIGN`` and ``_FLAG`` must never skip a text those patterns change; the memo of scrubbed texts must scrub a
text again when a value learnt later is in it, and only then. The references here are the patterns applied as
they are, to random texts built from the pieces that make them match (credential words, quotes, ``=``, ``--``,
known values, non-ASCII letters).
"""

from __future__ import annotations

import random
import re

import pytest

from pytest_kready import findings as F

WORDS = ["password", "passwd", "passphrase", "token", "secret", "api_key", "apiKey", "access-key", "privatekey",
         "credential", "PASSWORD", "Token", "automountServiceAccountToken", "secretName", "tokenPath", "keyRef",
         "name", "value", "db", "x", "-", ".", "_"]
GLUE = ["", " ", "  ", "=", ": ", ":", '"', "'", "--", "-", ",", "}", "]", "\n", "é", "ß", "İ", "/", "@", "://"]
VALUES = ["hunter2", "s3cr3t-value", "abc", "<redacted>", "  x", "tok.en_123"]


def _text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 14)):
        parts.append(rng.choice(WORDS) if rng.random() < 0.5 else rng.choice(VALUES))
        parts.append(rng.choice(GLUE))
    return "".join(parts)


def _reference_forms(text: str) -> str:
    """The three credential-word patterns as the scrubber applied them before its prefilter."""
    if F._CRED.search(text) is None:
        return text
    if ("'" in text or '"' in text) and ":" in text:
        text = F._QUOTED.sub(lambda m: m.group(1) + m.group(2) + m.group(1) + m.group(3) + m.group(4) + F.REDACTED
                             + m.group(4), text)
    if "=" in text:
        text = F._ASSIGN.sub(lambda m: m.group(1) + m.group(2) + F.REDACTED, text)
    if "--" in text:
        text = F._FLAG.sub(lambda m: m.group(1) + m.group(2) + F.REDACTED, text)
    return text


def _shortcut_forms(text: str) -> str:
    ends = F._credential_word_ends(text)
    if ends and ("'" in text or '"' in text) and ":" in text and F._followed(text, ends, F._AFTER_QUOTED):
        text = F._QUOTED.sub(lambda m: m.group(1) + m.group(2) + m.group(1) + m.group(3) + m.group(4) + F.REDACTED
                             + m.group(4), text)
    if ends and "=" in text and F._followed(text, ends, F._AFTER_ASSIGN):
        text = F._ASSIGN.sub(lambda m: m.group(1) + m.group(2) + F.REDACTED, text)
    if ends and "--" in text and F._followed(text, ends, F._AFTER_FLAG):
        text = F._FLAG.sub(lambda m: m.group(1) + m.group(2) + F.REDACTED, text)
    return text


def test_the_credential_word_prefilter_skips_only_texts_the_patterns_leave_alone():
    rng = random.Random(20261204)
    changed = 0
    for _ in range(20_000):
        text = _text(rng)
        want = _reference_forms(text)
        assert _shortcut_forms(text) == want, text
        changed += want != text
    assert changed > 1_000  # the texts exercise the patterns, not only the shortcut


def test_the_prefilter_leaves_a_pod_spec_repro_alone_and_still_blanks_a_flag_in_it():
    spec = ('echo \'{"spec":{"automountServiceAccountToken":false,"containers":[{"name":"c"}]}}\' | '
            'kubectl create --dry-run=server -n team -f -')
    assert F._scrub_uncached(spec) == spec
    leaky = spec + " --token=abcdef123456 --password hunter22"
    clean = F._scrub_uncached(leaky)
    assert "abcdef123456" not in clean and "hunter22" not in clean and clean.count(F.REDACTED) == 2


def _reference_literals(words: set[str]) -> re.Pattern:
    # leftmost, then longest: what the scrubber compiled before (one alternation, longest first)
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


def test_literals_find_what_one_alternation_of_all_values_finds():
    rng = random.Random(7)
    alphabet = "ab.c-=eyJ"
    for _ in range(3_000):
        words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(rng.randint(1, 8))}
        # long values sharing a long head (JWTs all begin with eyJhbGciOi...), and a value inside another
        head = "eyJhbGciOiJSUzI1NiIsImtpZCI6"
        words |= {head + w for w in list(words)[:3]} | {head}
        text = "".join(rng.choice([*words, *alphabet, " ", head[:20]]) for _ in range(rng.randint(0, 12)))
        want = _reference_literals(words).sub("#", text)
        lit = F._Literals(words)
        assert lit.sub("#", text) == want, (words, text)
        assert lit.search(text) == (want != text)


def test_a_scrubbed_text_is_scrubbed_again_only_when_a_value_learnt_later_is_in_it(monkeypatch):
    F.forget_secrets()
    calls = []
    real = F._scrub_uncached
    monkeypatch.setattr(F, "_scrub_uncached", lambda text: calls.append(text) or real(text))
    try:
        F.register_secret("first-secret-value")
        text = "connect with first-secret-value and second-secret-value to the database"
        once = F.redact_text(text)
        assert "first-secret-value" not in once and "second-secret-value" in once
        F.register_secret("unrelated-token-xyz")  # not in the text: the memo still answers
        assert F.redact_text(text) == once and len(calls) == 1
        F.register_secret("second-secret-value")  # in the text: scrubbed again
        again = F.redact_text(text)
        assert "second-secret-value" not in again and len(calls) == 2
        F.forget_secrets()  # emptied: nothing the memo holds is trusted
        assert F.redact_text(text) == text and len(calls) == 3
    finally:
        F.forget_secrets()


@pytest.mark.parametrize("value", ["hünter-secret-2", "p@ss\"word'value", "line1\nline2-secret-value"])
def test_a_redacted_record_is_kept_only_while_no_value_learnt_since_is_in_it(value):
    F.forget_secrets()
    try:
        record = F.redact_finding({"check_id": "x", "verdict": "pass", "summary": f"saw {value} here",
                                   "evidence": {"note": "nothing secret"}})
        generation = F.redaction_generation()
        assert F.still_clean(record, generation)
        F.register_secret("something-else-entirely")
        assert F.still_clean(record, generation)
        F.register_secret(value)
        assert not F.still_clean(record, generation)
        assert value not in str(F.redact_finding(record))
        F.forget_secrets()
        assert not F.still_clean(record, generation)
    finally:
        F.forget_secrets()
