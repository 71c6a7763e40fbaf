"""``Trackers`` and ``WaitQueue`` on their own: generations, the line's order, what a status says. No engine is
called (the fleet is there for its hosts' health only)."""

from __future__ import annotations

import threading

from runtime_testkit import World, eventually

from drape_fleet.runtime.engines import Endpoint, Engine, HostState
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.spec import PreviewRequest, make_request
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.tracking import FAILED_KEPT_S, Trackers
from drape_fleet.runtime.wait_queue import WaitQueue


def trackers(world: World) -> tuple[Trackers, Fleet]:
    fleet = Fleet(Engine(Endpoint(h.name, "unix:///nowhere"), world.config.runtime, clock=world.clock)
                  for h in world.config.hosts)
    return Trackers(world.config, fleet, world.clock), fleet


def request(world: World, workspace: str) -> PreviewRequest:
    return make_request(world.config.runtime, world.config.hosts, workspace=workspace, user="u1", framework="tiny")


def record(world: World, workspace: str, host: str = "ax1", container: str = "c1") -> PreviewRecord:
    return PreviewRecord(host=host, id=container, name=f"drape-pv-{workspace}", state="running", workspace=workspace,
                         user="u1", project=workspace, framework="tiny", created=world.clock.now(),
                         memory=256 * 2**20, cpus=0.5, port=3000, claim="0123456789ab", public_port=40001)


def test_a_worker_whose_generation_is_outdated_changes_nothing(world: World) -> None:
    memory, _ = trackers(world)
    first = memory.start(request(world, "g"), prewarm=False)
    generation = first.generation
    memory.forget("g")  # an explicit stop while the worker was placing
    assert not memory.current(first, generation)
    assert not memory.started(first, generation, record(world, "g"))
    memory.set_phase(first, generation, Phase.READY)
    memory.fail(first, generation, "too late")
    assert memory.get("g") is None and first.phase is Phase.PLACING and first.error is None
    taken = memory.take_over(request(world, "g"), record(world, "g"), ready=True)
    replacement = memory.replace(request(world, "g"))  # a move: the one taken over stops being followed
    assert replacement.generation == taken.generation + 1 and not memory.current(taken, taken.generation)


def test_a_started_preview_reports_its_host_url_and_port(world: World) -> None:
    memory, _ = trackers(world)
    tracker = memory.start(request(world, "s"), prewarm=False)
    assert memory.started(tracker, tracker.generation, record(world, "s", host="ax2"))
    status = memory.status(tracker)
    assert (status.phase, status.host, status.url) == (Phase.STARTING, "ax2", "http://127.0.0.12:40001")
    assert memory.location("s") == ("ax2", "c1")
    new_generation = memory.place_again(tracker, tracker.generation, "host ax2 stopped answering; placing again")
    assert new_generation == tracker.generation and memory.current(tracker, new_generation)
    status = memory.status(tracker)
    assert (status.phase, status.host, status.url) == (Phase.PLACING, None, None)
    assert status.error == "host ax2 stopped answering; placing again"  # placing again says why


def test_the_line_is_in_request_order_whoever_joins_first(world: World) -> None:
    memory, _ = trackers(world)
    early, late = memory.start(request(world, "early"), prewarm=False), memory.start(request(world, "late"),
                                                                                    prewarm=False)
    memory.join_line(late, late.generation)
    world.clock.advance(3)
    memory.join_line(early, early.generation)
    assert [memory.status(t).queue_position for t in (early, late)] == [1, 2]
    assert memory.first_in_line(early) and memory.status(late).waited_s == 3
    memory.fail(early, early.generation, "gave up")
    status = memory.status(early)
    assert (status.phase, status.queue_position) == (Phase.FAILED, None)  # never failed with a place in line
    assert memory.first_in_line(late)


def test_a_ready_preview_on_a_host_that_is_down_reports_lost(world: World) -> None:
    memory, fleet = trackers(world)
    tracker = memory.take_over(request(world, "l"), record(world, "l", host="ax3"), ready=True)
    assert memory.status(tracker).phase is Phase.READY
    engine = fleet["ax3"]
    engine.health.state, engine.health.retry_at = HostState.DOWN, world.clock.monotonic() + 10
    engine.health.last_error = "health check: timed out"
    status = memory.status(tracker)
    assert status.phase is Phase.LOST
    assert status.error == "host ax3 is not answering its health checks: health check: timed out"
    world.clock.advance(11)  # due for another check, but down until one succeeds
    assert memory.status(tracker).phase is Phase.LOST
    engine.health.state = HostState.UP
    assert memory.status(tracker).phase is Phase.READY


def test_failures_are_remembered_for_a_while_and_their_containers_kept_a_minute(world: World) -> None:
    memory, _ = trackers(world)
    tracker = memory.start(request(world, "f"), prewarm=False)
    memory.started(tracker, tracker.generation, record(world, "f"))
    memory.fail(tracker, tracker.generation, "exited")
    assert memory.kept_failure(record(world, "f"))
    world.clock.advance(FAILED_KEPT_S + 1)
    assert not memory.kept_failure(record(world, "f"))
    memory.forget_failed(older_than_s=120)
    assert memory.get("f") is not None
    world.clock.advance(120)
    memory.forget_failed(older_than_s=120)
    assert memory.get("f") is None


def test_a_newcomer_queues_behind_those_already_waiting_and_gives_up_at_the_deadline(world: World) -> None:
    memory, _ = trackers(world)
    closed = threading.Event()
    queue = WaitQueue(memory, world.config.runtime, closed, world.clock)
    head = memory.start(request(world, "head"), prewarm=False)
    memory.join_line(head, head.generation)
    newcomer = memory.start(request(world, "new"), prewarm=False)
    deadline = world.clock.monotonic() + 30
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(
        queue.wait_turn(newcomer, newcomer.generation, deadline, queue_if_busy=True)))
    waiter.start()
    eventually(lambda: memory.status(newcomer).queue_position == 2)
    memory.leave_line(head)  # the head was placed: the newcomer is first now, and may look for a host
    waiter.join(timeout=5)
    assert outcome == [True]
    assert not queue.full()
    late = memory.start(request(world, "late"), prewarm=False)
    waiter = threading.Thread(target=lambda: outcome.append(queue.wait_capacity(late, late.generation, deadline)))
    waiter.start()
    eventually(lambda: memory.status(late).queue_position == 2)
    world.clock.advance(31)
    queue.wake()
    waiter.join(timeout=5)
    assert outcome == [True, False]
    assert memory.status(late).error == "no capacity on any host within 31 s (queue timeout 300 s)"
