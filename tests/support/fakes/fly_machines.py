"""A local fake of the Fly Machines API (``/v1/apps/{app}/machines...``) as a real HTTP server on loopback.

In a test::

    with FakeFly() as fly:                       # token "fly-test-token", every app, read-write
        machine = fly.world.add_machine("my-app", state="started")
        client = FlyClient("fly-test-token", base_url=fly.url)

As a process (lab and end-to-end tests; prints ``FAKE_FLY_URL=...`` once it listens)::

    PYTHONPATH=tests/support python -m fakes.fly_machines --port 4280 --token T --app my-app=3

The rules (states, leases, waits, errors, rate limits) live in ``fly_state``, with their sources. Order of
checks for every request, as the real service layers them: injected faults (proxy/server failures), the
token (401/403), the rate limit (429), then the operation.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import signal
import sys
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from fakes.fly_state import ApiError, FlyWorld, Grant
from fakes.loopback import FakeHandler, LoopbackServer

DEFAULT_TOKEN = "fly-test-token"
_ROUTE = re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines(?:/(?P<id>[^/]+)(?:/(?P<tail>[a-z_]+)(?:/(?P<key>[^/]+))?)?)?$")
# (method, tail) -> rate-limit action; tail "" is the machine itself, None the collection.
_ACTIONS: dict[tuple[str, str | None], str] = {
    ("GET", None): "list", ("GET", ""): "get", ("DELETE", ""): "destroy", ("POST", "start"): "start",
    ("POST", "stop"): "stop", ("POST", "suspend"): "suspend", ("POST", "cordon"): "cordon",
    ("POST", "uncordon"): "uncordon", ("GET", "wait"): "wait", ("POST", "lease"): "lease_create",
    ("GET", "lease"): "lease_get", ("DELETE", "lease"): "lease_release", ("GET", "metadata"): "metadata_get",
    ("POST", "metadata"): "metadata_set", ("DELETE", "metadata"): "metadata_delete",
}


class FlyHandler(FakeHandler):
    world: ClassVar[FlyWorld]

    def _reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self.reply(status, body, {"fly-request-id": f"01J{secrets.token_hex(10).upper()}-cdg", **(headers or {})})

    @staticmethod
    def _body(raw: bytes) -> Any:
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid JSON body") from None

    def _handle(self, method: str) -> None:
        raw = self.read_body()
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        nonce = self.headers.get("fly-machine-lease-nonce")
        self.world.requests.append({"method": method, "path": url.path, "query": query, "nonce": nonce})
        fault = self.world.faults.take(method, url.path)
        if fault is not None:
            self._reply(fault.status, fault.body, fault.headers)
            return
        match = _ROUTE.match(url.path)
        tail = None if match is None or match["id"] is None else (match["tail"] or "")
        action = _ACTIONS.get((method, tail)) if match else None
        if match is None or action is None:
            self._reply(404, {"error": "not found"})
            return
        try:
            body = self._body(raw)
            app, machine_id, key = unquote(match["app"]), match["id"], match["key"]
            grant = self.world.authorise(self.headers.get("Authorization"), app, write=method != "GET")
            self.world.rate_limit(action, machine_id or app)
            status, answer = self._dispatch(action, app, machine_id, key, query, body, nonce, grant)
        except ApiError as exc:
            self._reply(exc.status, {"error": exc.message}, exc.headers)
            return
        self._reply(status, answer)

    def _dispatch(self, action: str, app: str, machine_id: str | None, key: str | None, query: dict[str, str],
                  body: Any, nonce: str | None, grant: Grant) -> tuple[int, Any]:
        world = self.world
        if action == "list":
            return 200, world.list_machines(app, query)
        assert machine_id is not None
        if action == "get":
            return 200, world.get(app, machine_id)
        if action == "start":
            return 200, world.start(app, machine_id, nonce)
        if action == "stop":
            return 200, world.stop(app, machine_id, body if isinstance(body, dict) else {}, nonce)
        if action == "suspend":
            return 200, world.suspend(app, machine_id, nonce)
        if action == "destroy":
            return 200, world.destroy(app, machine_id, query.get("force", "").lower() == "true", nonce)
        if action in ("cordon", "uncordon"):
            return 200, world.cordon(app, machine_id, nonce, cordoned=action == "cordon")
        if action == "wait":
            return 200, world.wait(app, machine_id, query)
        if action == "lease_create":
            return 201, world.lease_create(app, machine_id, body if isinstance(body, dict) else {}, query, nonce,
                                           grant.owner)
        if action == "lease_get":
            return 200, world.lease_get(app, machine_id)
        if action == "lease_release":
            return 200, world.lease_release(app, machine_id, nonce)
        if action == "metadata_get":
            if key is not None:
                raise ApiError(404, "not found")
            return 200, world.metadata(app, machine_id)
        if key is None:
            raise ApiError(404, "not found")
        if action == "metadata_set":
            world.set_metadata(app, machine_id, unquote(key), body)
        else:
            world.delete_metadata(app, machine_id, unquote(key))
        return 204, None

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class FakeFly(LoopbackServer):
    """The fake on a loopback port; ``url`` is the base URL to give the client (``…/v1``); ``world`` its state."""

    def __init__(self, tokens: Mapping[str, Grant] | None = None, *, port: int = 0, **world_options: Any) -> None:
        self.world = FlyWorld(tokens or {DEFAULT_TOKEN: Grant()}, **world_options)
        super().__init__(type("BoundFlyHandler", (FlyHandler,), {"world": self.world}), port=port, name="fake-fly")

    def __enter__(self) -> FakeFly:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _grant(spec: str) -> tuple[str, Grant]:
    """``TOKEN`` (everything), ``TOKEN:app1+app2`` (those apps), ``TOKEN:*:ro`` (read-only)."""
    token, _, rest = spec.partition(":")
    apps, _, mode = rest.partition(":")
    return token, Grant(apps="*" if apps in ("", "*") else frozenset(apps.split("+")), write=mode != "ro")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Fly Machines API on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[], help="TOKEN[:app1+app2[:ro]] (repeatable)")
    parser.add_argument("--app", action="append", default=[], help="APP=N: an app with N started machines")
    parser.add_argument("--transition-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    tokens = dict(_grant(spec) for spec in args.token) or {DEFAULT_TOKEN: Grant()}
    fake = FakeFly(tokens, port=args.port, transition_s=args.transition_s)
    for spec in args.app:
        app, _, count = spec.partition("=")
        fake.world.add_app(app)
        for _ in range(int(count or 0)):
            fake.world.add_machine(app)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"FAKE_FLY_URL={fake.url}", flush=True)
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
