"""Bringing a bare-metal stand-in up and down, and what a test may do to it (inject an installimage failure,
ask what it runs now).

``up`` makes a server as it comes to us: an older system installed on its disk, running, with data on its
volumes; its rescue host keys made (Robot announces them at activation); the rescue image built. It needs the
lab's networks (``invoke lab.up``) and disturbs no lab host.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import docker
from docker.errors import NotFound

from drape_fleet.console import Log
from drape_fleet.lab.baremetal.disk import disk_directory, install_old_system
from drape_fleet.lab.baremetal.machine import BOOT_LABEL, BareMetal
from drape_fleet.lab.baremetal.power import RESCUE_IMAGE, RESCUE_KEYS, Power
from drape_fleet.lab.engine import ensure_engine, require_root
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.images import IMAGE_LABEL, ensure_host_image
from drape_fleet.lab.node_images import MACHINE_CA
from drape_fleet.lab.ranges import own_network
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import project_root
from drape_fleet.preview_images import RECIPE_LABEL, build_image, recipe

FIRMWARE_MODULE = "drape_fleet.lab.baremetal"
PID_FILE = "firmware.pid"


def ensure_rescue_image(client: docker.DockerClient, log: Log) -> str:
    """The rescue image on the lab host image, rebuilt when its files (or the base) change. Its context holds
    this machine's CA bundle, as the lab's Node base does, for pip behind a TLS-inspecting proxy."""
    base = ensure_host_image(client, log)
    context = project_root() / "images" / "rescue"
    files = {path.name: path.read_bytes() for path in sorted(context.iterdir()) if path.is_file()}
    files["machine-ca.crt"] = MACHINE_CA.read_bytes() if MACHINE_CA.exists() else b""
    base_id = client.images.get(base).id or base
    try:
        current = (client.images.get(RESCUE_IMAGE).labels or {}).get(RECIPE_LABEL)
    except NotFound:
        current = None
    if current != recipe(files, base_id):
        log(f"building {RESCUE_IMAGE} from images/rescue (pydantic from PyPI; about a minute)")
    try:
        return build_image(client.api, files, RESCUE_IMAGE, base=base, recipe_base=base_id, network_mode="host",
                           labels={IMAGE_LABEL: "true"})
    except RuntimeError as exc:
        raise LabError(str(exc)) from None


def up(settings: LabSettings, machine: BareMetal, log: Log) -> BareMetal:
    """The machine as it comes to us, running its old system (anything it ran before is replaced)."""
    require_root("a bare-metal stand-in")
    client = ensure_engine(log)
    for network in (settings.public_network, settings.private_network):
        if own_network(client, settings, network) is None:
            raise LabError(f"the lab network {network} does not exist: run `invoke lab.up` first")
    ensure_rescue_image(client, log)
    stop_firmware(settings, machine)
    machine.save(settings)
    keys = machine.directory(settings) / RESCUE_KEYS / "etc" / "ssh"
    if not any(keys.glob("ssh_host_*_key")):
        keys.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-A", "-f", str(keys.parents[1])], check=True, capture_output=True)
    power = Power(settings, machine, client, log)
    power.power_off()
    install_old_system(disk_directory(client, settings, machine), hostname=f"old-{machine.name}")
    power.reset(rescue=False)
    log(f"{machine.name}: up at {machine.public_address(settings)}, running its old system")
    return machine


def down(settings: LabSettings, machine: BareMetal, log: Log) -> None:
    """Remove the machine: its firmware process, containers, disk and files."""
    client = ensure_engine(log)
    stop_firmware(settings, machine)
    labels = [f"{key}={value}" for key, value in machine.labels(settings).items()]
    for container in client.containers.list(all=True, filters={"label": labels}):
        container.remove(force=True)
    with contextlib.suppress(NotFound):
        client.volumes.get(machine.disk_volume(settings)).remove(force=True)
    shutil.rmtree(machine.directory(settings), ignore_errors=True)
    log(f"{machine.name}: removed")


def firmware_command(python: str) -> str:
    """The Robot fake's reset hook that makes this lab's machines boot (ROBOT_* variables in its environment)."""
    return f"{shlex.quote(python)} -m {FIRMWARE_MODULE} robot-reset"


def stop_firmware(settings: LabSettings, machine: BareMetal) -> None:
    """End the machine's firmware process (the one a reset started), if it still runs: only that process."""
    pid_file = machine.directory(settings) / PID_FILE
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = ""
    if FIRMWARE_MODULE in command:
        os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


def booted(client: docker.DockerClient, settings: LabSettings, machine: BareMetal) -> str | None:
    """What the machine runs now: ``rescue``, ``disk`` (its installed system), or None (off)."""
    labels = [f"{key}={value}" for key, value in machine.labels(settings).items()]
    running = client.containers.list(filters={"label": labels})
    return running[0].labels.get(BOOT_LABEL) if running else None


def inject_installimage_failure(client: docker.DockerClient, settings: LabSettings, machine: BareMetal,
                                debug_log: str | None) -> None:
    """Make the running rescue system's installimage fail with ``debug_log`` (None: work again)."""
    try:
        rescue = client.containers.get(machine.container_name(settings, "rescue"))
    except NotFound:
        raise LabError(f"{machine.name} is not running its rescue system") from None
    path = "/etc/drape-rescue/fail-installimage"
    script = f"rm -f {path}" if debug_log is None else f"printf '%s\\n' {shlex.quote(debug_log)} > {path}"
    code, _ = rescue.exec_run(["sh", "-c", script])
    if code != 0:
        raise LabError(f"{rescue.name}: could not change {path}")
