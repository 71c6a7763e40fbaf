"""The only code that speaks HTTP to the Robot webservice.

It owns the base URL, HTTP Basic auth with the webservice user, timeouts, form-encoded bodies, retries with
backoff, and turning every error answer into a ``RobotError`` (``errors.py``). The resource clients
(``servers.py``, ``boot.py``, ...) call ``request`` and never see HTTP.

Retries, and what is never retried:
- 403 RATE_LIMIT_EXCEEDED: waited out with growing pauses (5 s doubling to 60 s, or the ``Retry-After`` Robot
  gives) within a total budget, then raised with the limit Robot states (``max_request`` per ``interval``).
- A lost connection, a timeout or 503 maintenance: retried a few times for reads (GET) only. A POST or DELETE
  that got no answer may have happened (a reset!), so it is raised, saying so, and never repeated blindly.
- 401: never retried, and after it every client in this process refuses further calls with the same credentials
  without sending them: Robot blocks the caller's IP for 10 minutes after three failed logins, so one wrong
  password must not become three. Corrected credentials are sent as usual.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import requests

from drape_fleet.hetzner.robot.errors import (
    AUTH_HINT,
    RobotAuthError,
    RobotError,
    RobotRateLimited,
    RobotUnavailable,
    error_for,
)

DEFAULT_BASE_URL = "https://robot-ws.your-server.de"


@dataclass(frozen=True)
class RetryPolicy:
    rate_limit_budget_s: float = 180.0
    """How long to wait out RATE_LIMIT_EXCEEDED in total before giving up (0: do not wait)."""
    first_delay_s: float = 5.0
    max_delay_s: float = 60.0
    read_attempts: int = 3
    """Attempts for a GET that got no answer (connection lost, timeout) or 503 maintenance."""


def check_base_url(base_url: str) -> str:
    """HTTPS, or plain HTTP only on loopback (a local fake): the credentials travel in every request."""
    parts = urlsplit(base_url)
    if parts.scheme == "https" and parts.hostname:
        return base_url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return base_url.rstrip("/")
    raise ValueError(f"Robot base URL {base_url!r} must be https:// (plain http only on loopback, for a local "
                     f"fake). Fix: use {DEFAULT_BASE_URL}")


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ip_address(hostname).is_loopback
    except ValueError:
        return False


_REFUSED: dict[tuple[str, str, str], str] = {}
"""(base URL, user, SHA-256 of the password) -> the request Robot refused them on."""


def _credentials_key(base_url: str, user: str, password: str) -> tuple[str, str, str]:
    return base_url, user, hashlib.sha256(password.encode()).hexdigest()


class RobotHttp:
    def __init__(self, user: str, password: str, *, base_url: str = DEFAULT_BASE_URL,
                 timeout: tuple[float, float] = (10.0, 30.0), retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> None:
        if not user or not password:
            raise ValueError("the Robot webservice user and password must not be empty. Fix: set robot_user and "
                             "robot_password (see README, Secrets)")
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep: Callable[[float], None] = sleep or time.sleep
        self.clock: Callable[[], float] = clock or time.monotonic
        self._session = requests.Session()
        self._session.auth = (user, password)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "drape-fleet"})
        self._credentials = _credentials_key(self.base_url, user, password)

    def close(self) -> None:
        self._session.close()

    def request(self, method: str, path: str, form: Sequence[tuple[str, str]] | None = None) -> Any:
        """The decoded JSON answer (None for an empty body), or a ``RobotError``."""
        described = f"{method} {path}"
        if (refused := _REFUSED.get(self._credentials)) is not None:
            raise RobotAuthError(401, "UNAUTHORIZED", f"not sent: Robot already refused these credentials "
                                 f"({refused})", request=described, hint=AUTH_HINT)
        delay = self.retry.first_delay_s
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._session.request(method, self.base_url + path, data=list(form or ()) or None,
                                                 timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                if method == "GET" and attempt < self.retry.read_attempts:
                    self.sleep(delay)
                    delay = min(delay * 2, self.retry.max_delay_s)
                    continue
                raise self._unreachable(described, method, exc) from None
            body = _decode(response)
            if response.ok:
                return body
            error = error_for(response.status_code, body, request=described)
            if isinstance(error, RobotAuthError):
                _REFUSED[self._credentials] = described
                raise error
            if isinstance(error, RobotRateLimited):
                pause = _retry_after(response) or delay
                if waited + pause <= self.retry.rate_limit_budget_s:
                    self.sleep(pause)
                    waited += pause
                    delay = min(delay * 2, self.retry.max_delay_s)
                    continue
                raise RobotRateLimited(error.status, error.code, error.message, request=described,
                                       max_request=error.max_request, interval=error.interval, waited_s=waited)
            if response.status_code == 503 and method == "GET" and attempt < self.retry.read_attempts:
                self.sleep(delay)
                delay = min(delay * 2, self.retry.max_delay_s)
                continue
            raise error

    def _unreachable(self, described: str, method: str, exc: Exception) -> RobotError:
        reason = type(exc).__name__
        if method == "GET":
            return RobotUnavailable(0, "UNREACHABLE", f"{self.base_url} did not answer ({reason})",
                                    request=described)
        return RobotUnavailable(0, "UNREACHABLE", f"{self.base_url} did not answer ({reason}); the request may or "
                                "may not have been carried out", request=described,
                                hint="check in Robot whether it happened before running it again")


def _decode(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
