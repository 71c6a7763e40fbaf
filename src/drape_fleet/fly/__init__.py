"""A client for the Fly Machines API (list, get, start, stop, suspend, destroy, wait, leases, cordon,
metadata), with one seam (``_client``) owning the base URL, token, timeouts, rate limits, retries and errors."""

from drape_fleet.fly._client import DEFAULT_BASE_URL, NONCE_HEADER, RetryPolicy
from drape_fleet.fly.client import FlyClient, MachinesClient
from drape_fleet.fly.domain import Lease, Machine, MachineState, StartResult, WaitState
from drape_fleet.fly.errors import (
    FlyAuthError,
    FlyBadRequest,
    FlyConflict,
    FlyError,
    FlyNotFound,
    FlyPermissionError,
    FlyPreconditionFailed,
    FlyRateLimited,
    FlyServerError,
    FlyUnavailable,
    FlyValidationError,
    FlyWaitTimeout,
)
from drape_fleet.fly.ratelimit import Rate, RateLimits

__all__ = [
    "DEFAULT_BASE_URL",
    "NONCE_HEADER",
    "FlyAuthError",
    "FlyBadRequest",
    "FlyClient",
    "FlyConflict",
    "FlyError",
    "FlyNotFound",
    "FlyPermissionError",
    "FlyPreconditionFailed",
    "FlyRateLimited",
    "FlyServerError",
    "FlyUnavailable",
    "FlyValidationError",
    "FlyWaitTimeout",
    "Lease",
    "Machine",
    "MachineState",
    "MachinesClient",
    "Rate",
    "RateLimits",
    "RetryPolicy",
    "StartResult",
    "WaitState",
]
