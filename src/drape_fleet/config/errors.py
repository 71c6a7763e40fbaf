"""One error type for bad configuration, whose message names the file, the field and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration source."""

    field: str
    message: str
    fix: str

    def render(self) -> str:
        return f"{self.field}: {self.message}. Fix: {self.fix}"


class ConfigError(ValueError):
    """Raised before any host is touched when configuration is unusable."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s) in the configuration"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))
