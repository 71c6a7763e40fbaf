"""What the deploys read: per-environment settings (the fleet file's ``[provisioning]`` section) and
per-distribution profiles (data files in ``drape_fleet/provision/data/distros/``).

Defaults are production's. The lab's fleet file overrides what a stand-in host cannot do (see
``drape_fleet.lab.fleet.lab_fleet_data``): Debian's docker.io instead of Docker CE, open files capped at the
lab's hard limit of 20000, no userns-remap (nested runs fail with it), no RAID, LVM or disks to watch, and no
kernel-wide sysctls (a lab host shares this machine's kernel).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Annotated, Literal, Self

from pydantic import Field, IPvAnyNetwork, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from drape_fleet.config.base import FrozenModel, invalid

LAB_RANGE = IPv4Network("172.29.0.0/16")
"""Where lab networks live on the machines we test on: Docker's inner pools must stay clear of it."""

UnitName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9@_.:-]+$")]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9/_.@-]*$")]
SizeText = Annotated[str, StringConstraints(pattern=r"^[0-9]+[KMGT]?$")]


# ---------------------------------------------------------------------------------------------------
# Per-environment settings (fleet file)
# ---------------------------------------------------------------------------------------------------

class BaseSystemSettings(FrozenModel):
    timezone: str = "UTC"
    journal_max_use: SizeText = "2G"
    journal_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    owns_kernel: bool = True
    """Whether the host has a kernel of its own: then kernel-wide hardening sysctls (kernel.*, fs.protected_*)
    and the initial network namespace's (net.core.netdev_max_backlog) are set. False for a lab stand-in, which
    shares this machine's kernel."""
    automatic_reboot: bool = False
    """Unattended upgrades never reboot by themselves: `invoke verify` reports a pending reboot and ops drain
    the host first. When true, reboots happen only at ``reboot_time`` (UTC, at night)."""
    reboot_time: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "04:00"

    @model_validator(mode="after")
    def _reboots_only_at_night(self) -> Self:
        hour = int(self.reboot_time[:2])
        if self.automatic_reboot and 6 <= hour < 23:
            raise invalid("reboot_by_day", f"automatic reboots at {self.reboot_time} would hit working hours",
                          at="reboot_time", fix="pick a time between 23:00 and 05:59 UTC")
        return self


class SshSettings(FrozenModel):
    authorized_keys: tuple[Annotated[str, StringConstraints(pattern=r"^(ssh-ed25519|sk-ssh-ed25519@openssh.com|"
                                                                   r"rsa-sha2-512|ssh-rsa|ecdsa-sha2-nistp256) "
                                                                   r"[A-Za-z0-9+/=]+( .*)?$")], ...] = ()
    """Public keys of the deploy user. Empty: keep the ones it has, or seed them once from root's."""


class FirewallSettings(FrozenModel):
    public_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = (80, 443)
    """Open to everyone (previews' HTTP/HTTPS), on the host and as published container ports."""
    preview_interfaces: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,12}\*?$")] = "drp*"
    """The runtime names every preview network's bridge ``drp<claim>`` (drape_fleet.runtime.labels): previews
    may not open connections to the host, to each other, or to the private network, and only the backend opens
    connections to them."""
    private_network: tuple[IPvAnyNetwork, ...] = ()
    """The vSwitch range(s): every host's private address and the backend's lie inside. Required in every
    fleet ops write (``fence_problem``); the lab's generated fleet sets it to the lab's private subnet."""
    preview_allowed_destinations: tuple[IPvAnyNetwork, ...] = ()
    """Ranges previews may reach although they lie in a fenced range (``FENCED_RANGES``, ``private_network``):
    e.g. a package mirror on the vSwitch. Empty in production: previews reach only the public internet."""
    preview_closed_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = (25, 465, 587)
    """Outbound TCP ports previews may not open (mail: one spamming tenant gets the host's address listed)."""
    preview_new_connections_per_second: Annotated[int, Field(ge=1, le=100000)] = 50
    preview_new_connections_burst: Annotated[int, Field(ge=1, le=100000)] = 200
    """New outbound connections per preview container (per source address), beyond which they are refused:
    a package install opens a few hundred in a burst; a scanner or a flood opens thousands."""


