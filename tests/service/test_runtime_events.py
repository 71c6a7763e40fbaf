"""The runtime's event hooks (``drape_fleet.runtime.events``), which the service's metrics and phase streams
listen to: what they report for a start, a queue, a failure and a reaper pass, and that a failing listener never
breaks a placement."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from runtime_testkit import HALF, World, eventually
from service_testkit import runtime_with_events

from drape_fleet.runtime.events import NO_EVENTS, RuntimeEvents, guarded
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import ReapReport


class Recorder(RuntimeEvents):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[Any, ...]] = []

    def requested(self, workspace: str, *, project: str, framework: str, prewarm: bool) -> None:
        with self.lock:
            self.seen.append(("requested", workspace, project, framework, prewarm))

    def phase_changed(self, workspace: str, old: Phase, new: Phase, *, seconds: float, host: str | None) -> None:
        with self.lock:
            self.seen.append(("phase", workspace, old.value, new.value, host, seconds))

    def queue_length(self, length: int) -> None:
        with self.lock:
            self.seen.append(("queue", length))

    def reaped(self, report: ReapReport) -> None:
        with self.lock:
            self.seen.append(("reaped", tuple(report.removed)))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self.lock:
            return [event for event in self.seen if event[0] == kind]


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    yield made
    made.close()


def test_a_start_reports_its_request_and_each_phase_with_the_time_spent(world: World) -> None:
    events = Recorder()
    runtime = runtime_with_events(world, events)
    world.clock.advance(0)
    status = runtime.start("ws-1", "u1", "tiny", project="p-1", wait=5)
    assert status.phase is Phase.READY
    assert events.of("requested") == [("requested", "ws-1", "p-1", "tiny", False)]
    phases = [(old, new) for _, _, old, new, _, _ in events.of("phase")]
    assert phases[0] == ("placing", "starting") and phases[-1][1] == "ready"
    assert all(e[4] == status.host for e in events.of("phase")), "the host is known from the placement on"
    assert all(e[5] >= 0 for e in events.of("phase"))
    runtime.start("ws-1", "u1", "tiny")  # hot: no new request, no phase change
    assert len(events.of("requested")) == 1
    runtime.close()


def test_the_queue_and_a_failure_are_reported(world: World) -> None:
    events = Recorder()
    runtime = runtime_with_events(world, events, queue_timeout_s=5)
    for i in range(6):
        assert runtime.start(f"full-{i}", "u1", "tiny", resources=HALF, wait=5).phase is Phase.READY
    runtime.start("waits", "u1", "tiny", resources=HALF)
    eventually(lambda: ("queue", 1) in events.of("queue"))
    with world.ticking(seconds=1.0):
        eventually(lambda: any(e[1] == "waits" and e[3] == "failed" for e in events.of("phase")), within=10)
    failed = next(e for e in events.of("phase") if e[1] == "waits" and e[3] == "failed")
    assert failed[2] == "queued" and failed[5] >= 5, "failed after waiting its queue timeout in line"
    assert events.of("queue")[-1] == ("queue", 0)
    runtime.close()


def test_a_reaper_pass_is_reported(world: World) -> None:
    events = Recorder()
    runtime = runtime_with_events(world, events)
    runtime.start("idle", "u1", "tiny", wait=5)
    world.clock.advance(runtime.settings.persist_s + 1)
    runtime.reap()
    assert events.of("reaped")[-1][1] and "idle" in " ".join(events.of("reaped")[-1][1])
    runtime.close()


def test_a_failing_listener_never_breaks_a_placement(world: World) -> None:
    class Broken(RuntimeEvents):
        def phase_changed(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("listener bug")

        def requested(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("listener bug")

    runtime = runtime_with_events(world, Broken())
    assert runtime.start("ws-1", "u1", "tiny", wait=5).phase is Phase.READY
    runtime.close()
    assert guarded(None) is NO_EVENTS and guarded(RuntimeEvents()) is NO_EVENTS
