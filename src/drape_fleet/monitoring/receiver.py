"""A webhook receiver for Alertmanager's notifications: the lab's stand-in for the outside services alerts go
to (an on-call tool, a mail gateway, a heartbeat service). The lab tests listen with it on this machine's
private lab address, where the lab's fleet file sends every receiver; `invoke monitoring.receiver --env lab`
shows what arrives.

It records every notification (Alertmanager's webhook payload: ``status``, ``receiver``, ``alerts`` with their
``labels``, ``annotations`` and ``status``) with the path it came to and when, and lets a caller wait for one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from drape_fleet.config.monitoring import MonitoringSettings

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Notification:
    path: str
    received: float
    """``time.monotonic()`` when it arrived."""
    payload: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.payload.get("status", ""))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.payload.get("alerts", [])
        return alerts

    def has(self, alertname: str, status: str = "firing", **labels: str) -> bool:
        """Whether an alert called ``alertname`` with ``status`` and these labels is in it."""
        return any(alert.get("status") == status and alert.get("labels", {}).get("alertname") == alertname
                   and all(alert.get("labels", {}).get(k) == v for k, v in labels.items()) for alert in self.alerts)

    def describe(self) -> str:
        names = ", ".join(f"{a.get('labels', {}).get('alertname')}[{a.get('labels', {}).get('host', '-')}] "
                          f"{a.get('status')}" for a in self.alerts)
        return f"{self.path}: {self.status}: {names}"


@dataclass
class _Inbox:
    notifications: list[Notification] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)
    on_arrival: Callable[[Notification], None] | None = None


def _handler(inbox: _Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self.send_error(400, "not JSON")
                return
            notification = Notification(urlsplit(self.path).path, time.monotonic(), payload)
            with inbox.condition:
                inbox.notifications.append(notification)
                inbox.condition.notify_all()
            if inbox.on_arrival is not None:
                inbox.on_arrival(notification)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # the caller reports what matters

    return Handler


class AlertReceiver:
    """``with AlertReceiver(address, port) as receiver: receiver.wait_for(...)``."""

    def __init__(self, address: str, port: int, on_arrival: Callable[[Notification], None] | None = None) -> None:
        self._inbox = _Inbox(on_arrival=on_arrival)
        self._server = ThreadingHTTPServer((address, port), _handler(self._inbox))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-receiver", daemon=True)

    def __enter__(self) -> AlertReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def now() -> float:
        """The receiver's clock (``received`` times and ``since``)."""
        return time.monotonic()

    def notifications(self, path: str | None = None) -> list[Notification]:
        with self._inbox.condition:
            return [n for n in self._inbox.notifications if path is None or n.path == path]

    def wait_for(self, matches: Callable[[Notification], bool], timeout: float, since: float = 0.0) -> Notification:
        """The first notification received after ``since`` (monotonic) that ``matches``; ``TimeoutError``
        listing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._inbox.condition:
            while True:
                for notification in self._inbox.notifications:
                    if notification.received >= since and matches(notification):
                        return notification
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [n.describe() for n in self._inbox.notifications if n.received >= since]
                    raise TimeoutError(f"no matching notification within {timeout:.0f} s; received: "
                                       f"{seen[-10:] or 'nothing'}")
                self._inbox.condition.wait(left)


def receiver_endpoint(monitoring: MonitoringSettings) -> tuple[str, int]:
    """Where the fleet's inline (lab) webhook receivers point: one address and port for all of them."""
    endpoints = {(urlsplit(str(r.url)).hostname, urlsplit(str(r.url)).port) for r in monitoring.receivers if r.url}
    if len(endpoints) != 1:
        raise ValueError("the fleet's receivers are not one local webhook server (only the lab's are)")
    [(host, port)] = endpoints
    if host is None or port is None:
        raise ValueError("the lab's receiver URLs need an address and a port")
    return host, port


def receiver_path(monitoring: MonitoringSettings, name: str) -> str:
    """The path on the lab's webhook server that receiver ``name`` posts to."""
    return urlsplit(str(monitoring.receiver(name).url)).path
