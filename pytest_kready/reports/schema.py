"""The JSON Schema of the findings file (``findings-v1.schema.json``, shipped in this package) and validation
against it (with the ``jsonschema`` package, a test dependency; without it ``validate`` says so)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "findings-v1.schema.json"


@lru_cache(maxsize=1)
def findings_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def errors(doc: Any) -> list[str]:
    """Every way ``doc`` breaks the v1 schema, one line each (``path: message``); empty when it is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(findings_schema())
    out = []
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(map(str, e.absolute_path)) or "(document)"
        out.append(f"{where}: {e.message[:300]}")
    return out


def validate(doc: Any) -> None:
    """Raise ``ValueError`` naming the first problems when ``doc`` is not a valid v1 findings document."""
    problems = errors(doc)
    if problems:
        raise ValueError(f"{len(problems)} schema violation(s): " + "; ".join(problems[:5]))
