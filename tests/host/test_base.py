"""Base system: hostname, UTC, time sync, upgrades, journald, sysctls, the deploy user."""

from __future__ import annotations

import warnings
from typing import Any

from drape_fleet.config import FleetConfig, Host


def test_hostname_and_utc(host: Any, me: Host) -> None:
    assert host.check_output("hostname") == me.name
    assert host.check_output("date +%Z") == "UTC"
    assert host.check_output("readlink -f /etc/localtime").endswith("/UTC")


def test_essential_packages(host: Any) -> None:
    for package in ("nftables", "sudo", "unattended-upgrades", "systemd-timesyncd", "ca-certificates"):
        assert host.package(package).is_installed, package
    assert not host.package("ufw").is_installed


def test_time_sync(host: Any, in_container: bool) -> None:
    service = host.service("systemd-timesyncd")
    assert service.is_enabled
    if not in_container:  # timesyncd refuses to run in a container (ConditionVirtualization)
        assert service.is_running


def test_unattended_security_upgrades_without_reboots_by_day(host: Any, fleet: FleetConfig) -> None:
    config = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    assert 'APT::Periodic::Update-Package-Lists "1";' in config
    assert "security" in config.split("Unattended-Upgrade::Origins-Pattern", 1)[1].lower()
    reboot = 'Unattended-Upgrade::Automatic-Reboot "true";' in config
    assert reboot == fleet.provisioning.base.automatic_reboot
    if reboot:
        time_line = next(line for line in config.splitlines() if "Automatic-Reboot-Time" in line)
        hour = int(time_line.split('"')[1][:2])
        assert hour >= 23 or hour < 6, time_line
    timer = host.service("apt-daily-upgrade.timer")
    assert timer.is_enabled
    calendar = host.check_output("systemctl show apt-daily-upgrade.timer -p TimersCalendar")
    hours = [int(part.split(":")[0][-2:]) for part in calendar.split("OnCalendar=")[1:]]
    assert hours and all(h >= 23 or h < 6 for h in hours), calendar


def test_reboot_required_is_reported(host: Any, me: Host) -> None:
    if host.file("/var/run/reboot-required").exists:
        packages = host.run("cat /var/run/reboot-required.pkgs").stdout.split()
        warnings.warn(f"{me.name}: REBOOT REQUIRED (for {', '.join(packages) or 'updates'}); drain it first",
                      stacklevel=1)


def test_journald_retention(host: Any, fleet: FleetConfig) -> None:
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    effective = {}
    for line in config.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            effective[key.strip()] = value.strip()
    assert effective.get("SystemMaxUse") == fleet.provisioning.base.journal_max_use
    assert effective.get("MaxRetentionSec") == f"{fleet.provisioning.base.journal_retention_days}day"


def test_sysctls_for_many_dev_servers(host: Any, fleet: FleetConfig) -> None:
    at_least = {
        "fs.inotify.max_user_watches": 524288,
        "fs.inotify.max_user_instances": 1024,
        "vm.max_map_count": 262144,
        "net.core.somaxconn": 4096,
        "net.ipv4.tcp_max_syn_backlog": 4096,
    }
    if fleet.provisioning.base.owns_kernel:
        at_least["net.core.netdev_max_backlog"] = 8192
    for key, minimum in at_least.items():
        assert int(host.sysctl(key)) >= minimum, key
    exactly = {"net.ipv4.conf.all.accept_redirects": 0, "net.ipv4.conf.all.send_redirects": 0,
               "net.ipv4.tcp_syncookies": 1, "net.ipv4.ip_forward": 1}
    if fleet.provisioning.base.owns_kernel:
        exactly.update({"kernel.kptr_restrict": 2, "kernel.dmesg_restrict": 1, "fs.protected_symlinks": 1,
                        "fs.protected_hardlinks": 1, "fs.suid_dumpable": 0})
    for key, value in exactly.items():
        assert int(host.sysctl(key)) == value, key
    assert host.file("/etc/sysctl.d").is_directory
    persisted = host.check_output("cat /etc/sysctl.d/*.conf")
    assert "fs.inotify.max_user_watches" in persisted


def test_deploy_user(host: Any, fleet: FleetConfig) -> None:
    name = fleet.environment.deploy_user
    user = host.user(name)
    assert user.exists
    assert user.shell == "/bin/bash"
    keys = host.file(f"{user.home}/.ssh/authorized_keys")
    assert keys.exists and keys.user == name and keys.mode == 0o600
    assert keys.content_string.strip()
    assert host.file(f"{user.home}/.ssh").mode == 0o700
    rules = host.check_output(f"sudo -n -l -U {name}")
    assert "NOPASSWD: ALL" in rules


def test_security_updates_come_from_the_security_repository(host: Any) -> None:
    """unattended-upgrades can only install what apt knows: the distribution's security suite must be a source."""
    policy = host.check_output("apt-cache policy")
    assert any("-security" in line and ("n=" in line or "a=" in line) for line in policy.splitlines()
               if line.strip().startswith("release")), "no security repository among apt's sources"


def test_the_container_runtime_is_held_from_unattended_upgrades(host: Any) -> None:
    """Updating Docker, containerd or runc restarts every preview's engine: `invoke hosts.upgrade-runtime` does
    it after draining the host, never the nightly run."""
    config = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    held = {line.split('"')[1] for line in config.splitlines() if '"' in line}
    installed = {p for p in ("docker-ce", "docker.io", "containerd", "containerd.io", "runc")
                 if host.package(p).is_installed}
    assert installed and installed <= held, (installed, held)


def test_shared_kernel_limits_fit_every_preview(host: Any, fleet: FleetConfig) -> None:
    """All previews run as one host uid: the per-user inotify limits they share must stay above what all of
    them could hold within their memory (at 1 KiB an instance or watch, a low estimate of its kernel memory),
    so one tenant cannot exhaust them for the others; pid_max holds every preview's pids limit at once."""
    runtime = fleet.runtime
    sizes = [runtime.preview, *(f.resources for f in runtime.frameworks.values() if f.resources)]
    previews = max(h.capacity.memory_gib * 1024 // min(s.memory_mib for s in sizes) for h in fleet.hosts)
    largest = max([*sizes, *([runtime.max_preview] if runtime.max_preview else [])], key=lambda s: s.memory_mib)
    needed = previews * largest.memory_mib * 1024  # objects at 1 KiB each
    persisted = dict(line.replace(" ", "").split("=", 1) for line in
                     host.check_output("cat /etc/sysctl.d/*.conf").splitlines() if "=" in line
                     and not line.startswith("#"))
    for key in ("fs.inotify.max_user_instances", "fs.inotify.max_user_watches"):
        assert int(persisted[key]) >= min(needed, 2**31 - 1), key
        if fleet.provisioning.base.owns_kernel:
            assert int(host.sysctl(key)) >= min(needed, 2**31 - 1), key
        elif int(host.sysctl(key)) < min(needed, 2**31 - 1):
            warnings.warn(f"{key} is {host.sysctl(key)} on the kernel this lab host shares (fs.* sysctls are not "
                          "namespaced: something else on this machine set it since provisioning)", stacklevel=1)
    if fleet.provisioning.base.owns_kernel:
        pids = max(s.pids_limit for s in [*sizes, *([runtime.max_preview] if runtime.max_preview else [])])
        assert int(host.sysctl("kernel.pid_max")) >= previews * pids + 32768
