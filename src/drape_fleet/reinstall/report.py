"""How a reinstall shows its progress to ops: one line per step as it starts and ends (with its duration), the
notes in between (what is awaited, for how long), and a failure with what was seen and what to do next."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from drape_fleet.reinstall.context import StepFailed
from drape_fleet.reinstall.plan import Step
from drape_fleet.reinstall.state import StepRecord


class ConsoleProgress:
    def __init__(self, console: Console, *, host: str) -> None:
        self.console, self.host = console, host
        self._last_note = ""

    def started(self, step: Step, number: int, total: int) -> None:
        self.console.print(f"[cyan]{self.host}[/cyan] [{number}/{total}] {step.title} ...")

    def note(self, step: Step, message: str) -> None:
        if message != self._last_note:  # a wait repeats itself every poll: show changes only
            self.console.print(f"    [dim]{escape(message)}[/dim]")
            self._last_note = message

    def finished(self, step: Step, seconds: float, summary: str) -> None:
        self.console.print(f"    [green]done[/green] in {seconds:.1f} s: {escape(summary)}")

    def failed(self, step: Step, seconds: float, failure: StepFailed) -> None:
        self.console.print(f"    [red]failed[/red] after {seconds:.1f} s: {escape(failure.what)}")

    def skipped(self, step: Step, record: StepRecord) -> None:
        self.console.print(f"[cyan]{self.host}[/cyan] {step.title}: done earlier ({record.at}), skipped")
