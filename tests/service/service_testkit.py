"""The service over the runtime's fake engines (``tests/unit/runtime``: in-memory engines answering like Docker,
with real HTTP dev servers on loopback): a real uvicorn server on a thread, real HTTP from the test.

``Tokens`` writes a tokens file as the deploy does (digests only) and keeps the tokens for the test's requests.
"""

from __future__ import annotations

import random
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "runtime"))

from runtime_testkit import World

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.config.service import ServiceSettings
from drape_fleet.runtime.clients import Endpoint
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.auth import token_digest
from drape_fleet.service.embedded import EmbeddedService, service_events
from drape_fleet.service.metrics import ServiceMetrics


@dataclass
class Tokens:
    path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def add(self, caller: str, scopes: tuple[str, ...] = ("previews",), *, rate: float | None = None,
            burst: int | None = None) -> str:
        token = f"drt_{secrets.token_urlsafe(32)}"
        self.tokens[token] = caller
        self._entries.append((caller, token_digest(token), scopes, rate, burst))
        self.write()
        return token

    def revoke(self, token: str) -> None:
        digest = token_digest(token)
        self._entries = [e for e in self._entries if e[1] != digest]
        self.write()

    def write(self) -> None:
        lines = []
        for caller, digest, scopes, rate, burst in self._entries:
            lines += ["[[tokens]]", f'caller = "{caller}"', f'sha256 = "{digest}"',
                      "scopes = [" + ", ".join(f'"{s}"' for s in scopes) + "]"]
            if rate is not None:
                lines.append(f"limits = {{ rate_per_s = {rate}, burst = {burst or 1} }}")
            lines.append("")
        self.path.write_text("\n".join(lines))

    def __post_init__(self) -> None:
        self._entries: list[tuple[str, str, tuple[str, ...], float | None, int | None]] = []


class Client:
    """requests with a base URL and a token."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def start(self, workspace: str, **body: Any) -> requests.Response:
        return self.call("PUT", f"/v1/previews/{workspace}", json={"user": "u1", "framework": "tiny", **body})


@dataclass
class ServedWorld:
    world: World
    runtime: PreviewRuntime
    metrics: ServiceMetrics
    service: EmbeddedService
    tokens: Tokens
    backend: Client
    ops: Client

    def client(self, token: str | None) -> Client:
        return Client(self.service.url, token)


def runtime_with_events(world: World, events: Any, seed: int = 0, **overrides: Any) -> PreviewRuntime:
    """Like ``World.runtime``, with the service's event listeners."""
    settings = RuntimeSettings.model_validate({**world.config.runtime.model_dump(), **overrides})
    config = world.config.model_copy(update={"runtime": settings})
    engines = [Engine(Endpoint(name, f"unix:///fake/{name}.sock"), settings, clock=world.clock,
                      rng=random.Random(seed), connect=lambda _e, t, _p, h=host: h.client(t))
               for name, host in world.hosts.items()]
    runtime = PreviewRuntime(config, Fleet(engines), background=False, rng=random.Random(seed), clock=world.clock,
                             resolve=world.resolve, events=events)
    for name, host in world.hosts.items():  # as World.runtime: a process's first placement waits for its watches
        if not (host.down or host.black_hole):
            runtime.observer.watch(name).synced.wait(5)
    return runtime


def served(tmp_path: Path, *, settings: ServiceSettings | None = None, routers: Any = None,
           **runtime: Any) -> Iterator[ServedWorld]:
    """``routers(runtime, metrics)``: more routers to mount (as ``cli.build`` mounts the routing questions)."""
    world = World()
    metrics, board, events = service_events("test")
    service_runtime = runtime_with_events(world, events, **runtime)
    tokens = Tokens(tmp_path / "tokens.toml")
    backend = tokens.add("backend")
    ops = tokens.add("ops", ("previews", "fleet", "metrics"))
    service = EmbeddedService(service_runtime, metrics=metrics, board=board, settings=settings or ServiceSettings(),
                              tokens_file=tokens.path, instance="test",
                              extra_routers=routers(service_runtime, metrics) if routers else ()).start()
    try:
        yield ServedWorld(world, service_runtime, metrics, service, tokens, Client(service.url, backend),
                          Client(service.url, ops))
    finally:
        service.stop()
        service_runtime.close()
        world.close()
