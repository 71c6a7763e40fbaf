"""The Fly side of the cutover, through ``drape_fleet.fly`` (its rate limits, retries and errors): the preview
machines and their states, stopping them in phase 4 (each under its lease, each recorded at once), starting the
stopped ones again on a rollback, and destroying them after the grace period.

Only machines of the ``[fly]`` apps that carry ``preview_metadata`` are touched. A machine in a state the
cutover cannot reason about (being replaced, updated, failed...) stops the plan before anything changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from drape_fleet.cutover.context import CutoverContext, CutoverRefused
from drape_fleet.cutover.progress import FlyMachineRecord
from drape_fleet.fly import FlyConflict, FlyError, FlyNotFound, Machine

OUR_LEASES = "drape cutover"
"""How our leases start (their description): a lease an interrupted run left is waited out, not fought."""
SERVING = frozenset({"started", "suspended"})
"""Machines that serve (or resume to serve) a preview: phase 4 stops these."""
SETTLED = SERVING | {"stopped", "created"}
WHY_UNEXPECTED = {
    "failed": "it failed: look at it (`fly machine status {id} -a {app}`), then restart or destroy it",
    "launch_failed": "it never launched: look at it (`fly machine status {id} -a {app}`), then destroy it",
    "replacing": "a deploy or update is replacing it: wait until it settles",
    "updating": "an update is under way: wait until it settles",
    "restarting": "it is restarting: wait until it settles",
    "starting": "it is starting: wait until it settles",
    "stopping": "it is stopping: wait until it settles",
    "suspending": "it is suspending: wait until it settles",
    "destroying": "it is being destroyed: wait until it is gone",
}


@dataclass(frozen=True)
class FlyInventory:
    machines: tuple[Machine, ...]

    def by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for machine in self.machines:
            counts[machine.state] = counts.get(machine.state, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def serving(self) -> list[Machine]:
        return [m for m in self.machines if m.state in SERVING]

    def unexpected(self) -> list[str]:
        unknown = "its state is unknown to the cutover"
        return [f"{m.describe()}: {WHY_UNEXPECTED.get(m.state, unknown).format(id=m.id, app=m.app)}"
                for m in self.machines if m.state not in SETTLED]


def inventory(ctx: CutoverContext) -> FlyInventory:
    settings = ctx.fleet.fly
    if settings is None:
        raise CutoverRefused("the fleet file has no [fly] section: add one naming the preview app(s), e.g. "
                             '[fly] apps = ["drape-previews"]')
    machines: list[Machine] = []
    for app in settings.apps:
        machines += ctx.fly.machines.list(app, metadata=settings.preview_metadata or None)
    return FlyInventory(tuple(machines))


def require_settled(found: FlyInventory) -> None:
    problems = found.unexpected()
    if problems:
        raise CutoverRefused(f"{len(problems)} Fly preview machine(s) are in states the cutover does not act on:\n  - "
                             + "\n  - ".join(problems) + "\nNothing was changed. Fix them, then run again")


def check_write_access(ctx: CutoverContext, found: FlyInventory) -> None:
    """A lease taken and given back on every machine phase 4 will stop: a token that may only read is found out
    (403) before anything changes, as is a machine whose lease someone else holds (409)."""
    for machine in found.serving:
        with ctx.fly.machines.leased(machine.app, machine.id, ttl_s=30, description=f"{OUR_LEASES}: access check"):
            pass


def _wait_out_our_lease(ctx: CutoverContext, machine: Machine) -> bool:
    """After a 409: if the lease is one an interrupted cutover run left, wait until it expires (at most its TTL)
    and say so; False when someone else holds it."""
    lease = ctx.fly.machines.get_lease(machine.app, machine.id)
    if lease is None:
        return True
    if not lease.description.startswith(OUR_LEASES):
        return False
    wait = max(0.0, lease.expires_at - ctx.clock.now().timestamp()) + 1.5  # expires_at is in whole seconds
    ctx.say(f"Fly: {machine.describe()} still carries the lease of an interrupted cutover run; waiting {wait:.0f} s "
            "for it to expire")
    time.sleep(min(wait, 3600))
    return True


def _stop_one(ctx: CutoverContext, machine: Machine, lease_ttl: int) -> None:
    with ctx.fly.machines.leased(machine.app, machine.id, ttl_s=lease_ttl,
                                 description=f"{OUR_LEASES} phase 4: stop") as lease:
        ctx.fly.machines.stop(machine.app, machine.id, nonce=lease.nonce)
        ctx.fly.machines.wait_for(ctx.fly.machines.get(machine.app, machine.id), "stopped", timeout_s=120)


def stop_serving(ctx: CutoverContext, found: FlyInventory, record: Callable[[FlyMachineRecord], None]) -> list[str]:
    """Stop every serving machine (lease, stop, wait stopped). Each is recorded *before* its stop is sent: a run
    killed in between leaves a record, so a rollback still starts the machine again (it starts only machines that
    are not running). Returns the failures."""
    lease_ttl = ctx.fleet.fly.lease_ttl_s if ctx.fleet.fly else 120
    failures = []
    for machine in found.serving:
        record(FlyMachineRecord(app=machine.app, id=machine.id, name=machine.name, state_before=machine.state,
                                stopped=ctx.clock.now()))
        try:
            try:
                _stop_one(ctx, machine, lease_ttl)
            except FlyConflict:
                if not _wait_out_our_lease(ctx, machine):
                    raise
                _stop_one(ctx, machine, lease_ttl)
        except FlyError as exc:
            failures.append(f"{machine.describe()}: {exc}")
            continue
        ctx.say(f"Fly: stopped {machine.describe()}")
    return failures


def start_again(ctx: CutoverContext, records: tuple[FlyMachineRecord, ...]) -> tuple[list[str], list[str]]:
    """Start the machines phase 4 stopped and nobody destroyed; return (started, failures)."""
    lease_ttl = ctx.fleet.fly.lease_ttl_s if ctx.fleet.fly else 120
    started, failures = [], []
    for item in records:
        if item.destroyed is not None:
            continue
        try:
            machine = ctx.fly.machines.get(item.app, item.id)
            if machine.state in ("started", "starting"):
                continue
            with ctx.fly.machines.leased(item.app, item.id, ttl_s=lease_ttl,
                                         description=f"{OUR_LEASES} rollback: start") as lease:
                ctx.fly.machines.start(item.app, item.id, nonce=lease.nonce)
            ctx.fly.machines.wait_for(machine, "started", timeout_s=120)
            started.append(f"{item.app}/{item.id}")
            ctx.say(f"Fly: started {item.app}/{item.id} ({item.name}) again")
        except FlyNotFound:
            failures.append(f"{item.app}/{item.id} ({item.name}) is gone (destroyed outside the cutover)")
        except FlyError as exc:
            failures.append(f"{item.app}/{item.id}: {exc}")
    return started, failures


def destroyable(records: tuple[FlyMachineRecord, ...], now: datetime, grace_days: float
                ) -> tuple[list[FlyMachineRecord], list[FlyMachineRecord]]:
    """(machines past the grace period, machines still inside it), of those not destroyed yet (pure)."""
    grace = timedelta(days=grace_days)
    pending = [r for r in records if r.destroyed is None]
    return [r for r in pending if now - r.stopped >= grace], [r for r in pending if now - r.stopped < grace]


def destroy(ctx: CutoverContext, item: FlyMachineRecord) -> str | None:
    """Destroy one stopped machine (under its lease); None when done, else why not."""
    try:
        machine = ctx.fly.machines.get(item.app, item.id)
        if machine.state not in ("stopped", "suspended"):
            return f"{machine.describe()} is {machine.state}, not stopped: someone started it again; not destroying it"
        with ctx.fly.machines.leased(item.app, item.id, ttl_s=60, description=f"{OUR_LEASES}: destroy") as lease:
            ctx.fly.machines.destroy(item.app, item.id, nonce=lease.nonce)
    except FlyNotFound:
        return None  # already gone: what we wanted
    except FlyConflict as exc:
        return f"{item.app}/{item.id}: {exc}"
    except FlyError as exc:
        return f"{item.app}/{item.id}: {exc}"
    return None


def grace_left(item: FlyMachineRecord, now: datetime, grace_days: float) -> str:
    left = item.stopped + timedelta(days=grace_days) - now
    hours = left.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
