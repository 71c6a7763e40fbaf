"""pyinfra facts the monitoring deploys read."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pyinfra.api.facts import FactBase


class Sha256Sums(FactBase[dict[str, str | None]]):
    """The SHA-256 of each file (None when it is missing): what is installed, compared with what the deploy
    renders, before anything is uploaded (facts are read when the run is planned)."""

    def command(self, paths: Sequence[str]) -> str:
        checks = [f"sha256sum {shlex.quote(p)} 2>/dev/null || echo - {shlex.quote(p)}" for p in paths]
        return "; ".join([*checks, "true"])

    @staticmethod
    def default() -> dict[str, str | None]:
        return {}

    def process(self, output: list[str]) -> dict[str, str | None]:
        sums: dict[str, str | None] = {}
        for line in output:
            digest, _, path = line.strip().partition(" ")
            if path:
                sums[path.strip().removeprefix("*")] = None if digest == "-" else digest
        return sums
