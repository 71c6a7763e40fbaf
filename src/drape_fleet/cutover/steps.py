"""The shape every phase has: a gate (checks with values), then steps, each planned before it runs.

A step's plan is the list of changes it would make now (empty: nothing to do, "no change"); running it makes
exactly those changes, records what it did in the state store, and returns a one-line summary. Every step reads
before it acts, so a phase can be run again at any point - after an interruption, or to change its options -
and does only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session
from drape_fleet.cutover.gates import Check, failed


@dataclass(frozen=True)
class Options:
    """What ops passed on the command line."""

    apply: bool = False
    allow: tuple[str, ...] | None = None
    """phase3: the allowlist (replaces the current one); None keeps it."""
    percent: float | None = None
    """phase3: the sticky share of other users on Hetzner; None keeps it."""
    load_test: bool = False
    """phase3: run the load test even though a recent one passed."""
    reverify: bool = False
    """phase1: run `invoke verify` even though it passed before."""
    destroy_fly: bool = False
    confirm: str = ""
    force: bool = False


@dataclass
class Step:
    name: str
    title: str
    changes: list[str]
    run: Callable[[], str] | None = None
    """None: a step that only reports (its ``changes`` are findings)."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    number: int
    checks: list[Check]
    steps: list[Step]

    @property
    def gate_failed(self) -> list[Check]:
        return failed(self.checks)


class GateFailed(CutoverRefused):
    def __init__(self, phase: int, checks: list[Check]) -> None:
        self.checks = checks
        lines = "\n  ".join(check.line() for check in checks)
        super().__init__(f"the gate into phase {phase} is closed: {len(checks)} check(s) failed:\n  {lines}\n"
                         "Nothing was changed.")


class StepFailed(RuntimeError):
    """A step could not finish; the phase stays "applying" and a re-run continues from here."""


PlanBuilder = Callable[[CutoverContext, Session, Options], Plan]
