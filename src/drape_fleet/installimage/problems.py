"""What a check of an installimage config reports: one ``Problem`` per broken rule, each naming what is wrong,
how to fix it, and where the rule comes from (the installimage function that applies it, or ``drape`` for the
ones this project adds). ``RULES`` lists every rule, for the docs and the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

Severity = Literal["error", "warning"]

VALIDATE_VARS = "functions.sh:validate_vars"
READ_VARS = "functions.sh:read_vars"
GET_OPTIONS = "get_options.sh:-c"
CREATE_CONFIG = "functions.sh:create_config (its notes)"
GETDRIVES = "functions.sh:getdrives"
OURS = "drape"


@dataclass(frozen=True)
class Problem:
    rule: str
    message: str
    fix: str
    source: str
    severity: Severity = "error"

    def render(self) -> str:
        return f"[{self.rule}] {self.message}. Fix: {self.fix} (rule from {self.source})"


@dataclass(frozen=True)
class RuleInfo:
    name: str
    source: str
    summary: str


RULES: dict[str, RuleInfo] = {}

F = TypeVar("F", bound=Callable[..., Iterable[Problem]])


def rule(name: str, source: str, summary: str) -> Callable[[F], F]:
    """Register a check under ``name``; the function yields Problems (each carrying the same name)."""
    def register(function: F) -> F:
        if name in RULES:
            raise ValueError(f"rule {name!r} registered twice")
        RULES[name] = RuleInfo(name, source, summary)
        function.rule_name = name  # type: ignore[attr-defined]
        return function
    return register


def problem(name: str, message: str, fix: str, severity: Severity = "error") -> Problem:
    return Problem(name, message, fix, RULES[name].source, severity)


class InvalidConfig(ValueError):
    """The config breaks rules installimage (or this project) applies: it must not reach the server."""

    def __init__(self, subject: str, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = [f"{subject}: {len(errors)} problem(s) in the installimage config"]
        lines += [f"  - {p.render()}" for p in errors]
        super().__init__("\n".join(lines))


def errors_of(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
