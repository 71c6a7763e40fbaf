"""The preview gate: a small host-local service between Caddy and the previews on its host (standard library
only; ``drape-preview-gate.service`` runs ``python3 -m drape_fleet.ingress.gate <config>`` on 127.0.0.1).

Caddy sends it two kinds of requests (``files/ingress/previews.caddy.j2``):

* ``GET /__drape/login?t=<link>&next=<path>`` (proxied): checks the signed link (``drape_fleet.ingress.links``: this
  preview's workspace, this host, not expired, not used before), then sets the session cookie and redirects to
  ``next`` on the same preview;
* ``GET /__drape/check`` (Caddy's ``forward_auth``, for every other request): checks the session cookie, then
  answers 200 with ``X-Drape-Upstream: <address>:<port>``, the preview's dev server on this host, which Caddy
  proxies to. No session: 401; no preview of that workspace here: 404; not ready yet: 503 with a page that
  retries.

The route table is derived from the engine, the system of record: the runtime's labels on running containers,
their addresses on their preview networks, and readiness (``drape_fleet.ingress.routes``). It follows the
engine's container events, rereads everything every ``resync_s`` in case an event was missed, and rechecks
previews that are not ready yet twice a second. A route appears when its preview is ready and goes with the
container; nothing is ever written to Caddy, so a Caddy reload cannot lose a route.
"""

from __future__ import annotations

import html
import http.cookies
import http.server
import io
import json
import logging
import sys
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drape_fleet.ingress.links import COOKIE, LOGIN_PATH, BadToken, safe_next, sign, verify
from drape_fleet.ingress.local_engine import EngineUnavailable, LocalEngine
from drape_fleet.ingress.routes import (
    KIND,
    KIND_PREVIEW,
    OWNER,
    PHASE_FILE,
    Route,
    is_ready,
    joined_container,
    logged_phase,
    route_of,
)

log = logging.getLogger("drape-preview-gate")
RECHECK_S = 0.25
"""A pending preview's readiness is checked again at most this often (user requests and the follower alike)."""
CHECK_PATH = "/__drape/check"
HEALTH_PATH = "/__drape/health"
UPSTREAM_HEADER = "X-Drape-Upstream"
MISS_RESYNC_S = 1.0
"""How often a request for a preview the table does not have may make the gate reread the engine."""
Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class GateConfig:
    host: str
    host_domain: str
    owner: str
    key_file: str
    listen_port: int = 7480
    session_s: int = 12 * 3600
    phase_frameworks: tuple[str, ...] = ("nextjs", "react", "vue")
    docker_socket: str = "/var/run/docker.sock"
    resync_s: float = 30.0

    @classmethod
    def load(cls, path: str) -> GateConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{**data, "phase_frameworks": tuple(data.get("phase_frameworks", ()))})


def _page(status: int, title: str, text: str, *, refresh: bool = False) -> Response:
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    body = (f"<!doctype html><html><head><meta charset=utf-8>{meta}<title>{html.escape(title)}</title></head>"
            f"<body style=\"font-family:sans-serif;margin:3em\"><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p></body></html>").encode()
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    if refresh:
        headers["Retry-After"] = "2"
    return status, headers, body


