"""The one seam to Prometheus' and Alertmanager's HTTP APIs. Both listen on the monitoring server's 127.0.0.1
only, so requests go over SSH (the environment's pinned ``SshTarget``) and ``curl`` on the server: no port is
opened for them, and ops need nothing but the SSH access they have. Several requests share one SSH session.

Owns the timeouts (``REQUEST_TIMEOUT_S`` per request on the server, the SSH call bounded as a whole) and the
error mapping: an unreachable server or a failed request is ``MonitoringUnreachable`` naming which.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from drape_fleet import shell
from drape_fleet.monitoring.plan import MonitoringPlan
from drape_fleet.ssh import SshTarget, ssh_run

REQUEST_TIMEOUT_S = 10
MARKER = "--drape-monitoring-response--"

RemoteRun = Callable[[SshTarget, str, float], shell.Result]


class MonitoringUnreachable(RuntimeError):
    """Prometheus or Alertmanager could not be asked; the message says which and why."""


@dataclass(frozen=True)
class Request:
    service: str
    """``prometheus`` or ``alertmanager``."""
    path: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Response:
    request: Request
    status: int
    body: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except json.JSONDecodeError:
            raise MonitoringUnreachable(f"{self.request.service} {self.request.path}: answered {self.status} with "
                                        f"something that is not JSON: {self.body[:200]!r}") from None


def _default_run(target: SshTarget, command: str, timeout: float) -> shell.Result:
    return ssh_run(target, command, timeout=timeout, check=False)


def remote_command(requests: Sequence[Request], ports: Mapping[str, int]) -> str:
    """One shell command that asks every request with curl on the server, each answer after a marker line and
    followed by its HTTP status (pure)."""
    parts = []
    for request in requests:
        query = f"?{urlencode(request.params)}" if request.params else ""
        url = f"http://127.0.0.1:{ports[request.service]}{request.path}{query}"
        parts.append(f"echo {MARKER}; curl -sS --max-time {REQUEST_TIMEOUT_S} -w '\\n%{{http_code}}' "
                     f"{shlex.quote(url)} 2>&1")
    return "; ".join(parts)


def parse_responses(requests: Sequence[Request], output: str) -> list[Response]:
    """Split the command's output back into one response per request (pure)."""
    chunks = output.split(f"{MARKER}\n")[1:]
    if len(chunks) != len(requests):
        raise MonitoringUnreachable(f"expected {len(requests)} answers from the monitoring server, got "
                                    f"{len(chunks)}: {output[-300:]!r}")
    responses = []
    for request, chunk in zip(requests, chunks, strict=True):
        body, _, status = chunk.rstrip("\n").rpartition("\n")
        responses.append(Response(request, int(status) if status.isdigit() else 0, body))
    return responses


class MonitoringApi:
    """Ask the monitoring server's Prometheus and Alertmanager, over SSH."""

    def __init__(self, target: SshTarget, plan: MonitoringPlan, run: RemoteRun = _default_run) -> None:
        self.target = target
        self.ports = {"prometheus": plan.settings.prometheus_port, "alertmanager": plan.settings.alertmanager.port}
        self._run = run

    def fetch(self, requests: Sequence[Request]) -> list[Response]:
        result = self._run(self.target, remote_command(requests, self.ports),
                           REQUEST_TIMEOUT_S * len(requests) + 20)
        if result.returncode == 255:
            server = self.target.alias or self.target.hostname
            raise MonitoringUnreachable(f"cannot reach the monitoring server {server} over SSH: "
                                        f"{result.stderr.strip()[-300:]}")
        return parse_responses(requests, result.stdout)

    def get(self, service: str, path: str, **params: str) -> Any:
        [response] = self.fetch([Request(service, path, tuple(params.items()))])
        if response.status != 200:
            raise MonitoringUnreachable(f"{service} {path}: HTTP {response.status or 'no answer'}: "
                                        f"{response.body.strip()[:300]}")
        return response.json()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's samples (``metric`` labels and ``value`` [time, "text"])."""
        data = self.get("prometheus", "/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        """Alertmanager's active alerts (``/api/v2/alerts``), optionally only one alert's."""
        params = {"filter": f'alertname="{alertname}"'} if alertname else {}
        found: list[dict[str, Any]] = self.get("alertmanager", "/api/v2/alerts", **params)
        return found
