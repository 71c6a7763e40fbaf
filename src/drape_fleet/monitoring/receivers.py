"""The secrets the monitoring server needs (receivers' webhook URLs and SMTP passwords, services' bearer tokens),
taken from the secrets store when the deploy runs. A missing one fails the deploy before any host is touched,
naming the receiver, the secret and where to put it; values never appear in messages."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from drape_fleet.config import FleetConfig
from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.monitoring import MonitoringSettings
from drape_fleet.config.secrets import (
    DEFAULT_SECRETS_FILE,
    MONITORING_ENV_PREFIX,
    MONITORING_TABLE,
    Secrets,
    load_secrets,
)
from drape_fleet.monitoring.plan import MonitoringRefused, require_monitoring
from drape_fleet.paths import project_root


@dataclass(frozen=True)
class MonitoringSecrets:
    """Secret values by receiver name (webhook URL or SMTP password) and by service job (bearer token)."""

    receivers: dict[str, SecretStr]
    bearer_tokens: dict[str, SecretStr]

    def receiver(self, name: str) -> str | None:
        secret = self.receivers.get(name)
        return None if secret is None else secret.get_secret_value()


def _where(secret: str) -> str:
    return (f'add {secret} = "..." under [{MONITORING_TABLE}] in {DEFAULT_SECRETS_FILE} (mode 600, outside the '
            f"repository), or export {MONITORING_ENV_PREFIX}{secret.upper()}=...")


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def monitoring_secrets(monitoring: MonitoringSettings, secrets: Secrets) -> MonitoringSecrets:
    """Every secret the section names; ``ConfigError`` listing each missing or malformed one."""
    problems: list[Problem] = []
    receivers: dict[str, SecretStr] = {}
    for receiver in monitoring.receivers:
        if receiver.secret is None:
            continue
        what = "URL" if receiver.kind == "webhook" else "SMTP password"
        value = secrets.monitoring.get(receiver.secret)
        if value is None:
            problems.append(Problem(f"{MONITORING_TABLE}.{receiver.secret}",
                                    f"receiver {receiver.name!r} needs this secret (its {what}) and it is not set",
                                    _where(receiver.secret)))
        elif receiver.kind == "webhook" and not _is_http_url(value.get_secret_value()):
            problems.append(Problem(f"{MONITORING_TABLE}.{receiver.secret}",
                                    f"receiver {receiver.name!r}: this secret is not an http(s) URL (value not shown)",
                                    "store the webhook's full URL, e.g. https://hooks.example.com/..."))
        else:
            receivers[receiver.name] = value
    tokens: dict[str, SecretStr] = {}
    for job in monitoring.services:
        if job.bearer_secret is None:
            continue
        token = secrets.monitoring.get(job.bearer_secret)
        if token is None:
            problems.append(Problem(f"{MONITORING_TABLE}.{job.bearer_secret}",
                                    f"scrape job {job.name!r} needs this bearer token and it is not set",
                                    _where(job.bearer_secret)))
        else:
            tokens[job.name] = token
    if problems:
        raise ConfigError(secrets.source, problems)
    return MonitoringSecrets(receivers=receivers, bearer_tokens=tokens)


def check_monitoring(fleet: FleetConfig, source: str, secrets: Secrets | None = None) -> None:
    """What `invoke provision` checks before touching any host when the monitoring deploys run: a monitoring
    server named, and every secret its receivers and jobs need in the store. ``MonitoringRefused`` says what
    to fix."""
    monitoring = require_monitoring(fleet, source)
    try:
        monitoring_secrets(monitoring, secrets if secrets is not None else load_secrets(repo_root=project_root()))
    except ConfigError as exc:
        raise MonitoringRefused(f"monitoring's secrets: {exc}") from None
