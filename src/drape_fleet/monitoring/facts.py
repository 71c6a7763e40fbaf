"""pyinfra facts the monitoring deploys read."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pyinfra.api.facts import FactBase


class FilesDiffering(FactBase[list[str]]):
    """Of (candidate, installed) pairs, the installed paths that are missing or differ from their candidate."""

    def command(self, pairs: Sequence[tuple[str, str]]) -> str:
        checks = [f"cmp -s {shlex.quote(a)} {shlex.quote(b)} || echo {shlex.quote(b)}" for a, b in pairs]
        return "; ".join([*checks, "true"])

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line.strip()]
