"""What every task module needs: which environment (drape_fleet.environments), its fleet, and the hosts named
on the command line. Bad input ends the task here, with the fix, before any host is contacted."""

from __future__ import annotations

from drape_fleet.config import ConfigError
from drape_fleet.config.models import Host
from drape_fleet.console import fail
from drape_fleet.environments import Environment, FleetTarget, UnknownEnvironment, environment
from drape_fleet.provision.preflight import ProvisionRefused, resolve_hosts
from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
from drape_fleet.runtime.fleet import Fleet

ENV_HELP = "production (default, or $DRAPE_ENV), lab, or a config/<name>.toml such as staging"


def environment_of(env: str) -> Environment:
    """The environment ``--env`` names (or $DRAPE_ENV, else production)."""
    try:
        return environment(env or None)
    except UnknownEnvironment as exc:
        fail(str(exc))


def target_of(env: str) -> FleetTarget:
    """The environment's fleet and how to reach it (fails on bad configuration)."""
    try:
        return environment_of(env).load()
    except ConfigError as exc:
        fail(str(exc))


def hosts_of(env: str, names: list[str], every: bool) -> tuple[FleetTarget, list[Host]]:
    """The fleet and the hosts asked for (unknown ones listed with the known ones)."""
    target = target_of(env)
    try:
        return target, resolve_hosts(target.fleet, names, every)
    except ProvisionRefused as exc:
        fail(str(exc))


def engines_of(target: FleetTarget) -> Fleet:
    """The fleet's Docker engines, reached as the runtime reaches them (mutual TLS with the environment's PKI)."""
    tls = TlsFiles.from_pki_dir(target.env.pki_dir)
    if missing := tls.missing():
        fail(f"missing {', '.join(str(p) for p in missing)}: issue the client certificate first (`invoke pki.issue`, "
             "`invoke provision`), or point $DRAPE_PKI_DIR at the PKI directory")
    return Fleet.from_endpoints(tls_endpoints(target.fleet, tls), target.fleet.runtime)
