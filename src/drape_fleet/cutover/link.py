"""The WireGuard link between the backend on Fly and the preview hosts (``[cutover.link]``; docs/cutover.md):
the values files/link/*.j2 shape into each host's wg-quick configuration and firewall table, and the backend's
own configuration for ops to install on the Fly side. Pure: no I/O (deploys/link.py puts the files on hosts).

Each preview host dials the backend's endpoint (so its firewall needs no inbound port: the backend's answers are
``established``) and routes only the backend's tunnel address into the tunnel. The backend routes each host's
private address (where the runtime's preview URLs point) and tunnel address to that host's peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.cutover import LinkSettings
from drape_fleet.config.models import FleetConfig
from drape_fleet.provision.render import render

CONFIG_DIR = "/etc/wireguard"
TABLE = "drape_link"
FAMILY = "inet"
RULESET_PATH = "/etc/drape/link.nft"
FIREWALL_UNIT = "drape-link-firewall.service"


def link_of(fleet: FleetConfig) -> LinkSettings | None:
    return fleet.cutover.link if fleet.cutover is not None else None


@dataclass(frozen=True)
class HostLink:
    """One host's end of the link, as its files need it."""

    host: str
    interface: str
    address: str
    backend_address: str
    backend_public_key: str
    backend_endpoint: str
    keepalive_s: int
    userspace: bool

    @property
    def config_path(self) -> str:
        return f"{CONFIG_DIR}/{self.interface}.conf"

    @property
    def key_file(self) -> str:
        return f"{CONFIG_DIR}/{self.interface}.key"

    @property
    def unit(self) -> str:
        return f"wg-quick@{self.interface}.service"


def host_link(fleet: FleetConfig, host: str) -> HostLink | None:
    """The host's end of the link; None when the fleet has no link or the host is not on it."""
    link = link_of(fleet)
    if link is None or host not in link.host_addresses:
        return None
    return HostLink(host=host, interface=link.interface, address=str(link.host_addresses[host]),
                    backend_address=str(link.backend_address.ip) + "/32", backend_public_key=link.backend_public_key,
                    backend_endpoint=link.backend_endpoint, keepalive_s=link.keepalive_s, userspace=link.userspace)


def wg_quick_config(end: HostLink) -> str:
    return render("link/wg-drape.conf.j2", address=end.address, key_file=end.key_file,
                  backend_address=end.backend_address, backend_public_key=end.backend_public_key,
                  backend_endpoint=end.backend_endpoint, keepalive_s=end.keepalive_s)


def nft_ruleset(fleet: FleetConfig, end: HostLink) -> str:
    link = link_of(fleet)
    assert link is not None
    low, high = link.preview_ports
    return render("link/drape-link.nft.j2", family=FAMILY, table=TABLE, interface=end.interface,
                  service_port=link.service_port, previews=fleet.provisioning.firewall.preview_interfaces,
                  preview_ports=f"{low}-{high}")


def firewall_unit(end: HostLink) -> str:
    return render("link/drape-link-firewall.service.j2", family=FAMILY, table=TABLE, interface=end.interface,
                  ruleset_path=RULESET_PATH)


def userspace_dropin() -> str:
    return render("link/wg-quick-userspace.conf.j2")


def backend_config(fleet: FleetConfig, public_keys: dict[str, str], *, private_key_file: str) -> str:
    """The backend's wg-quick configuration (the Fly side), given each host's public key (``wg show <interface>
    public-key`` on the host). Its private key stays in Fly's secrets: ``PostUp`` reads it from a file."""
    link = link_of(fleet)
    if link is None:
        raise ValueError("the fleet has no [cutover.link] section")
    missing = sorted(set(link.host_addresses) - set(public_keys))
    if missing:
        raise ValueError(f"no public key for {', '.join(missing)}: read it on the host with `wg show "
                         f"{link.interface} public-key`")
    peers = []
    for name in sorted(link.host_addresses):
        host = fleet.host(name)
        peers.append({"host": name, "public_key": public_keys[name],
                      "allowed_ips": f"{link.host_addresses[name].ip}/32, {host.private_address}/32"})
    return render("link/backend-wg.conf.j2", address=str(link.backend_address), listen_port=_port(link),
                  private_key_file=private_key_file, peers=peers)


def _port(link: LinkSettings) -> str:
    return link.backend_endpoint.rsplit(":", 1)[1]


HANDSHAKE_FRESH_S = 180
"""WireGuard re-handshakes every 2 minutes while traffic or keepalives flow: older means the link is down."""


def handshake_ages(output: str, now: float) -> list[float]:
    """Seconds since each peer's last handshake, from ``wg show <interface> latest-handshakes`` (0: never)."""
    ages = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stamp = int(parts[1])
            ages.append(float("inf") if stamp == 0 else max(0.0, now - stamp))
    return ages
