"""The cutover's routing questions (drape_fleet.routing.api) over the service's HTTP: mounted as ``cli.build``
mounts them, behind the same tokens, answered from the store on the engines as a Python caller is answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_testkit import ServedWorld, served

from drape_fleet.routing.api import RoutingApi
from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.router import Router
from drape_fleet.routing.store import StateStore
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.api_routing import routing_router
from drape_fleet.service.metrics import ServiceMetrics


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[tuple[ServedWorld, Router]]:
    made: list[Router] = []

    def routers(runtime: PreviewRuntime, metrics: ServiceMetrics) -> list[object]:
        StateStore(runtime.fleet, runtime.settings.owner).write(
            RoutingPolicy(phase=3, internal_users=("u-ops",), allowlist=("u-beta",), percent=0, salt="s"), {},
            expected=0, writer="ops")
        made.append(Router.for_runtime(runtime, background=False))
        return [routing_router(RoutingApi(made[0]), metrics)]

    for world in served(tmp_path, routers=routers):
        yield world, made[0]
        made[0].close()


def test_the_routing_questions_are_answered_over_http_with_the_backends_token(
        routed: tuple[ServedWorld, Router]) -> None:
    svc, router = routed
    beta = svc.backend.call("GET", "/v1/routing/route", params={"user": "u-beta"})
    assert beta.status_code == 200, beta.text
    assert (beta.json()["provider"], beta.json()["reason"]) == ("hetzner", "allowlisted beta user")
    assert svc.backend.call("GET", "/v1/routing/route", params={"user": "u-other"}).json()["provider"] == "fly"
    policy = svc.backend.call("GET", "/v1/routing/policy").json()
    assert (policy["phase"], policy["generation"], policy["internal_users"], policy["allowlist"]) == (3, 1, 1, 1)

    failed = svc.backend.call("POST", "/v1/routing/placement-failed", json={"user": "u-beta", "reason": "queue full"})
    assert failed.status_code == 200 and failed.json()["provider"] == "fly"
    recorded = svc.backend.call("POST", "/v1/routing/starts", json={"provider": "fly", "kind": "warm", "seconds": 9})
    assert recorded.json() == {"recorded": True, "phase": 3}
    metrics = router.metrics()
    assert metrics.select(phase=3, provider="hetzner", kind="cold").failures == {"queue full": 1}
    assert metrics.select(phase=3, provider="fly", kind="warm").ok == 1

    scraped = svc.ops.call("GET", "/metrics").text
    for line in ('drape_routing_starts_total{kind="cold",outcome="failed",phase="3",provider="hetzner"} 1.0',
                 'drape_routing_starts_total{kind="warm",outcome="ok",phase="3",provider="fly"} 1.0',
                 'drape_routing_start_seconds_sum{kind="warm",provider="fly"} 9.0',
                 'drape_routing_fallbacks_total{phase="3"} 1.0', "drape_routing_phase 3.0",
                 "drape_routing_generation 1.0"):
        assert line in scraped.splitlines(), line

    assert svc.client(None).call("GET", "/v1/routing/policy").status_code == 401
    openapi = svc.ops.call("GET", "/openapi.json").json()
    assert {"/v1/routing/route", "/v1/routing/placement-failed", "/v1/routing/starts", "/v1/routing/policy"} <= set(
        openapi["paths"])


@pytest.mark.parametrize(("method", "path", "sent", "field"), [
    ("GET", "/v1/routing/route", {"user": "bad user"}, "query.user"),
    ("GET", "/v1/routing/route", {"user": "u-1", "percent": "50"}, "query.percent"),
    ("POST", "/v1/routing/placement-failed", {"user": "u-1", "reason": ""}, "body.reason"),
    ("POST", "/v1/routing/starts", {"provider": "aws", "kind": "cold", "seconds": 3}, "body.provider"),
    ("POST", "/v1/routing/starts", {"provider": "fly", "kind": "cold", "seconds": 3, "colour": "red"},
     "body.colour"),
])
def test_bad_routing_input_is_422_naming_the_field(routed: tuple[ServedWorld, Router], method: str, path: str,
                                                   sent: dict[str, object], field: str) -> None:
    svc, _ = routed
    kwargs = {"params": sent} if method == "GET" else {"json": sent}
    answer = svc.backend.call(method, path, **kwargs)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request" and answer.json()["field"] == field, answer.json()
