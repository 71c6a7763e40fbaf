"""Base system files: sysctl for a host of many dev servers, journald retention, unattended security
upgrades that never reboot by day, and the deploy user's sudo rule."""

from __future__ import annotations

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.provisioning import DistroProfile

SYSCTL_PATH = "/etc/sysctl.d/60-drape.conf"
JOURNALD_PATH = "/etc/systemd/journald.conf.d/60-drape.conf"
UNATTENDED_PATH = "/etc/apt/apt.conf.d/52drape-unattended-upgrades"
AUTO_UPGRADES_PATH = "/etc/apt/apt.conf.d/20auto-upgrades"
UPGRADE_TIMER_PATH = "/etc/systemd/system/apt-daily-upgrade.timer.d/60-drape.conf"

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
    lines = ["# Managed by drape-fleet (deploys/base.py)."]
    lines += [f"{key} = {value}" for key, value in sorted(values.items())]
    return "\n".join(lines) + "\n"


def journald_conf(fleet: FleetConfig) -> str:
    base = fleet.provisioning.base
    return "\n".join([
        "# Managed by drape-fleet (deploys/base.py).",
        "[Journal]",
        "Storage=persistent",
        "Compress=yes",
        f"SystemMaxUse={base.journal_max_use}",
        f"MaxRetentionSec={base.journal_retention_days}day",
        "",
    ])


def unattended_upgrades_conf(fleet: FleetConfig, profile: DistroProfile) -> str:
    base = fleet.provisioning.base
    origins = "\n".join(f'    "{origin}";' for origin in profile.upgrades.origins)
    return "\n".join([
        "// Managed by drape-fleet (deploys/base.py): security updates only.",
        "Unattended-Upgrade::Origins-Pattern {",
        origins,
        "};",
        'Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";',
        'Unattended-Upgrade::Remove-Unused-Dependencies "true";',
        # Reboots are for ops to schedule (drain first); `invoke verify` reports a pending one.
        f'Unattended-Upgrade::Automatic-Reboot "{"true" if base.automatic_reboot else "false"}";',
        f'Unattended-Upgrade::Automatic-Reboot-Time "{base.reboot_time}";',
        'Unattended-Upgrade::Automatic-Reboot-WithUsers "true";',
        'Dpkg::Options { "--force-confdef"; "--force-confold"; };',
        "",
    ])


def auto_upgrades_conf() -> str:
    return "\n".join([
        "// Managed by drape-fleet (deploys/base.py).",
        'APT::Periodic::Update-Package-Lists "1";',
        'APT::Periodic::Unattended-Upgrade "1";',
        'APT::Periodic::AutocleanInterval "7";',
        "",
    ])


def upgrade_timer_drop_in() -> str:
    """Upgrades run at night (UTC), when previews are idle; never in working hours."""
    return "\n".join([
        "# Managed by drape-fleet (deploys/base.py).",
        "[Timer]",
        "OnCalendar=",
        "OnCalendar=*-*-* 02:30",
        "RandomizedDelaySec=30m",
        "",
    ])


def sudoers_rule(user: str) -> str:
    return f"# Managed by drape-fleet (deploys/base.py).\n{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
