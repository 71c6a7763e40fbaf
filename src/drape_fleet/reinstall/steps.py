"""The reinstall's steps (see ``plan.STEPS``): each does one thing through the context's seams and returns a
one-line summary, or raises ``StepFailed`` saying what happened, what was seen and what to do next."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict

from drape_fleet.hetzner.robot import RobotNotFound
from drape_fleet.installimage.config import parse_config
from drape_fleet.installimage.layout import InstallLayout, LayoutError, layout_for
from drape_fleet.installimage.machine import (
    ARCH_COMMAND,
    BOOT_MODE_COMMAND,
    BOOT_MODES,
    LSBLK_COMMAND,
    Disk,
    Machine,
    MachineReportError,
    parse_boot_mode,
    parse_lsblk,
)
from drape_fleet.installimage.problems import InvalidConfig
from drape_fleet.installimage.render import (
    POST_INSTALL_MARKER,
    POST_INSTALL_MARKER_TEXT,
    render_config,
    render_post_install,
)
from drape_fleet.installimage.rules_machine import space_plan
from drape_fleet.installimage.validate import require_valid
from drape_fleet.provision.storage import parse_mdstat
from drape_fleet.reinstall import commands
from drape_fleet.reinstall.context import FlowContext, StepFailed, TimedOut
from drape_fleet.reinstall.keys import PublicKey, pin, replace_known_hosts, rescue_fingerprints
from drape_fleet.reinstall.remote import SSH_FAILED, CommandResult

RESCUE_NEXT = ("check the server in Robot (status, a pending manual reset), or order a KVM console there to watch "
               "it boot; re-run to wait again, or re-run with --restart to activate the rescue system and reset anew")


def _fingerprints(ctx: FlowContext) -> tuple[str, ...]:
    settings = ctx.fleet.reinstall
    return rescue_fingerprints(settings.rescue_keys, ctx.fleet.provisioning.ssh.authorized_keys)


def _layout(ctx: FlowContext) -> InstallLayout:
    return layout_for(ctx.fleet, ctx.host.name, ctx.state.boot_mode)  # type: ignore[arg-type]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def preflight(ctx: FlowContext) -> str:
    fingerprints = _fingerprints(ctx)
    if not fingerprints:
        raise StepFailed("no SSH keys to give the rescue system", next_steps="set reinstall.rescue_keys to the "
                         "fingerprints of keys stored in Robot (`invoke fleet.robot-list --keys`), or list the "
                         "deploy keys in provisioning.ssh.authorized_keys")
    # The fleet file first: a layout that cannot work needs no credentials to be refused.
    for mode in BOOT_MODES:
        try:
            layout = layout_for(ctx.fleet, ctx.host.name, mode)
            require_valid(f"{ctx.host.name} ({mode} boot)", render_config(layout),
                          Machine.from_settings(ctx.fleet.reinstall, mode), xfs_mounts=layout.quota_mounts)
        except (LayoutError, InvalidConfig) as exc:
            raise StepFailed("the disk layout is not valid", seen=str(exc),
                             next_steps="fix the fleet file as each line says; nothing was touched") from None
    try:
        server = ctx.robot.servers.get(ctx.server_number)
    except RobotNotFound as exc:
        raise StepFailed(f"Robot has no server #{ctx.server_number} on this account", seen=str(exc),
                         next_steps="check the host's robot_server_number against `invoke fleet.robot-list`") from None
    if server.ip != ctx.address:
        raise StepFailed(f"Robot server {server.describe()} does not have {ctx.host.name}'s address {ctx.address}",
                         next_steps="a wrong number would reinstall another server: correct robot_server_number or "
                                    "public_address in the fleet file (`invoke fleet.robot-list` shows both)")
    stored = {key.fingerprint for key in ctx.robot.keys.list()}
    missing = [f for f in fingerprints if f not in stored]
    if missing:
        raise StepFailed(f"Robot does not store the key(s) {', '.join(missing)}, and the rescue system accepts only "
                         "keys Robot stores", next_steps="add the public key(s) in Robot (Key management), or "
                         "remove them from reinstall.rescue_keys / provisioning.ssh.authorized_keys")
    if server.cancelled:
        ctx.note(f"Robot says {server.describe()} is cancelled")
    ctx.update(server=server.describe())
    return f"{server.describe()}; {len(fingerprints)} rescue key(s) stored in Robot; layout valid for bios and uefi"


def activate_rescue(ctx: FlowContext) -> str:
    if ctx.robot.boot.rescue(ctx.server_number).active:
        ctx.robot.boot.deactivate_rescue(ctx.server_number)
        ctx.note("an earlier rescue activation was replaced")
    rescue = ctx.robot.boot.activate_rescue(ctx.server_number, _fingerprints(ctx))
    announced = [key.fingerprint for key in rescue.host_keys] or list(ctx.rescue_host_fingerprints)
    if not announced:
        raise StepFailed("Robot's activation answered no host keys, so the rescue system's identity cannot be "
                         "pinned", next_steps="the rescue system stays activated for the next boot; read its host "
                         "key fingerprint another way (Robot's web interface, a KVM console) and pass it as the "
                         "rescue host fingerprint")
    ctx.rescue_known_hosts.unlink(missing_ok=True)
    ctx.update(rescue_fingerprints=announced, rescue_host_keys=[], installimage_pid=None)
    return f"rescue system ({rescue.os}) active for the next boot; host key(s) {', '.join(announced)}"


def reset(ctx: FlowContext) -> str:
    options = ctx.robot.reset.options(ctx.server_number)
    kind = next((k for k in ("hw", "power") if k in options), None)
    if kind is None:
        raise StepFailed(f"Robot offers no hardware or power reset for this server (only {', '.join(options)})",
                         next_steps="reset it in Robot's web interface, then re-run: the flow goes on waiting "
                                    "for the rescue system")
    ctx.robot.reset.reset(ctx.server_number, kind)
    return f"{kind} reset requested"


def wait_rescue(ctx: FlowContext) -> str:
    def probe() -> tuple[tuple[PublicKey, ...] | None, str]:
        keys = ctx.remote.scan(ctx.address, ctx.port, timeout=ctx.timeouts.scan_s)
        if not keys:
            return None, f"no SSH answer at {ctx.address}:{ctx.port}"
        pinned = pin(keys, ctx.state.rescue_fingerprints)
        if not pinned.pinned:
            return None, ("SSH answers with keys Robot did not announce (the old system still running?): "
                          + pinned.describe(ctx.state.rescue_fingerprints))
        ctx.pin_rescue(list(pinned.pinned))
        check = ctx.rescue(commands.IDENTIFY_RESCUE)
        _refused_key(check, "rescue system")
        if "hetzner-rescue" not in check.stdout:
            return None, f"the pinned host answers but has no installimage ({check.tail()})"
        return pinned.pinned, ""

    try:
        pinned = ctx.wait_for("the rescue system's SSH", ctx.timeouts.rescue_boot_s, probe)
    except TimedOut as exc:
        raise StepFailed(exc.what, seen=exc.seen, next_steps=RESCUE_NEXT) from None
    return f"rescue system up; host key pinned: {pinned[0].type} {pinned[0].sha256}"


def _refused_key(result: CommandResult, what: str) -> None:
    if result.returncode == SSH_FAILED and "Permission denied" in result.stderr:
        raise StepFailed(f"the {what} refuses our SSH key", seen=result.tail(),
                         next_steps="ssh offers a key Robot did not put there: use the private key of one of the "
                                    "rescue keys (the identity file, or ssh-agent)")


def inspect(ctx: FlowContext) -> str:
    try:
        mode = parse_boot_mode(ctx.rescue(BOOT_MODE_COMMAND, check="the boot-mode check").stdout)
        disks = parse_lsblk(ctx.rescue(LSBLK_COMMAND, check="lsblk").stdout)
    except MachineReportError as exc:
        raise StepFailed("the rescue system's report could not be read", seen=str(exc)) from None
    arch = ctx.rescue(ARCH_COMMAND, check="uname").stdout.strip()
    present = None
    if (command := commands.image_present(ctx.fleet.reinstall.image)) is not None:
        present = "present" in ctx.rescue(command, check="the image check").stdout
    ctx.update(boot_mode=mode, arch=arch, disks=[asdict(disk) for disk in disks], image_present=present)
    return f"{mode} boot, {arch}, disks: {', '.join(disk.describe() for disk in disks) or 'none'}"


def validate(ctx: FlowContext) -> str:
    state = ctx.state
    machine = Machine(state.boot_mode, tuple(Disk(**disk) for disk in state.disks),  # type: ignore[arg-type]
                      arch=state.arch or "x86_64", image_present=state.image_present)
    layout = _layout(ctx)
    config, post_install = render_config(layout), render_post_install(layout)
    try:
        warnings = require_valid(f"{ctx.host.name} ({state.boot_mode} boot)", config, machine,
                                 expected=ctx.fleet.reinstall.drives, xfs_mounts=layout.quota_mounts)
    except InvalidConfig as exc:
        raise StepFailed("the installimage config does not fit this server", seen=str(exc),
                         next_steps="fix the fleet file as each line says, then re-run (the rescue system stays "
                                    "up)") from None
    for warning in warnings:
        ctx.note(warning.render())
    ctx.artifact("installimage.conf").write_text(config)
    ctx.artifact("post-install.sh").write_text(post_install)
    ctx.update(config_sha256=_sha256(config))
    usable, needed, _ = space_plan(parse_config(config), machine)
    return f"config valid for {state.boot_mode} boot; it uses {needed / 1024:.0f} of {(usable or 0) / 1024:.0f} GiB"


def upload(ctx: FlowContext) -> str:
    files = ((commands.CONFIG_PATH, ctx.artifact("installimage.conf"), "600"),
             (commands.POST_INSTALL_PATH, ctx.artifact("post-install.sh"), "700"))
    for path, local, mode in files:
        text = local.read_text()
        result = ctx.rescue(commands.upload(path, mode), input=text, check=f"uploading {path}")
        if _sha256(text) not in result.stdout:
            raise StepFailed(f"{path} arrived altered", seen=result.stdout.strip()[:200], next_steps="re-run")
    ctx.update(installimage_pid=None)
    return f"{commands.CONFIG_PATH} and {commands.POST_INSTALL_PATH} uploaded, checksums match"


def installimage(ctx: FlowContext) -> str:
    pid = ctx.state.installimage_pid
    if pid is not None:  # a run before this one started it: watch that one, unless it is gone
        polled = ctx.rescue(commands.poll_installimage(pid), check="asking after the installimage started before")
        pid = None if commands.parse_poll(polled.stdout).state == "gone" else pid
    if pid is None:
        started = ctx.rescue(commands.start_installimage(), check="starting installimage")
        pid = int(started.stdout.split()[-1])
        ctx.update(installimage_pid=pid)
        ctx.note(f"installimage started (pid {pid}); it takes 5 to 15 minutes")

    def probe() -> tuple[commands.InstallStatus | None, str]:
        polled = ctx.rescue(commands.poll_installimage(pid))
        if not polled.ok:
            return None, f"could not ask the rescue system ({polled.tail()})"
        status = commands.parse_poll(polled.stdout)
        if status.state == "gone":
            raise StepFailed("installimage vanished without an exit status (the rescue system restarted?)",
                             next_steps="re-run with --restart")
        return (status, "") if status.state == "exit" else (None, status.progress or "installing")

    try:
        final = ctx.wait_for("installimage", ctx.timeouts.installimage_s, probe)
    except TimedOut:
        ctx.rescue(commands.stop_installimage(pid))
        _installimage_failed(ctx, f"installimage did not finish within {ctx.timeouts.installimage_s:.0f} s "
                                  "and was stopped")
    if final.exit_code != 0:
        _installimage_failed(ctx, f"installimage exited with status {final.exit_code}")
    return "installimage finished"


def _installimage_failed(ctx: FlowContext, what: str) -> None:
    log = ctx.rescue(commands.FETCH_DEBUG).stdout
    ctx.state = ctx.state.forget("validate", "upload").model_copy(update={"installimage_pid": None})
    ctx.save()
    raise StepFailed(what, seen="\n".join(commands.relevant_lines(log)) or "(the debug log is empty)",
                     next_steps=f"read the lines above (all of it: {commands.DEBUG_LOG} on the rescue system); "
                                "fix the cause, then re-run: the rescue system is still up, and the config is "
                                "checked, uploaded and installed again")


def host_key(ctx: FlowContext) -> str:
    layout = _layout(ctx)
    result = ctx.rescue(commands.read_new_system(ctx.fleet.provisioning.storage.volume_group, POST_INSTALL_MARKER),
                        check="reading the installed system")
    new = commands.parse_new_system(result.stdout)
    problems = [] if new.host_keys else ["it has no SSH host keys"]
    if new.marker != POST_INSTALL_MARKER_TEXT:
        problems.append("the post-install script did not finish (installimage ignores its failure)")
    options = commands.fstab_options(new.fstab)
    for mount in layout.quota_mounts:
        filesystem, mount_options = options.get(mount, ("missing", ""))
        if filesystem != "xfs" or "prjquota" not in mount_options.split(","):
            problems.append(f"fstab mounts {mount} as {filesystem} {mount_options or '(no entry)'}")
    if problems:
        ctx.state = ctx.state.forget("validate", "upload", "installimage")
        ctx.save()
        raise StepFailed("the installed system is not as planned: " + "; ".join(problems), seen=new.fstab.strip(),
                         next_steps=f"see {commands.DEBUG_LOG} on the rescue system; re-run to install again")
    replace_known_hosts(ctx.known_hosts, ctx.host.name, ctx.address, ctx.port, new.host_keys)
    ctx.update(new_host_keys=[key.line() for key in new.host_keys])
    shown = ", ".join(f"{key.type} {key.sha256}" for key in new.host_keys)
    return f"new system's host keys recorded in {ctx.known_hosts}: {shown}"


def reboot(ctx: FlowContext) -> str:
    result = ctx.rescue(commands.REBOOT)
    if result.returncode not in (0, SSH_FAILED):
        raise StepFailed("the reboot command failed", seen=result.tail(), next_steps="re-run")
    return "rescue system rebooting into the new system"


def wait_os(ctx: FlowContext) -> str:
    recorded = {PublicKey.parse(line) for line in ctx.state.new_host_keys}

    def probe() -> tuple[str | None, str]:
        keys = ctx.remote.scan(ctx.address, ctx.port, timeout=ctx.timeouts.scan_s)
        if not keys:
            return None, "no SSH answer yet"
        if not recorded.intersection(keys):
            if pin(keys, ctx.state.rescue_fingerprints).pinned:
                return None, "the rescue system still answers (reboot pending)"
            return None, "SSH answers with keys that are neither the rescue system's nor the new system's"
        result = ctx.remote.run(ctx.address, ctx.port, ctx.known_hosts, commands.OS_RELEASE,
                                timeout=ctx.timeouts.command_s)
        _refused_key(result, "new system")
        return (result.stdout, "") if result.ok else (None, f"the new system answers; its check: {result.tail()}")

    try:
        answer = ctx.wait_for("the new system's SSH", ctx.timeouts.os_boot_s, probe)
    except TimedOut as exc:
        raise StepFailed(exc.what, seen=exc.seen, next_steps="watch it boot on a KVM console (order one in Robot); "
                         "a boot-mode mix-up (UEFI/BIOS) is the usual cause. Re-run to wait again, or with "
                         "--restart to reinstall") from None
    system, _, hostname = answer.strip().partition("\n")
    if hostname.strip() != ctx.host.name:
        raise StepFailed(f"the new system calls itself {hostname.strip()!r}, not {ctx.host.name!r}", seen=answer,
                         next_steps="check the HOSTNAME line of the installimage config")
    return f"{system} up as {hostname.strip()}"


def verify_layout(ctx: FlowContext) -> str:
    """The new system's storage as planned. What the environment says its hosts cannot have (the lab's stand-in:
    no md driver, no XFS quotas) is named as not checked rather than passed."""
    storage = ctx.fleet.provisioning.storage
    problems: list[str] = []
    checked: list[str] = []
    unchecked: list[str] = []
    if storage.manage_volumes:
        layout = _layout(ctx)
        mounts = commands.parse_findmnt(ctx.installed(commands.FINDMNT, check="findmnt").stdout)
        for mount in layout.quota_mounts:
            filesystem, options = mounts.get(mount, ("not mounted", ""))
            if filesystem != "xfs" or "prjquota" not in options.split(","):
                problems.append(f"{mount} is {filesystem} ({options or 'no options'}), not XFS with prjquota")
            elif commands.reflink_enabled(ctx.installed(commands.xfs_info(mount), check="xfs_info").stdout) is not True:
                problems.append(f"{mount} was made without reflink=1")
        checked.append(f"{', '.join(layout.quota_mounts)}: XFS, prjquota, reflink=1")
    else:
        unchecked.append("the XFS volumes (provisioning.storage.manage_volumes = false)")
    if storage.expect_raid:
        arrays = parse_mdstat(ctx.installed(commands.MDSTAT, check="reading /proc/mdstat").stdout)
        if not arrays:
            problems.append("no software RAID array is assembled")
        problems += [f"{a.describe()} is not a healthy mirror" for a in arrays
                     if a.level != "raid1" or a.health not in ("healthy", "resyncing")]
        checked += [a.describe() for a in arrays]
    else:
        unchecked.append("RAID (provisioning.storage.expect_raid = false)")
    if problems:
        raise StepFailed("the new system's storage is not as planned: " + "; ".join(problems),
                         next_steps="compare with the installimage config in the state directory; re-run with "
                                    "--restart to reinstall")
    if unchecked:
        checked.append(f"not checked in this environment: {', '.join(unchecked)}")
    return "; ".join(checked)


STEP_FUNCTIONS: dict[str, Callable[[FlowContext], str]] = {
    "preflight": preflight, "activate-rescue": activate_rescue, "reset": reset, "wait-rescue": wait_rescue,
    "inspect": inspect, "validate": validate, "upload": upload, "installimage": installimage, "host-key": host_key,
    "reboot": reboot, "wait-os": wait_os, "verify-layout": verify_layout,
}
