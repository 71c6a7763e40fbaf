"""The reinstall under test, put together: the fake Robot webservice, the fake server (world.py), a fake clock and
a progress recorder. In a module of its own (not conftest) so test modules can import its types whatever other
conftest.py files pytest loaded first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fake_clock import FakeClock
from fakes.robot import RobotFake
from fleets import make_fleet
from world import World

from drape_fleet.config import FleetConfig
from drape_fleet.config.reinstall import ReinstallTimeouts
from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.reinstall.context import StepFailed
from drape_fleet.reinstall.executor import Reinstall
from drape_fleet.reinstall.plan import Step
from drape_fleet.reinstall.state import StepRecord


@dataclass
class Recorder:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def started(self, step: Step, number: int, total: int) -> None:
        self.events.append(("started", step.name, f"{number}/{total}"))

    def note(self, step: Step, message: str) -> None:
        self.events.append(("note", step.name, message))

    def finished(self, step: Step, seconds: float, summary: str) -> None:
        self.events.append(("finished", step.name, summary))

    def failed(self, step: Step, seconds: float, failure: StepFailed) -> None:
        self.events.append(("failed", step.name, failure.what))

    def skipped(self, step: Step, record: StepRecord) -> None:
        self.events.append(("skipped", step.name, record.summary))

    def of(self, kind: str) -> list[str]:
        return [name for event, name, _ in self.events if event == kind]


@dataclass
class Bench:
    clock: FakeClock
    world: World
    fake: RobotFake
    robot: RobotClient
    progress: Recorder
    state_dir: Path
    known_hosts: Path

    def reinstall(self, fleet: FleetConfig | None = None, host: str = "ax1", **options: object) -> Reinstall:
        return Reinstall(fleet or make_fleet(), host, self.robot, self.world, self.known_hosts,
                         state_dir=self.state_dir,
                         timeouts=ReinstallTimeouts(rescue_boot_s=300, installimage_s=900, os_boot_s=300),
                         progress=self.progress, clock=self.clock, sleep=self.clock.sleep, **options)

    def robot_calls(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.fake.state.requests]
