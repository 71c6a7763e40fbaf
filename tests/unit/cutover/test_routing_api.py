"""The routing questions as the service's HTTP contract: JSON bodies as the backend sends them, validated with
the field named, answered from a Router exactly as the Python calls answer (same store, same records)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from volume_engines import OWNER, VolumeFleet

from drape_fleet.routing.api import ENDPOINTS, PlacementFailure, RouteQuery, RoutingApi, StartReport
from drape_fleet.routing.policy import Features, Route, RoutingPolicy
from drape_fleet.routing.router import Router
from drape_fleet.routing.store import StateStore


@pytest.fixture
def api(volumes: VolumeFleet, store: StateStore) -> Iterator[RoutingApi]:
    store.write(RoutingPolicy(phase=3, internal_users=("u-ops",), allowlist=("u-beta",), percent=0, salt="s"), {},
                expected=0, writer="ops")
    router = Router(volumes.fleet, OWNER, background=False, running_on={"ws-kept": "ax2"}.get)
    yield RoutingApi(router)
    router.close()


def test_answers_are_the_routers_from_json_bodies(api: RoutingApi) -> None:
    route = api.route(RouteQuery.model_validate_json('{"user": "u-beta"}'))
    assert (route.provider, route.reason, route.generation, route.fallback) == (
        "hetzner", "allowlisted beta user", 1, "fly")
    kept = api.route(RouteQuery(user="u-other", workspace="ws-kept"))
    assert kept.provider == "hetzner" and "still runs on ax2" in kept.reason
    assert Route.model_validate_json(kept.model_dump_json()) == kept  # the answer travels as JSON and back

    view = api.policy()
    assert (view.phase, view.generation, view.internal_users, view.allowlist, view.features) == (
        3, 1, 1, 1, Features())


def test_a_failed_placement_and_reported_starts_are_recorded(api: RoutingApi) -> None:
    failed = api.placement_failed(PlacementFailure.model_validate(json.loads(
        '{"user": "u-beta", "reason": "queue full", "workspace": "ws-1"}')))
    assert failed.provider == "fly" and "fell back to Fly" in failed.reason
    assert api.record_start(StartReport(provider="fly", kind="warm", seconds=95.5)).phase == 3
    assert api.record_start(StartReport(provider="hetzner", kind="hot", seconds=0.4, phase=2)).phase == 2
    metrics = api.router.metrics()
    assert metrics.select(phase=3, provider="hetzner", kind="cold").failures == {"queue full": 1}
    assert metrics.select(phase=3, provider="fly", kind="warm").ok == 1
    assert metrics.select(phase=2, provider="hetzner", kind="hot").ok == 1
    assert metrics.fallbacks == {3: 1}


@pytest.mark.parametrize(("model", "body", "field"), [
    (RouteQuery, {"user": "bad user"}, "user"),
    (RouteQuery, {"user": "u-1", "workspace": "../etc"}, "workspace"),
    (RouteQuery, {"user": "u-1", "percent": 50}, "percent"),
    (PlacementFailure, {"user": "u-1", "reason": ""}, "reason"),
    (PlacementFailure, {"user": "u-1", "reason": "x", "kind": "lukewarm"}, "kind"),
    (StartReport, {"provider": "aws", "kind": "cold", "seconds": 3}, "provider"),
    (StartReport, {"provider": "fly", "kind": "cold", "seconds": -1}, "seconds"),
    (StartReport, {"provider": "fly", "kind": "cold", "seconds": 3, "phase": 9}, "phase"),
])
def test_bad_bodies_name_the_field(model: type[RouteQuery], body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_every_endpoint_has_its_handler(api: RoutingApi) -> None:
    assert len({(e.method, e.path) for e in ENDPOINTS}) == len(ENDPOINTS)
    for endpoint in ENDPOINTS:
        assert callable(getattr(api, endpoint.handler)), endpoint
        assert endpoint.path.startswith("/v1/routing/")
