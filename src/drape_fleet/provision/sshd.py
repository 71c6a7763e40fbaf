"""sshd_config as a pure function of the fleet's settings and the distribution's profile.

The file we write is the whole of /etc/ssh/sshd_config: sshd keeps the first value it reads for a keyword,
so our settings come first and the distribution's drop-ins (``Include`` at the end) can only add, never
override. Effective values are checked on the host with ``sshd -T`` (tests/host), not from this text.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.provisioning import DistroProfile
from drape_fleet.provision.render import render

CONFIG_PATH = "/etc/ssh/sshd_config"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


@dataclass(frozen=True)
class SshAccess:
    """Who may log in, decided by the lock-out rules (see ``access_decision``)."""

    port: int
    deploy_user: str
    root_login: bool
    reason: str


def access_decision(*, port: int, deploy_user: str, deploy_user_proven: bool, why_unproven: str = "") -> SshAccess:
    """Root login goes away only once the deploy user is proven to log in and use sudo: never remove the
    last working way in."""
    if deploy_user_proven:
        return SshAccess(port, deploy_user, root_login=False,
                         reason=f"root login disabled: {deploy_user} logs in with a key and has sudo")
    return SshAccess(port, deploy_user, root_login=True,
                     reason=f"root login KEPT (key only): {deploy_user} is not proven yet ({why_unproven}); "
                            "run provision again once it can log in")


def sshd_config(profile: DistroProfile, access: SshAccess) -> str:
    """The whole file (files/ssh/sshd_config.j2): the distribution's algorithms, and who may log in."""
    users = [access.deploy_user] + (["root"] if access.root_login else [])
    return render("ssh/sshd_config.j2", access=access, ssh=profile.ssh, host_key=HOST_KEY, allow_users=users)
