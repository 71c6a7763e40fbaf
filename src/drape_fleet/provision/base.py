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
# (fs.file-max is left alone: recent kernels default it to the maximum already.) The inotify limits come
# from ``shared_kernel_limits``.
CAPACITY_SYSCTLS: dict[str, int] = {
    "fs.inotify.max_queued_events": 65536,
    "vm.max_map_count": 262144,
    "net.core.somaxconn": 8192,
    "net.ipv4.tcp_max_syn_backlog": 8192,
}

INOTIFY_FLOOR = {"fs.inotify.max_user_instances": 8192, "fs.inotify.max_user_watches": 1048576}
ACCOUNTED_BYTES_PER_INOTIFY_OBJECT = 512
"""At least what one inotify instance or watch costs in kernel memory charged to the preview's memory cgroup
(an instance is an fsnotify group and an open file; a watch a mark: both accounted since Linux 5.11)."""
PID_MAX_LIMIT = 4194304
"""The kernel's ceiling for kernel.pid_max on 64-bit (and systemd's default since v243)."""

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
    # CIS Ubuntu 24.04 3.3.x, dev-sec sysctl-01..33 (the namespaced ones).
    "net.ipv4.conf.all.rp_filter": 1,
    "net.ipv4.conf.default.rp_filter": 1,
    "net.ipv4.conf.all.secure_redirects": 0,
    "net.ipv4.conf.default.secure_redirects": 0,
    "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.default.accept_source_route": 0,
    "net.ipv4.conf.default.log_martians": 1,
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    "net.ipv6.conf.all.accept_source_route": 0,
    "net.ipv6.conf.default.accept_source_route": 0,
    "net.ipv6.conf.all.accept_ra": 0,  # Hetzner's IPv6 is configured statically (gateway fe80::1)
    "net.ipv6.conf.default.accept_ra": 0,
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
    # CIS Ubuntu 24.04 1.5.x, dev-sec sysctl-31..34, lynis KRNL-6000.
    "kernel.randomize_va_space": 2,
    "kernel.sysrq": 0,
    "kernel.core_uses_pid": 1,
    "kernel.perf_event_paranoid": 3,
    "kernel.kexec_load_disabled": 1,
    "dev.tty.ldisc_autoload": 0,
}


def previews_per_host(fleet: FleetConfig) -> int:
    """The most previews any host can carry: its memory for previews over the smallest preview's."""
    runtime = fleet.runtime
    sizes = [runtime.preview, *(f.resources for f in runtime.frameworks.values() if f.resources is not None)]
    smallest = min(size.memory_mib for size in sizes)
    return max(1, max(h.capacity.memory_gib * 1024 // smallest for h in fleet.hosts))


def shared_kernel_limits(fleet: FleetConfig) -> dict[str, int]:
    """Per-user kernel limits that all previews share (they run as one host uid): sized so that no preview,
    and not all of them together, can reach them within their memory limits, which is where the kernel
    charges inotify's memory. One tenant exhausting its own share then cannot make ``fs.watch`` fail in
    another: each preview's memory cgroup is the limit that binds. kernel.pid_max holds every preview's
    pids limit at once."""
    runtime = fleet.runtime
    sizes = [runtime.preview, *(f.resources for f in runtime.frameworks.values() if f.resources is not None)]
    if runtime.max_preview is not None:
        sizes.append(runtime.max_preview)
    previews = previews_per_host(fleet)
    per_preview = max(size.memory_bytes for size in sizes) // ACCOUNTED_BYTES_PER_INOTIFY_OBJECT
    inotify = min(2**31 - 1, previews * per_preview)
    values = {key: max(floor, inotify) for key, floor in INOTIFY_FLOOR.items()}
    if fleet.provisioning.base.owns_kernel:
        values["kernel.pid_max"] = PID_MAX_LIMIT
    return values


def sysctls(fleet: FleetConfig) -> dict[str, int]:
    values = {**CAPACITY_SYSCTLS, **shared_kernel_limits(fleet), **NETWORK_SYSCTLS}
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
                  origins=profile.upgrades.origins, runtime_packages=profile.upgrades.runtime_packages)


SECURITY_SOURCE_PATH = "/etc/apt/sources.list.d/drape-security.sources"


def security_source(profile: DistroProfile) -> str:
    return render("base/drape-security.sources.j2", upgrades=profile.upgrades)


def other_security_sources(profile: DistroProfile) -> str:
    """Command listing the apt sources, other than ours, that already name the security suite."""
    suite = profile.upgrades.security_suite
    return (f"grep -lE '(^|[[:space:]]){suite}([[:space:]]|$)' /etc/apt/sources.list "
            f"/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null "
            f"| grep -v '^{SECURITY_SOURCE_PATH}$' || true")


AUTO_UPGRADES_FILE = "base/20auto-upgrades"
"""Plain file: apt's periodic jobs on (package lists, unattended upgrade, autoclean)."""

UPGRADE_TIMER_FILE = "base/apt-daily-upgrade-timer.conf"
"""Plain file: upgrades run at night (UTC), when previews are idle; never in working hours."""


def sudoers_rule(user: str) -> str:
    return render("base/90-drape-deploy.j2", user=user)
