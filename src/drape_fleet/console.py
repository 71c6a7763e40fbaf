"""What ops see: one Rich console, step messages, and failures that exit non-zero."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

# Piped or in CI, Rich would wrap tables at 80 columns; a log has room for wide tables.
_LOG_WIDTH = None if sys.stdout.isatty() else 160

console = Console(highlight=False, width=_LOG_WIDTH)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

Log = Callable[[str], None]
"""Where long work reports its steps (``say`` for ops; a list's ``append`` in tests)."""


def say(message: str) -> None:
    console.print(f"[dim]•[/dim] {message}")


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/bold red] {escape(message)}")  # "[preview_dns]" is text, not markup
    sys.exit(code)
