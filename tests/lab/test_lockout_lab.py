"""Changes that can lock ops out revert by themselves (issue 8, item 10), on a real sshd and nftables.

sshd: through the ssh deploy itself, with a fleet file whose change passes `sshd -t` but locks ops out (the
deploy user renamed before that user exists: AllowUsers no longer lists the one ops log in as). The deploy
arms the host's rollback, applies, fails to log in anew, and says the host reverts; the host does, alone.

nftables: the host's safety net around a ruleset that drops new SSH connections (what a wrong policy would do;
the deploy's own lock-out check refuses such a policy before it gets here, so this one is loaded through the
same script and confirmation the firewall deploy uses). Nothing confirms it; the host reverts by itself."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from drape_fleet.environments import FleetTarget
from drape_fleet.paths import project_root
from drape_fleet.provision.firewall import RULESET_PATH, firewall_policy, nftables_ruleset
from drape_fleet.provision.runner import pyinfra_argv, run_pyinfra
from drape_fleet.provision.safety import arm_command, confirm_by_new_login
from drape_fleet.provision.service import INVENTORY
from drape_fleet.ssh import ssh_run
from tests.lab.lab_helpers import can_log_in, ssh

pytestmark = pytest.mark.lab

HOST = "ax3"

# The ruleset without its counters and the per-preview rate sets (their members come and go with traffic).
RULESET_DIGEST = (r"sudo nft --stateless list table inet drape_filter"
                  r" | sed '/set preview_rate_v[46] {/,/^\t}$/d' | sha256sum")


def _back_within(seconds: float) -> float:
    """Seconds until a new login works again (fails the test after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if can_log_in(HOST):
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"ops still cannot log in to {HOST} {seconds:.0f} s later: the host did not revert")


def test_a_breaking_sshd_change_reverts_by_itself(provisioned_lab: FleetTarget, tmp_path: Path) -> None:
    seconds = provisioned_lab.fleet.provisioning.rollback_after_s
    before = ssh(HOST, "sudo sha256sum /etc/ssh/sshd_config")
    data = tomllib.loads(provisioned_lab.env.fleet_file.read_text())
    data["environment"]["deploy_user"] = "ops2"
    broken = tmp_path / "fleet.toml"
    broken.write_text(tomli_w.dumps(data))
    argv = pyinfra_argv(inventory=project_root() / INVENTORY, host=HOST, deploys=("ssh",),
                        data={"fleet_file": str(broken)})
    run = run_pyinfra(argv, HOST, dry=False, env={"DRAPE_ENV": "lab"})
    assert not run.ok
    assert "a new login as deploy@" in run.error and f"within {seconds} s" in run.error, run.error
    assert not can_log_in(HOST), "the broken sshd_config should lock ops out until the host reverts"
    waited = _back_within(seconds + 30)
    assert ssh(HOST, "sudo sha256sum /etc/ssh/sshd_config") == before
    assert "drape-safe-apply" in ssh(HOST, "sudo journalctl -t drape-safe-apply -p crit --no-pager -n 5")
    print(f"sshd: reverted and ops back in {waited:.0f} s after the failed confirmation")


def test_a_breaking_ruleset_reverts_by_itself(provisioned_lab: FleetTarget) -> None:
    fleet = provisioned_lab.fleet
    seconds = fleet.provisioning.rollback_after_s
    before = ssh(HOST, RULESET_DIGEST)
    elsewhere = fleet.network.admin_allowlist[0].network_address + 199
    locked = fleet.model_copy(update={"network": fleet.network.model_copy(
        update={"admin_allowlist": (f"{elsewhere}/32",)})})
    ruleset = nftables_ruleset(firewall_policy(locked, HOST))
    target = provisioned_lab.ssh_target(fleet.host(HOST))
    ssh_run(target, "sudo tee /etc/drape/firewall.nft.candidate >/dev/null", input=ruleset, timeout=30)
    ssh(HOST, " && ".join([
        "sudo nft -c -f /etc/drape/firewall.nft.candidate",
        "sudo " + arm_command("firewall", seconds, f"nft -f {RULESET_PATH}", [RULESET_PATH]),
        f"sudo install -m 600 /etc/drape/firewall.nft.candidate {RULESET_PATH}",
        f"sudo nft -f {RULESET_PATH}",
    ]))
    confirmation = confirm_by_new_login(target, "firewall", timeout=20)
    assert not confirmation.ok, "a ruleset without the ops address let a new login through"
    waited = _back_within(seconds + 30)
    assert ssh(HOST, RULESET_DIGEST) == before
    print(f"nftables: reverted and ops back in {waited:.0f} s")


def test_a_confirmed_change_stays(provisioned_lab: FleetTarget) -> None:
    """The control: armed, then confirmed over a new login, the timer is gone and nothing is restored."""
    target = provisioned_lab.ssh_target(provisioned_lab.fleet.host(HOST))
    ssh(HOST, "sudo " + arm_command("control", 8, "touch /run/drape-control-restored", ["/run/drape-control"]))
    assert confirm_by_new_login(target, "control").ok
    time.sleep(10)
    assert ssh(HOST, "test -e /run/drape-control-restored && echo restored || echo kept") == "kept"
    assert "drape-rollback-control" not in ssh(HOST, "systemctl list-timers --all --no-pager")
