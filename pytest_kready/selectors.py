"""Kubernetes label selectors (``metav1.LabelSelector``), one definition for the checks and the local cluster's
NetworkPolicy enforcer. Standard library only: the enforcer process imports it without the Kubernetes client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SelectorError(ValueError):
    """A label selector Kubernetes would refuse (the API server validates them; seen only in hand-made input)."""


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes ``metav1.LabelSelector`` semantics: ``None`` selects nothing, ``{}`` selects everything;
    ``matchLabels`` and every ``matchExpressions`` entry must all hold. Raises :class:`SelectorError` for a
    selector the API would reject (unknown operator, In/NotIn without values, Exists/DoesNotExist with values)."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        if not key:
            raise SelectorError(f"matchExpressions entry without key: {expr!r}")
        if op in ("In", "NotIn"):
            if not values:
                raise SelectorError(f"operator {op} needs values: {expr!r}")
            present = key in labels and labels[key] in values
            if present != (op == "In"):
                return False
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(f"operator {op} takes no values: {expr!r}")
            if (key in labels) != (op == "Exists"):
                return False
        else:
            raise SelectorError(f"unknown operator {op!r} in {expr!r}")
    return True
