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
from drape_fleet.facts.system import FileText, SshClientAddress, UnitFileState
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.firewall import (
    CLOSED_RULESET_PATH,
    FAMILY,
    RULESET_PATH,
    TABLE,
    UNIT_NAME,
    FirewallRefused,
    check_ops_address,
    closed_ruleset,
    firewall_policy,
    nftables_ruleset,
    systemd_unit,
)
from drape_fleet.provision.inventory import ssh_target
from drape_fleet.provision.ops import apply_with_safety_net, put_text

CANDIDATE = f"{RULESET_PATH}.candidate"


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
    wanted = nftables_ruleset(policy)
    put_text("Ruleset candidate (our table only)", wanted, CANDIDATE, mode="600")
    put_text("Closed ruleset (what a stopped firewall leaves: previews cut off)", closed_ruleset(policy),
             CLOSED_RULESET_PATH, mode="600")
    unit = put_text(f"{UNIT_NAME} loads it at boot", systemd_unit(), f"/etc/systemd/system/{UNIT_NAME}")
    systemd.daemon_reload(name="systemd reads the firewall unit", _if=unit.did_change)

    seconds = ctx.fleet.provisioning.rollback_after_s
    if host.get_fact(FileText, path=RULESET_PATH) != wanted.rstrip("\n"):
        apply_with_safety_net(
            f"Ruleset checked (nft -c), installed and loaded (reverts in {seconds} s unless confirmed)",
            "firewall", check=f"nft -c -f {CANDIDATE}", install=f"install -m 600 {CANDIDATE} {RULESET_PATH}",
            reload=f"nft -f {RULESET_PATH} || nft delete table {FAMILY} {TABLE}", files=[RULESET_PATH],
            target=ssh_target(host.data, host.name), seconds=seconds)
    elif f"{FAMILY} {TABLE}" not in host.get_fact(NftTables):
        # The file is right but our table is gone from the kernel (whatever removed it): load it again.
        server.shell(name="Ruleset loaded again (our table was missing)", commands=[f"nft -f {RULESET_PATH}"])
    systemd.service(name=f"{UNIT_NAME} enabled", service=UNIT_NAME, enabled=True, running=True)

    # Debian's own nftables.service starts with `flush ruleset`, which would wipe Docker's rules.
    if host.get_fact(UnitFileState, unit="nftables.service") == "enabled":
        systemd.service(name="nftables.service off (it flushes every table)", service="nftables.service",
                        enabled=False, running=False)


host_firewall()
