"""Fly Machines API calls, in hcloud-python's shape: ``FlyClient(token).machines.stop(app, id)``.

Each method builds one ``Call`` (path, rate-limit action, whether it is idempotent) and hands it to the
seam in ``_client``; bad arguments are refused here, before anything is sent. Routes and bodies follow
the Machines reference (superfly/docs ``machines/api/machines-resource``) and fly-go's ``flaps``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import quote

from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.models import FleetConfig
from drape_fleet.config.secrets import Secrets
from drape_fleet.fly._client import DEFAULT_BASE_URL, Call, FlyHttp
from drape_fleet.fly.domain import (
    MACHINE_STATES,
    STOP_SIGNALS,
    WAIT_STATES,
    Lease,
    Machine,
    StartResult,
    StopSignal,
    WaitState,
)
from drape_fleet.fly.errors import FlyError, FlyNotFound, FlyWaitTimeout

_APP_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
WAIT_MAX_S = 60
"""The reference: "This request will block for up to 60 seconds"."""


def _check(kind: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid Fly {kind}: write it like {example}")
    return value


class MachinesClient:
    """The Machines resource. Methods that change a machine take ``nonce=`` when you hold its lease."""

    def __init__(self, http: FlyHttp) -> None:
        self._http = http

    # -- paths and calls -------------------------------------------------------------------------------

    @staticmethod
    def _path(app: str, machine_id: str | None = None, tail: str = "") -> str:
        _check("app name", app, _APP_RE, "my-app")
        path = f"/apps/{quote(app)}/machines"
        if machine_id is not None:
            path += f"/{quote(_check('machine id', machine_id, _ID_RE, '3d8d413b29d089'))}"
        return path + tail

    def _call(self, method: str, app: str, machine_id: str | None, action: str, verb: str, *, tail: str = "",
              idempotent: bool = False, **extra: Any) -> Any:
        what = f"{verb} machine {machine_id} of app {app}" if machine_id else f"{verb} machines of app {app}"
        call = Call(method, self._path(app, machine_id, tail), what, action, machine_id or app,
                    idempotent=idempotent, **extra)
        return self._http.request(call)

    # -- reading ---------------------------------------------------------------------------------------

    def list(self, app: str, *, states: Iterable[str] | None = None, metadata: Mapping[str, str] | None = None,
             region: str | None = None, include_deleted: bool = False) -> list[Machine]:
        """Machines of ``app``; filters are sent to the API and applied again here, so the answer is exact."""
        wanted = frozenset(states or ())
        unknown = sorted(wanted - MACHINE_STATES)
        if unknown:
            raise ValueError(f"unknown machine state(s) {', '.join(unknown)}: use {', '.join(sorted(MACHINE_STATES))}")
        params: dict[str, str] = {}
        if include_deleted:
            params["include_deleted"] = "true"
        if region:
            params["region"] = region
        if wanted:
            params["state"] = ",".join(sorted(wanted))
        for key, value in (metadata or {}).items():
            params[f"metadata.{_check('metadata key', key, _KEY_RE, 'drape_role')}"] = value
        answer = self._call("GET", app, None, "list", "list", idempotent=True, params=params)
        machines = [Machine.model_validate({**item, "app": app}) for item in answer or []]
        return [m for m in machines
                if (not wanted or m.state in wanted)
                and all(m.metadata.get(k) == v for k, v in (metadata or {}).items())
                and (include_deleted or m.state != "destroyed")]

    def get(self, app: str, machine_id: str) -> Machine:
        answer = self._call("GET", app, machine_id, "get", "get", idempotent=True)
        return Machine.model_validate({**answer, "app": app})

    def metadata(self, app: str, machine_id: str) -> dict[str, str]:
        answer = self._call("GET", app, machine_id, "metadata_get", "read the metadata of", tail="/metadata",
                            idempotent=True)
        return {str(k): str(v) for k, v in (answer or {}).items()}

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, app: str, machine_id: str, *, nonce: str | None = None) -> StartResult:
        answer = self._call("POST", app, machine_id, "start", "start", tail="/start", nonce=nonce)
        return StartResult.model_validate(answer or {})

    def stop(self, app: str, machine_id: str, *, signal: StopSignal | None = None, timeout_s: float | None = None,
             nonce: str | None = None) -> None:
        """Stop: ``signal`` (default SIGINT on Fly's side), then SIGKILL after ``timeout_s`` seconds."""
        body: dict[str, str] = {}
        if signal is not None:
            if signal not in STOP_SIGNALS:
                raise ValueError(f"{signal!r} is not a stop signal: use {', '.join(sorted(STOP_SIGNALS))}")
            body["signal"] = signal
        if timeout_s is not None:
            if not 0 < timeout_s <= 3600:
                raise ValueError(f"stop timeout {timeout_s}s is out of range: use 1 to 3600 seconds")
            body["timeout"] = f"{int(timeout_s)}s"
        self._call("POST", app, machine_id, "stop", "stop", tail="/stop", body=body or None, nonce=nonce)

    def suspend(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._call("POST", app, machine_id, "suspend", "suspend", tail="/suspend", nonce=nonce)

    def destroy(self, app: str, machine_id: str, *, force: bool = False, nonce: str | None = None) -> None:
        """Destroy for good. Without ``force`` Fly refuses a running machine (stop it first)."""
        params = {"force": "true"} if force else None
        self._call("DELETE", app, machine_id, "destroy", "destroy", params=params, nonce=nonce)

    def cordon(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        """Tell the Fly Proxy to send this machine no more requests (idempotent)."""
        self._call("POST", app, machine_id, "cordon", "cordon", tail="/cordon", nonce=nonce, idempotent=True)

    def uncordon(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._call("POST", app, machine_id, "uncordon", "uncordon", tail="/uncordon", nonce=nonce, idempotent=True)

    def set_metadata(self, app: str, machine_id: str, key: str, value: str) -> None:
        tail = f"/metadata/{quote(_check('metadata key', key, _KEY_RE, 'drape_role'))}"
        self._call("POST", app, machine_id, "metadata_set", f"set metadata {key} on", tail=tail,
                   body={"value": value}, idempotent=True)

    def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        tail = f"/metadata/{quote(_check('metadata key', key, _KEY_RE, 'drape_role'))}"
        self._call("DELETE", app, machine_id, "metadata_delete", f"delete metadata {key} of", tail=tail,
                   idempotent=True)

    # -- waiting ---------------------------------------------------------------------------------------

    def wait(self, app: str, machine_id: str, state: WaitState, *, timeout_s: int = WAIT_MAX_S,
             instance_id: str | None = None) -> None:
        """One ``GET /wait``: returns when the machine is in ``state``, raises ``FlyWaitTimeout`` (408) if not."""
        if state not in WAIT_STATES:
            raise ValueError(f"cannot wait for {state!r}: use {', '.join(sorted(WAIT_STATES))}")
        if not 1 <= timeout_s <= WAIT_MAX_S:
            raise ValueError(f"wait timeout {timeout_s}s is out of range: the API waits 1 to {WAIT_MAX_S} s per "
                             "call (use wait_for() for longer)")
        if state == "stopped" and not instance_id:
            raise ValueError("waiting for 'stopped' needs the machine's instance_id (the API requires it): pass "
                             "machine.instance_id, or use wait_for(machine, 'stopped')")
        params = {"state": state, "timeout": str(int(timeout_s))}
        if instance_id:
            params["instance_id"] = instance_id
        self._call("GET", app, machine_id, "wait", f"wait for {state}:", tail="/wait", params=params,
                   idempotent=True, read_timeout_s=timeout_s + 15.0)

    def wait_for(self, machine: Machine, state: WaitState, *, timeout_s: float = 300.0) -> Machine:
        """Wait past the API's 60 s limit (a series of waits); return the machine as it then is."""
        if not machine.app:
            raise ValueError("the machine does not say its app: get it through this client first")
        deadline = time.monotonic() + timeout_s
        while True:
            left = int(deadline - time.monotonic())
            try:
                self.wait(machine.app, machine.id, state, timeout_s=max(1, min(WAIT_MAX_S, left)),
                          instance_id=machine.instance_id or None)
                return self.get(machine.app, machine.id) if state != "destroyed" else machine
            except FlyWaitTimeout:
                if time.monotonic() >= deadline:
                    raise

    # -- leases ----------------------------------------------------------------------------------------

    @staticmethod
    def _lease(answer: Any) -> Lease:
        data = answer.get("data", answer) if isinstance(answer, dict) else answer
        return Lease.model_validate(data)

    def acquire_lease(self, app: str, machine_id: str, *, ttl_s: int = 60, description: str = "") -> Lease:
        """Take the machine's lease; later calls pass ``nonce=lease.nonce``. 409 if someone else holds it."""
        if not 1 <= ttl_s <= 3600:
            raise ValueError(f"lease ttl {ttl_s}s is out of range: use 1 to 3600 seconds")
        answer = self._call("POST", app, machine_id, "lease_acquire", "acquire the lease of", tail="/lease",
                            body={"ttl": ttl_s, "description": description})
        return self._lease(answer)

    def refresh_lease(self, app: str, machine_id: str, nonce: str, *, ttl_s: int = 60) -> Lease:
        answer = self._call("POST", app, machine_id, "lease_acquire", "refresh the lease of", tail="/lease",
                            body={"ttl": ttl_s}, nonce=nonce)
        return self._lease(answer)

    def get_lease(self, app: str, machine_id: str) -> Lease | None:
        try:
            answer = self._call("GET", app, machine_id, "lease_get", "read the lease of", tail="/lease",
                                idempotent=True)
        except FlyNotFound as exc:
            if "lease" in exc.message.lower():
                return None
            raise
        return self._lease(answer)

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        if not nonce:
            raise ValueError("releasing a lease needs its nonce (from acquire_lease)")
        self._call("DELETE", app, machine_id, "lease_release", "release the lease of", tail="/lease", nonce=nonce)

    @contextmanager
    def leased(self, app: str, machine_id: str, *, ttl_s: int = 60,
               description: str = "drape-fleet") -> Iterator[Lease]:
        """Hold the lease for the ``with`` block; released afterwards even if the block fails."""
        lease = self.acquire_lease(app, machine_id, ttl_s=ttl_s, description=description)
        try:
            yield lease
        finally:
            with suppress(FlyNotFound):  # expired meanwhile: nothing left to release
                self.release_lease(app, machine_id, lease.nonce)


class FlyClient:
    """Entry point: ``FlyClient.from_secrets(load_secrets()).machines.list("my-app")``."""

    def __init__(self, token: str, *, base_url: str = DEFAULT_BASE_URL, **options: Any) -> None:
        self._http = FlyHttp(token, base_url=base_url, **options)
        self.machines = MachinesClient(self._http)

    @classmethod
    def from_secrets(cls, secrets: Secrets, **options: Any) -> FlyClient:
        """The token is ``fly_api_token`` (env DRAPE_FLY_API_TOKEN or the secrets file)."""
        return cls(secrets.value("fly_api_token"), **options)

    @classmethod
    def for_fleet(cls, fleet: FleetConfig, secrets: Secrets, **options: Any) -> FlyClient:
        """A client for the fleet file's ``[fly]`` section (its ``api_url``; the lab points it at the fake)."""
        if fleet.fly is None:
            raise ConfigError(f"{fleet.environment.name} fleet", [Problem(
                "fly", "this section is missing", 'add [fly] with apps = ["your-fly-app"] to the fleet file')])
        return cls(secrets.value("fly_api_token"), base_url=fleet.fly.api_url, **options)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FlyClient", "FlyError", "MachinesClient"]
