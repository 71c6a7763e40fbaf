"""What a reinstall remembers between runs, so a re-run after a failure resumes instead of starting blind: which
steps are done (with durations), the pins (rescue and new system host keys), what the rescue system reported,
and installimage's process. One JSON file per host, written atomically after every step.

Never in it: the rescue system's root password (Robot answers it; key authentication is all the flow uses).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["done", "failed"]
    seconds: float
    summary: str = ""
    at: str = Field(default_factory=now_text)


class ReinstallState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    server_number: int
    address: str
    started_at: str = Field(default_factory=now_text)
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    server: str = ""
    """Robot's description of the server, for messages: '#2100001 ax1 (203.0.113.11, AX102, FSN1-DC14)'."""
    rescue_fingerprints: list[str] = Field(default_factory=list)
    """The rescue system's host key fingerprints, as Robot's activation answered them."""
    rescue_host_keys: list[str] = Field(default_factory=list)
    """The keys the rescue system presented that matched them (known_hosts material)."""
    boot_mode: str | None = None
    arch: str | None = None
    disks: list[dict[str, object]] = Field(default_factory=list)
    image_present: bool | None = None
    config_sha256: str | None = None
    installimage_pid: int | None = None
    new_host_keys: list[str] = Field(default_factory=list)

    def done(self, step: str) -> bool:
        record = self.steps.get(step)
        return record is not None and record.status == "done"

    def forget(self, *steps: str) -> ReinstallState:
        return self.model_copy(update={"steps": {k: v for k, v in self.steps.items() if k not in steps}})


def state_path(state_dir: Path, host: str) -> Path:
    return state_dir / f"{host}.json"


def load_state(path: Path) -> ReinstallState | None:
    if not path.exists():
        return None
    return ReinstallState.model_validate_json(path.read_text())


def save_state(path: Path, state: ReinstallState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(state.model_dump_json(indent=2) + "\n")
    Path(temporary).replace(path)


def for_server(state: ReinstallState | None, number: int | None, address: str) -> ReinstallState | None:
    """A saved state counts only for the same server at the same address; otherwise it is set aside."""
    if state is None or (state.server_number, state.address) != (number, address):
        return None
    return state
