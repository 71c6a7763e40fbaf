"""The stand-in hosts: one container each (systemd as PID 1, sshd, a Docker engine on its XFS data disk), made
from the pure spec in ``drape_fleet.lab.spec``, then given the keys a fresh installimage server has."""

from __future__ import annotations

import shlex
import time

import docker
from docker.errors import NotFound
from docker.models.containers import Container

from drape_fleet import hostkeys
from drape_fleet.console import Log
from drape_fleet.lab.disks import ensure_disk
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import SSH_USER, LabSettings
from drape_fleet.lab.spec import HOST_LABEL, SPEC_LABEL, host_container_spec

BOOT_TIMEOUT_S = 90.0


def lab_containers(client: docker.DockerClient, settings: LabSettings) -> dict[str, Container]:
    """The lab's host containers by host name, found by label (other containers of the lab, such as a
    bare-metal stand-in's, carry no host label)."""
    found = client.containers.list(all=True, filters={"label": [settings.label_filter, HOST_LABEL]})
    return {c.labels[HOST_LABEL]: c for c in found}


def ensure_host(client: docker.DockerClient, settings: LabSettings, index: int, image: str, log: Log) -> Container:
    """Lab host ``index`` exists, is on both lab networks and runs (made or mended, never remade). Its data disk
    is mounted first: a container started before it would get the empty directory underneath."""
    host = settings.host_name(index)
    spec = host_container_spec(settings, index, image)
    ensure_disk(settings, host, log)
    name = settings.container_name(host)
    try:
        container = client.containers.get(name)
    except NotFound:
        container = None
    if container is not None and container.labels.get(SPEC_LABEL) != spec["Labels"][SPEC_LABEL]:
        log(f"{host}: made from an older recipe; it keeps running as it is "
            "(run `invoke lab.down` then `invoke lab.up` to remake it)")
    if container is None:
        log(f"{host}: creating ({settings.public_address(index)}, {settings.private_address(index)})")
        created = client.api.create_container_from_config(spec, name)  # type: ignore[no-untyped-call]
        container = client.containers.get(created["Id"])
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    if settings.private_network not in networks:
        client.networks.get(settings.private_network).connect(
            container, ipv4_address=str(settings.private_address(index)))
    if container.status != "running":
        log(f"{host}: starting")
        container.start()
    return container


def _exec(container: Container, script: str) -> str:
    code, output = container.exec_run(["sh", "-c", script], demux=False)
    text = output.decode(errors="replace") if isinstance(output, bytes) else ""
    if code != 0:
        raise LabError(f"{container.name}: `{script[:80]}` failed (exit {code}): {text.strip()[-500:]}")
    return text


def prepare_host(container: Container, settings: LabSettings) -> None:
    """Wait for systemd, then give root and the deploy user the lab key, as a fresh install has."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        _, output = container.exec_run(["systemctl", "is-system-running"])
        state = output.decode().strip() if isinstance(output, bytes) else ""
        if state in ("running", "degraded"):
            break
        time.sleep(0.5)
    else:
        raise LabError(f"{container.name}: systemd did not finish booting within {BOOT_TIMEOUT_S:.0f} s "
                       f"(state {state!r}); see `docker logs {container.name}`")
    key = shlex.quote(settings.ssh_key.with_suffix(".pub").read_text().strip())
    user = SSH_USER
    _exec(container, f"""
set -e
install -d -m 700 /root/.ssh
echo {key} > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
id {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}
install -d -m 700 -o {user} -g {user} /home/{user}/.ssh
echo {key} > /home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys && chmod 600 /home/{user}/.ssh/authorized_keys
echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-deploy && chmod 440 /etc/sudoers.d/90-deploy
systemctl is-active --quiet ssh || systemctl start ssh
test -s /etc/ssh/ssh_host_ed25519_key.pub
""")


def host_key(container: Container, settings: LabSettings, index: int) -> hostkeys.HostKey:
    """The host's ed25519 key, read over the engine (a trusted path, unlike a network scan), under the names
    ops reach it by: public address, private address, host name."""
    key_type, key = _exec(container, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    names = (str(settings.public_address(index)), str(settings.private_address(index)), settings.host_name(index))
    return hostkeys.HostKey(names, key_type, key)
