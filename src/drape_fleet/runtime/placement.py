"""Which host gets a new preview: the one with the most free resources that fits it. Pure.

The plan's rule ("check which server has the most free resources, create it there; if it is full use the
next") as a ranking: hosts that can take the preview, ordered by the free share of their tighter resource
(memory against its capacity, nominal cores against ``cpus * cpu_overcommit``), then by free memory, then by
name so the order is stable. The caller tries them in order; what keeps hosts within capacity when many
callers decide at once is the claim protocol in ``lifecycle`` (this module only ranks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drape_fleet.runtime.state import HostView


@dataclass(frozen=True)
class HostLoad:
    name: str
    memory_capacity: int
    memory_used: int
    cpu_capacity: float
    cpus_used: float

    @property
    def memory_free(self) -> int:
        return self.memory_capacity - self.memory_used

    @property
    def cpus_free(self) -> float:
        return self.cpu_capacity - self.cpus_used

    @property
    def free_share(self) -> float:
        memory = self.memory_free / self.memory_capacity if self.memory_capacity else 0.0
        cpus = self.cpus_free / self.cpu_capacity if self.cpu_capacity else 0.0
        return min(memory, cpus)

    def fits(self, memory: int, cpus: float) -> bool:
        return memory <= self.memory_free and cpus <= self.cpus_free + 1e-9


def load_of(view: HostView, cpu_overcommit: float, pending: tuple[int, float] = (0, 0.0)) -> HostLoad:
    """A host's load: what its live containers reserve plus what this process is placing there right now."""
    return HostLoad(
        name=view.name,
        memory_capacity=view.memory_capacity,
        memory_used=view.memory_used + pending[0],
        cpu_capacity=view.cpu_capacity * cpu_overcommit,
        cpus_used=view.cpus_used + pending[1],
    )


def rank(loads: Iterable[HostLoad], memory: int, cpus: float) -> list[HostLoad]:
    """Hosts that can take ``memory`` bytes and ``cpus`` nominal cores, most free first."""
    fitting = [load for load in loads if load.fits(memory, cpus)]
    fitting.sort(key=lambda load: (-load.free_share, -load.memory_free, load.name))
    return fitting


def candidates(views: Iterable[HostView], memory: int, cpus: float, *, cpu_overcommit: float,
               pending: Mapping[str, tuple[int, float]] | None = None,
               exclude: Iterable[str] = ()) -> list[str]:
    """Names of placeable hosts (reachable, not cordoned, preview role) that fit, in the order to try."""
    pending = pending or {}
    skip = set(exclude)
    loads = [load_of(v, cpu_overcommit, pending.get(v.name, (0, 0.0)))
             for v in views if v.placeable and v.name not in skip]
    return [load.name for load in rank(loads, memory, cpus)]
