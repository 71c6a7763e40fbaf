"""A local Robot webservice (https://robot.hetzner.com/doc/webservice/en.html) for tests: a real HTTP server on
loopback that answers as the documentation describes.

- HTTP Basic auth; a wrong password answers 401, and three failed logins in a row block the caller's IP for
  10 minutes (every request from it answers 401 meanwhile).
- Request limits per route family: one request too many answers 403 RATE_LIMIT_EXCEEDED with ``max_request``
  and ``interval``.
- POST bodies are form-encoded (``authorized_key[]=...`` repeated, ``rules[input][0][name]=...``); a JSON body or
  an unknown field answers 400 INVALID_INPUT naming it in ``invalid`` (a missing one in ``missing``).
- Answers are JSON in the documented shapes (``[{"server": {...}}]``, ``{"rescue": {...}}``, ...); errors are
  ``{"error": {"status", "code", "message"}}``; maintenance answers 503 with no JSON.
- Routes: GET /server, GET /server/{n}, GET /boot/{n}, GET|POST|DELETE /boot/{n}/rescue, GET /boot/{n}/rescue/last,
  GET /reset, GET|POST /reset/{n}, GET /key, GET|POST /firewall/{n}.

In a test: ``with RobotFake(RobotFakeState(...)) as robot: robot.url``. As a process (for end-to-end tests):
``PYTHONPATH=tests/support python -m fakes.robot --scenario FILE [--port N] [--ready-file F] [--on-reset CMD]
[--request-log F]`` (see ``main``; ``tests/support/robot_process.py`` starts it). The reset hook is how a reset
reaches a machine: the lab's bare-metal stand-in boots its rescue system with the keys the activation named.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from json_http import JsonHandler

from fakes.robot_state import RESCUE_SYSTEMS, FakeKey, FakeServer, Recorded, RobotFakeState


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.body = {"error": {"status": status, "code": code, "message": message, **extra}}
        self.status = status


Route = tuple[str, re.Pattern[str], str, Callable[["RobotHandler", dict[str, Any], list[tuple[str, str]]], Any]]
ROUTES: list[Route] = []


def route(method: str, pattern: str, family: str) -> Callable[..., Any]:
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append((method, re.compile(f"^{pattern}$"), family, function))
        return function
    return register


class RobotHandler(JsonHandler):
    state: RobotFakeState  # set per server class

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        state = self.state
        path = urllib.parse.urlsplit(self.path).path
        user, password = self._credentials()
        with state.lock:
            status, body = self._answer(method, path, user, password)
            state.record(Recorded(method, path, self._form, status, user or ""))
        if body is None:
            self.send_response(status)
            self.send_header("Content-Length", "19")
            self.end_headers()
            self.wfile.write(b"Service Unavailable")
        else:
            self.send_json(status, body)

    def _answer(self, method: str, path: str, user: str | None, password: str | None) -> tuple[int, Any]:
        state = self.state
        self._form: list[tuple[str, str]] = []
        if state.maintenance:
            return 503, None
        if not state.login(self.client_address[0], user, password):
            return 401, {"error": {"status": 401, "code": "UNAUTHORIZED", "message": "Unauthorized"}}
        try:
            self._form = self._read_form(method)
            for route_method, pattern, family, handler in ROUTES:
                match = pattern.match(path)
                if match and route_method == method:
                    if (limit := state.over_limit(user or "", family)) is not None:
                        raise Refused(403, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded", max_request=limit[0],
                                      interval=limit[1])
                    return 200, handler(self, match.groupdict(), self._form)
            raise Refused(404, "NOT_FOUND", "Not found")
        except Refused as refused:
            return refused.status, refused.body

    def _credentials(self) -> tuple[str | None, str | None]:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return user, password

    def _read_form(self, method: str) -> list[tuple[str, str]]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode(errors="replace") if length else ""
        if method != "POST":
            return []
        if raw and not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=None,
                          invalid=["(body: POST parameters are application/x-www-form-urlencoded)"])
        return urllib.parse.parse_qsl(raw, keep_blank_values=True)

    def find_server(self, number: str) -> FakeServer:
        found = self.state.servers.get(int(number))
        if found is None:
            raise Refused(404, "SERVER_NOT_FOUND", "Server not found")
        return found


def _fields(form: list[tuple[str, str]], required: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in form:
        values.setdefault(key, []).append(value)
    missing = [name for name in required if not values.get(name)]
    invalid = [name for name in values if name not in required + allowed]
    if missing or invalid:
        raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=missing or None,
                      invalid=invalid or None)
    return values


@route("GET", "/server", "server")
def _servers(handler: RobotHandler, _: dict[str, Any], __: list[tuple[str, str]]) -> Any:
    servers = sorted(handler.state.servers.values(), key=lambda s: s.number)
    if not servers:
        raise Refused(404, "SERVER_NOT_FOUND", "No server found")
    return [{"server": server.summary()} for server in servers]


@route("GET", r"/server/(?P<n>\d+)", "server")
def _server(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    return {"server": handler.find_server(args["n"]).detail()}


@route("GET", r"/boot/(?P<n>\d+)", "boot")
def _boot(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    return {"boot": {"rescue": server.rescue_json(), "linux": None, "vnc": None, "windows": None, "plesk": None,
                     "cpanel": None}}


@route("GET", r"/boot/(?P<n>\d+)/rescue", "boot")
def _rescue(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    return {"rescue": handler.find_server(args["n"]).rescue_json()}


@route("GET", r"/boot/(?P<n>\d+)/rescue/last", "boot")
def _rescue_last(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    if server.last_rescue is None:
        raise Refused(404, "BOOT_NOT_AVAILABLE", "No boot configuration available for this server")
    return {"rescue": server.last_rescue}


@route("POST", r"/boot/(?P<n>\d+)/rescue", "boot")
def _activate_rescue(handler: RobotHandler, args: dict[str, Any], form: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    values = _fields(form, ("os",), ("authorized_key[]", "keyboard", "arch"))
    if values["os"][0] not in RESCUE_SYSTEMS:
        raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=None, invalid=["os"])
    fingerprints = values.get("authorized_key[]", [])
    known = {key.fingerprint for key in handler.state.keys}
    if any(fingerprint not in known for fingerprint in fingerprints):
        raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=None, invalid=["authorized_key"])
    if server.rescue is not None:
        raise Refused(409, "BOOT_ALREADY_ENABLED", "A boot option is already active")
    return {"rescue": handler.state.activate_rescue(server, values["os"][0], fingerprints)}


@route("DELETE", r"/boot/(?P<n>\d+)/rescue", "boot")
def _deactivate_rescue(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    server.rescue = None
    return {"rescue": server.rescue_json()}


@route("GET", "/reset", "reset")
def _resets(handler: RobotHandler, _: dict[str, Any], __: list[tuple[str, str]]) -> Any:
    return [{"reset": {"server_ip": s.ip, "server_ipv6_net": s.ipv6_net, "server_number": s.number,
                       "type": list(s.reset_types)}} for s in handler.state.servers.values()]


@route("GET", r"/reset/(?P<n>\d+)", "reset")
def _reset_options(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    return {"reset": {"server_ip": server.ip, "server_ipv6_net": server.ipv6_net, "server_number": server.number,
                      "type": list(server.reset_types), "operating_status": "not supported"}}


@route("POST", r"/reset/(?P<n>\d+)", "reset_post")
def _reset(handler: RobotHandler, args: dict[str, Any], form: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    kind = _fields(form, ("type",), ())["type"][0]
    if kind not in server.reset_types:
        raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=None, invalid=["type"])
    if server.manual_reset_pending:
        raise Refused(409, "RESET_MANUAL_ACTIVE", "There is already a running manual reset")
    handler.state.reset(server, kind)
    return {"reset": {"server_ip": server.ip, "type": kind}}


@route("GET", "/key", "key")
def _keys(handler: RobotHandler, _: dict[str, Any], __: list[tuple[str, str]]) -> Any:
    if not handler.state.keys:
        raise Refused(404, "NOT_FOUND", "No keys found")
    return [{"key": key.as_json()} for key in handler.state.keys]


@route("GET", r"/firewall/(?P<n>\d+)", "firewall")
def _firewall(handler: RobotHandler, args: dict[str, Any], _: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    if server.firewall.get("status") == "in process":
        server.firewall_polls_left -= 1
        if server.firewall_polls_left <= 0:
            server.firewall["status"] = "active"
    return {"firewall": {"server_ip": server.ip, "server_number": server.number, "status": "disabled",
                         "filter_ipv6": False, "whitelist_hos": True, "port": "main",
                         "rules": {"input": [], "output": []}, **server.firewall}}


_RULE = re.compile(r"^rules\[(input|output)\]\[(\d+)\]\[(\w+)\]$")
_RULE_FIELDS = {"name", "ip_version", "dst_ip", "src_ip", "dst_port", "src_port", "protocol", "tcp_flags", "action"}


@route("POST", r"/firewall/(?P<n>\d+)", "firewall_post")
def _apply_firewall(handler: RobotHandler, args: dict[str, Any], form: list[tuple[str, str]]) -> Any:
    server = handler.find_server(args["n"])
    if server.firewall.get("status") == "in process":
        raise Refused(409, "FIREWALL_IN_PROCESS", "The firewall cannot be updated because it is in process")
    rules: dict[str, dict[int, dict[str, str]]] = {"input": {}, "output": {}}
    plain: dict[str, str] = {}
    invalid = []
    for key, value in form:
        if match := _RULE.match(key):
            direction, index, name = match.groups()
            (rules[direction].setdefault(int(index), {}).__setitem__(name, value) if name in _RULE_FIELDS
             else invalid.append(key))
        elif key in ("status", "filter_ipv6", "whitelist_hos", "template_id"):
            plain[key] = value
        else:
            invalid.append(key)
    if invalid or plain.get("status") not in ("active", "disabled"):
        raise Refused(400, "INVALID_INPUT", "Invalid input parameters", missing=None if plain.get("status")
                      else ["status"], invalid=invalid or None)
    server.firewall = {"status": "in process", "filter_ipv6": plain.get("filter_ipv6") == "true",
                       "whitelist_hos": plain.get("whitelist_hos") == "true",
                       "rules": {d: [rules[d][i] for i in sorted(rules[d])] for d in rules}}
    server.firewall_polls_left = handler.state.firewall_polls
    return {"firewall": {"server_ip": server.ip, "server_number": server.number, "port": "main",
                         **server.firewall}}


class RobotFake:
    """The fake on a free loopback port, in a thread: ``with RobotFake(state) as fake: fake.url``."""

    def __init__(self, state: RobotFakeState, port: int = 0) -> None:
        self.state = state
        handler = type("BoundRobotHandler", (RobotHandler,), {"state": state})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        # A short poll interval: shutdown() waits for the loop to notice, half a second by default.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RobotFake:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def state_from_scenario(data: dict[str, Any], on_reset: Callable[[FakeServer, str, bool], None] | None = None
                        ) -> RobotFakeState:
    """A scenario file: {"user", "password", "servers": [FakeServer fields], "keys": [FakeKey fields],
    "limits": {family: [max_request, interval]}, "block_s": 600}."""
    return RobotFakeState(
        user=data.get("user", "robot-user"), password=data.get("password", "robot-secret"),
        servers=[FakeServer(**{**s, "reset_types": tuple(s.get("reset_types", ("sw", "hw", "man", "power",
                                                                                  "power_long")))})
                 for s in data.get("servers", [])],
        keys=[FakeKey(**k) for k in data.get("keys", [])],
        limits={k: (int(v[0]), int(v[1])) for k, v in data.get("limits", {}).items()},
        block_s=float(data.get("block_s", 600)), on_reset=on_reset)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, type=Path, help="JSON file: account, servers, keys, limits")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, help="written with the URL once the fake listens")
    parser.add_argument("--on-reset", default="", help="command run after each reset, with ROBOT_SERVER_NUMBER, "
                        "ROBOT_RESET_TYPE, ROBOT_BOOTS_RESCUE (1 or 0) and ROBOT_RESCUE_AUTHORIZED_KEYS (the public "
                        "keys the booting rescue system accepts, one a line) in its environment")
    parser.add_argument("--request-log", type=Path, help="append every answered request to this file (JSON lines)")
    args = parser.parse_args(argv)

    def run_hook(server: FakeServer, kind: str, boots_rescue: bool) -> None:
        if args.on_reset:
            keys = [item["key"]["data"] for item in (server.last_rescue or {}).get("authorized_key", [])]
            env = {**os.environ, "ROBOT_SERVER_NUMBER": str(server.number), "ROBOT_RESET_TYPE": kind,
                   "ROBOT_BOOTS_RESCUE": "1" if boots_rescue else "0",
                   "ROBOT_RESCUE_AUTHORIZED_KEYS": "\n".join(keys) if boots_rescue else ""}
            subprocess.Popen(args.on_reset, shell=True, env=env, stdin=subprocess.DEVNULL,  # noqa: S602 (the test's)
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    state = state_from_scenario(json.loads(args.scenario.read_text()), on_reset=run_hook)
    state.request_log = args.request_log
    fake = RobotFake(state, args.port)
    print(f"fake Robot webservice on {fake.url}", flush=True)
    if args.ready_file:
        args.ready_file.write_text(fake.url + "\n")
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
