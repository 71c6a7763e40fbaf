"""The capacity and cost model (pure): previews per server, servers for N containers, Fly vs Hetzner cost,
revenue and margin, and what each container gets.

Previews per server is the same arithmetic the runtime places by: memory is never overcommitted
(``(memory - OS reserve) / preview memory``), CPU is shared (``cores x overcommit / preview cores``); the
smaller wins, less ``headroom_percent``. One active user keeps one container (the plan: 50 users = 50).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drape_fleet.plan.settings import PlanConfig

MAX_CONTAINERS = 100_000


class PlanInputError(ValueError):
    """A number of containers or users the plan cannot be made for; the message says what to pass."""


@dataclass(frozen=True)
class ServerCapacity:
    usable_memory_gib: float
    by_memory: int
    nominal_cores: float
    by_cpu: int
    previews: int
    bound_by: str

    @property
    def explanation(self) -> str:
        return (f"memory {self.usable_memory_gib:g} GiB -> {self.by_memory}, CPU {self.nominal_cores:g} nominal "
                f"cores -> {self.by_cpu}: {self.previews} per server ({self.bound_by}-bound)")


def server_capacity(config: PlanConfig) -> ServerCapacity:
    model, server = config.capacity, config.hetzner
    usable = server.memory_gib - model.os_reserve_memory_gib
    by_memory = math.floor(usable / model.preview_memory_gib + 1e-9)
    nominal = server.cores * model.cpu_overcommit
    by_cpu = math.floor(nominal / model.preview_cpus + 1e-9)
    fit = min(by_memory, by_cpu)
    previews = max(1, math.floor(fit * (1 - model.headroom_percent / 100) + 1e-9))
    return ServerCapacity(usable, by_memory, nominal, by_cpu, previews, "memory" if by_memory <= by_cpu else "CPU")


@dataclass(frozen=True)
class Scenario:
    """``containers`` active previews (and ``users`` paying users) under the model."""

    containers: int
    users: int
    per_server: int
    servers: int
    fly_monthly: float
    hetzner_monthly: float
    revenue: float
    guaranteed_cores: float
    """Real cores per container when every container is busy (the servers' cores shared evenly)."""
    burst_cores: int
    """What one container may use alone on an idle server (no CPU quota)."""
    nominal_cores: float
    memory_limit_gib: float
    memory_share_gib: float
    """The servers' usable memory divided evenly (what a limit of that size would be)."""
    memory_used_percent: float
    capacity_one_down: int

    @property
    def fly_margin(self) -> float:
        return self.revenue - self.fly_monthly

    @property
    def hetzner_margin(self) -> float:
        return self.revenue - self.hetzner_monthly

    @staticmethod
    def _percent(margin: float, revenue: float) -> float | None:
        return None if revenue == 0 else 100 * margin / revenue

    @property
    def fly_margin_percent(self) -> float | None:
        return self._percent(self.fly_margin, self.revenue)

    @property
    def hetzner_margin_percent(self) -> float | None:
        return self._percent(self.hetzner_margin, self.revenue)

    @property
    def capacity(self) -> int:
        return self.servers * self.per_server


def check_counts(containers: int, users: int | None = None) -> None:
    if isinstance(containers, bool) or not isinstance(containers, int) or not 1 <= containers <= MAX_CONTAINERS:
        raise PlanInputError(f"--containers {containers!r} is not a number of active previews: pass a whole number "
                             f"from 1 to {MAX_CONTAINERS}, e.g. --containers 50")
    if users is not None and (isinstance(users, bool) or not isinstance(users, int) or not 0 <= users <= 10**7):
        raise PlanInputError(f"--users {users!r} is not a number of paying users: pass a whole number, 0 or more "
                             "(default: one per container)")


def scenario(config: PlanConfig, containers: int, users: int | None = None) -> Scenario:
    check_counts(containers, users)
    users = containers if users is None else users
    capacity = server_capacity(config)
    servers = max(1, math.ceil(containers / capacity.previews))
    usable = servers * capacity.usable_memory_gib
    return Scenario(
        containers=containers, users=users, per_server=capacity.previews, servers=servers,
        fly_monthly=containers * config.fly.vm_monthly, hetzner_monthly=servers * config.hetzner.server_monthly,
        revenue=users * config.offer.monthly_price,
        guaranteed_cores=servers * config.hetzner.cores / containers, burst_cores=config.hetzner.cores,
        nominal_cores=config.capacity.preview_cpus, memory_limit_gib=config.capacity.preview_memory_gib,
        memory_share_gib=usable / containers,
        memory_used_percent=100 * containers * config.capacity.preview_memory_gib / usable,
        capacity_one_down=(servers - 1) * capacity.previews)
