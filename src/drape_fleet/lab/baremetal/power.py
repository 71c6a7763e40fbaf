"""The power and firmware of a bare-metal stand-in: what a Robot reset and a reboot do to it.

- A reset (Robot's ``POST /reset``, through the fake webservice's hook) stops whatever runs at once and boots
  what the firmware is told: the rescue system when Robot has it activated for this boot (with the keys the
  activation named as root's authorized keys, and the rescue host keys Robot announced), else the disk.
- A reboot from inside (``reboot`` in the rescue system or the installed one) boots the disk: Robot's rescue
  activation is used up by the reset that booted it, exactly as on a real server.

One container is one boot. Every reset starts a new *generation*; the process that made it stays as the
machine's firmware, waiting for a reboot to boot the disk, until a newer reset (or ``lab.down``, or the
machine's ``down``) takes the machine over. A lock file keeps two of them from booting at once.
"""

from __future__ import annotations

import fcntl
import io
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
import requests
from docker.errors import NotFound
from docker.models.containers import Container

from drape_fleet.console import Log
from drape_fleet.lab.baremetal.disk import NoOperatingSystem, disk_directory, installed_system, root_archive
from drape_fleet.lab.baremetal.machine import GENERATION_LABEL, BareMetal, lsblk_report
from drape_fleet.lab.baremetal.spec import installed_spec, rescue_spec
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.images import HOST_IMAGE
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import project_root

RESCUE_IMAGE = "drape-lab/rescue:bookworm"
REBOOT_EXIT_CODE = 129
"""How a lab host's container ends when its systemd reboots (seen with systemd 252: PID 1 cannot reboot the
kernel from a container, so it exits, 128 + SIGHUP). A power-off, ``docker stop`` or a kill end otherwise."""
FIRMWARE_LIFETIME_S = 3 * 3600.0
"""The firmware process gives up after this long: a lab machine left running needs no one watching it."""
RESCUE_KEYS = "rescue"
"""The machine directory's ``rescue/etc/ssh``: the rescue system's host keys, which Robot announces."""