@dataclass
class Gate:
    config: GateConfig
    engine: LocalEngine
    key: bytes
    clock: Callable[[], float] = time.time
    routes: dict[str, Route] = field(default_factory=dict)
    _used: dict[str, int] = field(default_factory=dict)
    _checked: dict[str, float] = field(default_factory=dict)
    _missed_at: float = -MISS_RESYNC_S
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _resyncing: threading.Lock = field(default_factory=threading.Lock)

    # -- the route table ----------------------------------------------------------------------------

    def _labels(self) -> list[str]:
        return [f"{OWNER}={self.config.owner}", f"{KIND}={KIND_PREVIEW}"]

    def read_phase(self, container: str) -> str | None:
        logged = logged_phase(self.engine.get_bytes(f"/containers/{container}/logs",
                                                    {"stdout": "0", "stderr": "1", "tail": "5"}, 128 * 1024))
        if logged is not None and logged != "ready":
            return logged  # still on its way (routes.logged_phase): the file's read can wait
        data = self.engine.get_bytes(f"/containers/{container}/archive", {"path": PHASE_FILE}, 256 * 1024)
        if not data:
            return None
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.next()
                handle = tar.extractfile(member) if member is not None and member.isreg() else None
                return handle.read(65536).decode(errors="replace") if handle else None
        except tarfile.TarError:
            return None

    def _ready(self, route: Route) -> Route:
        ready = is_ready(route, frozenset(self.config.phase_frameworks), self.read_phase)
        return route if ready == route.ready else replace(route, ready=ready)

    def resync(self) -> None:
        """Reread every running preview of this host from the engine (one resync at a time)."""
        with self._resyncing:
            self._resync()

    def _resync(self) -> None:
        found: dict[str, Route] = {}
        for summary in self.engine.containers(self._labels()):
            inspected = self.engine.inspect(summary["Id"])
            joined = joined_container(inspected) if inspected else None
            holder = self.engine.inspect(joined) if joined else None
            route = route_of(inspected, self.config.owner, holder) if inspected else None
            if route is None:
                continue
            known = self.routes.get(route.label)
            if known is not None and known.container == route.container and known.ready:
                route = known  # ready stays ready until the container goes
            else:
                route = self._ready(route)
            if route.label in found and found[route.label].container != route.container:
                log.warning("two previews answer to %s: leaving it unrouted until one goes", route.label)
                found[route.label] = replace(route, ready=False, address="")
                continue
            found[route.label] = route
        with self._lock:
            gone = set(self.routes) - set(found)
            added = {label for label, r in found.items() if r.ready and not (
                label in self.routes and self.routes[label].ready and self.routes[label].container == r.container)}
            self.routes = found
        for label in sorted(gone):
            log.info("route gone: %s", label)
        for label in sorted(added):
            log.info("route ready: %s -> %s", label, found[label].upstream)

    def _resync_for(self, label: str) -> Route | None:
        """A signed-in user asks for a preview the table does not have: it may have started a moment ago, its event
        not followed yet (the runtime answers ready as soon as the preview is), so reread now, at most every
        ``MISS_RESYNC_S`` (many users asking for stopped previews must not make the gate hammer the engine)."""
        now = self.clock()
        if now - self._missed_at < MISS_RESYNC_S:
            return self.routes.get(label)
        self._missed_at = now
        try:
            self.resync()
        except EngineUnavailable as exc:
            log.warning("%s", exc)
        route = self.routes.get(label)
        return self._recheck(label) if route is not None and not route.ready else route

    def recheck_pending(self) -> None:
        for label, route in list(self.routes.items()):
            if not route.ready and route.address:
                self._recheck(label)

    def _recheck(self, label: str, *, fresh: bool = False) -> Route | None:
        """The route, its readiness checked again at most every ``RECHECK_S``. ``fresh`` (a user's request): a
        check made after the request came, waiting out the rest of that interval if need be; else a preview that
        turned ready a moment after the last check would be answered 503 (seen in the lab test)."""
        now = self.clock()
        since = now - self._checked.get(label, 0.0)
        if since < RECHECK_S and fresh:
            time.sleep(RECHECK_S - since)
            now = self.clock()
            since = now - self._checked.get(label, 0.0)
        if since < RECHECK_S:
            return self.routes.get(label)
        self._checked[label] = now
        route = self.routes.get(label)
        if route is None or route.ready:
            return route
        updated = self._ready(route)
        with self._lock:
            if self.routes.get(label) is route:
                self.routes[label] = updated
        if updated.ready:
            log.info("route ready: %s -> %s", label, updated.upstream)
        return updated

    # -- requests -----------------------------------------------------------------------------------

    def label_of(self, host_header: str) -> str | None:
        name = host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()
        suffix = "." + self.config.host_domain
        label = name[: -len(suffix)] if name.endswith(suffix) else ""
        return label if label and "." not in label else None

    def login(self, host_header: str, query: str) -> Response:
        label = self.label_of(host_header)
        params = urllib.parse.parse_qs(query)
        token = (params.get("t") or [""])[0]
        if label is None:
            return _page(404, "Not a preview", "This address is not a preview on this server.")
        try:
            claims = verify(self.key, token, kind="link", host=self.config.host, label=label, now=self.clock())
        except BadToken as exc:
            return _page(403, "Preview link refused", str(exc))
        now = int(self.clock())
        with self._lock:
            self._used = {nonce: exp for nonce, exp in self._used.items() if exp > now}
            if claims.nonce in self._used:
                return _page(403, "Preview link refused", "this preview link was used already: open the preview "
                                                          "again from Drape")
            self._used[claims.nonce] = claims.expires
        session = sign(self.key, workspace=claims.workspace, user=claims.user, host=self.config.host,
                       kind="session", ttl_s=self.config.session_s, now=self.clock())
        cookie = (f"{COOKIE}={session}; Path=/; Max-Age={self.config.session_s}; Secure; HttpOnly; "
                  "SameSite=Lax")
        target = safe_next((params.get("next") or ["/"])[0])
        return 303, {"Location": target, "Set-Cookie": cookie, "Cache-Control": "no-store"}, b""

    def check(self, host_header: str, cookie_header: str) -> Response:
        label = self.label_of(host_header)
        if label is None:
            return _page(404, "Not a preview", "This address is not a preview on this server.")
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(cookie_header or "")
        except http.cookies.CookieError:
            cookies = http.cookies.SimpleCookie()
        session = cookies.get(COOKIE)
        if session is None:
            return _page(401, "Open this preview from Drape", "Previews open for their workspace's user only.")
        try:
            verify(self.key, session.value, kind="session", host=self.config.host, label=label, now=self.clock())
        except BadToken as exc:
            return _page(401, "Open this preview from Drape", str(exc))
        route = self.routes.get(label)
        if route is None:
            route = self._resync_for(label)
        elif not route.ready:
            route = self._recheck(label, fresh=True)
        if route is None:
            return _page(404, "No preview here", "This workspace has no preview on this server (it may have stopped "
                                                 "or moved): open it again from Drape.")
        if not route.ready or not route.address:
            return _page(503, "Starting the preview", "The preview is not ready yet; this page retries by itself.",
                         refresh=True)
        return 200, {UPSTREAM_HEADER: route.upstream, "Cache-Control": "no-store"}, b""

    # -- following the engine -----------------------------------------------------------------------

    def follow(self, stop: threading.Event) -> None:
        """Resync on container events (and every ``resync_s``); recheck pending previews twice a second."""
        def events() -> None:
            since: int | None = None
            while not stop.is_set():
                try:
                    for event in self.engine.events(self._labels(), since, read_timeout=self.config.resync_s):
                        since = int(event.get("time", since or 0))
                        if event.get("Action") in ("start", "die", "destroy", "kill", "stop", "pause", "unpause"):
                            self.resync()
                except EngineUnavailable as exc:
                    log.warning("%s", exc)
                    stop.wait(2)
                except Exception:  # the gate's lifeline: logged, then followed again
                    log.exception("following the engine's events failed; following again in 2 s")
                    stop.wait(2)

        threading.Thread(target=events, name="gate-events", daemon=True).start()
        last = 0.0
        while not stop.is_set():
            try:
                if self.clock() - last >= self.config.resync_s:
                    self.resync()
                    last = self.clock()
                self.recheck_pending()
            except EngineUnavailable as exc:
                log.warning("%s", exc)
            except Exception:  # as above: a surprise must not leave the routes frozen
                log.exception("rereading the engine failed; trying again")
            stop.wait(0.5)


