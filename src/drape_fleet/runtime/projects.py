"""What a preview was started with, rebuilt for a replacement on another host (failover, drain): the same project,
never the starter.

A preview's request has three kinds of parts, kept in three places so that none of them is a secret stored where
it should not be:

* **In its labels** (non-secret, read by any process from a listing): workspace, user, project, framework, size,
  and the repository address and ref (addresses with credentials inside are refused at ``start``), the *names* of
  the caller's environment variables, and whether a repository token was used.
* **In the container's own configuration**: the values of those variables (they are the container's environment
  already); a replacement reads them back with one inspect of the original, while its host answers.
* **Nowhere on the hosts**: the repository token. It is in the memory of the process that got it from the caller
  (enough for a re-placement by that process), and otherwise issued again by the backend's ``project_source``
  callback, which may also give the environment when the original's host is gone.

A request is *complete* when every part the original had is known. The runtime places a replacement itself only
with a complete request; otherwise the preview is reported ``lost`` (failover) or its move fails and the original
keeps running (drain), and the backend's next ``start`` (which carries everything) places it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.lifecycle import env_of
from drape_fleet.runtime.spec import PreviewRequest, Secret, check_env, check_token
from drape_fleet.runtime.state import PreviewRecord

MIB = 1024 * 1024


@dataclass(frozen=True)
class Project:
    """What the backend's ``project_source`` returns for a workspace it is asked about: the parts of the request the
    hosts do not keep (a fresh repository token; the environment, when the original's host is gone). Fields left
    None are taken from the original."""

    repo_token: str | None = None
    env: Mapping[str, str] | None = None


ProjectSource = Callable[[str, str, str], "Project | None"]
"""``project_source(workspace, user, project)``: called from a runtime thread when a replacement must be made."""


@dataclass(frozen=True)
class Rebuilt:
    request: PreviewRequest
    missing: tuple[str, ...] = ()
    """The parts not known (``env``, ``repo_token``): empty when the request is complete."""

    @property
    def complete(self) -> bool:
        return not self.missing

    def why(self) -> str:
        return (f"its {' and '.join(self.missing)} could not be recovered (give PreviewRuntime a project_source, "
                "or start it again)")


def request_of(record: PreviewRecord, settings: RuntimeSettings, *, inspected: Mapping[str, Any] | None = None,
               remembered: PreviewRequest | None = None) -> Rebuilt:
    """The request ``record`` answers: labels, the environment from ``inspected`` (the original's inspection), and
    the token from ``remembered`` (this process's own request for the workspace, if it has one)."""
    resources = settings.preview.model_copy(update={"cpus": record.cpus, "memory_mib": max(64, record.memory // MIB)})
    request = PreviewRequest(workspace=record.workspace, user=record.user, framework=record.framework,
                             project=record.project, resources=resources, repo=record.repo, ref=record.ref)
    missing: list[str] = []
    if record.env_keys:
        env = env_of(dict(inspected), record.env_keys) if inspected is not None else None
        if env is None and remembered is not None and tuple(k for k, _ in remembered.env) == record.env_keys:
            env = remembered.env
        if env is None:
            missing.append("env")
        else:
            request = replace(request, env=env)
    if record.repo_auth:
        if remembered is not None and remembered.repo_token is not None and remembered.repo == record.repo:
            request = replace(request, repo_token=remembered.repo_token)
        else:
            missing.append("repo_token")
    return Rebuilt(request, tuple(missing))


def completed(rebuilt: Rebuilt, source: ProjectSource | None) -> Rebuilt:
    """``rebuilt`` with what ``source`` gives for the missing parts (validated like a ``start``'s arguments)."""
    if rebuilt.complete or source is None:
        return rebuilt
    request = rebuilt.request
    given = source(request.workspace, request.user, request.project)
    if given is None:
        return rebuilt
    env = check_env(given.env) if given.env is not None else request.env
    token: str | Secret | None = given.repo_token if given.repo_token is not None else request.repo_token
    fresh = replace(request, env=env, repo_token=check_token(token, request.repo) if request.repo else None)
    missing = [part for part in rebuilt.missing
               if (part == "env" and given.env is None) or (part == "repo_token" and fresh.repo_token is None)]
    return Rebuilt(fresh, tuple(missing))