FENCED_RANGES: tuple[str, ...] = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "::1/128", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "ff00::/8",
)
"""What previews may never reach unless listed in ``preview_allowed_destinations``: this network's own
(RFC 1918), carrier-grade NAT (RFC 6598), link-local with the cloud metadata address 169.254.169.254,
loopback, multicast, reserved; IPv6 loopback, IPv4-mapped, unique local (ULA) and link-local, multicast."""


def fence_problem(firewall: FirewallSettings, environment: str, private: Sequence[IPv4Address | IPv6Address],
                  backend: Sequence[IPv4Network | IPv6Network]) -> PydanticCustomError | None:
    """The previews' fence needs the private network's range: without it, only the hosts' and the backend's
    own addresses are fenced and the rest of the vSwitch (its gateway, future hosts, a database) is open to
    users' code. Required wherever hosts have private addresses, except the lab fleet ``lab.up`` generates
    (which always sets it; unit tests build lab-named fleets without one)."""
    networks = firewall.private_network
    if not networks:
        if environment == "lab" or not any(address.is_private for address in private):
            return None
        example = ip_network(f"{private[0]}/24", strict=False) if private else "10.0.0.0/24"
        return invalid("private_network_missing",
                       "the private network's range is not set, so previews could reach every address on it "
                       "but the hosts' own", at="provisioning.firewall.private_network",
                       fix=f'set it to the vSwitch range, e.g. private_network = ["{example}"]')
    for what, address in [*(("a host's private address", a) for a in private),
                          *(("a backend address", n.network_address) for n in backend)]:
        if not any(address in network for network in networks):
            listed = ", ".join(str(n) for n in networks)
            return invalid("outside_private_network", f"{what}, {address}, is outside the private network "
                           f"({listed})", at="provisioning.firewall.private_network",
                           fix="make the range cover every host's private address and the backend's")
    return None


class DockerSettings(FrozenModel):
    source: Literal["docker-ce", "distro"] = "docker-ce"
    """``docker-ce``: Docker's apt repository with a signed-by keyring. ``distro``: the distribution's docker.io."""
    address_pool: IPv4Network = IPv4Network("10.200.0.0/16")
    address_pool_size: Annotated[int, Field(ge=16, le=29)] = 28
    """One network per workspace: a /28 holds a preview and its helpers; a /16 pool gives 4096 of them."""
    bridge_address: IPv4Interface = IPv4Interface("10.199.255.1/24")
    nofile_soft: Annotated[int, Field(ge=1024)] = 1048576
    nofile_hard: Annotated[int, Field(ge=1024)] = 1048576
    nproc: Annotated[int, Field(ge=256)] = 65536
    userns_remap: bool = True
    disk_quotas: bool = True
    """/var/lib/docker is XFS mounted with project quotas, so every container's writable layer has a size and
    an inode limit. False only where the kernel has no XFS quota support (this project's lab)."""
    container_disk_gib: Annotated[int, Field(ge=1)] = 20
    """Writable-layer size of a container started without one (daemon.json ``overlay2.size``); the runtime
    sets each preview's own. dockerd refuses to start with it unless /var/lib/docker has project quotas."""
    container_inodes: Annotated[int, Field(ge=10000)] = 2_000_000
    """Files per container writable layer (XFS default project inode limit; Docker limits only bytes): one
    tenant cannot use up the volume's inodes. A large project's node_modules holds a few hundred thousand."""
    tls_min_days_left: Annotated[int, Field(ge=1, le=3650)] = 30
    """`invoke verify` fails when a host's Docker API certificate (or a CA it trusts) expires sooner: time to
    run `invoke pki.rotate`."""
    log_max_size: Annotated[str, StringConstraints(pattern=r"^[0-9]+[kmg]$")] = "20m"
    log_max_files: Annotated[int, Field(ge=1, le=20)] = 5

    @model_validator(mode="after")
    def _ranges_fit(self) -> Self:
        if self.nofile_soft > self.nofile_hard:
            raise invalid("soft_above_hard", "nofile_soft is above nofile_hard", at="nofile_soft",
                          fix="make the soft limit at most the hard limit")
        if self.address_pool_size < self.address_pool.prefixlen:
            raise invalid("pool_too_small", f"{self.address_pool} cannot hold /{self.address_pool_size} networks",
                          at="address_pool_size", fix=f"use a size of at least {self.address_pool.prefixlen}")
        for field, network in (("address_pool", self.address_pool), ("bridge_address", self.bridge_address.network)):
            if network.overlaps(LAB_RANGE):
                raise invalid("overlaps_lab", f"{network} overlaps the lab range {LAB_RANGE}", at=field,
                              fix="pick a range inside 10.0.0.0/8 that the fleet does not use, e.g. 10.200.0.0/16")
        if self.bridge_address.network.overlaps(self.address_pool):
            raise invalid("bridge_in_pool", "the default bridge lies inside the address pool", at="bridge_address",
                          fix="put the default bridge outside the pool, e.g. 10.199.255.1/24")
        return self


