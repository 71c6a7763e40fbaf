"""Base system files: sysctl for a host of many dev servers, journald retention, unattended security
upgrades that never reboot by day, and the deploy user's sudo rule."""

from __future__ import annotations

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.provisioning import DistroProfile
from drape_fleet.provision.render import render

SYSCTL_PATH = "/etc/sysctl.d/60-drape.conf"
JOURNALD_PATH = "/etc/systemd/journald.conf.d/60-drape.conf"
UNATTENDED_PATH = "/etc/apt/apt.conf.d/52drape-unattended-upgrades"
AUTO_UPGRADES_PATH = "/etc/apt/apt.conf.d/20auto-upgrades"
UPGRADE_TIMER_PATH = "/etc/systemd/system/apt-daily-upgrade.timer.d/60-drape.conf"
SUDOERS_PATH = "/etc/sudoers.d/90-drape-deploy"

# Dozens of Next.js/Vite dev servers per host: each watches thousands of files and maps many regions.
# (fs.file-max is left alone: recent kernels default it to the maximum already.)
CAPACITY_SYSCTLS: dict[str, int] = {
    "fs.inotify.max_user_watches": 1048576,
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_queued_events": 65536,
    "vm.max_map_count": 262144,
    "net.core.somaxconn": 8192,
    "net.ipv4.tcp_max_syn_backlog": 8192,
}

# Namespaced network hardening: safe in the lab (each lab host has its own network namespace).
NETWORK_SYSCTLS: dict[str, int] = {
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv6.conf.all.accept_redirects": 0,
    "net.ipv6.conf.default.accept_redirects": 0,
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.ip_forward": 1,  # Docker needs it; stated so nothing else turns it off
}

# Only where the host owns its kernel (not a lab stand-in, which shares this machine's kernel and lives in a
# network namespace of its own, where the net.core backlog does not exist).
KERNEL_SYSCTLS: dict[str, int] = {
    "net.core.netdev_max_backlog": 16384,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "kernel.yama.ptrace_scope": 1,
    "kernel.unprivileged_bpf_disabled": 1,
    "net.core.bpf_jit_harden": 2,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
    "fs.protected_fifos": 1,
    "fs.protected_regular": 2,
    "fs.suid_dumpable": 0,
}


def sysctls(fleet: FleetConfig) -> dict[str, int]:
    values = {**CAPACITY_SYSCTLS, **NETWORK_SYSCTLS}
    if fleet.provisioning.base.owns_kernel:
        values.update(KERNEL_SYSCTLS)
    return values


def sysctl_file(values: dict[str, int]) -> str:
    return render("base/60-drape-sysctl.conf.j2", values=values)


def journald_conf(fleet: FleetConfig) -> str:
    return render("base/60-drape-journald.conf.j2", base=fleet.provisioning.base)


def unattended_upgrades_conf(fleet: FleetConfig, profile: DistroProfile) -> str:
    """Security origins of this distribution only; never an automatic reboot by day."""
    return render("base/52drape-unattended-upgrades.j2", base=fleet.provisioning.base,
                  origins=profile.upgrades.origins)


AUTO_UPGRADES_FILE = "base/20auto-upgrades"
"""Plain file: apt's periodic jobs on (package lists, unattended upgrade, autoclean)."""

UPGRADE_TIMER_FILE = "base/apt-daily-upgrade-timer.conf"
"""Plain file: upgrades run at night (UTC), when previews are idle; never in working hours."""


def sudoers_rule(user: str) -> str:
    return render("base/90-drape-deploy.j2", user=user)
