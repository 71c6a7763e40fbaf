"""Pure parts of the host side of issue 8: the fence's load-time validation, the safety net's commands, the
storage options installimage must agree with, the disk-quota check, kernel limits sized for previews."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from provision_testdata import fleet_data, make_fleet

from drape_fleet.config import ConfigError
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.provisioning import LogicalVolume
from drape_fleet.installimage.layout import QUOTA_MOUNT_OPTIONS
from drape_fleet.provision import base, daemon, hardening, safety
from drape_fleet.provision.firewall import firewall_policy
from drape_fleet.provision.storage import VolumeStep, fstab_line, mount_options


def test_private_network_is_required_where_hosts_have_private_addresses() -> None:
    data = fleet_data()
    data.pop("provisioning")
    with pytest.raises(ConfigError) as caught:
        validate_fleet(data, source="(test)")
    [problem] = caught.value.problems
    assert problem.field == "provisioning.firewall.private_network"
    assert "previews could reach every address on it" in problem.message
    assert problem.fix == 'set it to the vSwitch range, e.g. private_network = ["10.0.0.0/24"]'


def test_private_network_must_hold_the_hosts_and_the_backend() -> None:
    with pytest.raises(ConfigError, match=r"a host's private address, 10\.0\.0\.11, is outside the private network "
                                          r"\(10\.9\.0\.0/24\)"):
        make_fleet(provisioning={"firewall": {"private_network": ["10.9.0.0/24"]}})


def test_the_fence_covers_every_private_link_local_and_multicast_range_unless_listed() -> None:
    policy = firewall_policy(make_fleet(), "ax1")
    for address in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "127.0.0.1",
                    "224.0.0.1", "fd00::1", "fe80::1", "::1", "ff02::1"):
        assert any(ip_address(address) in net for net in policy.fenced), address
    assert not any(ip_address("1.1.1.1") in net for net in policy.fenced)
    listed = firewall_policy(make_fleet(provisioning={"firewall": {
        "private_network": ["10.0.0.0/24"], "preview_allowed_destinations": ["10.0.0.50/32"]}}), "ax1")
    assert [str(n) for n in listed.preview_allowed] == ["10.0.0.50/32"]
    assert listed.preview_closed_ports == (25, 465, 587) and listed.preview_rate == (50, 200)


def test_safety_net_commands() -> None:
    assert safety.arm_command("ssh", 120, "systemctl try-reload-or-restart ssh", ["/etc/ssh/sshd_config"]) == (
        "/usr/local/sbin/drape-safe-apply arm ssh 120 'systemctl try-reload-or-restart ssh' /etc/ssh/sshd_config")
    assert safety.confirm_command("firewall", "deploy") == "sudo -n /usr/local/sbin/drape-safe-apply confirm firewall"
    assert safety.confirm_command("firewall", "root") == "/usr/local/sbin/drape-safe-apply confirm firewall"
    assert safety.FRESH_CONNECTION == (("ControlMaster", "no"), ("ControlPath", "none"))


def test_xfs_volumes_mount_with_the_options_installimage_writes() -> None:
    xfs = LogicalVolume(name="docker", mount="/var/lib/docker", size="1200G", filesystem="xfs")
    ext4 = LogicalVolume(name="logs", mount="/var/log/big", size="10G", filesystem="ext4")
    assert ",".join(mount_options(xfs)) == QUOTA_MOUNT_OPTIONS
    assert fstab_line(VolumeStep(xfs, "keep", "/dev/vg0/docker", "")) == (
        "/dev/vg0/docker /var/lib/docker xfs defaults,noatime,prjquota 0 2")
    assert mount_options(ext4) == ("defaults", "noatime")


def test_overlay2_sizes_need_xfs_with_project_quotas() -> None:
    assert daemon.disk_quota_problem("xfs rw,noatime,attr2,inode64,logbufs=8,prjquota\n") == ""
    assert daemon.disk_quota_problem("xfs rw,noatime,pquota") == ""
    assert "is xfs (rw,noatime), but per-container disk limits" in daemon.disk_quota_problem("xfs rw,noatime")
    assert "is ext4" in daemon.disk_quota_problem("ext4 rw,relatime")
    assert "is not mounted" in daemon.disk_quota_problem("")


def test_shared_kernel_limits_are_sized_for_the_previews_a_host_carries() -> None:
    fleet = make_fleet()
    previews = base.previews_per_host(fleet)
    assert previews == 120 * 1024 // fleet.runtime.preview.memory_mib
    limits = base.shared_kernel_limits(fleet)
    largest = max([fleet.runtime.preview.memory_bytes,
                   *(f.resources.memory_bytes for f in fleet.runtime.frameworks.values() if f.resources)])
    assert limits["fs.inotify.max_user_instances"] == previews * largest // 512
    assert limits["fs.inotify.max_user_watches"] == limits["fs.inotify.max_user_instances"]
    assert limits["kernel.pid_max"] == 4194304
    lab_like = make_fleet(provisioning={"firewall": {"private_network": ["10.0.0.0/24"]},
                                        "base": {"owns_kernel": False}})
    assert "kernel.pid_max" not in base.shared_kernel_limits(lab_like)


def test_audit_watches_follow_the_engine_and_skip_dockers_data() -> None:
    fleet = make_fleet()
    from drape_fleet.provision.distro import load_profile

    ce = hardening.audit_watches(daemon.engine_packages(fleet, load_profile("ubuntu-24.04")))
    paths = {w.path for w in ce}
    assert {"/usr/bin/dockerd", "/usr/bin/containerd", "/usr/bin/runc", "/etc/docker", "/etc/ssh/sshd_config",
            "/etc/drape/firewall.nft"} <= paths
    assert "/var/lib/docker" not in paths
