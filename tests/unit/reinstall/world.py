"""A server as the reinstall's SSH seam meets it, for the flow tests: the old system, then (after a reset with
the rescue system activated in the fake Robot) Hetzner's rescue system, then (after a reboot) the new system.

It keeps ssh's promises: ``run`` refuses with exit 255 unless the known_hosts file it is given holds the key the
server presents, exactly as ``StrictHostKeyChecking=yes`` would. Its installimage checks the uploaded config with
the project's validator and runs the uploaded post-install script for real (bash) on an installimage-shaped fstab.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.robot_state import FakeServer
from fleets import NEW_OS_HOST_KEY, RESCUE_HOST_KEY

from drape_fleet import hostkeys
from drape_fleet.installimage.machine import ARCH_COMMAND, BOOT_MODE_COMMAND, LSBLK_COMMAND
from drape_fleet.installimage.validate import check_config
from drape_fleet.reinstall import commands
from drape_fleet.reinstall.keys import PublicKey
from drape_fleet.reinstall.remote import CommandResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
OLD_OS_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKOnqYogTZdnkNEj5dKr9i+tWLG8RzYu35dxaepXUbaz old@ax1"
PID = 4242
INSTALLIMAGE_FSTAB = """proc /proc proc defaults 0 0
# /dev/md/0
/dev/md/0 /boot ext4 defaults 0 0
/dev/vg0/root / ext4 defaults 0 0
/dev/vg0/docker /var/lib/docker xfs defaults 0 0
/dev/vg0/drape /srv/drape xfs defaults 0 0
"""


@dataclass
class World:
    boot_mode: str = "bios"
    lsblk: str = (FIXTURES / "installimage" / "lsblk-ax102.json").read_text()
    rescue_key: str = RESCUE_HOST_KEY
    rescue_boot_scans: int = 2
    """Scans that find nothing after the reset, before the rescue system answers (None: it never does)."""
    never_boots: bool = False
    install_polls: int = 3
    install_debug: str = ""
    """When set, installimage fails (exit 1) with this debug log."""
    os_boot_scans: int = 2
    phase: str = "old-os"
    commands: list[tuple[str, str]] = field(default_factory=list)
    uploads: dict[str, str] = field(default_factory=dict)
    installs_started: int = 0
    stopped: bool = False
    countdown: int = 0
    polls_left: int = 0
    new_fstab: str = ""
    marker: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- Robot's reset (the fake webservice's hook) ---------------------------------------------------

    def on_reset(self, server: FakeServer, kind: str, boots_rescue: bool) -> None:
        self.phase = "booting-rescue" if boots_rescue else "booting-old"
        self.countdown = self.rescue_boot_scans

    # -- the SSH seam ---------------------------------------------------------------------------------

    def presented(self) -> str | None:
        return {"old-os": OLD_OS_HOST_KEY, "rescue": self.rescue_key, "new-os": NEW_OS_HOST_KEY}.get(self.phase)

    def scan(self, address: str, port: int, *, timeout: float) -> list[PublicKey]:
        if self.phase.startswith("booting"):
            if self.countdown > 0 or (self.never_boots and self.phase == "booting-rescue"):
                self.countdown -= 1
                return []
            self.phase = {"booting-rescue": "rescue", "booting-os": "new-os", "booting-old": "old-os"}[self.phase]
        key = self.presented()
        return [PublicKey.parse(key)] if key else []

    def run(self, address: str, port: int, known_hosts: Path, command: str, *, timeout: float,
            input: str | None = None) -> CommandResult:
        key = self.presented()
        if key is None:
            return CommandResult(255, "", f"ssh: connect to host {address} port {port}: Connection refused")
        presented = PublicKey.parse(key)
        pinned = hostkeys.pinned(hostkeys.read(known_hosts), hostkeys.lookup_name(address, port))
        if (presented.type, presented.blob) not in {(k.key_type, k.key) for k in pinned}:
            return CommandResult(255, "", "Host key verification failed.")
        self.commands.append((self.phase, command))
        answer = self.rescue_command(command, input) if self.phase == "rescue" else self.os_command(command)
        return answer or CommandResult(127, "", f"the fake {self.phase} does not know: {command[:80]}")

    def rescue_command(self, command: str, input: str | None) -> CommandResult | None:
        plain = {commands.IDENTIFY_RESCUE: "hetzner-rescue\n", BOOT_MODE_COMMAND: f"{self.boot_mode}\n",
                 ARCH_COMMAND: "x86_64\n", LSBLK_COMMAND: self.lsblk, commands.FETCH_DEBUG: self.install_debug,
                 commands.image_present("/root/.oldroot/nfs/images/Ubuntu-2404-noble-amd64-base.tar.gz"): "present\n"}
        if command in plain:
            return CommandResult(0, plain[command], "")
        for path, mode in ((commands.CONFIG_PATH, "600"), (commands.POST_INSTALL_PATH, "700")):
            if command == commands.upload(path, mode):
                self.uploads[path] = input or ""
                return CommandResult(0, f"{hashlib.sha256((input or '').encode()).hexdigest()}  {path}\n", "")
        if command == commands.start_installimage():
            self.installs_started += 1
            self.polls_left = self.install_polls
            return CommandResult(0, f"{PID}\n", "")
        if command == commands.poll_installimage(PID):
            return CommandResult(0, self.poll(), "")
        if command == commands.stop_installimage(PID):
            self.stopped = True
            return CommandResult(0, "", "")
        if command == commands.read_new_system("vg0", "/root/.drape-post-install"):
            return CommandResult(0, f"== keys\n{NEW_OS_HOST_KEY}\n== fstab\n{self.new_fstab}== marker\n{self.marker}\n",
                                 "")
        if command == commands.REBOOT:
            self.phase, self.countdown = "booting-os", self.os_boot_scans
            return CommandResult(255, "", "Connection to 203.0.113.11 closed by remote host.")
        return None

    def poll(self) -> str:
        if self.stopped:
            return "gone\n"
        if self.polls_left > 0:
            self.polls_left -= 1
            return "running\n  6/17 : Extracting image (local) ... busy\n"
        if self.install_debug:
            return "exit 1\n"
        self.install()
        return "exit 0\n 17/17 : Installing bootloader grub ... done\n"

    def install(self) -> None:
        """What installimage leaves: the config it was given passes the validator, and the post-install script
        (run for real) rewrote fstab and left its marker."""
        problems = [p for p in check_config(self.uploads[commands.CONFIG_PATH]) if p.severity == "error"]
        assert not problems, problems
        with tempfile.TemporaryDirectory() as scratch:
            fstab, marker, script = Path(scratch, "fstab"), Path(scratch, "marker"), Path(scratch, "post-install")
            fstab.write_text(INSTALLIMAGE_FSTAB)
            script.write_text(self.uploads[commands.POST_INSTALL_PATH])
            subprocess.run(["bash", str(script)], check=True, capture_output=True,
                           env={"DRAPE_FSTAB": str(fstab), "DRAPE_MARKER": str(marker), "PATH": "/usr/bin:/bin"})
            self.new_fstab, self.marker = fstab.read_text(), marker.read_text().strip()

    def os_command(self, command: str) -> CommandResult | None:
        answers = {
            commands.OS_RELEASE: "ubuntu 24.04\nax1\n",
            commands.FINDMNT: (FIXTURES / "reinstall" / "findmnt-ax1.json").read_text(),
            commands.xfs_info("/var/lib/docker"): (FIXTURES / "reinstall" / "xfs_info-reflink.txt").read_text(),
            commands.xfs_info("/srv/drape"): (FIXTURES / "reinstall" / self.extra.get(
                "drape_xfs_info", "xfs_info-reflink.txt")).read_text(),
            commands.MDSTAT: (FIXTURES / "storage" / self.extra.get("mdstat", "mdstat-resyncing")).read_text(),
        }
        return CommandResult(0, answers[command], "") if command in answers else None
