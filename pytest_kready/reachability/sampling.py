"""The sampling rule of the engine: which rounds count, how a target is shown alive, and what a cell is.

A probe that fails says "blocked" only if something could have answered: a target that never answered (no
listener, a Service without endpoints, a pod that is not ready) fails every probe whatever the policies say. So:

* **The settle window.** With an expectation, the rounds before the first round that agrees with it, and any
  round that disagrees while the observation is younger than ``settle`` seconds, are settling rounds (a policy just
  written, or a new pod whose policies are still being attached): they do not count. After ``settle`` seconds
  every round counts. Without an expectation every round counts.
* **Alive.** Each target has an ``Alive``: how it is shown alive *in a round* — every group of control cells has
  a cell that connected in that same round (a listener seen over ``localhost`` inside the target pod, the same
  target answering from a place the policies allow, a UDP path that works) — or ``static``: shown alive
  otherwise (the pod Ready through a readiness probe on that very port, a listener seen inside it), which the
  caller verifies around the sample.
* **The cell.** ``connects`` if any counted round connected; ``blocked`` if no counted round connected and in at
  least ``min_rounds`` counted rounds the probe failed while the target was shown alive in that same round;
  otherwise unknown, with the reason (the target was never shown alive, the probe gave no answer, too few rounds).

Pure functions and small classes: no cluster here (tests/test_reachability_unit.py covers them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from .truthtable import Cell

MIN_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class Alive:
    """How a target is shown alive in a round (see the module doc). ``text`` says it for people."""

    groups: tuple[tuple[Cell, ...], ...] = ()
    static: str | None = None
    text: str = ""

    @classmethod
    def by(cls, *cells: Cell, text: str = "") -> Alive:
        """Alive in a round when every one of ``cells`` connected in it."""
        return cls(tuple((c,) for c in cells), None, text)

    @classmethod
    def known(cls, why: str) -> Alive:
        """Shown alive without a probe (``why``: e.g. Ready through a readiness probe on this port)."""
        return cls((), why, why)

    @classmethod
    def never(cls, why: str) -> Alive:
        """No way to show it alive (``why``: e.g. the Service has no ready endpoint)."""
        return cls((), None, why)

    def also_any(self, cells: Iterable[Cell], text: str = "") -> Alive:
        """This and, in the same round, any one of ``cells`` connected."""
        group = tuple(cells)
        return dataclasses.replace(self, groups=self.groups + (group,),
                                   text="; ".join(t for t in (self.text, text) if t))

    def cells(self) -> set[Cell]:
        return {c for g in self.groups for c in g}

    @property
    def possible(self) -> bool:
        return self.static is not None or (bool(self.groups) and all(self.groups))

    def holds(self, values: Mapping[Cell, bool | None]) -> bool:
        """Whether the target was shown alive in a round whose cell values are ``values``."""
        if self.static is not None:
            return True
        return bool(self.groups) and all(any(values.get(c) is True for c in g) for g in self.groups)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What one cell is from its counted rounds."""

    value: bool | None
    rounds: int  # counted rounds
    proofs: int  # counted rounds in which the probe failed with the target shown alive
    why: str = ""  # for an unknown cell: the reason
    pending: bool = False  # unknown, and more rounds could still decide it


def decide(values: Sequence[bool | None], alive: Sequence[bool] | None, *, min_rounds: int = MIN_ROUNDS,
           alive_text: str = "") -> Decision:
    """A cell from the values of its counted rounds and, per round, whether its target was shown alive
    (``alive=None``: not required — a raw observation)."""
    n = len(values)
    if any(v is True for v in values):
        return Decision(True, n, 0)
    shown = [True] * n if alive is None else list(alive)
    proofs = sum(1 for v, a in zip(values, shown) if v is False and a)
    failed = sum(1 for v in values if v is False)
    errors = sum(1 for v in values if v is None)
    if proofs >= min_rounds:
        return Decision(False, n, proofs)
    if not n:
        why = "no round counted (the sample ended inside the settle window)"
    elif failed and not proofs:
        why = (f"the target was not shown alive in any of the {failed} counted round(s) its probe failed in"
               + (f" ({alive_text})" if alive_text else ""))
    elif failed:
        why = f"the probe failed with the target shown alive in {proofs} counted round(s); {min_rounds} are needed"
    else:
        why = f"the probe gave no answer in any of {errors} counted round(s)"
    return Decision(None, n, proofs, why, pending=bool(errors or proofs))


class SettleWindow:
    """Which rounds count (see the module doc). Feed each round in order with ``add``."""

    def __init__(self, settle: float, *, expectation: bool):
        self.settle = settle
        self.expectation = expectation
        self.counted_from: int | None = None if expectation else 0
        self.n = 0

    def add(self, agrees: bool, started: float, ended: float) -> None:
        """Round ``self.n``: whether it agreed with the expectation, when it started and ended (seconds since the
        observation began)."""
        i = self.n
        self.n += 1
        if not self.expectation:
            return
        if self.counted_from is None:
            if agrees or started >= self.settle:
                self.counted_from = i
        elif not agrees and ended < self.settle:
            self.counted_from = None  # still settling: what counted so far was taken too early

    @property
    def open(self) -> bool:
        return self.counted_from is None

    def counted(self) -> range:
        return range(self.counted_from, self.n) if self.counted_from is not None else range(0)
