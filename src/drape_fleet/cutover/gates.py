"""Gates: what must hold before a phase starts, each check with its measured value and its limit (pure).

A phase refuses to start while any check of its gate fails, and says which check and its value. Checks that
need the fleet or Fly (engines answering, images present, machines stopped) are measured by the phase modules
and handed in here as values; this module only compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drape_fleet.config.cutover import GateThresholds
from drape_fleet.cutover.progress import Progress
from drape_fleet.routing.metrics import Series, StartMetrics


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    limit: str
    ok: bool
    fix: str = ""

    def line(self) -> str:
        mark = "ok" if self.ok else "FAILED"
        text = f"{mark:6} {self.name}: {self.value} (needs {self.limit})"
        return text if self.ok or not self.fix else f"{text}. Fix: {self.fix}"


def failed(checks: list[Check]) -> list[Check]:
    return [check for check in checks if not check.ok]


def _seconds(value: float | None) -> str:
    return "no starts" if value is None else f"{value:.1f} s"


def hetzner_starts(metrics: StartMetrics, phase: int = 3) -> tuple[Series, Series, Series]:
    """All Hetzner starts of ``phase``, its cold starts and its warm starts."""
    return (metrics.select(phase=phase, provider="hetzner"),
            metrics.select(phase=phase, provider="hetzner", kind="cold"),
            metrics.select(phase=phase, provider="hetzner", kind="warm"))


def error_percent(series: Series) -> float | None:
    return None if series.attempts == 0 else 100.0 * series.failed / series.attempts


def phase4_gate(metrics: StartMetrics, progress: Progress, gate: GateThresholds, now: datetime) -> list[Check]:
    """Phase 3 on Hetzner, measured: enough starts, p95 cold and warm within target, few errors, a recent load
    test that passed."""
    every, cold, warm = hetzner_starts(metrics)
    more = "let phase 3 run longer (more beta users: `invoke cutover phase3 --percent N --apply`)"
    checks = [Check("Hetzner starts measured in phase 3", str(every.attempts), f">= {gate.min_starts}",
                    every.attempts >= gate.min_starts, more)]
    for label, series, limit in (("p95 cold start on Hetzner", cold, gate.p95_cold_s),
                                 ("p95 warm start on Hetzner", warm, gate.p95_warm_s)):
        p95 = series.quantile(0.95)
        checks.append(Check(label, f"{_seconds(p95)} over {series.ok} start(s)", f"<= {limit:g} s",
                            p95 is not None and p95 <= limit,
                            "find what is slow (`invoke cutover report`), fix it, measure again" if p95 else more))
    errors = error_percent(every)
    value = "no starts" if errors is None else f"{errors:.2f}% ({every.failed} of {every.attempts})"
    reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(every.failures.items(),
                                                                         key=lambda item: -item[1])[:3])
    checks.append(Check("Hetzner start error rate in phase 3", value + (f": {reasons}" if reasons else ""),
                        f"<= {gate.max_error_percent:g}%", errors is not None and errors <= gate.max_error_percent,
                        "look at the failures' reasons (`invoke cutover report`), fix them, measure again"))
    if gate.require_load_test:
        checks.append(load_test_check(progress, gate, now))
    return checks


def load_test_check(progress: Progress, gate: GateThresholds, now: datetime) -> Check:
    result = progress.load_test
    name = "load test (phase 3)"
    if result is None:
        return Check(name, "not run", "passed", False, "run `invoke cutover phase3 --apply` (it runs the load test)")
    age_h = (now - result.at).total_seconds() / 3600
    value = f"{'passed' if result.passed else 'FAILED'} {age_h:.1f} h ago: {result.detail}"
    if not result.passed:
        return Check(name, value, "passed", False, "fix what it names, then `invoke cutover phase3 --apply` again")
    if age_h > gate.load_test_max_age_h:
        return Check(name, value, f"passed within {gate.load_test_max_age_h:g} h", False,
                     "run it again: `invoke cutover phase3 --apply`")
    return Check(name, value, "passed", True)