class _Handler(http.server.BaseHTTPRequestHandler):
    gate: Gate
    protocol_version = "HTTP/1.1"  # keep-alive: Caddy reuses its connections to the gate
    server_version = "drape-preview-gate"
    sys_version = ""

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        host = self.headers.get("Host") or ""  # Caddy passes the request's own Host (its site matched on it)
        if parsed.path == LOGIN_PATH:
            status, headers, body = self.gate.login(host, parsed.query)
        elif parsed.path == CHECK_PATH:
            status, headers, body = self.gate.check(host, self.headers.get("Cookie", ""))
        elif parsed.path == HEALTH_PATH:
            ready = sum(1 for r in self.gate.routes.values() if r.ready)
            status, headers, body = 200, {"Content-Type": "application/json"}, json.dumps(
                {"routes": len(self.gate.routes), "ready": ready}).encode()
        else:
            status, headers, body = _page(404, "Not found", "")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests carry tokens in their query: never logged


def serve(config: GateConfig, gate: Gate, stop: threading.Event) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"gate": gate})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", config.listen_port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="gate-http", daemon=True).start()
    threading.Thread(target=gate.follow, args=(stop,), name="gate-follow", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python3 -m drape_fleet.ingress.gate CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = GateConfig.load(args[0])
    key = Path(config.key_file).read_bytes().strip()
    gate = Gate(config, LocalEngine(config.docker_socket), key)
    stop = threading.Event()
    server = serve(config, gate, stop)
    log.info("listening on 127.0.0.1:%d for *.%s", config.listen_port, config.host_domain)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
