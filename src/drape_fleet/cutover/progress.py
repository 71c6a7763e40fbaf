"""What the cutover tasks remember between runs (stored with the routing policy, ``drape_fleet.routing.store``):
which phase is done, which one an ``--apply`` started and did not finish (and which of its steps are done),
what each phase replaced (so a rollback can put it back), and the evidence the gates read.

Pure data; a ``Progress`` is replaced as a whole, never edited in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drape_fleet.routing.policy import LAST_PHASE, RoutingPolicy

MAX_EVENTS = 60

PHASE_NAMES = {
    0: "not started (every preview on Fly)",
    1: "infrastructure",
    2: "backend adapted",
    3: "parallel testing",
    4: "full migration",
    5: "optimizations",
}


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhaseEntry(_Data):
    """A completed phase and the routing policy it left in force."""

    phase: Annotated[int, Field(ge=1, le=LAST_PHASE)]
    policy: RoutingPolicy
    completed: datetime


class FlyMachineRecord(_Data):
    """A Fly preview machine phase 4 stopped: what it was, so a rollback can start it again."""

    app: str
    id: str
    name: str = ""
    state_before: str
    stopped: datetime
    destroyed: datetime | None = None


class DnsRecordSet(_Data):
    type: str
    values: tuple[str, ...]
    ttl: int | None


class DnsBefore(_Data):
    """The preview name's records before phase 4 pointed it at the Hetzner hosts."""

    zone: str
    name: str
    records: tuple[DnsRecordSet, ...]


class SmokeResult(_Data):
    at: datetime
    seconds: dict[str, float]
    """Per host: start to ready."""
    errors: dict[str, str] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.seconds)


class LoadTestResult(_Data):
    at: datetime
    framework: str
    previews: int
    failures: int
    cold_p50_s: float | None
    cold_p95_s: float | None
    max_s: float | None
    passed: bool
    detail: str


class VerifyResult(_Data):
    at: datetime
    hosts: tuple[str, ...]
    passed: bool
    detail: str = ""


class Event(_Data):
    at: datetime
    by: str
    text: str


class Progress(_Data):
    phase: Annotated[int, Field(ge=0, le=LAST_PHASE)] = 0
    """The last completed phase (0: the cutover has not started)."""
    applying: Annotated[int, Field(ge=1, le=LAST_PHASE)] | None = None
    """A phase whose ``--apply`` started and has not finished (interrupted or failed): re-run it, or roll back."""
    steps_done: tuple[str, ...] = ()
    """Steps of ``applying`` already done (a re-run skips nothing: every step checks before it acts; this is
    what status shows and what a rollback of an unfinished phase undoes)."""
    rolling_back: Annotated[int, Field(ge=1, le=LAST_PHASE)] | None = None
    """A rollback of this phase started and has not finished: run ``invoke cutover rollback --apply`` again."""
    entered: tuple[PhaseEntry, ...] = ()
    """The completed phases, oldest first (a rollback removes the last)."""
    verify: VerifyResult | None = None
    smoke: SmokeResult | None = None
    load_test: LoadTestResult | None = None
    fly_stopped: tuple[FlyMachineRecord, ...] = ()
    dns_before: DnsBefore | None = None
    missing: tuple[str, ...] = ()
    """What phase 5 found missing (reported, not faked)."""
    events: tuple[Event, ...] = ()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Progress:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"the stored cutover progress does not parse ({exc.error_count()} problem(s): "
                             f"{exc.errors()[0]['msg']}): restore it from a backup, or inspect it with "
                             "`docker volume inspect` on a host") from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def log(self, text: str, *, by: str, at: datetime) -> Progress:
        events = (*self.events, Event(at=at, by=by, text=text))[-MAX_EVENTS:]
        return self.model_copy(update={"events": events})

    def policy_after(self, phase: int) -> RoutingPolicy | None:
        """The policy ``phase`` left in force (None: not recorded, or phase 0)."""
        for entry in reversed(self.entered):
            if entry.phase == phase:
                return entry.policy
        return None


Status = Literal["done", "applying", "rolling back", "not started"]


def phase_status(progress: Progress, phase: int) -> Status:
    if progress.rolling_back == phase:
        return "rolling back"
    if progress.applying == phase:
        return "applying"
    return "done" if phase <= progress.phase else "not started"