class LogicalVolume(FrozenModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")]
    mount: AbsolutePath
    size: Annotated[str, StringConstraints(pattern=r"^[0-9]+[GT]$")]
    filesystem: Literal["ext4", "xfs"] = "ext4"


class StorageSettings(FrozenModel):
    expect_raid: bool = True
    """Refuse to provision when no RAID1 array is found, or one is degraded (unless --force)."""
    manage_volumes: bool = True
    volume_group: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")] = "vg0"
    volumes: tuple[LogicalVolume, ...] = (
        LogicalVolume(name="docker", mount="/var/lib/docker", size="1200G", filesystem="xfs"),
        LogicalVolume(name="drape", mount="/srv/drape", size="300G", filesystem="xfs"),
    )
    disk_monitoring: bool = True
    """mdadm's monitor and smartd watching the NVMe drives; a stand-in host has neither arrays nor disks."""
    alert_email: str = "root"


class CacheSettings(FrozenModel):
    store_path: AbsolutePath = "/srv/drape/pnpm-store"
    owner: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "drape-cache"
    uid: Annotated[int, Field(ge=1000, le=60000)] = 10100
    max_size_gib: Annotated[int, Field(ge=1)] = 200


class ProvisioningSettings(FrozenModel):
    rollback_after_s: Annotated[int, Field(ge=10, le=3600)] = 120
    """sshd and nftables changes revert by themselves after this long unless a new login confirms them."""
    base: BaseSystemSettings = BaseSystemSettings()
    ssh: SshSettings = SshSettings()
    firewall: FirewallSettings = FirewallSettings()
    docker: DockerSettings = DockerSettings()
    storage: StorageSettings = StorageSettings()
    cache: CacheSettings = CacheSettings()


# ---------------------------------------------------------------------------------------------------
# Per-distribution profiles (data files)
# ---------------------------------------------------------------------------------------------------

class SshProfile(FrozenModel):
    service: UnitName
    socket: UnitName | None = None
    """Set where sshd is socket-activated (Ubuntu 24.04's ssh.socket, which ignores ``Port``): the ssh deploy
    turns the socket off and runs the service, so sshd_config is the one source of truth."""
    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    host_key_algorithms: tuple[str, ...]
    pubkey_algorithms: tuple[str, ...]
    sftp_server: AbsolutePath
    debian_banner: bool = True


class PackagesProfile(FrozenModel):
    essential: tuple[str, ...]
    absent: tuple[str, ...] = ()
    """Packages that fight our firewall (ufw) or are not wanted on a server."""


class DockerProfile(FrozenModel):
    ce_repository: str
    ce_suite: str
    ce_packages: tuple[str, ...]
    ce_dockerd: AbsolutePath = "/usr/bin/dockerd"
    distro_packages: tuple[str, ...]
    distro_dockerd: AbsolutePath = "/usr/sbin/dockerd"
    distro_validates_config: bool
    """Whether the distribution's dockerd knows ``--validate`` (Docker 23+)."""


class UpgradesProfile(FrozenModel):
    origins: tuple[str, ...]
    security_uris: str
    security_suite: str
    security_components: tuple[str, ...]
    security_keyring: AbsolutePath
    runtime_packages: tuple[str, ...]
    """The container runtime (Docker, containerd, runc): held back from unattended upgrades, because updating
    them restarts every preview's engine; `invoke hosts.upgrade-runtime` drains the host first."""


class DistroProfile(FrozenModel):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z]+-[0-9.]+$")]
    name: str
    codename: str
    lab_proven: bool
    """True only for what the lab runs (Debian 12); the others are proven on real servers."""
    ssh: SshProfile
    packages: PackagesProfile
    docker: DockerProfile
    upgrades: UpgradesProfile
