"""The secrets the monitoring server needs (receivers' webhook URLs and SMTP passwords, services' bearer tokens),
taken from the secrets store when the deploy runs, and the runtime service's metrics token and CA (from the
service's own token store and PKI: ``drape_fleet.service_deploy.scrape``). A missing one fails the deploy before
any host is touched, naming the receiver, the secret and where to put it; values never appear in messages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pydantic import SecretStr

from drape_fleet.config import FleetConfig
from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.monitoring import RUNTIME_JOB, MonitoringSettings
from drape_fleet.config.secrets import (
    DEFAULT_SECRETS_FILE,
    MONITORING_ENV_PREFIX,
    MONITORING_TABLE,
    Secrets,
    load_secrets,
)
from drape_fleet.monitoring.plan import MonitoringRefused, require_monitoring
from drape_fleet.paths import project_root
from drape_fleet.service_deploy.scrape import ScrapeRefused, scrape_credentials


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


def with_runtime_scrape(fleet: FleetConfig, secrets: MonitoringSecrets) -> tuple[MonitoringSecrets, dict[str, str]]:
    """``secrets`` with the runtime service's metrics token when the fleet runs the service, and the CA bundles by
    job (``server.server_files``' ``trust``). ``MonitoringRefused`` says what is missing."""
    if fleet.service is None:
        return secrets, {}
    try:
        runtime = scrape_credentials(fleet)
    except ScrapeRefused as exc:
        raise MonitoringRefused(f"the runtime service's metrics: {exc}") from None
    return (replace(secrets, bearer_tokens={**secrets.bearer_tokens, RUNTIME_JOB: runtime.token}),
            {RUNTIME_JOB: runtime.ca_pem})


def check_monitoring(fleet: FleetConfig, source: str, secrets: Secrets | None = None) -> None:
    """What `invoke provision` checks before touching any host when the monitoring deploys run: a monitoring
    server named, and every secret its receivers and jobs need in the store. ``MonitoringRefused`` says what
    to fix."""
    monitoring = require_monitoring(fleet, source)
    try:
        found = monitoring_secrets(monitoring, load_secrets(repo_root=project_root()) if secrets is None else secrets)
    except ConfigError as exc:
        raise MonitoringRefused(f"monitoring's secrets: {exc}") from None
    with_runtime_scrape(fleet, found)
