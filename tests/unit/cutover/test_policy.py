"""Where a user's preview goes in each phase (pure): the phase table, the sticky share, fallback, bad ids."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drape_fleet.routing.policy import BUCKETS, RoutingError, RoutingPolicy, bucket, decide

USERS = [f"u-{n:04d}" for n in range(2000)]


def test_each_phase_sends_users_where_the_plan_says() -> None:
    internal, beta, anyone = "u-ops", "u-beta", "u-0001"
    answers = {}
    for phase in range(6):
        policy = RoutingPolicy(phase=phase, internal_users=(internal,), allowlist=(beta,), percent=0, salt="s")
        answers[phase] = tuple(decide(policy, user).provider for user in (internal, beta, anyone))
    assert answers == {0: ("fly", "fly", "fly"), 1: ("fly", "fly", "fly"), 2: ("hetzner", "fly", "fly"),
                       3: ("hetzner", "hetzner", "fly"), 4: ("hetzner", "hetzner", "hetzner"),
                       5: ("hetzner", "hetzner", "hetzner")}


def test_fallback_to_fly_only_while_fly_runs() -> None:
    assert decide(RoutingPolicy(phase=3, internal_users=("u",)), "u").fallback == "fly"
    assert decide(RoutingPolicy(phase=3, internal_users=("u",), fly_fallback=False), "u").fallback is None
    assert decide(RoutingPolicy(phase=4), "u").fallback is None
    assert decide(RoutingPolicy(phase=3), "u-other").fallback is None  # already on Fly


def test_the_share_is_sticky_and_close_to_the_percentage() -> None:
    policy = RoutingPolicy(phase=3, percent=30, salt="a1b2")
    first = [decide(policy, user).provider for user in USERS]
    again = [decide(policy, user).provider for user in USERS]
    assert first == again
    share = first.count("hetzner") / len(USERS)
    assert 0.27 < share < 0.33, share


def test_raising_the_share_only_adds_users_and_the_salt_spreads_them_differently() -> None:
    at = {p: {u for u in USERS if decide(RoutingPolicy(phase=3, percent=p, salt="x"), u).provider == "hetzner"}
          for p in (0, 10, 25.5, 60, 100)}
    assert at[0] == set() and at[100] == set(USERS)
    assert at[10] <= at[25.5] <= at[60]
    other = {u for u in USERS if decide(RoutingPolicy(phase=3, percent=10, salt="y"), u).provider == "hetzner"}
    assert other != at[10]
    assert all(0 <= bucket("x", u) < BUCKETS for u in USERS[:50])


def test_bad_input_is_refused_with_what_to_pass() -> None:
    with pytest.raises(RoutingError, match="is not a user id"):
        decide(RoutingPolicy(), "user; rm -rf /")
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        RoutingPolicy(phase=3, percent=100.5)
    with pytest.raises(ValidationError, match=r"finer than 0\.01"):
        RoutingPolicy(phase=3, percent=12.345)
    with pytest.raises(ValidationError, match="are not user ids"):
        RoutingPolicy(phase=3, allowlist=("ok", "not ok"))
    with pytest.raises(ValidationError):
        RoutingPolicy(phase=6)
