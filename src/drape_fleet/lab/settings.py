"""What a lab is: how many hosts, on which subnets, where its state lives. Pure data, validated."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.paths import DEFAULT_LAB_PREFIX, LAB_FLEET_FILE, LAB_KNOWN_HOSTS, LAB_SSH_KEY
from drape_fleet.ssh import SshTarget

MAX_LAB_HOSTS = 9
"""Each lab host is a full systemd + Docker host; more than this does not fit one 2-core machine."""

FIRST_HOST_OFFSET = 11
"""ax1 gets .11, ax2 .12, ...: low addresses stay free for gateways and the backend."""


LABEL = "drape.lab"
"""Every Docker object a lab makes carries ``drape.lab=<prefix>``, so ``down`` finds all of it (and only
that lab's: tests run throwaway labs beside the main one under another prefix)."""

SSH_USER = "deploy"


class LabSettings(FrozenModel):
    hosts: Annotated[int, Field(ge=1, le=MAX_LAB_HOSTS)] = 3
    public_subnet: IPv4Network = IPv4Network("172.29.10.0/24")
    private_subnet: IPv4Network = IPv4Network("172.29.20.0/24")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,20}$")] = DEFAULT_LAB_PREFIX
    state_dir: Path = Path(".lab")
    host_cpus: Annotated[int, Field(ge=1)] = 2
    host_memory_gib: Annotated[int, Field(ge=1)] = 4
    host_disk_gib: Annotated[int, Field(ge=1)] = 20

    @model_validator(mode="after")
    def _subnets_fit(self) -> Self:
        for field in ("public_subnet", "private_subnet"):
            subnet: IPv4Network = getattr(self, field)
            if not subnet.is_private:
                raise invalid("public_range", f"{subnet} is not a private range", at=field,
                              fix="use a range inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
            if subnet.num_addresses < FIRST_HOST_OFFSET + self.hosts + 1:
                raise invalid("subnet_too_small", f"{subnet} has no room for {self.hosts} hosts", at=field,
                              fix="use a /24 or larger")
        if self.public_subnet.overlaps(self.private_subnet):
            raise invalid("subnets_overlap", "the public and private subnets overlap", at="private_subnet",
                          fix="give them separate ranges, e.g. 172.29.10.0/24 and 172.29.20.0/24")
        return self

    @property
    def label_filter(self) -> str:
        return f"{LABEL}={self.prefix}"

    # Names of things, derived in one place.
    def host_name(self, index: int) -> str:
        return f"ax{index}"

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(self.host_name(i) for i in range(1, self.hosts + 1))

    def container_name(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def volume_name(self, host: str, purpose: str) -> str:
        return f"{self.prefix}-{host}-{purpose}"

    @property
    def public_network(self) -> str:
        return f"{self.prefix}-public"

    @property
    def private_network(self) -> str:
        return f"{self.prefix}-private"

    def public_address(self, index: int) -> IPv4Address:
        return self.public_subnet.network_address + FIRST_HOST_OFFSET + index - 1

    def private_address(self, index: int) -> IPv4Address:
        return self.private_subnet.network_address + FIRST_HOST_OFFSET + index - 1

    @property
    def public_gateway(self) -> IPv4Address:
        """This machine on the public lab network: where ops (and CI) connect from."""
        return self.public_subnet.network_address + 1

    @property
    def private_gateway(self) -> IPv4Address:
        """This machine on the private lab network: the backend's address for the lab."""
        return self.private_subnet.network_address + 1

    # Files the lab keeps, all under state_dir (git-ignored).
    @property
    def ssh_dir(self) -> Path:
        return self.ssh_key.parent

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / LAB_SSH_KEY

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / LAB_KNOWN_HOSTS

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def fleet_file(self) -> Path:
        return self.state_dir / LAB_FLEET_FILE

    @property
    def saved_file(self) -> Path:
        """What ``up`` was asked for, so later commands find the same lab (``drape_fleet.lab.state``)."""
        return self.state_dir / "lab.json"

    def ssh_target(self, index: int, user: str = SSH_USER) -> SshTarget:
        """How this machine reaches lab host ``index`` (1-based): the lab's key, the keys lab.up pinned."""
        return SshTarget(hostname=str(self.public_address(index)), user=user, key=self.ssh_key.resolve(),
                         known_hosts=self.known_hosts.resolve(), alias=self.host_name(index))
