"""SSH hardening: keys only, no passwords, no root login once the deploy user works, modern algorithms only
(ssh-audit: no failure, no warning).

Safety: the new sshd_config is checked with `sshd -t` before it replaces the old one, and sshd is reloaded
only after that; root login is disabled only once the deploy user is proven (see drape_fleet.provision.access).
Ubuntu 24.04 socket-activates sshd (ssh.socket ignores `Port`): there the socket is turned off and
ssh.service runs, so sshd_config alone decides (per-distro data: data/distros/*.toml).

Alone: `pyinfra inventories/lab.py deploys/ssh.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from drape_fleet.facts.system import FileText, UnitFileState
from drape_fleet.provision.access import (
    ROOT_AUTHORIZED_KEYS,
    Proof,
    authorized_keys_path,
    desired_authorized_keys,
    prove_deploy_user,
)
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.inventory import ssh_target
from drape_fleet.provision.notes import NoteKind
from drape_fleet.provision.ops import apply_with_safety_net, put_text, warn
from drape_fleet.provision.sshd import CONFIG_PATH, access_decision, sshd_config
from drape_fleet.ssh import ssh_run

CANDIDATE = "/etc/ssh/sshd_config.drape-candidate"


def _probe_deploy_login(user: str) -> Proof:
    """Log in as the deploy user from this machine, the way ops will, and ask sudo for nothing."""
    target = ssh_target(host.data, host.name).as_user(user)
    result = ssh_run(target, "sudo -n true", timeout=20, check=False)
    if result.ok:
        return Proof(True, f"{user} logged in with a key and ran sudo")
    return Proof(False, f"{user} could not log in and sudo: {result.stderr.strip()[-200:] or result.returncode}")


@deploy("ssh")
def ssh_hardening() -> None:
    ctx = deploy_context(host)
    user = ctx.deploy_user
    current_keys = host.get_fact(FileText, path=authorized_keys_path(user))
    wanted_keys = desired_authorized_keys(ctx.fleet.provisioning.ssh, current_keys,
                                          host.get_fact(FileText, path=ROOT_AUTHORIZED_KEYS))
    keys_change = wanted_keys is not None and wanted_keys.strip() != (current_keys or "").strip()
    probe = None if ctx.ssh_user == user or keys_change else _probe_deploy_login(user)
    proof = prove_deploy_user(connected_as=ctx.ssh_user, deploy_user=user, current_keys=current_keys,
                              keys_change=keys_change, login_probe=probe)
    access = access_decision(port=ctx.fleet.environment.ssh_port, deploy_user=user,
                             deploy_user_proven=proof.proven, why_unproven=proof.why)
    if access.root_login:
        warn(host, "ssh", NoteKind.ROOT_LOGIN_KEPT, access.reason)

    wanted = sshd_config(ctx.profile, access)
    put_text("sshd_config candidate", wanted, CANDIDATE, mode="600")
    ssh = ctx.profile.ssh
    if host.get_fact(FileText, path=CONFIG_PATH) != wanted.rstrip("\n"):
        # Confirmed by a new login as the user that runs the deploys from now on: the deploy user once root
        # login goes away.
        confirm_as = user if ctx.ssh_user == "root" and not access.root_login else ctx.ssh_user
        seconds = ctx.fleet.provisioning.rollback_after_s
        apply_with_safety_net(
            f"sshd_config checked with `sshd -t`, installed and reloaded (reverts in {seconds} s unless confirmed)",
            "ssh", check=f"sshd -t -f {CANDIDATE}",
            install=f"install -m 600 -o root -g root {CANDIDATE} {CONFIG_PATH}",
            reload=f"systemctl try-reload-or-restart {ssh.service}", files=[CONFIG_PATH],
            target=ssh_target(host.data, host.name).as_user(confirm_as), seconds=seconds)

    if ssh.socket is not None and host.get_fact(UnitFileState, unit=ssh.socket) not in ("disabled", "masked",
                                                                                          "absent"):
        server.shell(name=f"{ssh.socket} off, {ssh.service} runs sshd (so Port in sshd_config holds)", commands=[
            f"sshd -t -f {CONFIG_PATH}",
            f"systemctl disable --now {ssh.socket}",
            f"systemctl enable {ssh.service}",
            f"systemctl restart {ssh.service}",
        ])
    systemd.service(name="sshd running and enabled", service=ssh.service, running=True, enabled=True)


ssh_hardening()
