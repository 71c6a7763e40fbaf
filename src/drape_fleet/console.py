"""What ops see: one Rich console, step messages, and failures that exit non-zero."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def say(message: str) -> None:
    console.print(f"[dim]•[/dim] {message}")


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[bold red]error:[/bold red] {message}")
    sys.exit(code)
