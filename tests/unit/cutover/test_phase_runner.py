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
    (tmp_path / "users.txt").write_text("u-ops\nu-beta-1\nu-beta-2\n")
    data = fleet_data()
    data["cutover"] = {"internal_users": ["u-ops"], "users_file": "users.txt"}
    made = CutoverContext(FleetTarget(env, validate_fleet(data, source="x")), Secrets(), lambda _: None)
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


def test_a_half_applied_phase_rolls_back_to_the_one_before(ctx: CutoverContext, phase2: Phase2) -> None:
    _at_phase1(ctx)
    phase2.broken = True
    with pytest.raises(StepFailed):
        runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)
    titles: list[str] = []
    runner.rollback(ctx, Options(apply=True), lambda plan, title: titles.append(title))
    assert titles == ["rollback: phase 2 (backend adapted) -> phase 1 (infrastructure)"]
    _, progress, policy = _state(ctx)
    assert (progress.phase, progress.applying, progress.rolling_back, policy.phase) == (1, None, None, 1)
    phase2.broken = False
    runner.run_phase(ctx, 2, Options(apply=True), lambda plan, title: None)  # and the way forward is open again
    assert _state(ctx)[1].phase == 2


def test_nothing_to_roll_back_before_the_cutover_starts(ctx: CutoverContext) -> None:
    with pytest.raises(CutoverRefused, match="the cutover has not started"):
        runner.rollback(ctx, Options(apply=True), lambda plan, title: None)


@pytest.mark.parametrize(("options", "words"), [
    (Options(percent=-5), "--percent -5 is not a share of users"),
    (Options(percent=100.5), "--percent 100.5 is not a share"),
    (Options(percent=float("nan")), "--percent nan is not a share"),
    (Options(percent=10.555), "at most two decimals"),
    (Options(allow=("u-beta-1", "bad id!")), "'bad id!', which are not user ids"),
    (Options(allow=("u-beta-1", "u-ghost", "u-ghost")), "names 1 unknown user\\(s\\): u-ghost. Nothing was changed"),
])
def test_bad_phase3_options_are_refused_before_any_host_is_read(ctx: CutoverContext, options: Options,
                                                                words: str) -> None:
    ctx.__dict__["store"] = None  # any read of the state (or a host) would fail with an AttributeError
    with pytest.raises(CutoverRefused, match=words):
        runner.run_phase(ctx, 3, options, lambda plan, title: None)


def test_a_forced_rollback_past_destroyed_fly_machines_forgets_them(ctx: CutoverContext) -> None:
    from datetime import UTC, datetime

    from drape_fleet.cutover.progress import FlyMachineRecord, PhaseEntry

    now = datetime.now(UTC)
    gone = FlyMachineRecord(app="drape-previews", id="m1", state_before="started", stopped=now, destroyed=now)
    phase3 = RoutingPolicy(phase=3, percent=10, salt="s")
    progress = Progress(phase=4, fly_stopped=(gone,), entered=(PhaseEntry(phase=3, policy=phase3, completed=now),
                                                               PhaseEntry(phase=4, policy=phase3, completed=now)))
    ctx.store.write(RoutingPolicy(phase=4, salt="s"), progress.to_json(), expected=0, writer="t")
    with pytest.raises(CutoverRefused, match="1 of the Fly machines phase 4 stopped were destroyed since"):
        runner.rollback(ctx, Options(apply=True), lambda plan, title: None)
    assert _state(ctx)[0] == 1
    runner.rollback(ctx, Options(apply=True, force=True), lambda plan, title: None)
    _, progress, policy = _state(ctx)
    assert (progress.phase, progress.fly_stopped, policy) == (3, (), phase3)
