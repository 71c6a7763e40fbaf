"""The host's hardening baseline, graded by the references an independent auditor uses (dev-sec's
linux-baseline, CIS Ubuntu 24.04 Level 1), taking what a container host allows: process accounting, audit
rules for changes to the container runtime, sshd and the firewall, file integrity (AIDE), modules a server
never needs, login banners, umask and password policy. Kernel sysctls live with the others in
``drape_fleet.provision.base``.

Where a container host departs from the references, it says why here (and in deploys/README.md): no audit
watch on /var/lib/docker (every preview write would be a record), squashfs and overlay stay loadable
(snap and Docker need them).
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.provision.daemon import EnginePackages
from drape_fleet.provision.firewall import RULESET_PATH, UNIT_NAME
from drape_fleet.provision.render import render

PACKAGES = ("acct", "auditd", "aide", "libpam-pwquality")

AUDIT_RULES_PATH = "/etc/audit/rules.d/60-drape.rules"
MODPROBE_PATH = "/etc/modprobe.d/60-drape-hardening.conf"
PWQUALITY_PATH = "/etc/security/pwquality.conf.d/60-drape.conf"
AIDE_CONF_PATH = "/etc/aide/aide.conf"
"""Where AIDE and auditors (lynis) look for it; Debian's aide-common, which would own it, is not installed."""
AIDE_DATABASE = "/var/lib/drape/aide/aide.db"
AIDE_SCRIPT = "/usr/local/sbin/drape-aide"
AIDE_TIMER = "drape-aide-check.timer"
AIDE_SERVICE = "drape-aide-check.service"

PLAIN_FILES: dict[str, tuple[str, str]] = {
    # files/ name -> (destination, mode)
    "hardening/issue": ("/etc/issue", "644"),
    "hardening/issue.net": ("/etc/issue.net", "644"),
    "hardening/motd": ("/etc/motd", "644"),
    "hardening/60-drape-umask.sh": ("/etc/profile.d/60-drape-umask.sh", "644"),
    "hardening/60-drape-limits.conf": ("/etc/security/limits.d/60-drape.conf", "644"),
    "hardening/drape-aide": (AIDE_SCRIPT, "755"),
    "hardening/60-drape-aide": ("/etc/apt/apt.conf.d/60-drape-aide", "644"),
    "hardening/drape-aide-check.service": (f"/etc/systemd/system/{AIDE_SERVICE}", "644"),
    "hardening/drape-aide-check.timer": (f"/etc/systemd/system/{AIDE_TIMER}", "644"),
}

UNUSED_MODULES = (
    # Filesystems (CIS 1.1.1.x): nothing on these servers is ever one of them.
    "cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "udf",
    # Removable storage (CIS 1.1.1.10, lynis USB-1000/STRG-1846): a rented server in a data centre.
    "usb-storage", "firewire-core",
    # Network protocols (CIS 3.2.x): unused, with a history of kernel bugs.
    "dccp", "sctp", "rds", "tipc",
)

LOGIN_DEFS: dict[str, str] = {
    # key -> value in /etc/login.defs (CIS 5.4.1.x; dev-sec os-05)
    "UMASK": "027",
    "HOME_MODE": "0750",
    "PASS_MAX_DAYS": "365",
    "PASS_MIN_DAYS": "1",
    "PASS_WARN_AGE": "7",
    "ENCRYPT_METHOD": "YESCRYPT",
}

PWQUALITY: dict[str, str | int] = {"minlen": 14, "minclass": 4, "maxrepeat": 3, "dictcheck": 1,
                                   "enforce_for_root": ""}

USERS_WITH_LAX_AGING = ("awk -F: '$2 ~ /^\\$/ && ($5 == \"\" || $5 > 365 || $4 < 1 || $6 < 7) { print $1 }' "
                        "/etc/shadow")
"""Local users that have a password whose aging is laxer than LOGIN_DEFS (login.defs covers only new users)."""


def aging_command(user: str) -> str:
    return (f"chage --maxdays {LOGIN_DEFS['PASS_MAX_DAYS']} --mindays {LOGIN_DEFS['PASS_MIN_DAYS']} "
            f"--warndays {LOGIN_DEFS['PASS_WARN_AGE']} {user}")


@dataclass(frozen=True)
class Watch:
    path: str
    key: str
    permissions: str = "wa"


def audit_watches(engine: EnginePackages) -> tuple[Watch, ...]:
    docker = [Watch(path, "docker") for path in (
        "/etc/docker", "/etc/systemd/system/docker.service.d", "/usr/lib/systemd/system/docker.service",
        "/usr/lib/systemd/system/docker.socket", "/usr/lib/systemd/system/containerd.service",
        "/etc/containerd", "/etc/default/docker", engine.dockerd)]
    docker += [Watch(f"{engine.dockerd.rsplit('/', 1)[0]}/{tool}", "docker") for tool in ("containerd", "runc")]
    return (
        *docker,
        Watch("/etc/ssh/sshd_config", "sshd"), Watch("/etc/ssh/sshd_config.d", "sshd"),
        Watch(RULESET_PATH, "firewall"), Watch(f"/etc/systemd/system/{UNIT_NAME}", "firewall"),
        Watch("/usr/sbin/nft", "firewall", "x"),
        *(Watch(path, "identity") for path in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
                                               "/etc/security/opasswd")),
        Watch("/etc/sudoers", "privileges"), Watch("/etc/sudoers.d", "privileges"),
        Watch("/var/log/lastlog", "logins"),
    )


def audit_rules(engine: EnginePackages) -> str:
    return render("hardening/60-drape-audit.rules.j2", watches=audit_watches(engine))


def modprobe_conf() -> str:
    return render("hardening/60-drape-modprobe.conf.j2", modules=UNUSED_MODULES)


def pwquality_conf() -> str:
    return render("hardening/60-drape-pwquality.conf.j2", values=PWQUALITY)


AIDE_SELECTED = ("/etc", "/boot", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
                 "/usr/lib/systemd/system")
AIDE_EXCLUDED = (
    # Rewritten by the system itself (or, on a lab stand-in, by the container engine).
    "/etc/mtab$", "/etc/adjtime$", "/etc/resolv.conf$", "/etc/hostname$", "/etc/hosts$", "/etc/ld.so.cache$",
    # The candidates our deploys check before installing: the installed files are watched.
    "/etc/ssh/sshd_config.drape-candidate$", "/etc/docker/daemon.json.drape-candidate$",
    "/etc/drape/firewall.nft.candidate$",
)


def aide_conf() -> str:
    return render("hardening/aide.conf.j2", database=AIDE_DATABASE, selected=AIDE_SELECTED, excluded=AIDE_EXCLUDED)
