from __future__ import annotations

from drape_fleet.provision.distro import load_profile
from drape_fleet.provision.sshd import access_decision, sshd_config

EXPECTED_DEBIAN = """\
# Managed by drape-fleet (deploys/ssh.py). Local changes are overwritten on the next provision.
Port 22
AddressFamily any
HostKey /etc/ssh/ssh_host_ed25519_key

# Modern algorithms only: ssh-audit reports no failure and no warning.
KexAlgorithms sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com
Ciphers aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
HostKeyAlgorithms ssh-ed25519
PubkeyAcceptedAlgorithms ssh-ed25519,sk-ssh-ed25519@openssh.com,rsa-sha2-512,rsa-sha2-256

# Keys only.
PermitRootLogin no
AllowUsers deploy
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
HostbasedAuthentication no
IgnoreRhosts yes
UsePAM yes

# Less to attack.
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
AllowStreamLocalForwarding no
GatewayPorts no
PermitTunnel no
PermitUserEnvironment no
MaxAuthTries 3
MaxSessions 16
MaxStartups 10:30:60
PerSourceMaxStartups 10
LoginGraceTime 30
ClientAliveInterval 300
ClientAliveCountMax 2
TCPKeepAlive no
UseDNS no
Compression no
PrintMotd no
Banner /etc/issue.net
LogLevel VERBOSE
DebianBanner no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server

# Distribution drop-ins come last, so they cannot override anything above.
Include /etc/ssh/sshd_config.d/*.conf
"""


def test_debian_config_exact() -> None:
    access = access_decision(port=22, deploy_user="deploy", deploy_user_proven=True)
    assert sshd_config(load_profile("debian-12"), access) == EXPECTED_DEBIAN


def test_root_login_kept_until_the_deploy_user_is_proven() -> None:
    access = access_decision(port=2222, deploy_user="ops", deploy_user_proven=False, why_unproven="no keys")
    text = sshd_config(load_profile("ubuntu-24.04"), access)
    assert "PermitRootLogin prohibit-password\n" in text
    assert "AllowUsers ops root\n" in text
    assert "Port 2222\n" in text
    assert "KexAlgorithms sntrup761x25519-sha512@openssh.com\n" in text
    assert access.reason.startswith("root login KEPT (key only): ops is not proven yet (no keys)")


def test_every_profile_offers_only_post_quantum_kex() -> None:
    for distro in ("debian-12", "ubuntu-22.04", "ubuntu-24.04"):
        kex = load_profile(distro).ssh.kex
        assert kex and all(k.startswith(("sntrup761x25519", "mlkem768x25519")) for k in kex), distro
