"""What the service's HTTP API accepts and answers: pydantic models that FastAPI validates requests with and
writes the OpenAPI document from (``GET /openapi.json``). Bodies are strict (``extra="forbid"``: a misspelt field
is a 422 naming it, not silently ignored); the values themselves are checked by the runtime (``make_request``),
whose ``BadRequest`` becomes a 400 naming the field and the fix.

Answers are built from the runtime's own status objects (``from_status``), so the API says what the imported
module says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime.maintenance import DrainReport
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.status import HostStatus, PreviewStatus


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- requests ------------------------------------------------------------------------------------------

class PrewarmBody(Body):
    """The user opened the project: prepare its preview now (never queues; gives up when the fleet is full)."""

    user: Annotated[str, Field(description="The user the preview belongs to; another user's is a 409.",
                               examples=["u-7"])]
    framework: Annotated[str, Field(description="A template of this fleet (a 400 lists them).",
                                    examples=["nextjs"])]
    project: Annotated[str | None, Field(description="Default: the workspace id.")] = None
    repo: Annotated[str | None, Field(description="https:// or git@host:path repository to clone.")] = None
    ref: Annotated[str | None, Field(description="Branch, tag or commit.")] = None
    env: Annotated[dict[str, str] | None, Field(description="Extra environment (A-Z, 0-9, _; not DRAPE_*).")] = None
    resources: Annotated[PreviewResources | None, Field(description="Default: the framework's size.")] = None
    repo_token: Annotated[SecretStr | None, Field(description=(
        "A short-lived read-only token to clone `repo` with: handed to the preview as a file, never stored with "
        "it, logged or answered. Not part of the repository address."))] = None

    def runtime_kwargs(self) -> dict[str, Any]:
        """The runtime's keyword arguments (``PreviewRuntime.start`` / ``project_opened``)."""
        token = None if self.repo_token is None else self.repo_token.get_secret_value()
        return {"user": self.user, "framework": self.framework, "project": self.project, "repo": self.repo,
                "ref": self.ref, "env": self.env, "resources": self.resources, "repo_token": token}


class StartBody(PrewarmBody):
    """Start the workspace's preview, or get the one it has (the same call twice is one preview)."""

    wait_s: Annotated[float | None, Field(ge=0, le=120, description=(
        "Hold the answer until the preview is ready, failed or lost, or this many seconds pass (capped by the "
        "service's long-poll limit). Leave out to answer at once."))] = None


class CordonBody(Body):
    reason: Annotated[str, Field(max_length=200)] = ""


class DrainBody(Body):
    idle_s: Annotated[float, Field(ge=0, le=86_400, description="Stop a preview once idle this long.")] = 300.0
    deadline_s: Annotated[float, Field(ge=0, le=86_400, description="Then move what is left elsewhere.")] = 1800.0


# -- answers -------------------------------------------------------------------------------------------

class Preview(Answer):
    """Where a workspace's preview is and what it is doing."""

    workspace: str
    user: str
    project: str
    framework: str
    phase: Phase
    ready: bool
    final: bool = Field(description="ready, failed or lost: the phase will not move by itself.")
    since: datetime
    host: str | None = None
    container_id: str | None = None
    url: str | None = Field(None, description="Where the backend proxies the preview (host's private address).")
    queue_position: int | None = Field(None, description="1 = next to be placed; null when not queued.")
    waited_s: float | None = None
    error: str | None = None
    created: datetime | None = None

    @classmethod
    def from_status(cls, status: PreviewStatus) -> Preview:
        return cls(workspace=status.workspace, user=status.user, project=status.project,
                   framework=status.framework, phase=status.phase, ready=status.ready, final=status.phase.final,
                   since=status.since, host=status.host, container_id=status.container_id, url=status.url,
                   queue_position=status.queue_position, waited_s=status.waited_s, error=status.error,
                   created=status.created)


class PreviewList(Answer):
    previews: list[Preview]


class Stopped(Answer):
    workspace: str
    stopped: bool = Field(description="False when the workspace had no preview (stopping is idempotent).")
    pending_hosts: list[str] = Field([], description=(
        "Hosts that did not answer: the stop is remembered and applied when they answer again (by any instance)."))


class ForeignObject(Answer):
    kind: str
    id: str
    name: str
    reason: str


class Host(Answer):
    name: str
    reachable: bool
    healthy: bool
    state: str = Field(description="up, suspect (a call got no answer; a health check is deciding) or down.")
    placeable: bool = Field(description="New previews may go there.")
    unplaceable: str | None = Field(description="Why not, when they may not.")
    error: str | None
    cordoned: bool
    cordon_reason: str | None
    memory_capacity: int
    memory_used: int
    memory_free: int
    cpu_capacity: float
    cpus_used: float
    previews: int
    claims: int
    disk_limit: bool
    server_version: str | None
    foreign: list[ForeignObject]

    @classmethod
    def from_status(cls, status: HostStatus) -> Host:
        return cls(name=status.name, reachable=status.reachable, healthy=status.healthy, state=status.state,
                   placeable=status.placeable, unplaceable=status.unplaceable, error=status.error,
                   cordoned=status.cordoned, cordon_reason=status.cordon_reason,
                   memory_capacity=status.memory_capacity, memory_used=status.memory_used,
                   memory_free=status.memory_free, cpu_capacity=status.cpu_capacity, cpus_used=status.cpus_used,
                   previews=status.previews, claims=status.claims, disk_limit=status.disk_limit,
                   server_version=status.server_version,
                   foreign=[ForeignObject(kind=f.kind, id=f.id, name=f.name, reason=f.reason) for f in status.foreign])


class HostList(Answer):
    hosts: list[Host]


class Drain(Answer):
    host: str
    running: bool
    stopped: list[str] = []
    moved: list[str] = []
    failed: list[str] = []
    remaining: int = 0
    seconds: float = 0.0
    error: str | None = None
    progress: list[str] = []

    @classmethod
    def from_report(cls, host: str, report: DrainReport | None, *, running: bool, error: str | None,
                    progress: list[str]) -> Drain:
        if report is None:
            return cls(host=host, running=running, error=error, progress=progress)
        return cls(host=host, running=running, stopped=report.stopped, moved=report.moved, failed=report.failed,
                   remaining=report.remaining, seconds=round(report.seconds, 1), error=error, progress=progress)


class Health(Answer):
    status: str
    instance: str


class Readiness(Answer):
    status: str = Field(description="ready | not ready")
    instance: str
    engines: dict[str, bool] = Field(description="Each host's engine: answered a ping just now.")
    errors: dict[str, str] = {}


class Problem(Answer):
    field: str
    message: str
    fix: str


class ErrorBody(Answer):
    """Every error answer: what went wrong, the field at fault and how to fix it, where there is one."""

    error: str = Field(description="A stable code: unauthorized, forbidden, invalid_request, bad_request, "
                                   "unknown_framework, too_large, not_found, workspace_conflict, queue_full, "
                                   "rate_limited, host_unavailable, engine_error, unknown_host, internal")
    message: str
    field: str | None = None
    fix: str | None = None
    known: list[str] | None = Field(None, description="The accepted values, where the field takes one of a list.")
    problems: list[Problem] | None = Field(None, description="Every problem, for a body that fails validation.")
    retry_after_s: float | None = Field(None, description="Also in the Retry-After header (whole seconds).")
