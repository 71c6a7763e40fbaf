"""The lab's stand-in Storage Box: a container from the lab host image running only sshd, on port 23, with one
SFTP-only account whose home is a small tmpfs (its "disk"). `invoke lab.up` makes it; `invoke lab.down`
removes it with the rest of the lab (it carries the lab's label).

Like a Storage Box: SFTP only (``ForceCommand internal-sftp``), keys read from ``~/.ssh/authorized_keys`` in the
account's home (which `invoke backup.init` writes over SFTP), relative paths from the home. Its host key is read
over the engine (a trusted path) and pinned in the lab's ``backup/target.known_hosts``; the ops machine's admin
key is put in place over the engine too, as ops would paste it into the provider's console.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

import docker
from docker.errors import NotFound
from docker.models.containers import Container

from drape_fleet import hostkeys
from drape_fleet.backup import keys
from drape_fleet.backup.lab import KNOWN_HOSTS, TARGET_PORT, TARGET_SIZE_MIB, TARGET_USER, target_address
from drape_fleet.console import Log
from drape_fleet.environments import environment
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.images import HOST_IMAGE
from drape_fleet.lab.settings import LABEL, LabSettings

ROLE_LABEL = f"{LABEL}.role"
HOME = f"/home/{TARGET_USER}"
SSHD_CONFIG = f"""# The lab's stand-in Storage Box (drape_fleet.backup.lab_target)
Port {TARGET_PORT}
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers {TARGET_USER}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
AllowTcpForwarding no
X11Forwarding no
"""
START = f"""set -e
test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
id {TARGET_USER} >/dev/null 2>&1 || useradd --no-create-home --home-dir {HOME} --shell /bin/sh {TARGET_USER}
usermod -p "*" {TARGET_USER}  # no password, but not locked: sshd refuses locked accounts
chown {TARGET_USER}:{TARGET_USER} {HOME} && chmod 750 {HOME}
printf '%s' {shlex.quote(SSHD_CONFIG)} > /etc/ssh/drape-target.conf
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/ssh/drape-target.conf
"""


def container_name(settings: LabSettings) -> str:
    return f"{settings.prefix}-backup-target"


def container_spec(settings: LabSettings) -> dict[str, Any]:
    """The Engine API body (``POST /containers/create``), pure: sshd only, a fixed address, a small tmpfs home."""
    return {
        "Image": HOST_IMAGE,
        "Cmd": ["sh", "-c", START],
        "Hostname": "backup-target",
        "Labels": {LABEL: settings.prefix, ROLE_LABEL: "backup-target"},
        "HostConfig": {
            "Tmpfs": {HOME: f"size={TARGET_SIZE_MIB}m,mode=0750"},
            "NetworkMode": settings.public_network,
            "RestartPolicy": {"Name": "unless-stopped"},
        },
        "NetworkingConfig": {"EndpointsConfig": {settings.public_network: {
            "IPAMConfig": {"IPv4Address": str(target_address(settings))}}}},
    }


def ensure_target(client: docker.DockerClient, settings: LabSettings, log: Log) -> Container:
    """The target exists, runs, holds the admin key, and its host key is pinned; made or mended, never remade."""
    name = container_name(settings)
    try:
        container = client.containers.get(name)
    except NotFound:
        log(f"backup target: creating {name} ({target_address(settings)}, SFTP on port {TARGET_PORT})")
        created = client.api.create_container_from_config(container_spec(settings), name)  # type: ignore[no-untyped-call]
        container = client.containers.get(created["Id"])
    if container.status != "running":
        container.start()
    _wait_for_sshd(container)
    _authorize_admin(container, settings)
    _pin(container, settings)
    return container


def _exec(container: Container, script: str, user: str = "root") -> str:
    code, output = container.exec_run(["sh", "-c", script], user=user, demux=False)
    text = output.decode(errors="replace") if isinstance(output, bytes) else ""
    if code != 0:
        raise LabError(f"{container.name}: `{script[:80]}` failed (exit {code}): {text.strip()[-300:]}")
    return text


def _wait_for_sshd(container: Container, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "running":
            code, _ = container.exec_run(["sh", "-c", "test -s /etc/ssh/ssh_host_ed25519_key.pub && "
                                                      f"grep -q ':{TARGET_PORT:04X} ' /proc/net/tcp"])
            if code == 0:
                return
        time.sleep(0.3)
    raise LabError(f"{container.name}: sshd did not listen on port {TARGET_PORT} within {timeout_s:.0f} s; see "
                   f"`docker logs {container.name}`")


def _authorize_admin(container: Container, settings: LabSettings) -> None:
    """The ops machine's admin key in the account's authorized_keys (kept if `backup.init` wrote more)."""
    key, _ = keys.ensure_admin_key(environment("lab"))
    line = key.with_suffix(".pub").read_text().strip()
    _exec(container, f"""set -e
install -d -m 700 -o {TARGET_USER} -g {TARGET_USER} {HOME}/.ssh
touch {HOME}/.ssh/authorized_keys
grep -qxF {shlex.quote(line)} {HOME}/.ssh/authorized_keys || echo {shlex.quote(line)} >> {HOME}/.ssh/authorized_keys
chown {TARGET_USER}:{TARGET_USER} {HOME}/.ssh/authorized_keys && chmod 600 {HOME}/.ssh/authorized_keys
""")


def _pin(container: Container, settings: LabSettings) -> None:
    key_type, key = _exec(container, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    address = str(target_address(settings))
    names = hostkeys.host_names("backup-target", address, TARGET_PORT)
    path = settings.state_dir / KNOWN_HOSTS
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(hostkeys.HostKey(names, key_type, key).line() + "\n")


def ensure_lab_target(settings: LabSettings, log: Log) -> None:
    """What `invoke lab.up` calls."""
    from drape_fleet.lab.engine import engine_client

    ensure_target(engine_client(), settings, log)
