"""Running a phase, on the store over in-memory engines, with a phase made of steps the test controls: a dry run
writes nothing, an apply marks the phase and each finished step, a failed step leaves the phase "applying" and
the next run carries on from it, a re-run of a finished phase changes nothing, a rollback undoes the policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleets import fleet_data
from volume_engines import OWNER, VolumeFleet

from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.secrets import Secrets
from drape_fleet.cutover import runner
from drape_fleet.cutover.context import CutoverContext, CutoverRefused, Session
from drape_fleet.cutover.progress import Progress
from drape_fleet.cutover.steps import Options, Plan, Step, StepFailed
from drape_fleet.environments import Environment, FleetTarget
from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.store import StateStore


class Phase2:
    """Two steps: "work" (fails while ``broken``), then the policy."""

    def __init__(self) -> None:
        self.broken = False
        self.runs: list[str] = []

    def __call__(self, ctx: CutoverContext, session: Session, options: Options) -> Plan:
        def work() -> str:
            self.runs.append("work")
            if self.broken:
                raise StepFailed("the work failed")
            return "worked"

        policy = RoutingPolicy(phase=2, internal_users=("u-ops",), salt="s")
        return Plan(2, [], [Step("work", "some work", ["do the work"], work),
                            runner.policy_step(session, policy)])


@pytest.fixture
def phase2(monkeypatch: pytest.MonkeyPatch) -> Phase2:
    made = Phase2()
    monkeypatch.setitem(runner.PHASES, 2, made)
    return made


@pytest.fixture
def ctx(volumes: VolumeFleet, tmp_path: Path) -> Iterator[CutoverContext]:
    env = Environment(name="production", fleet_file=tmp_path / "fleet.toml", state_dir=tmp_path,
                      pki_dir=tmp_path / "pki", known_hosts=tmp_path / "kh", ssh_key=tmp_path / "key", ssh_user=None)
    made = CutoverContext(FleetTarget(env, validate_fleet(fleet_data(), source="x")), Secrets(), lambda _: None)
    made.__dict__["store"] = StateStore(volumes.fleet, OWNER)
    yield made


def _state(ctx: CutoverContext) -> tuple[int, Progress, RoutingPolicy]:
    view = ctx.store.read()
    assert view.newest is not None
    return view.generation, Progress.parse(view.newest.progress), view.newest.policy


def _at_phase1(ctx: CutoverContext) -> None:
    ctx.store.write(RoutingPolicy(phase=1, salt="s"), Progress(phase=1).to_json(), expected=0, writer="t")


def test_a_dry_run_writes_nothing(ctx: CutoverContext, phase2: Phase2) -> None:
    _at_phase1(ctx)
    outcome = runner.run_phase(ctx, 2, Options(), lambda plan, title: None)
    assert not outcome.applied and phase2.runs == [] and _state(ctx)[0] == 1


def test_an_interrupted_phase_carries_on_where_it_stopped(ctx: CutoverContext, phase2: Phase2) -> None:
    _at_phase1(ctx)
    phase2.broken = True
    with pytest.raises(StepFailed):
        runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    _, progress, policy = _state(ctx)
    assert (progress.phase, progress.applying, progress.steps_done, policy.phase) == (1, 2, (), 1)
    with pytest.raises(CutoverRefused, match="phase 2 was started and did not finish"):
        runner.run_phase(ctx, 3, Options(apply=True), lambda plan, title: None)

    phase2.broken = False
    titles: list[str] = []
    runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: titles.append(title))
    assert titles == ["phase 2: backend adapted (resuming an interrupted run)"]
    _, progress, policy = _state(ctx)
    assert (progress.phase, progress.applying, policy.internal_users) == (2, None, ("u-ops",))
    assert [e.phase for e in progress.entered] == [2]
    assert [e.text for e in progress.events][-1] == "phase 2 done"


def test_a_step_done_before_the_interruption_is_not_run_again(ctx: CutoverContext, phase2: Phase2) -> None:
    _at_phase1(ctx)
    generation, progress, policy = _state(ctx)
    marked = progress.model_copy(update={"applying": 2, "steps_done": ("work",)})
    ctx.store.write(policy, marked.to_json(), expected=generation, writer="t")
    runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    assert phase2.runs == [] and _state(ctx)[1].phase == 2


def test_a_finished_phase_runs_again_without_changing_anything_but_its_work(ctx: CutoverContext,
                                                                          phase2: Phase2) -> None:
    _at_phase1(ctx)
    runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    before = _state(ctx)
    outcome = runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    after = _state(ctx)
    assert [s for s in outcome.summaries if s.startswith("policy")] == []  # the policy is already in force
    assert after[1].phase == 2 and len(after[1].entered) == len(before[1].entered) == 1


def test_a_rollback_puts_the_previous_policy_back(ctx: CutoverContext, phase2: Phase2) -> None:
    _at_phase1(ctx)
    runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    runner.rollback(ctx, Options(apply=True), lambda plan, title: None)
    _, progress, policy = _state(ctx)
    assert (progress.phase, policy.phase, policy.internal_users, policy.salt) == (1, 1, (), "s")
    with pytest.raises(CutoverRefused, match="never past phase 1"):
        runner.rollback(ctx, Options(apply=True), lambda plan, title: None)
