"""The WireGuard link to the backend on Fly (the fleet file's ``[cutover.link]``; docs/cutover.md): the host's
key made on the host (kept across runs), its wg-quick configuration, the link's own firewall table (what the
tunnel may carry: previews and the service, nothing else), the interface up. Where the kernel has no WireGuard
module (the lab) wg-quick runs the userspace implementation.

Every file it writes counts among the run's changes, so the hardening deploy (after this one) renews the
file-integrity baseline.

A host the link does not name (or a fleet without the section) gets no link: what an earlier run installed is
stopped and removed (the key stays, so a link configured again keeps the host's identity).

Alone: `pyinfra inventories/lab.py deploys/link.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.cutover.link import (
    CONFIG_DIR,
    FAMILY,
    FIREWALL_UNIT,
    RULESET_PATH,
    TABLE,
    firewall_unit,
    host_link,
    nft_ruleset,
    userspace_dropin,
    wg_quick_config,
)
from drape_fleet.facts.nftables import NftTables
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_text, record_change

INTERFACE_FALLBACK = "wg-drape"


def _dropin_path(interface: str) -> str:
    return f"/etc/systemd/system/wg-quick@{interface}.service.d/10-drape-userspace.conf"


def _absent() -> None:
    """No link on this host: stop and remove what an earlier run put here (nothing, when there is nothing)."""
    interface = INTERFACE_FALLBACK
    config = f"{CONFIG_DIR}/{interface}.conf"
    if not host.get_fact(File, path=config) and not host.get_fact(File, path=RULESET_PATH):
        host.noop("no link configured, none installed")
        return
    record_change(server.shell(name="link stopped", commands=[
        f"systemctl disable --now wg-quick@{interface}.service {FIREWALL_UNIT} || true",
        f"nft delete table {FAMILY} {TABLE} 2>/dev/null || true"]))
    removed = [record_change(files.file(name=f"{path} removed", path=path, present=False))
               for path in (config, RULESET_PATH, f"/etc/systemd/system/{FIREWALL_UNIT}", _dropin_path(interface))]
    systemd.daemon_reload(name="systemd forgets the link's units", _if=any_changed(*removed))


@deploy("link")
def wireguard_link() -> None:
    ctx = deploy_context(host)
    end = host_link(ctx.fleet, ctx.me.name)
    if end is None:
        _absent()
        return
    packages = ["wireguard-tools", "nftables"] + (["wireguard-go"] if end.userspace else [])
    apt.packages(name="WireGuard tools", packages=packages, update=True, cache_time=3600, no_recommends=True)
    if not host.get_fact(File, path=end.key_file):
        record_change(server.shell(name="the host's private key, made here (it never leaves the host)",
                                   commands=[f"umask 077 && mkdir -p {CONFIG_DIR} && wg genkey > {end.key_file}"]))
    config = put_text("wg-quick configuration", wg_quick_config(end), end.config_path, mode="600")
    ruleset = put_text("the link's firewall table", nft_ruleset(ctx.fleet, end), RULESET_PATH, mode="600")
    unit = put_text(f"{FIREWALL_UNIT} loads it first", firewall_unit(end), f"/etc/systemd/system/{FIREWALL_UNIT}")
    if end.userspace:
        dropin = put_text("wg-quick uses wireguard-go (no kernel module)", userspace_dropin(),
                          _dropin_path(end.interface))
    else:
        dropin = record_change(files.file(name="no userspace drop-in", path=_dropin_path(end.interface),
                                          present=False))
    systemd.daemon_reload(name="systemd reads the link's units", _if=any_changed(unit, dropin))
    loaded = f"{FAMILY} {TABLE}" in host.get_fact(NftTables)
    server.shell(name="the link's table checked (nft -c), then loaded",
                 commands=[f"nft -c -f {RULESET_PATH}", f"nft -f {RULESET_PATH}"],
                 _if=ruleset.did_change if loaded else None)
    systemd.service(name=f"{FIREWALL_UNIT} enabled", service=FIREWALL_UNIT, running=True, enabled=True)
    server.shell(name="the link restarted for its new configuration", commands=[f"systemctl restart {end.unit}"],
                 _if=any_changed(config, dropin))
    systemd.service(name="the link up and enabled", service=end.unit, running=True, enabled=True)


wireguard_link()
