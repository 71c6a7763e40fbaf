"""The reinstall, run: the plan's steps in order from where the last run stopped, each timed, reported and
recorded in the state file; a failure names the step, what was seen and what to do next.

``Reinstall`` is the library call the ``invoke provision --reinstall`` option stands on: ``dry_run()`` prints the
steps and the installimage config, ``check()`` runs the read-only preflight and answers the confirmation text
(naming the server as Robot knows it), and ``run(confirmed=True)`` does the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.reinstall import ReinstallTimeouts
from drape_fleet.hetzner.robot import RobotClient, RobotError
from drape_fleet.reinstall.context import FlowContext, Progress, QuietProgress, StepFailed
from drape_fleet.reinstall.plan import STEPS, Step, confirmation_text, plan_text, resume_index, step
from drape_fleet.reinstall.remote import Remote
from drape_fleet.reinstall.state import ReinstallState, StepRecord, for_server, load_state, state_path
from drape_fleet.reinstall.steps import STEP_FUNCTIONS


class ReinstallRefused(ValueError):
    """The reinstall cannot start (bad input, or not confirmed); nothing was touched."""


class ReinstallFailed(RuntimeError):
    def __init__(self, failed: Step, seconds: float, failure: StepFailed) -> None:
        self.step, self.seconds, self.failure = failed, seconds, failure
        lines = [f"step '{failed.name}' ({failed.title}) failed after {seconds:.0f} s: {failure.what}"]
        if failure.seen:
            lines.append("seen:\n    " + failure.seen.replace("\n", "\n    "))
        if failure.next_steps:
            lines.append(f"next: {failure.next_steps}")
        super().__init__("\n".join(lines))


@dataclass
class Reinstall:
    fleet: FleetConfig
    host_name: str
    robot: RobotClient
    remote: Remote
    known_hosts: Path
    """The environment's pinned host keys: the new system's keys are written there."""
    state_dir: Path
    """Where the state of each host's reinstall is kept (``drape_fleet.reinstall.service.state_dir``)."""
    timeouts: ReinstallTimeouts | None = None
    """Default: the fleet file's ``reinstall.timeouts``."""
    progress: Progress | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rescue_host_fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            self.host = self.fleet.host(self.host_name)
        except KeyError as exc:
            raise ReinstallRefused(str(exc.args[0])) from None
        if self.host.robot_server_number is None:
            raise ReinstallRefused(f"{self.host_name} has no robot_server_number in the fleet file: add it (Robot, "
                                   "Servers, column #, or `invoke fleet.robot-list`)")
        self.path = state_path(self.state_dir, self.host_name)
        self._checked: tuple[bool, FlowContext] | None = None

    def saved_state(self) -> ReinstallState | None:
        return load_state(self.path)

    def dry_run(self) -> str:
        return plan_text(self.fleet, self.host_name, self._matching(self.saved_state()))

    def pending(self, *, restart: bool = False) -> tuple[Step, ...]:
        """The steps a run would do, after the preflight that every run makes: all of them on a first run or
        with ``restart``, none when the reinstall finished."""
        state = None if restart else self._matching(self.saved_state())
        return STEPS[resume_index(state):]

    def finished_at(self) -> str | None:
        """When the last step of a finished reinstall of this server was done (None: not finished)."""
        state = self._matching(self.saved_state())
        if state is None or resume_index(state) < len(STEPS):
            return None
        return state.steps[STEPS[-1].name].at

    def check(self, *, restart: bool = False) -> str:
        """The read-only preflight (Robot and the layout); answers the confirmation text. A ``run`` with the same
        ``restart`` right after it does not repeat it."""
        state = None if restart else self._matching(self.saved_state())
        context = self._context(state or self._fresh())
        self._run_step(context, step("preflight"), 1)
        self._checked = (restart, context)
        return confirmation_text(self.host, context.state.server, self.fleet)

    def run(self, *, confirmed: bool, restart: bool = False) -> ReinstallState:
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] == restart:
            context = checked[1]
        else:
            state = None if restart else self._matching(self.saved_state())
            if state is not None and resume_index(state) == len(STEPS):
                self._say_done(state)
                return state
            context = self._context(state or self._fresh())
            checked = None
        start = resume_index(context.state)
        if not confirmed and any(s.destructive for s in STEPS[start:]):
            raise ReinstallRefused(f"reinstalling {self.host_name} destroys its data: confirm first (see check())")
        if checked is None:  # every run makes the preflight: the fleet file or Robot may have changed
            self._run_step(context, STEPS[0], 1)
        for index, current in enumerate(STEPS[1:], start=1):
            if index < start:
                self._progress().skipped(current, context.state.steps[current.name])
                continue
            self._run_step(context, current, index + 1)
        return context.state

    # -- one step --------------------------------------------------------------------------------------

    def _run_step(self, context: FlowContext, current: Step, number: int) -> None:
        progress = self._progress()
        context.current = current
        progress.started(current, number, len(STEPS))
        began = self.clock()
        try:
            summary = STEP_FUNCTIONS[current.name](context)
        except RobotError as exc:
            self._fail(context, current, began, StepFailed(f"Robot webservice: {exc.code}", seen=str(exc),
                                                          next_steps=exc.hint))
        except StepFailed as failure:
            self._fail(context, current, began, failure)
        seconds = self.clock() - began
        steps = {**context.state.steps, current.name: StepRecord(status="done", seconds=seconds, summary=summary)}
        context.update(steps=steps)
        progress.finished(current, seconds, summary)

    def _fail(self, context: FlowContext, current: Step, began: float, failure: StepFailed) -> None:
        seconds = self.clock() - began
        record = StepRecord(status="failed", seconds=seconds, summary=failure.what)
        if context.state.steps or self.saved_state() is None:
            context.update(steps={**context.state.steps, current.name: record})
        # else: a first preflight refused (a mistyped server number, say) leaves another run's saved state alone
        self._progress().failed(current, seconds, failure)
        raise ReinstallFailed(current, seconds, failure) from None

    # -- helpers ---------------------------------------------------------------------------------------

    def _progress(self) -> Progress:
        return self.progress or QuietProgress()

    def _fresh(self) -> ReinstallState:
        assert self.host.robot_server_number is not None
        return ReinstallState(host=self.host_name, server_number=self.host.robot_server_number,
                              address=str(self.host.public_address))

    def _matching(self, state: ReinstallState | None) -> ReinstallState | None:
        return for_server(state, self.host.robot_server_number, str(self.host.public_address))

    def _context(self, state: ReinstallState) -> FlowContext:
        return FlowContext(fleet=self.fleet, host=self.host, robot=self.robot, remote=self.remote,
                           known_hosts=self.known_hosts, state_dir=self.state_dir, state=state,
                           timeouts=self.timeouts or self.fleet.reinstall.timeouts, progress=self._progress(),
                           clock=self.clock, sleep=self.sleep, rescue_host_fingerprints=self.rescue_host_fingerprints)

    def _say_done(self, state: ReinstallState) -> None:
        for current in STEPS:
            self._progress().skipped(current, state.steps[current.name])
