"""The Fly Machines fake's world: apps, machines and their state machine, leases, tokens, rate limits.

No HTTP here (``fly_machines`` serves it). Sources, and what each rule rests on:

* superfly/docs ``machines/machine-states``: the states; transient states settle by themselves.
* superfly/docs ``machines/api/machines-resource`` and ``reference/machines/_machines_*.erb``: routes, bodies,
  the example answers copied in shape (``{"ok": true}``, the lease envelope, ``previous_state``), 408 on a
  wait that times out, 409 on a lease held by someone else, ``instance_id`` required to wait for stopped,
  ``force`` to destroy a running machine, suspended machines destroyable without force.
* ``machines/api/working-with-machines-api``: 401 for a missing/invalid token, 1 req/s per action per
  machine with bursts of 3, Get Machine 5 req/s with bursts of 10.
* fly-go ``flaps``: error body ``{"error": "...", "status": "..."}``, the ``fly-machine-lease-nonce`` header
  on mutations, stop body ``{"signal", "timeout": "10s"}``, signal names.
* Messages seen from the real API (recorded in public client code): ``Authenticate: token validation
  error`` (401), ``unauthorized`` (403, token without permission), ``machine not found`` / ``app not found``
  / ``lease not found`` (404), ``aborted: machine ID … lease currently held by …`` (409),
  ``failed_precondition: …`` (412), ``deadline_exceeded: machine failed to reach desired state …`` (408).

Inferred, not documented (kept consistent with the above): 412 for start/stop/suspend/destroy from a state
that does not allow it, stopping an already stopped machine being a no-op, the 429 body and its
``Retry-After`` header, comma-separated ``state`` filter on list, a wait on an old ``instance_id`` never
succeeding (old versions read as ``replaced``).
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakes.loopback import Faults

SIGNALS = frozenset({"SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM"})
WAIT_STATES = frozenset({"started", "stopped", "suspended", "destroyed"})
# What each transient state settles into.
SETTLES_TO = {"starting": "started", "stopping": "stopped", "suspending": "suspended", "destroying": "destroyed",
              "replacing": "started"}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


@dataclass(frozen=True)
class Grant:
    """What a token may do: ``apps`` ("*" for all) and whether it may change anything."""

    owner: str = "ops@example.com"
    apps: frozenset[str] | str = "*"
    write: bool = True


@dataclass
class Lease:
    nonce: str
    owner: str
    description: str
    expires_at: float
    version: str

    def to_api(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "expires_at": int(self.expires_at), "owner": self.owner,
                "description": self.description, "version": self.version}


@dataclass
class FakeMachine:
    id: str
    name: str
    region: str
    state: str
    instance_id: str
    private_ip: str
    config: dict[str, Any]
    created_at: str
    updated_at: str
    events: list[dict[str, Any]] = field(default_factory=list)
    lease: Lease | None = None
    settles_at: float | None = None
    cordoned: bool = False

    def to_api(self) -> dict[str, Any]:
        image = str(self.config.get("image", "registry-1.docker.io/library/node:22"))
        repository, _, tag = image.partition(":")
        return {"id": self.id, "name": self.name, "state": self.state, "region": self.region,
                "image_ref": {"registry": repository.split("/")[0], "repository": repository.split("/", 1)[-1],
                              "tag": tag or "latest", "digest": "sha256:" + "0" * 64},
                "instance_id": self.instance_id, "private_ip": self.private_ip, "created_at": self.created_at,
                "updated_at": self.updated_at, "config": self.config, "events": list(self.events)}


def _rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_instance_id() -> str:
    """26 Crockford characters, like the ULIDs Fly uses for versions."""
    return "01" + "".join(secrets.choice(_CROCKFORD) for _ in range(24))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class FlyWorld:
    """Everything the fake knows. All methods take the lock; ``wait`` blocks on it like the real API."""

    def __init__(self, tokens: Mapping[str, Grant], *, transition_s: float = 0.05,
                 rate: tuple[float, int] = (1.0, 3), get_rate: tuple[float, int] = (5.0, 10),
                 clock: Callable[[], float] = time.time) -> None:
        self.tokens = dict(tokens)
        self.transition_s = transition_s
        self.rate, self.get_rate = rate, get_rate
        self.clock = clock
        self.apps: dict[str, dict[str, FakeMachine]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults = Faults()
        self.cond = threading.Condition()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    # -- seeding (tests and the CLI) ---------------------------------------------------------------------

    def add_app(self, name: str) -> None:
        with self.cond:
            self.apps.setdefault(name, {})

    def add_machine(self, app: str, *, state: str = "started", name: str | None = None, region: str = "cdg",
                    metadata: Mapping[str, str] | None = None) -> FakeMachine:
        with self.cond:
            now = self.clock()
            machine_id = secrets.token_hex(7)
            machine = FakeMachine(
                id=machine_id, name=name or f"preview-{machine_id[:6]}", region=region, state=state,
                instance_id=new_instance_id(), private_ip=f"fdaa:0:18:a7b:196:{machine_id[:4]}:{machine_id[4:8]}:2",
                config={"image": "registry-1.docker.io/library/node:22", "metadata": dict(metadata or {}),
                        "guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048}},
                created_at=_rfc3339(now), updated_at=_rfc3339(now),
                events=[{"type": "launch", "status": "created", "source": "user", "timestamp": int(now * 1000)}])
            self.apps.setdefault(app, {})[machine_id] = machine
            return machine

    def inject(self, status: int, body: Any = None, *, times: int = 1, method: str | None = None,
               path_contains: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``times`` matching requests with ``status``/``body`` (proxy or server failures)."""
        self.faults.inject(status, body, times=times, method=method, path_contains=path_contains, headers=headers)

    # -- the checks every request goes through -----------------------------------------------------------

    def authorise(self, header: str | None, app: str, *, write: bool) -> Grant:
        token = ""
        if header and header.startswith("Bearer "):
            token = header[len("Bearer "):]
        elif header and header.startswith("FlyV1 "):
            token = header
        grant = self.tokens.get(token.strip()) if token else None
        if grant is None:
            raise ApiError(401, "Authenticate: token validation error")
        if (grant.apps != "*" and app not in grant.apps) or (write and not grant.write):
            raise ApiError(403, "unauthorized")
        return grant

    def rate_limit(self, action: str, scope: str) -> None:
        per_second, burst = self.get_rate if action == "get" else self.rate
        with self.cond:
            now = self.clock()
            bucket = self._buckets.setdefault((action, scope), _Bucket(float(burst), now))
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
            if bucket.tokens < 1.0:
                retry_after = max(1, math.ceil((1.0 - bucket.tokens) / per_second))
                raise ApiError(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
            bucket.tokens -= 1.0

    # -- helpers under the lock --------------------------------------------------------------------------

    def _settle(self, machine: FakeMachine) -> None:
        if machine.settles_at is not None and self.clock() >= machine.settles_at:
            self._set_state(machine, SETTLES_TO[machine.state], "flyd")
        if machine.lease is not None and machine.lease.expires_at <= self.clock():
            machine.lease = None

    def _set_state(self, machine: FakeMachine, state: str, source: str = "user") -> None:
        now = self.clock()
        machine.state = state
        machine.settles_at = now + self.transition_s if state in SETTLES_TO else None
        machine.updated_at = _rfc3339(now)
        machine.events.insert(0, {"type": state, "status": state, "source": source, "timestamp": int(now * 1000)})
        self.cond.notify_all()

    def _machines(self, app: str) -> dict[str, FakeMachine]:
        if app not in self.apps:
            raise ApiError(404, "app not found")
        return self.apps[app]

    def machine(self, app: str, machine_id: str, *, destroyed_ok: bool = False) -> FakeMachine:
        machine = self._machines(app).get(machine_id)
        if machine is None:
            raise ApiError(404, "machine not found")
        self._settle(machine)
        if machine.state == "destroyed" and not destroyed_ok:
            raise ApiError(404, "machine not found")
        return machine

    def _guard_lease(self, machine: FakeMachine, nonce: str | None) -> None:
        lease = machine.lease
        if lease is not None and nonce != lease.nonce:
            expires = _rfc3339(lease.expires_at)
            raise ApiError(409, f"aborted: machine ID {machine.id} lease currently held by {lease.owner}, "
                                f"expires at {expires}")

    @staticmethod
    def _precondition(machine: FakeMachine, verb: str) -> ApiError:
        if machine.state == "replacing":
            return ApiError(412, f"failed_precondition: machine getting replaced, refusing to {verb}")
        return ApiError(412, f"failed_precondition: unable to {verb} machine from current state: '{machine.state}'")

    # -- the API's operations ------------------------------------------------------------------------------

    def list_machines(self, app: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        with self.cond:
            machines = list(self._machines(app).values())
            for machine in machines:
                self._settle(machine)
            states = {s for s in query.get("state", "").split(",") if s}
            metadata = {k[len("metadata."):]: v for k, v in query.items() if k.startswith("metadata.")}
            deleted = query.get("include_deleted", "").lower() in ("true", "1")
            return [m.to_api() for m in machines
                    if (deleted or m.state != "destroyed") and (not states or m.state in states)
                    and (not query.get("region") or m.region == query["region"])
                    and all(m.config.get("metadata", {}).get(k) == v for k, v in metadata.items())]

    def get(self, app: str, machine_id: str) -> dict[str, Any]:
        with self.cond:
            return self.machine(app, machine_id).to_api()

    def start(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        with self.cond:
            machine = self.machine(app, machine_id)
            self._guard_lease(machine, nonce)
            if machine.state not in ("stopped", "suspended", "failed"):
                raise self._precondition(machine, "start")
            previous = machine.state
            self._set_state(machine, "starting")
            return {"previous_state": previous, "migrated": False, "new_host": ""}

    def stop(self, app: str, machine_id: str, body: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
        signal, timeout = body.get("signal"), body.get("timeout")
        if signal is not None and signal not in SIGNALS:
            raise ApiError(400, f"invalid signal {signal!r}")
        if timeout is not None and not (isinstance(timeout, str) and re.fullmatch(r"\d+(ms|s|m|h)", timeout)):
            raise ApiError(400, f"invalid timeout {timeout!r}: expected a duration like \"10s\"")
        with self.cond:
            machine = self.machine(app, machine_id)
            self._guard_lease(machine, nonce)
            if machine.state in ("started", "starting", "suspended", "failed"):
                self._set_state(machine, "stopping")
            elif machine.state not in ("stopped", "stopping", "created"):
                raise self._precondition(machine, "stop")
            return {"ok": True}

    def suspend(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        with self.cond:
            machine = self.machine(app, machine_id)
            self._guard_lease(machine, nonce)
            if machine.state != "started":
                raise self._precondition(machine, "suspend")
            self._set_state(machine, "suspending")
            return {"ok": True}

    def destroy(self, app: str, machine_id: str, force: bool, nonce: str | None) -> dict[str, Any]:
        with self.cond:
            machine = self.machine(app, machine_id)
            self._guard_lease(machine, nonce)
            if not force and machine.state not in ("stopped", "suspended", "created", "failed"):
                raise ApiError(412, "failed_precondition: unable to destroy machine, not currently stopped or "
                                    "suspended (use force=true)")
            self._set_state(machine, "destroying")
            machine.lease = None
            return {"ok": True}

    def cordon(self, app: str, machine_id: str, nonce: str | None, cordoned: bool) -> dict[str, Any]:
        with self.cond:
            machine = self.machine(app, machine_id)
            self._guard_lease(machine, nonce)
            machine.cordoned = cordoned
            return {"ok": True}

    def wait(self, app: str, machine_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        state = query.get("state", "started")
        if state not in WAIT_STATES:
            raise ApiError(400, f"invalid state {state!r}: must be one of started, stopped, suspended, destroyed")
        try:
            timeout = min(60, max(1, int(query.get("timeout", "60"))))  # "blocks for up to 60 seconds"
        except ValueError:
            raise ApiError(400, f"invalid timeout {query.get('timeout')!r}") from None
        instance_id = query.get("instance_id")
        if state == "stopped" and not instance_id:
            raise ApiError(400, "instance_id is required when waiting for the stopped state")
        with self.cond:
            deadline = self.clock() + timeout
            machine = self.machine(app, machine_id, destroyed_ok=True)
            while True:
                self._settle(machine)
                current = machine.state if instance_id in (None, machine.instance_id) else "replaced"
                if current == state:
                    return {"ok": True}
                if self.clock() >= deadline:
                    raise ApiError(408, f"deadline_exceeded: machine failed to reach desired state, {state}, "
                                        f"currently {current}")
                self.cond.wait(0.02)

    def lease_create(self, app: str, machine_id: str, body: Mapping[str, Any], query: Mapping[str, str],
                     nonce: str | None, owner: str) -> dict[str, Any]:
        ttl = body.get("ttl", query.get("ttl", 30))
        if not isinstance(ttl, int) and not (isinstance(ttl, str) and ttl.isdigit()):
            raise ApiError(400, f"invalid ttl {ttl!r}")
        with self.cond:
            machine = self.machine(app, machine_id)
            if machine.lease is not None:
                self._guard_lease(machine, nonce)  # someone else's lease: 409; our own: refreshed below
                machine.lease.expires_at = self.clock() + int(ttl)
            else:
                machine.lease = Lease(secrets.token_hex(6), owner, str(body.get("description", "")),
                                      self.clock() + int(ttl), machine.instance_id)
            return {"status": "success", "data": machine.lease.to_api()}

    def lease_get(self, app: str, machine_id: str) -> dict[str, Any]:
        with self.cond:
            machine = self.machine(app, machine_id)
            if machine.lease is None:
                raise ApiError(404, "lease not found")
            return {"status": "success", "data": machine.lease.to_api()}

    def lease_release(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        if not nonce:
            raise ApiError(400, "the fly-machine-lease-nonce header is required to release a lease")
        with self.cond:
            machine = self.machine(app, machine_id)
            if machine.lease is None:
                raise ApiError(404, "lease not found")
            self._guard_lease(machine, nonce)
            machine.lease = None
            return {"status": "success", "data": {"ok": True}}

    def metadata(self, app: str, machine_id: str) -> dict[str, str]:
        with self.cond:
            return dict(self.machine(app, machine_id).config.get("metadata") or {})

    def set_metadata(self, app: str, machine_id: str, key: str, body: Mapping[str, Any] | None) -> None:
        if not isinstance(body, Mapping) or not isinstance(body.get("value"), str):
            raise ApiError(400, "the body must be {\"value\": \"...\"}")
        with self.cond:
            machine = self.machine(app, machine_id)
            machine.config.setdefault("metadata", {})[key] = body["value"]

    def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        with self.cond:
            self.machine(app, machine_id).config.get("metadata", {}).pop(key, None)