class Power:
    def __init__(self, settings: LabSettings, machine: BareMetal, client: docker.DockerClient, log: Log) -> None:
        self.settings, self.machine, self.client, self.log = settings, machine, client, log
        self.directory = machine.directory(settings)

    # -- the two ways a machine starts ----------------------------------------------------------------

    def reset(self, *, rescue: bool, authorized_keys: str = "") -> int:
        """Stop what runs, boot the rescue system or the disk; the new generation's number."""
        with self._locked():
            generation = self._generation() + 1
            (self.directory / "generation").write_text(f"{generation}\n")
            self._remove_containers()
            if rescue:
                self._boot_rescue(generation, authorized_keys)
            else:
                self._boot_disk(generation)
        return generation

    def power_off(self) -> None:
        """Stop what runs; nothing boots until the next reset."""
        with self._locked():
            (self.directory / "generation").write_text(f"{self._generation() + 1}\n")
            self._remove_containers()

    def supervise(self, generation: int, *, lifetime_s: float = FIRMWARE_LIFETIME_S) -> None:
        """Stay the firmware of ``generation``: when its system reboots, boot the disk."""
        deadline = time.monotonic() + lifetime_s
        while time.monotonic() < deadline:
            container = self._container(generation)
            if container is None:
                return
            try:
                container.wait(timeout=min(60.0, max(1.0, deadline - time.monotonic())))
            except requests.exceptions.RequestException:
                continue  # still running
            except NotFound:
                return
            with self._locked():
                if self._generation() != generation:
                    return  # a newer reset took the machine over
                try:
                    container.reload()
                except NotFound:
                    return
                code = container.attrs["State"]["ExitCode"]
                if container.status != "exited" or code != REBOOT_EXIT_CODE:
                    self.log(f"{container.name} stopped (exit status {code}): the machine stays off")
                    return
                self.log(f"{container.name} rebooted: booting from the disk")
                self._remove_containers()
                self._boot_disk(generation)

    # -- boots ------------------------------------------------------------------------------------------

    def _boot_rescue(self, generation: int, authorized_keys: str) -> None:
        firmware = self.directory / "firmware" / self.machine.boot_mode
        (firmware / "efi" if self.machine.boot_mode == "uefi" else firmware).mkdir(parents=True, exist_ok=True)
        records = installimage_records(self.settings, self.machine).parent
        records.mkdir(parents=True, exist_ok=True)
        spec = rescue_spec(self.settings, self.machine, RESCUE_IMAGE, source=project_root() / "src",
                           firmware=firmware, records=records, generation=generation)
        container = self._create(spec, self.machine.container_name(self.settings, "rescue"))
        files = {f"etc/ssh/{key.name}": (key.read_bytes(), 0o600 if key.suffix != ".pub" else 0o644)
                 for key in sorted((self.directory / RESCUE_KEYS / "etc" / "ssh").glob("ssh_host_*"))}
        if not files:
            raise LabError(f"{self.machine.name} has no rescue host keys in {self.directory}: run its up first")
        files["root/.ssh/authorized_keys"] = (authorized_keys.strip().encode() + b"\n", 0o600)
        files["etc/drape-rescue/lsblk.json"] = (lsblk_report(self.machine.disks).encode(), 0o644)
        container.put_archive("/", _archive(files, directories={"root/.ssh": 0o700}))
        container.start()
        self.log(f"{container.name}: booted the rescue system (generation {generation})")

    def _boot_disk(self, generation: int) -> None:
        disk = disk_directory(self.client, self.settings, self.machine)
        try:
            system = installed_system(disk)
        except NoOperatingSystem as exc:
            self.log(f"{self.machine.name}: nothing to boot, the machine stays off ({exc})")
            return
        spec = installed_spec(self.settings, self.machine, HOST_IMAGE, hostname=system.hostname,
                              volumes=system.volumes, generation=generation)
        container = self._create(spec, self.machine.container_name(self.settings, "disk"))
        self.client.networks.get(self.settings.private_network).connect(
            container, ipv4_address=str(self.machine.private_address(self.settings)))
        container.put_archive("/", root_archive(system.root))
        container.start()
        self.log(f"{container.name}: booted {system.hostname} from the disk (generation {generation})")

    # -- helpers ----------------------------------------------------------------------------------------

    def _create(self, spec: dict[str, object], name: str) -> Container:
        created = self.client.api.create_container_from_config(spec, name)  # type: ignore[no-untyped-call]
        return self.client.containers.get(created["Id"])

    def _containers(self) -> list[Container]:
        labels = [f"{key}={value}" for key, value in self.machine.labels(self.settings).items()]
        return list(self.client.containers.list(all=True, filters={"label": labels}))

    def _container(self, generation: int) -> Container | None:
        return next((c for c in self._containers() if c.labels.get(GENERATION_LABEL) == str(generation)), None)

    def _remove_containers(self) -> None:
        for container in self._containers():
            with suppress(NotFound):
                container.remove(force=True)

    def _generation(self) -> int:
        path = self.directory / "generation"
        return int(path.read_text()) if path.exists() else 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "power.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _archive(files: dict[str, tuple[bytes, int]], *, directories: dict[str, int]) -> bytes:
    """A tar stream of ``files`` (path -> content, mode), owned by root, with ``directories`` made first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, mode in directories.items():
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, mode
            archive.addfile(info)
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def rescue_host_keys(settings: LabSettings, machine: BareMetal) -> list[str]:
    """The rescue system's public host keys (what Robot announces when the rescue system is activated)."""
    directory = machine.directory(settings) / RESCUE_KEYS / "etc" / "ssh"
    return [path.read_text().strip() for path in sorted(directory.glob("ssh_host_*_key.pub"))]


def installimage_records(settings: LabSettings, machine: BareMetal) -> Path:
    """What the rescue system's installimage received, run by run (JSON lines: config, verdict, outcome)."""
    return machine.directory(settings) / "installimage" / "received.jsonl"


def firmware_log(settings: LabSettings, machine: BareMetal) -> Path:
    return machine.directory(settings) / "power.log"
