"""Host firewall: nftables, default deny inbound (IPv4 and IPv6). SSH only from the admin allowlist,
HTTP/HTTPS for previews, the Docker API only from the backend on the private address, and published
container ports filtered in a forward chain (Docker's DNAT bypasses input rules).

Refuses, before changing anything, a policy that would not admit the address this run connects from.
Only our table (inet drape_filter) is replaced: never `flush ruleset` (Docker's rules live beside ours).

Alone: `pyinfra inventories/lab.py deploys/firewall.py`.
"""

from ipaddress import ip_address

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, server, systemd

from drape_fleet.facts.nftables import NftTables
from drape_fleet.facts.system import SshClientAddress, UnitFileState
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.firewall import (
    FAMILY,
    RULESET_PATH,
    TABLE,
    UNIT_NAME,
    FirewallRefused,
    check_ops_address,
    firewall_policy,
    nftables_ruleset,
    systemd_unit,
)
from drape_fleet.provision.ops import put_text


@deploy("firewall")
def host_firewall() -> None:
    ctx = deploy_context(host)
    policy = firewall_policy(ctx.fleet, ctx.me.name)
    client = host.get_fact(SshClientAddress, _sudo=False)
    if client is None:
        raise DeployError(f"{host.name}: cannot tell which address this run connects from ($SSH_CONNECTION is "
                          "empty), so the firewall cannot be checked against lock-out; nothing was changed")
    try:
        check_ops_address(policy, ip_address(client))
    except FirewallRefused as exc:
        raise DeployError(str(exc)) from None

    apt.packages(name="nftables", packages=["nftables"], update=True, cache_time=3600, no_recommends=True)
    ruleset = put_text("Ruleset file (our table only)", nftables_ruleset(policy), RULESET_PATH, mode="600")
    unit = put_text(f"{UNIT_NAME} loads it at boot", systemd_unit(), f"/etc/systemd/system/{UNIT_NAME}")
    systemd.daemon_reload(name="systemd reads the firewall unit", _if=unit.did_change)

    # Load when the file changed, or when our table is missing from the kernel (whatever removed it).
    loaded = f"{FAMILY} {TABLE}" in host.get_fact(NftTables)
    server.shell(
        name="Ruleset checked (nft -c), then loaded",
        commands=[f"nft -c -f {RULESET_PATH}", f"nft -f {RULESET_PATH}"],
        _if=ruleset.did_change if loaded else None,
    )
    systemd.service(name=f"{UNIT_NAME} enabled", service=UNIT_NAME, enabled=True, running=True)

    # Debian's own nftables.service starts with `flush ruleset`, which would wipe Docker's rules.
    if host.get_fact(UnitFileState, unit="nftables.service") == "enabled":
        systemd.service(name="nftables.service off (it flushes every table)", service="nftables.service",
                        enabled=False, running=False)


host_firewall()
