"""Gates (each check's value and limit), the order phases run in, what a rollback may do, the report's verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from drape_fleet.config.cutover import GateThresholds
from drape_fleet.cutover.context import CutoverRefused
from drape_fleet.cutover.fly_side import destroyable
from drape_fleet.cutover.gates import phase4_gate
from drape_fleet.cutover.phases_early import policy_changes
from drape_fleet.cutover.progress import FlyMachineRecord, LoadTestResult, Progress
from drape_fleet.cutover.report import report_rows
from drape_fleet.cutover.runner import _undoing, check_order
from drape_fleet.routing.metrics import StartMetrics
from drape_fleet.routing.policy import RoutingPolicy

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _metrics(cold: list[float], warm: list[float], failures: int = 0) -> StartMetrics:
    metrics = StartMetrics()
    for seconds in cold:
        metrics.of((3, "hetzner", "cold")).add(seconds)
    for seconds in warm:
        metrics.of((3, "hetzner", "warm")).add(seconds)
    for _ in range(failures):
        metrics.of((3, "hetzner", "cold")).fail("queue full")
    metrics.of((2, "hetzner", "cold")).add(500)  # another phase: not counted
    return metrics


def _load_test(passed: bool = True, hours_ago: float = 1) -> LoadTestResult:
    return LoadTestResult(at=NOW - timedelta(hours=hours_ago), framework="nextjs", previews=20, failures=0,
                          cold_p50_s=20, cold_p95_s=30, max_s=35, passed=passed, detail="20 previews")


def _gate(metrics: StartMetrics, progress: Progress, **limits: Any) -> dict[str, tuple[str, bool]]:
    checks = phase4_gate(metrics, progress, GateThresholds(**limits), NOW)
    return {check.name: (check.value, check.ok) for check in checks}


def test_the_phase4_gate_passes_on_fast_reliable_measured_starts() -> None:
    gate = _gate(_metrics([30.0] * 40, [12.0] * 20), Progress(load_test=_load_test()), min_starts=50)
    assert all(ok for _, ok in gate.values()), gate
    assert gate["Hetzner start error rate in phase 3"] == ("0.00% (0 of 60)", True)


def test_each_failing_check_says_its_value() -> None:
    gate = _gate(_metrics([55.0] * 30, [25.0] * 10, failures=2), Progress(load_test=_load_test(hours_ago=100)),
                 min_starts=50)
    failed = {name: value for name, (value, ok) in gate.items() if not ok}
    assert failed["Hetzner starts measured in phase 3"] == "42"
    assert failed["p95 cold start on Hetzner"] == "55.0 s over 30 start(s)"
    assert failed["p95 warm start on Hetzner"] == "24.8 s over 10 start(s)"
    assert failed["Hetzner start error rate in phase 3"] == "4.76% (2 of 42): queue full x2"
    assert failed["load test (phase 3)"].startswith("passed 100.0 h ago")


def test_no_measurements_and_no_load_test_fail_the_gate() -> None:
    gate = _gate(StartMetrics(), Progress())
    assert gate["p95 cold start on Hetzner"] == ("no starts over 0 start(s)", False)
    assert gate["Hetzner start error rate in phase 3"] == ("no starts", False)
    assert gate["load test (phase 3)"] == ("not run", False)
    assert _gate(StartMetrics(), Progress(load_test=_load_test(passed=False)))["load test (phase 3)"][1] is False


def _session(progress: Progress) -> Any:
    return SimpleNamespace(progress=progress)


@pytest.mark.parametrize(("progress", "number", "words"), [
    (Progress(phase=0), 2, "phase 2 is out of order: the last phase done is 0"),
    (Progress(phase=2), 4, "phase 4 is out of order: the last phase done is 2"),
    (Progress(phase=4), 3, "phase 4 (full migration) is done already; phase 3 is behind us"),
    (Progress(phase=3, applying=4, steps_done=("policy",)), 5, "phase 4 was started and did not finish (done: policy)"),
    (Progress(phase=3, applying=4), 3, "phase 4 was started and did not finish"),
    (Progress(phase=4, rolling_back=4), 4, "the rollback of phase 4 did not finish"),
])
def test_phases_run_in_order_only(progress: Progress, number: int, words: str) -> None:
    with pytest.raises(CutoverRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_order(_session(progress), number)


def test_a_phase_may_run_again_and_the_next_may_start() -> None:
    for progress, number in ((Progress(phase=3), 3), (Progress(phase=3), 4), (Progress(phase=3, applying=4), 4)):
        check_order(_session(progress), number)


def test_no_rollback_past_phase_1() -> None:
    for progress in (Progress(phase=1), Progress(phase=0, applying=1)):
        with pytest.raises(CutoverRefused, match="never past phase 1"):
            _undoing(_session(progress))
    with pytest.raises(CutoverRefused, match="the cutover has not started"):
        _undoing(_session(Progress(phase=0)))
    assert _undoing(_session(Progress(phase=2))) == 2
    assert _undoing(_session(Progress(phase=3, applying=4))) == 4


def test_a_policy_change_is_shown_field_by_field() -> None:
    before = RoutingPolicy(phase=2, internal_users=("u-ops",), salt="s")
    after = RoutingPolicy(phase=3, internal_users=("u-ops",), allowlist=("u-b1", "u-b2"), percent=10, salt="s")
    assert policy_changes(before, after) == [
        "phase 2 -> 3: 1 internal + 2 allowlisted user(s) and 10% of the others on Hetzner; the rest on Fly "
        "(Hetzner failures fall back to Fly)",
        "allowlist: +2 (u-b1, u-b2), -0 (none)", "sticky share on Hetzner: 0% -> 10%"]
    assert policy_changes(after, after) == []


def test_machines_are_destroyable_only_after_the_grace_period() -> None:
    def stopped(days_ago: float, destroyed: bool = False) -> FlyMachineRecord:
        return FlyMachineRecord(app="a", id=f"m{days_ago}", state_before="started",
                                stopped=NOW - timedelta(days=days_ago), destroyed=NOW if destroyed else None)

    ready, waiting = destroyable((stopped(8), stopped(2), stopped(10, destroyed=True)), NOW, 7)
    assert [r.id for r in ready] == ["m8"] and [r.id for r in waiting] == ["m2"]


def test_the_report_compares_with_the_plans_ranges() -> None:
    metrics = StartMetrics()
    for seconds in (25, 30, 35):
        metrics.of((3, "hetzner", "cold")).add(seconds)
    for seconds in (70, 90):
        metrics.of((4, "hetzner", "cold")).add(seconds)
    metrics.of((3, "fly", "cold")).add(400)
    metrics.of((3, "fly", "warm")).fail("machine failed")
    rows = {(r.phase, r.provider, r.kind): r for r in report_rows(metrics)}
    assert rows[(3, "hetzner", "cold")].verdict == "meets the optimized target"
    assert rows[(4, "hetzner", "cold")].verdict == "within the plan"
    assert rows[(3, "fly", "cold")].verdict == "slower than the plan"
    assert (rows[(3, "fly", "warm")].verdict, rows[(3, "fly", "warm")].error_percent) == ("no successful start", 100)
    assert rows[(3, "fly", "cold")].expected == "3-5 min"
