"""What the Fly Machines API answers, as plain immutable data (no HTTP here).

Shapes follow the published reference (superfly/docs ``reference/machines/*.erb`` examples, the Swagger
document behind docs.machines.dev, superfly/fly-go ``machine_types.go``). Unknown fields are ignored: the
API adds fields over time and an old client must keep working.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

MachineState = Literal[
    "created", "starting", "started", "stopping", "stopped", "suspending", "suspended", "replacing",
    "restarting", "updating", "destroying", "destroyed", "failed", "launch_failed", "replaced", "migrated",
]
"""Every state the machine-states page names (persistent, transient, terminal)."""

WaitState = Literal["started", "stopped", "suspended", "destroyed"]
"""The states ``GET /wait`` accepts (reference: "Values are: started, stopped, suspended, or destroyed")."""

StopSignal = Literal["SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM"]
"""The signals fly-go's ``StopMachineInput`` enumerates for ``POST /stop``."""

MACHINE_STATES: frozenset[str] = frozenset(get_args(MachineState))
WAIT_STATES: frozenset[str] = frozenset(get_args(WaitState))
STOP_SIGNALS: frozenset[str] = frozenset(get_args(StopSignal))

PERSISTENT_STATES = frozenset({"created", "started", "stopped", "suspended", "failed"})
TRANSIENT_STATES = frozenset({"starting", "stopping", "restarting", "suspending", "destroying", "launch_failed",
                              "updating", "replacing"})
TERMINAL_STATES = frozenset({"destroyed", "replaced", "migrated"})


class _ApiData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Machine(_ApiData):
    """One Fly Machine as ``GET /apps/{app}/machines/{id}`` returns it, plus the app it belongs to."""

    id: str
    app: str = ""
    """Not in the API's answer: the client fills it in, so a machine can be passed around on its own."""
    name: str = ""
    state: str
    region: str = ""
    instance_id: str = ""
    """The current version; ``wait?state=stopped`` needs it (reference: "Required when waiting for stopped")."""
    private_ip: str = ""
    created_at: str = ""
    updated_at: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    nonce: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        found = self.config.get("metadata") or {}
        return {str(key): str(value) for key, value in found.items()} if isinstance(found, dict) else {}

    @property
    def is_running(self) -> bool:
        return self.state in ("starting", "started")

    def describe(self) -> str:
        return f"{self.app + '/' if self.app else ''}{self.id} ({self.name or 'unnamed'}, {self.state}, {self.region})"


class Lease(_ApiData):
    """A machine lease (``data`` of the ``{"status": "success", "data": {...}}`` envelope)."""

    nonce: str
    expires_at: int = 0
    """Unix seconds."""
    owner: str = ""
    description: str = ""
    version: str = ""


class StartResult(_ApiData):
    """``POST /start`` answers ``{"previous_state": "stopped", "migrated": false, "new_host": ""}``."""

    previous_state: str = ""
    migrated: bool = False
    new_host: str = ""
