"""sshd_config as a pure function of the fleet's settings and the distribution's profile.

The file we write is the whole of /etc/ssh/sshd_config: sshd keeps the first value it reads for a keyword,
so our settings come first and the distribution's drop-ins (``Include`` at the end) can only add, never
override. Effective values are checked on the host with ``sshd -T`` (tests/host), not from this text.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.provisioning import DistroProfile

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
    ssh = profile.ssh
    users = [access.deploy_user] + (["root"] if access.root_login else [])
    lines = [
        "# Managed by drape-fleet (deploys/ssh.py). Local changes are overwritten on the next provision.",
        f"Port {access.port}",
        "AddressFamily any",
        f"HostKey {HOST_KEY}",
        "",
        "# Modern algorithms only: ssh-audit reports no failure and no warning.",
        f"KexAlgorithms {','.join(ssh.kex)}",
        f"Ciphers {','.join(ssh.ciphers)}",
        f"MACs {','.join(ssh.macs)}",
        f"HostKeyAlgorithms {','.join(ssh.host_key_algorithms)}",
        f"PubkeyAcceptedAlgorithms {','.join(ssh.pubkey_algorithms)}",
        "",
        "# Keys only.",
        f"PermitRootLogin {'prohibit-password' if access.root_login else 'no'}",
        f"AllowUsers {' '.join(users)}",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "HostbasedAuthentication no",
        "IgnoreRhosts yes",
        "UsePAM yes",
        "",
        "# Less to attack.",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "AllowStreamLocalForwarding no",
        "GatewayPorts no",
        "PermitTunnel no",
        "PermitUserEnvironment no",
        "MaxAuthTries 3",
        "MaxSessions 16",
        "MaxStartups 10:30:60",
        "PerSourceMaxStartups 10",
        "LoginGraceTime 30",
        "ClientAliveInterval 300",
        "ClientAliveCountMax 2",
        "UseDNS no",
        "Compression no",
        "PrintMotd no",
        "LogLevel VERBOSE",
    ]
    if ssh.debian_banner:
        lines.append("DebianBanner no")
    lines += [
        "AcceptEnv LANG LC_*",
        f"Subsystem sftp {ssh.sftp_server}",
        "",
        "# Distribution drop-ins come last, so they cannot override anything above.",
        "Include /etc/ssh/sshd_config.d/*.conf",
    ]
    return "\n".join(lines) + "\n"
