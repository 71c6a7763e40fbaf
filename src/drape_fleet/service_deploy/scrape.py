"""What the monitoring server needs to scrape the runtime service's ``/metrics`` (docs/service.md, "Metrics"): a
bearer token of the caller ``monitoring`` that may read metrics and nothing else, and the ingress CA the instances'
HTTPS certificates chain to. Both come from where the service deploy takes them (the token store, the PKI), so a
rotation of either reaches Prometheus with the next monitoring deploy.

Refused before any host is touched, with the fix: no such token, a token that could do more than read metrics
(its file lies on the monitoring server), no ingress CA yet. The lab makes what is missing, as its service deploy
does.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from drape_fleet.config import FleetConfig
from drape_fleet.config.errors import ConfigError
from drape_fleet.pki.authority import PkiError
from drape_fleet.service_deploy.certificates import ingress_ca, init_ingress_ca
from drape_fleet.service_deploy.tokens import ensure_lab_tokens, load_store, store_path

MONITORING_CALLER = "monitoring"
METRICS_ONLY = ("metrics",)


class ScrapeRefused(ValueError):
    """Prometheus cannot scrape the runtime service as things are; the message says how to fix it."""


@dataclass(frozen=True)
class ScrapeCredentials:
    token: SecretStr
    ca_pem: str


def scrape_credentials(fleet: FleetConfig) -> ScrapeCredentials:
    """The ``monitoring`` caller's newest token (metrics only) and the ingress CA's trust bundle."""
    environment = fleet.environment.name
    lab = environment == "lab"
    path = store_path(environment)
    try:
        if lab:
            init_ingress_ca(environment, allow_in_repo=True)
        store = ensure_lab_tokens(path) if lab else load_store(path)
    except (ConfigError, PkiError) as exc:
        raise ScrapeRefused(str(exc)) from None
    token = store.newest(MONITORING_CALLER)
    issue = (f"`invoke service.token --caller {MONITORING_CALLER} --scopes metrics --env {environment}`, then "
             f"`invoke provision --all --only service,monitoring_server --env {environment}`")
    if token is None:
        raise ScrapeRefused(f"no token of the caller {MONITORING_CALLER!r} in {path}: Prometheus reads the runtime "
                            f"service's metrics with one. Fix: {issue}")
    if tuple(token.scopes) != METRICS_ONLY:
        raise ScrapeRefused(f"the newest token of the caller {MONITORING_CALLER!r} in {path} has the scopes "
                            f"{', '.join(token.scopes)}: the monitoring server keeps it in a file, so it may read "
                            f"metrics and nothing else. Fix: {issue}; then `invoke service.revoke --caller "
                            f"{MONITORING_CALLER} --keep-newest` and deploy the service again")
    ca = ingress_ca(environment)
    if not ca.is_file():
        raise ScrapeRefused(f"no ingress CA at {ca}: the runtime service's certificates chain to it. Fix: "
                            f"`invoke service.pki --env {environment}`, then deploy the service")
    return ScrapeCredentials(token=SecretStr(token.token), ca_pem=ca.read_text(encoding="utf-8"))
