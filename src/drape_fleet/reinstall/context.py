"""What every reinstall step works with: the host and its fleet, the two seams (Robot, SSH), the state that is
saved after each step, time limits, progress reporting, and the helpers steps share (run a command on the
pinned rescue system, wait with progress until something holds or time runs out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from drape_fleet.config.models import FleetConfig, Host
from drape_fleet.config.reinstall import ReinstallTimeouts as Timeouts
from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.reinstall.keys import PublicKey, known_hosts_lines
from drape_fleet.reinstall.plan import Step
from drape_fleet.reinstall.remote import CommandResult, Remote
from drape_fleet.reinstall.state import ReinstallState, StepRecord, save_state, state_path

T = TypeVar("T")


class StepFailed(Exception):
    """A step could not do its work: what happened, what was seen, what to do next."""

    def __init__(self, what: str, *, seen: str = "", next_steps: str = "") -> None:
        super().__init__(what)
        self.what, self.seen, self.next_steps = what, seen, next_steps


class TimedOut(StepFailed):
    """What was awaited did not happen within its time limit."""


class Progress(Protocol):
    def started(self, step: Step, number: int, total: int) -> None: ...
    def note(self, step: Step, message: str) -> None: ...
    def finished(self, step: Step, seconds: float, summary: str) -> None: ...
    def failed(self, step: Step, seconds: float, failure: StepFailed) -> None: ...
    def skipped(self, step: Step, record: StepRecord) -> None: ...


class QuietProgress:
    def started(self, step: Step, number: int, total: int) -> None:
        pass

    def note(self, step: Step, message: str) -> None:
        pass

    def finished(self, step: Step, seconds: float, summary: str) -> None:
        pass

    def failed(self, step: Step, seconds: float, failure: StepFailed) -> None:
        pass

    def skipped(self, step: Step, record: StepRecord) -> None:
        pass


@dataclass
class FlowContext:
    fleet: FleetConfig
    host: Host
    robot: RobotClient
    remote: Remote
    known_hosts: Path
    """Where the new system's pinned host keys go (production: inventories/known_hosts)."""
    state_dir: Path
    state: ReinstallState
    timeouts: Timeouts = field(default_factory=Timeouts)
    progress: Progress = field(default_factory=QuietProgress)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rescue_host_fingerprints: tuple[str, ...] = ()
    """Host key fingerprints ops checked themselves, used only when Robot's activation announces none."""
    port: int = 22
    current: Step | None = None

    @property
    def address(self) -> str:
        return str(self.host.public_address)

    @property
    def server_number(self) -> int:
        assert self.host.robot_server_number is not None
        return self.host.robot_server_number

    @property
    def rescue_known_hosts(self) -> Path:
        return self.state_dir / f"{self.host.name}.rescue_known_hosts"

    def artifact(self, suffix: str) -> Path:
        return self.state_dir / f"{self.host.name}.{suffix}"

    def save(self) -> None:
        save_state(state_path(self.state_dir, self.host.name), self.state)

    def update(self, **changes: object) -> None:
        self.state = self.state.model_copy(update=changes)
        self.save()

    def note(self, message: str) -> None:
        if self.current is not None:
            self.progress.note(self.current, message)

    def pin_rescue(self, keys: list[PublicKey]) -> None:
        self.rescue_known_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.rescue_known_hosts.write_text("\n".join(known_hosts_lines(self.address, self.port, keys)) + "\n")
        self.update(rescue_host_keys=[key.line() for key in keys])

    def rescue(self, command: str, *, timeout: float | None = None, input: str | None = None,
               check: str = "") -> CommandResult:
        """Run on the rescue system through its pinned key. With ``check`` (what the command does), a failure
        raises StepFailed naming it."""
        if not self.rescue_known_hosts.exists() and self.state.rescue_host_keys:
            self.pin_rescue([PublicKey.parse(line) for line in self.state.rescue_host_keys])
        result = self.remote.run(self.address, self.port, self.rescue_known_hosts, command,
                                 timeout=timeout or self.timeouts.command_s, input=input)
        if check and not result.ok:
            raise StepFailed(f"{check} failed on the rescue system", seen=result.tail(),
                             next_steps="re-run to resume here; if the rescue system is gone (it was rebooted), "
                                        "re-run with --restart to activate it again")
        return result

    def installed(self, command: str, *, check: str) -> CommandResult:
        """Run on the new system, accepting only the host keys recorded for it."""
        result = self.remote.run(self.address, self.port, self.known_hosts, command, timeout=self.timeouts.command_s)
        if not result.ok:
            raise StepFailed(f"{check} failed on the new system", seen=result.tail(),
                             next_steps=f"log in (ssh root@{self.address}) and look; re-run to check again")
        return result

    def wait_for(self, what: str, limit_s: float, probe: Callable[[], tuple[T | None, str]]) -> T:
        """Call ``probe`` every poll interval until it returns a value; it returns (value or None, what it saw).
        Progress notes say what is awaited and for how long; at the limit, StepFailed says what was last seen."""
        started = self.clock()
        seen = "nothing yet"
        while True:
            value, seen = probe()
            if value is not None:
                return value
            waited = self.clock() - started
            if waited >= limit_s:
                raise TimedOut(f"{what}: not within {limit_s:.0f} s", seen=seen)
            self.note(f"waiting for {what} ({waited:.0f} of {limit_s:.0f} s): {seen}")
            self.sleep(min(self.timeouts.poll_s, max(limit_s - waited, 0.1)))
