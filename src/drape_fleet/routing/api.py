"""The routing questions as an HTTP contract, for the runtime service (issue 10) to mount beside its own routes:
validated request bodies, the answers, and the one object that answers them from a ``Router``. No web framework
here (the routing package imports with docker and pydantic alone); the service binds ``ENDPOINTS`` to its
framework in a loop, so the backend gets over HTTPS exactly what ``Router`` gives a Python caller:

=======  ===========================  =======================  ==========================================
method   path                         body / query             answer
=======  ===========================  =======================  ==========================================
GET      /v1/routing/route            ``RouteQuery`` (query)   ``Route``: provider, reason, phase...
POST     /v1/routing/placement-failed ``PlacementFailure``     ``Route``: where to go now (Fly in phase 3)
POST     /v1/routing/starts           ``StartReport``          ``Recorded``
GET      /v1/routing/policy           -                        ``PolicyView``: the policy in force
=======  ===========================  =======================  ==========================================

Every service instance runs its own ``Router`` (``Router.for_runtime``), so each answers from the state store
on the engines like every other instance and every backend process: a policy change reaches all of them within
``policy_poll_s`` without a restart. Bad input is a pydantic ``ValidationError`` naming the field (the service
turns it into its 422 body); ``RoutingError`` carries what to pass instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from drape_fleet.routing.policy import Features, Provider, Route, StartKind
from drape_fleet.routing.router import Router

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]
"""The runtime's principal syntax (``drape.user``)."""
WorkspaceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouteQuery(_Body):
    """Where does ``user``'s preview go? With ``workspace``, a preview of it still running on Hetzner keeps it
    there (after a rollback, say) until it retires."""

    user: UserId
    workspace: WorkspaceId | None = None


class PlacementFailure(_Body):
    """A Hetzner placement for ``user`` failed (queue full, host down...): recorded as a failed start."""

    user: UserId
    reason: Reason
    kind: StartKind = "cold"
    workspace: WorkspaceId | None = None


class StartReport(_Body):
    """A start the caller measured, request to ready (Fly's starts reach the cutover's report only this way)."""

    provider: Provider
    kind: StartKind
    seconds: Annotated[float, Field(ge=0, le=86_400)]
    ok: bool = True
    reason: Annotated[str, StringConstraints(max_length=200)] = ""
    phase: Annotated[int, Field(ge=0, le=5)] | None = None
    """The phase in force when the start began (default: the current one)."""


class Recorded(_Body):
    recorded: Literal[True] = True
    phase: int


class PolicyView(_Body):
    """The policy this instance answers from (counts, not the user lists: those stay with ops)."""

    phase: int
    generation: int
    describe: str
    internal_users: int
    allowlist: int
    percent: float
    fly_fallback: bool
    features: Features
    stale: bool


@dataclass(frozen=True)
class Endpoint:
    method: Literal["GET", "POST"]
    path: str
    body: type[_Body] | None
    """The request model (for GET: its fields are the query parameters)."""
    answer: type[BaseModel]
    handler: str
    """The ``RoutingApi`` method that answers."""
    summary: str


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/routing/route", RouteQuery, Route, "route", "Where a user's preview goes now"),
    Endpoint("POST", "/v1/routing/placement-failed", PlacementFailure, Route, "placement_failed",
             "A Hetzner placement failed: recorded; where to go now"),
    Endpoint("POST", "/v1/routing/starts", StartReport, Recorded, "record_start", "A start measured by the caller"),
    Endpoint("GET", "/v1/routing/policy", None, PolicyView, "policy", "The routing policy in force"),
)


class RoutingApi:
    """The answers to ``ENDPOINTS``, from one ``Router`` (thread-safe; no I/O but the "still runs on Hetzner"
    check of a ``RouteQuery`` with a workspace)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def route(self, query: RouteQuery) -> Route:
        return self.router.route(query.user, workspace=query.workspace)

    def placement_failed(self, failure: PlacementFailure) -> Route:
        return self.router.placement_failed(failure.user, reason=failure.reason, kind=failure.kind,
                                            workspace=failure.workspace)

    def record_start(self, report: StartReport) -> Recorded:
        phase = self.router.policy.phase if report.phase is None else report.phase
        self.router.record_start(report.provider, report.kind, report.seconds, ok=report.ok, reason=report.reason,
                                 phase=phase)
        return Recorded(phase=phase)

    def policy(self) -> PolicyView:
        policy = self.router.policy
        return PolicyView(phase=policy.phase, generation=self.router.generation, describe=policy.describe(),
                          internal_users=len(policy.internal_users), allowlist=len(policy.allowlist),
                          percent=policy.percent, fly_fallback=policy.fly_fallback, features=policy.features,
                          stale=self.router.stale)
