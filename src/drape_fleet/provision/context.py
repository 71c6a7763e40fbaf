"""What every deploy starts from: the fleet, this host's entry, its distribution profile, and the run's
options, all read from pyinfra's host data (set by drape_fleet.inventory and the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import DeployError

from drape_fleet.config import ConfigError, FleetConfig, Host, load_fleet
from drape_fleet.config.provisioning import DistroProfile
from drape_fleet.facts.system import OsRelease
from drape_fleet.provision.distro import UnsupportedDistro, distro_id, profile_for

FORCE_KEY = "drape_force"
"""Host data set by `invoke provision --force`: go on despite a degraded RAID, loudly."""


@dataclass(frozen=True)
class DeployContext:
    fleet: FleetConfig
    fleet_file: Path
    me: Host
    profile: DistroProfile
    os_release: dict[str, str]
    ssh_user: str
    force: bool

    @property
    def environment(self) -> str:
        return self.fleet.environment.name

    @property
    def deploy_user(self) -> str:
        return self.fleet.environment.deploy_user


@cache
def _fleet(path: str) -> FleetConfig:
    return load_fleet(path)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def deploy_context(host: Any) -> DeployContext:
    """Raise ``DeployError`` (pyinfra prints it for the host) when the host data or the host is unusable."""
    fleet_file = host.data.get("fleet_file")
    name = host.data.get("fleet_host")
    if not fleet_file or not name:
        raise DeployError(f"{host.name}: no fleet data; run deploys through inventories/lab.py or "
                          "inventories/production.py (or `invoke provision`)")
    try:
        fleet = _fleet(str(fleet_file))
        me = fleet.host(str(name))
    except (ConfigError, KeyError) as exc:
        raise DeployError(str(exc)) from None
    os_release = host.get_fact(OsRelease)
    try:
        profile = profile_for(os_release)
    except UnsupportedDistro as exc:
        raise DeployError(f"{host.name} runs {distro_id(os_release)}: {exc}") from None
    return DeployContext(fleet=fleet, fleet_file=Path(str(fleet_file)), me=me, profile=profile,
                         os_release=os_release, ssh_user=str(host.data.get("ssh_user") or "root"),
                         force=_truthy(host.data.get(FORCE_KEY)))
