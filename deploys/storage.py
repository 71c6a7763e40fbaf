"""Storage: refuse a degraded RAID1 (unless --force, loudly), watch the arrays (mdadm's monitor) and the NVMe
drives (smartd), and give /var/lib/docker and the shared cache their own LVM volumes: created when missing,
never reformatted or resized when present.

The lab kernel has no md driver and no device-mapper: there the RAID check reads an empty /proc/mdstat, the
environment says no RAID is expected (provisioning.storage), and the volumes are the lab's stand-ins.
RAID and LVM logic is tested from outputs in real formats (tests/fixtures/storage/).

Alone: `pyinfra inventories/lab.py deploys/storage.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import Directory
from pyinfra.facts.server import Command, Mounts
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.facts.storage import BlockFilesystem, LvmLogicalVolumes, LvmVolumeGroups, MdStat
from drape_fleet.provision import storage as builders
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.notes import NoteKind
from drape_fleet.provision.ops import edit_line, put_file, put_text, warn


@deploy("storage")
def storage() -> None:
    ctx = deploy_context(host)
    settings = ctx.fleet.provisioning.storage

    verdict = builders.raid_verdict(host.get_fact(MdStat), settings, force=ctx.force)
    if not verdict.ok:
        raise DeployError(f"{host.name}: {verdict.message}")
    if verdict.forced:
        warn(host, "storage", NoteKind.RAID_FORCED, verdict.message)

    if settings.manage_volumes:
        tools = ["lvm2", *(["xfsprogs"] if any(v.filesystem == "xfs" for v in settings.volumes) else [])]
        apt.packages(name="LVM and filesystem tools", packages=tools, update=True, cache_time=3600,
                     no_recommends=True)
        try:
            plan = builders.volume_plan(settings, host.get_fact(LvmVolumeGroups), host.get_fact(LvmLogicalVolumes))
        except builders.StoragePlanError as exc:
            raise DeployError(f"{host.name}: {exc}") from None
        mounts = host.get_fact(Mounts)
        for step in plan:
            volume = step.volume
            if volume.mount not in mounts and not ctx.force:
                listing = host.get_fact(Directory, path=volume.mount)
                if listing is not None:
                    server.shell(name=f"{volume.mount} is empty before {step.device} is mounted on it", commands=[
                        f"[ -z \"$(ls -A {volume.mount})\" ] || {{ echo '{volume.mount} holds data: move it "
                        f"aside before mounting {step.device} there' >&2; exit 1; }}",
                    ])
            if step.action == "create":
                server.shell(name=f"LV {volume.name} created ({volume.size}) and formatted", commands=[
                    builders.lvcreate_command(step, settings.volume_group), builders.mkfs_command(step)])
            elif host.get_fact(BlockFilesystem, device=step.device) is None:
                server.shell(name=f"LV {volume.name} had no filesystem: formatted",
                             commands=[builders.mkfs_command(step)])
            files.directory(name=f"{volume.mount} exists", path=volume.mount)
            edit_line(name=f"{volume.mount} in fstab", path="/etc/fstab", line=f"^{step.device} ",
                       replace=builders.fstab_line(step))
            server.mount(name=f"{volume.mount} mounted", path=volume.mount, device=step.device,
                         fs_type=volume.filesystem, options=list(builders.mount_options(volume)))
        docker = ctx.fleet.provisioning.docker
        inodes = docker.container_inodes
        docker_volume = next((v for v in settings.volumes if v.mount == "/var/lib/docker"), None)
        if docker.disk_quotas and docker_volume is not None and docker_volume.filesystem == "xfs":
            query = builders.DEFAULT_INODE_LIMIT_QUERY.format(mount=docker_volume.mount)
            if (host.get_fact(Command, command=query) or "").strip() != str(inodes):
                server.shell(name=f"Every container's writable layer limited to {inodes} files (XFS default "
                                  "project quota)",
                             commands=[builders.default_inode_limit_command(docker_volume.mount, inodes)])
    else:
        for volume in settings.volumes:
            # Modes are their owners' (Docker keeps /var/lib/docker at 0710; the cache deploy sets /srv/drape).
            files.directory(name=f"{volume.mount} exists (this environment's stand-in volume)", path=volume.mount)

    if settings.disk_monitoring:
        apt.packages(name="mdadm and smartmontools", packages=["mdadm", "smartmontools"], update=True,
                     cache_time=3600, no_recommends=True)
        script = put_file("Disk alert script", builders.ALERT_SCRIPT_FILE, builders.ALERT_SCRIPT, mode="755")
        changed = [script]
        for pattern, line in builders.mdadm_monitor_lines(settings).items():
            changed.append(edit_line(name=f"mdadm.conf: {line.split()[0]}", path=builders.MDADM_CONF,
                                      line=pattern, replace=line))
        smartd = put_text("smartd watches every drive", builders.smartd_conf(settings), builders.SMARTD_CONF)
        systemd.service(name="mdadm's monitor running", service="mdmonitor.service", running=True)
        server.shell(name="mdadm's monitor restarted for its new settings",
                     commands=["systemctl restart mdmonitor.service"], _if=any_changed(*changed))
        systemd.service(name="smartd running", service="smartmontools.service", running=True, enabled=True)
        systemd.service(name="smartd reloaded", service="smartmontools.service", reloaded=True,
                        _if=smartd.did_change)


storage()
