"""The reinstall as a plan: its steps in order, where a run resumes, and the texts ops read before anything
happens (the dry run and the confirmation naming what is destroyed). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.models import FleetConfig, Host
from drape_fleet.installimage.layout import layout_for
from drape_fleet.installimage.machine import BOOT_MODES
from drape_fleet.installimage.render import render_config, render_post_install
from drape_fleet.reinstall.state import ReinstallState


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    does: str
    destructive: bool = False


STEPS: tuple[Step, ...] = (
    Step("preflight", "check Robot and the layout",
         "Robot knows the server at the fleet file's address, stores the rescue keys; the layout passes "
         "installimage's rules for either boot mode (read-only)"),
    Step("activate-rescue", "activate the rescue system",
         "Robot: Linux rescue system for the next boot, with the keys by fingerprint; its host keys are pinned"),
    Step("reset", "hardware reset", "Robot: hardware reset; the running system stops at once", destructive=True),
    Step("wait-rescue", "wait for the rescue system",
         "SSH answers with a host key Robot announced (no trust on first use), and installimage is there"),
    Step("inspect", "inspect the hardware", "boot mode (/sys/firmware/efi), CPU architecture, disks (lsblk), image"),
    Step("validate", "render and check the config",
         "the layout for the boot mode found, checked with installimage's rules and against the disks"),
    Step("upload", "upload the config", "installimage config and post-install script, checksums compared"),
    Step("installimage", "run installimage",
         "installimage -a -c, detached, with a timeout; its debug log is shown on failure", destructive=True),
    Step("host-key", "record the new host keys",
         "read the installed system's SSH host keys (and fstab) over the pinned rescue connection; "
         "write them to known_hosts"),
    Step("reboot", "reboot into the new system", "reboot from the rescue system"),
    Step("wait-os", "wait for the new system", "SSH answers with the recorded key; Ubuntu 24.04, right hostname"),
    Step("verify-layout", "verify the layout",
         "XFS volumes mounted with prjquota and made with reflink=1, RAID1 arrays assembled"),
)
STEP_NAMES = tuple(step.name for step in STEPS)


def step(name: str) -> Step:
    return next(s for s in STEPS if s.name == name)


def resume_index(state: ReinstallState | None) -> int:
    """Where a run picks up: 0 without a saved state, else the first step after the preflight (which every run
    makes anyway) that is not done; ``len(STEPS)`` when all of them are. A preflight that failed in a later
    run does not undo the steps done before it."""
    if state is None:
        return 0
    return next((index for index, s in enumerate(STEPS) if index > 0 and not state.done(s.name)), len(STEPS))


def confirmation_text(host: Host, server: str, fleet: FleetConfig) -> str:
    """What ops confirm: the server as Robot knows it (number, name, address, product), and what is destroyed."""
    devices = [drive.device for drive in fleet.reinstall.drives]
    if len(devices) == 2:
        drives = f"BOTH DRIVES ({devices[0]} and {devices[1]})"
    elif len(devices) == 1:
        drives = f"THE DRIVE {devices[0]}"
    else:
        drives = f"ALL {len(devices)} DRIVES ({', '.join(devices)})"
    image = fleet.reinstall.image.rsplit("/", 1)[-1]
    raid = "a fresh RAID1 with LVM" if fleet.reinstall.software_raid else "LVM"
    return (f"Reinstall {host.name}: Robot server {server}.\n"
            f"The running system is reset at once and {image} is installed on {raid}: ALL DATA ON {drives} "
            "WILL BE DESTROYED.")


def plan_text(fleet: FleetConfig, host_name: str, state: ReinstallState | None) -> str:
    """The dry run: the steps (marking what a run would skip), then the installimage config for each boot mode
    the server could have (the one found, once the rescue system reported it)."""
    start = resume_index(state)
    lines = [f"Reinstall plan for {host_name}:"]
    for index, s in enumerate(STEPS):
        marker = "done, skipped" if 0 < index < start else ("DESTROYS DATA" if s.destructive else "")
        lines.append(f"  {index + 1:2}. {s.title}: {s.does}{f'  [{marker}]' if marker else ''}")
    modes = [m for m in BOOT_MODES if state is None or state.boot_mode in (None, m)]
    for mode in modes:
        lines += ["", f"installimage config ({mode} boot):", ""]
        config = render_config(layout_for(fleet, host_name, mode))
        lines += ["    " + line if line else "" for line in config.splitlines()]
    lines += ["", "post-install script (run by installimage inside the new system):", ""]
    script = render_post_install(layout_for(fleet, host_name, modes[0]))
    lines += ["    " + line if line else "" for line in script.splitlines()]
    return "\n".join(lines)
