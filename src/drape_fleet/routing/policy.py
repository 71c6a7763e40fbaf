"""Where a user's preview goes in each phase of the cutover: the policy as data and the decision (pure).

=========  ====================================================================================
phase      who goes to Hetzner (everyone else: Fly)
=========  ====================================================================================
0, 1       nobody (phase 1 builds the fleet; users stay on Fly)
2          internal users only
3          internal users, the allowlist, and a sticky share of everyone else (``percent``)
4, 5       everyone (Fly's preview machines are stopped)
=========  ====================================================================================

The share is sticky: a user's bucket is a hash of the policy's ``salt`` and the user id, so the same user gets
the same answer on every request, in every backend process, on every machine; raising ``percent`` only adds
users (nobody who was on Hetzner is sent back to Fly). The salt is made once, when the cutover starts, and kept
by every later policy.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Provider = Literal["hetzner", "fly"]
StartKind = Literal["cold", "warm", "prewarmed", "hot"]
"""Cold: nothing cached; warm: the project was used before (caches present); prewarmed: prepared while the user
browsed; hot: the container was still running."""
START_KINDS: tuple[StartKind, ...] = ("cold", "warm", "prewarmed", "hot")
PROVIDERS: tuple[Provider, ...] = ("hetzner", "fly")
LAST_PHASE = 5
BUCKETS = 10_000
"""The share has a granularity of 0.01 %."""
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
"""The runtime's principal syntax (``drape.user``)."""


class RoutingError(ValueError):
    """A question the policy cannot answer (an unusable user id); the message says what to pass."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Features(_Frozen):
    """Phase 5's switches, for the backend to read with each answer."""

    prewarm: bool = False
    """Call ``project_opened`` when a user opens a project (the container prepares before "Start preview")."""
    keep_alive: bool = False
    """Leave a preview to the reaper (30 minutes after the last activity) instead of stopping it when the user
    leaves: a user who comes back gets a hot start."""


class RoutingPolicy(_Frozen):
    phase: Annotated[int, Field(ge=0, le=LAST_PHASE)] = 0
    internal_users: tuple[str, ...] = ()
    allowlist: tuple[str, ...] = ()
    percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    salt: str = ""
    fly_fallback: bool = True
    """A Hetzner placement that fails goes to Fly instead (phases 2 and 3, while Fly still runs)."""
    features: Features = Features()

    @model_validator(mode="after")
    def _users(self) -> Self:
        for field in ("internal_users", "allowlist"):
            bad = [user for user in getattr(self, field) if not USER_RE.fullmatch(user)]
            if bad:
                raise ValueError(f"{field}: {', '.join(map(repr, bad[:5]))} are not user ids")
        if round(self.percent * 100) != self.percent * 100:
            raise ValueError(f"percent {self.percent} is finer than 0.01")
        return self

    @property
    def hetzner_serves_users(self) -> bool:
        return self.phase >= 2

    def describe(self) -> str:
        if self.phase <= 1:
            return "every user on Fly"
        if self.phase == 2:
            return f"{len(self.internal_users)} internal user(s) on Hetzner, everyone else on Fly"
        if self.phase == 3:
            return (f"{len(self.internal_users)} internal + {len(self.allowlist)} allowlisted user(s) and "
                    f"{self.percent:g}% of the others on Hetzner; the rest on Fly"
                    + (" (Hetzner failures fall back to Fly)" if self.fly_fallback else ""))
        return "every user on Hetzner"


class Route(_Frozen):
    """The answer to "where does this user's preview go?"."""

    provider: Provider
    reason: str
    phase: int
    generation: int
    """The policy's generation in the store (0: no policy read yet)."""
    fallback: Provider | None = None
    """Where to go if a placement on ``provider`` fails (``Router.placement_failed`` records it)."""
    features: Features = Features()
    stale: bool = False
    """True when the router could not read the store lately and answers from the last policy it saw."""


def bucket(salt: str, user: str) -> int:
    """The user's place in ``0 .. BUCKETS-1``: stable for a salt, uniform across users."""
    digest = hashlib.sha256(f"{salt}\0{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def check_user(user: str) -> str:
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise RoutingError(f"{user!r} is not a user id: pass the backend's user id (letters, digits and _.@+-, "
                           "up to 128 characters)")
    return user


def decide(policy: RoutingPolicy, user: str, *, generation: int = 0, stale: bool = False) -> Route:
    """Where ``user``'s preview goes under ``policy`` (pure)."""
    check_user(user)
    phase = policy.phase

    def to(provider: Provider, reason: str) -> Route:
        fallback: Provider | None = "fly" if provider == "hetzner" and policy.fly_fallback and phase <= 3 else None
        return Route(provider=provider, reason=reason, phase=phase, generation=generation, fallback=fallback,
                     features=policy.features, stale=stale)

    if phase <= 1:
        return to("fly", f"phase {phase}: every preview stays on Fly")
    if phase >= 4:
        return to("hetzner", f"phase {phase}: every preview runs on Hetzner")
    if user in policy.internal_users:
        return to("hetzner", "internal user")
    if phase == 2:
        return to("fly", "phase 2: only internal users run on Hetzner")
    if user in policy.allowlist:
        return to("hetzner", "allowlisted beta user")
    place = bucket(policy.salt, user)
    threshold = round(policy.percent * BUCKETS / 100)
    if place < threshold:
        return to("hetzner", f"sticky share: bucket {place} < {threshold} of {BUCKETS} ({policy.percent:g}%)")
    return to("fly", f"sticky share: bucket {place} >= {threshold} of {BUCKETS} ({policy.percent:g}%)")
