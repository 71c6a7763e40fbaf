"""What every task module needs: which environment, its fleet, and the hosts named on the command line.
Bad input ends the task here, with the fix, before any host is contacted."""

from __future__ import annotations

from drape_fleet.config import ConfigError
from drape_fleet.config.models import Host
from drape_fleet.console import fail
from drape_fleet.provision.preflight import ProvisionRefused, resolve_hosts
from drape_fleet.provision.service import FleetTarget, default_environment, fleet_target

ENV_HELP = "production (default, or $DRAPE_ENV) or lab"


def chosen_environment(env: str) -> str:
    chosen = env or default_environment()
    if chosen not in ("production", "lab"):
        fail(f"--env {chosen!r} is not an environment: use production or lab")
    return chosen


def target_of(env: str) -> FleetTarget:
    """The environment's fleet and how to reach it (fails on bad configuration)."""
    try:
        return fleet_target(chosen_environment(env))
    except ConfigError as exc:
        fail(str(exc))


def hosts_of(env: str, names: list[str], every: bool) -> tuple[FleetTarget, list[Host]]:
    """The fleet and the hosts asked for (unknown ones listed with the known ones)."""
    target = target_of(env)
    try:
        return target, resolve_hosts(target.fleet, names, every)
    except ProvisionRefused as exc:
        fail(str(exc))
