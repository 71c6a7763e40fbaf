"""The one seam to the Fly Machines API: base URL, token, timeouts, rate limits, retries, error mapping.

Nothing else in the package touches HTTP. Retry rules:

* 429 is retried for every call (the request was refused, not performed), after ``Retry-After`` when the
  answer has one, else after an exponential backoff;
* 5xx and transport failures are retried only for idempotent calls (GETs, metadata writes, cordon):
  a start, stop or destroy that failed half-way is reported, never repeated blindly;
* everything else maps to the exception in ``errors`` that says what to do.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from drape_fleet.endpoints import require_secure_endpoint
from drape_fleet.fly.errors import FlyError, FlyUnavailable, error_for
from drape_fleet.fly.ratelimit import RateLimiter, RateLimits

DEFAULT_BASE_URL = "https://api.machines.dev/v1"
NONCE_HEADER = "fly-machine-lease-nonce"
REQUEST_ID_HEADER = "fly-request-id"
RETRYABLE_5XX = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    """Tries in total, the first one included."""
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 60.0
    """A ``Retry-After`` longer than this is not waited out: the call fails with the rate-limit error."""

    def backoff(self, attempt: int) -> float:
        """Exponential, with jitter in its upper half so parallel callers spread out."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (attempt - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 (jitter, not security)


@dataclass(frozen=True)
class Call:
    """One API call, described before it is sent."""

    method: str
    path: str
    what: str
    """How errors name the call, e.g. "stop machine 3d8d413b29d089 of app my-app"."""
    action: str
    """Rate-limit action ("get", "list", "start", ...)."""
    scope: str
    """Rate-limit identifier: the machine ID, or the app for app-wide calls."""
    params: Mapping[str, str] | None = None
    body: Any = None
    nonce: str | None = None
    idempotent: bool = False
    read_timeout_s: float | None = None


def _authorization(token: str) -> str:
    """Macaroon tokens (``fly tokens create`` prints ``FlyV1 fm2_...``) go as they are, others as Bearer."""
    token = token.strip()
    return token if token.startswith("FlyV1 ") else f"Bearer {token}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _message(response: requests.Response) -> str:
    """The API's own words: ``{"error": "..."}`` (fly-go's errorResponse), else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return json.dumps(body)[:300]


class FlyHttp:
    """Sends ``Call``s. ``sleep`` is what backoffs and ``Retry-After`` waits call (tests record them instead);
    the rate limiter always waits in real time, as the API's own limits do."""

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 30.0, retry: RetryPolicy | None = None, limits: RateLimits | None = None,
                 sleep: Callable[[float], None] = time.sleep, user_agent: str = "drape-fleet") -> None:
        if not token or not token.strip():
            raise ValueError("the Fly API token is empty: set DRAPE_FLY_API_TOKEN or fly_api_token in the "
                             "secrets file")
        self.base_url = require_secure_endpoint(base_url, default=DEFAULT_BASE_URL)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.retry = retry or RetryPolicy()
        self.limiter = RateLimiter(limits)
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update({"Authorization": _authorization(token), "Accept": "application/json",
                                      "User-Agent": user_agent})
        self._session.trust_env = False  # no proxy from the environment sees the token

    def __repr__(self) -> str:
        return f"FlyHttp({self.base_url!r}, token=<hidden>)"

    def close(self) -> None:
        self._session.close()

    def request(self, call: Call) -> Any:
        """Send ``call`` (rate-limited, retried as the rules allow); return the decoded JSON answer or None."""
        url = f"{self.base_url}{call.path}"
        headers = {NONCE_HEADER: call.nonce} if call.nonce else {}
        timeout = (self.connect_timeout_s, call.read_timeout_s or self.read_timeout_s)
        attempts = max(1, self.retry.attempts)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            self.limiter.acquire(call.action, call.scope)
            try:
                response = self._session.request(call.method, url, params=call.params, json=call.body,
                                                  headers=headers, timeout=timeout)
            except requests.RequestException as exc:
                if call.idempotent and not last:
                    self._sleep(self.retry.backoff(attempt))
                    continue
                outcome = "" if call.idempotent else " (the change may or may not have happened: get the machine)"
                raise FlyUnavailable(call.what, 0, f"{type(exc).__name__} reaching {self.base_url}{outcome}: "
                                                   f"{exc}") from None
            status = response.status_code
            if status == 429 and not last:
                wait = _retry_after(response)
                if wait is None:
                    wait = self.retry.backoff(attempt)
                if wait <= self.retry.retry_after_max_s:
                    self._sleep(wait)
                    continue
            if status in RETRYABLE_5XX and call.idempotent and not last:
                self._sleep(self.retry.backoff(attempt))
                continue
            if status >= 400:
                message = _message(response)
                if status == 429:
                    message = f"{message} (after {attempt} tries; Retry-After {response.headers.get('Retry-After')})"
                raise error_for(call.what, status, message, response.headers.get(REQUEST_ID_HEADER, ""))
            return self._decode(call, response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _decode(call: Call, response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise FlyError(call.what, response.status_code, f"the answer is not JSON: {response.text[:200]!r}",
                           hint="check that the base URL points at the Machines API (…/v1)") from None
