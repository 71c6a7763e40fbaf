"""Phase 3's load test: ``previews`` previews started at once through the runtime, each to ready; then (rounds
2 and 3) started again after a stop (warm) and while running (hot); then removed. Every start is a real start
on the fleet: its time goes into the start metrics as a Hetzner start of phase 3, beside the beta users'.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from drape_fleet.config.cutover import LoadTestSettings
from drape_fleet.console import Log
from drape_fleet.cutover.progress import LoadTestResult
from drape_fleet.routing.metrics import Series, StartRecorder
from drape_fleet.routing.policy import StartKind
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.service import PreviewRuntime

LOAD_USER = "drape-loadtest"
ROUNDS: tuple[StartKind, ...] = ("cold", "warm", "hot")


def _start(runtime: PreviewRuntime, workspace: str, framework: str, timeout_s: float) -> tuple[float, str | None]:
    started = time.monotonic()
    try:
        status = runtime.start(workspace, LOAD_USER, framework, project=workspace, wait=timeout_s)
    except RuntimeFailure as exc:
        return time.monotonic() - started, f"{type(exc).__name__}: {exc}"
    took = time.monotonic() - started
    return took, None if status.ready else f"{status.phase}: {status.error or 'not ready in time'}"


def run_load_test(runtime: PreviewRuntime, settings: LoadTestSettings, recorder: StartRecorder, *, phase: int,
                  say: Log, clock: Clock) -> LoadTestResult:
    run = secrets.token_hex(3)
    workspaces = [f"load-{run}-{index:03d}" for index in range(settings.previews)]
    series = {kind: Series() for kind in ROUNDS}
    failures: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=settings.previews, thread_name_prefix="drape-loadtest") as pool:
            for kind in ROUNDS[: settings.rounds]:
                if kind == "warm":
                    for workspace in workspaces:
                        runtime.stop(workspace)
                say(f"load test: {settings.previews} {kind} start(s) of {settings.framework} at once")
                began = time.monotonic()
                results = list(pool.map(lambda ws: _start(runtime, ws, settings.framework, settings.timeout_s),
                                        workspaces))
                for seconds, error in results:
                    recorder.record(phase, "hetzner", kind, seconds, ok=error is None, reason=(error or "")[:80])
                    if error is None:
                        series[kind].add(seconds)
                    else:
                        series[kind].fail(error[:80])
                        failures.append(error)
                done = series[kind]
                say(f"load test: {kind}: {done.ok} ready, {done.failed} failed in {time.monotonic() - began:.1f} s "
                    f"(p95 {_fmt(done.quantile(0.95))})")
    finally:
        for workspace in workspaces:
            try:
                runtime.stop(workspace)
            except RuntimeFailure as exc:
                say(f"load test: could not remove {workspace}: {exc}")
    cold = series["cold"]
    p95 = cold.quantile(0.95)
    passed = len(failures) <= settings.max_failures and p95 is not None and p95 <= settings.max_p95_s
    detail = (f"{settings.previews} concurrent {settings.framework} previews x {settings.rounds} round(s): "
              f"{len(failures)} failure(s) (max {settings.max_failures}), cold p95 {_fmt(p95)} "
              f"(max {settings.max_p95_s:g} s)")
    if failures:
        detail += f"; first failure: {failures[0][:160]}"
    return LoadTestResult(at=clock.now(), framework=settings.framework, previews=settings.previews,
                          failures=len(failures), cold_p50_s=_round(cold.quantile(0.5)), cold_p95_s=_round(p95),
                          max_s=_round(max((s.max_s for s in series.values() if s.ok), default=None)),
                          passed=passed, detail=detail)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
