"""The hardening baseline an independent auditor grades (dev-sec linux-baseline, CIS Ubuntu 24.04 Level 1),
read from the host: process accounting, audit rules, file integrity, unused modules, banners, umask and
password policy, core dumps, kernel sysctls. The expected values are written out here, from the references,
not taken from the deploys."""

from __future__ import annotations

from typing import Any

import pytest

from drape_fleet.config import FleetConfig

UNUSED_MODULES = ("cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "udf", "usb-storage", "dccp", "sctp", "rds",
                  "tipc")
AUDITED = ("/etc/docker", "/etc/systemd/system/docker.service.d", "/etc/ssh/sshd_config", "/etc/drape/firewall.nft",
           "/etc/systemd/system/drape-firewall.service", "/etc/passwd", "/etc/shadow", "/etc/sudoers")
NO_AUDIT_IN_A_CONTAINER = ("a lab host is a container: the kernel's audit subsystem answers only the initial PID "
                           "namespace, so auditd cannot run there; the rules are checked as written, and loaded "
                           "only on a real server")


def test_process_accounting(host: Any) -> None:
    acct = host.service("acct")
    assert acct.is_enabled and acct.is_running
    assert host.file("/var/log/account/pacct").exists


def test_audit_rules_cover_the_runtime_sshd_and_the_firewall(host: Any) -> None:
    assert host.package("auditd").is_installed
    assert host.service("auditd").is_enabled
    rules = host.check_output("cat /etc/audit/rules.d/*.rules")
    for path in AUDITED:
        assert f"-w {path} -p wa" in rules, path
    assert "-S init_module" in rules and "adjtimex" in rules


def test_audit_rules_are_loaded(host: Any, in_container: bool) -> None:
    if in_container:
        pytest.skip(NO_AUDIT_IN_A_CONTAINER)
    assert host.service("auditd").is_running
    loaded = host.check_output("auditctl -l")
    for path in AUDITED:
        assert f"-w {path} -p wa" in loaded, path


def test_file_integrity_baseline_and_nightly_check(host: Any) -> None:
    assert host.package("aide").is_installed
    assert host.file("/var/lib/drape/aide/aide.db").size > 0
    timer = host.service("drape-aide-check.timer")
    assert timer.is_enabled and timer.is_running
    selected = host.file("/etc/aide/aide.conf").content_string
    for tree in ("/etc", "/usr/bin", "/usr/sbin"):
        assert f"\n{tree} " in selected, tree
    check = host.run("/usr/local/sbin/drape-aide check")
    assert check.rc == 0, f"files differ from the integrity baseline:\n{check.stdout[-3000:]}"


def test_unused_filesystems_usb_storage_and_protocols_cannot_load(host: Any) -> None:
    config = host.check_output("modprobe --showconfig")
    loaded = host.run("cat /proc/modules").stdout  # absent where the kernel cannot load modules at all
    for module in UNUSED_MODULES:
        name = module.replace("-", "_")
        assert any(line.split()[:3] in (["install", name, "/bin/false"], ["install", name, "/bin/true"])
                   for line in config.splitlines()), module
        assert f"\n{name} " not in f"\n{loaded}", f"{module} is loaded"


def test_login_banners_warn_and_say_nothing_about_the_system(host: Any) -> None:
    for path in ("/etc/issue", "/etc/issue.net"):
        text = host.file(path).content_string
        assert "authori" in text.lower(), path
        assert not any(escape in text for escape in ("\\m", "\\r", "\\s", "\\v")), path
        assert not any(name in text for name in ("Debian", "Ubuntu", "GNU/Linux")), path
    assert host.check_output("sshd -T | grep -i '^banner '").split()[1] == "/etc/issue.net"


def test_umask_and_password_policy(host: Any, fleet: FleetConfig) -> None:
    defs = dict(line.split(None, 1) for line in host.file("/etc/login.defs").content_string.splitlines()
                if line.strip() and not line.lstrip().startswith("#") and len(line.split()) > 1)
    assert defs["UMASK"].strip() in ("027", "077")
    assert int(defs["PASS_MAX_DAYS"]) <= 365 and int(defs["PASS_MIN_DAYS"]) >= 1 and int(defs["PASS_WARN_AGE"]) >= 7
    assert defs["ENCRYPT_METHOD"].strip() in ("YESCRYPT", "SHA512")
    user = fleet.environment.deploy_user
    assert host.check_output(f"su -s /bin/bash -l {user} -c umask") in ("0027", "0077")
    quality = host.check_output("cat /etc/security/pwquality.conf /etc/security/pwquality.conf.d/*.conf")
    settings = dict(line.replace(" ", "").split("=", 1) for line in quality.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert int(settings["minlen"]) >= 14 and int(settings["minclass"]) >= 4
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    for entry in host.check_output("cat /etc/shadow").splitlines():
        name, password, _, minimum, maximum, warn = entry.split(":")[:6]
        if password.startswith("$"):  # users that have a password at all
            assert int(maximum or 99999) <= 365 and int(minimum or 0) >= 1 and int(warn or 0) >= 7, name


def test_no_core_dumps(host: Any) -> None:
    limits = host.check_output("cat /etc/security/limits.conf /etc/security/limits.d/*.conf")
    assert any(line.split()[1:4] == ["hard", "core", "0"] for line in limits.splitlines()
               if line.strip() and not line.startswith("#") and line.split()[0] == "*")


NAMESPACED = {"net.ipv4.conf.all.rp_filter": 1, "net.ipv4.conf.default.rp_filter": 1,
              "net.ipv4.conf.all.secure_redirects": 0, "net.ipv4.conf.default.send_redirects": 0,
              "net.ipv4.conf.all.accept_source_route": 0, "net.ipv4.conf.default.accept_source_route": 0,
              "net.ipv4.icmp_ignore_bogus_error_responses": 1, "net.ipv6.conf.all.accept_source_route": 0,
              "net.ipv4.conf.all.log_martians": 1}
KERNEL_WIDE = {"kernel.randomize_va_space": 2, "kernel.sysrq": 0, "kernel.kexec_load_disabled": 1,
               "kernel.yama.ptrace_scope": 1, "kernel.unprivileged_bpf_disabled": 1, "dev.tty.ldisc_autoload": 0,
               "fs.protected_regular": 2, "fs.protected_fifos": 1}


def test_kernel_hardening_sysctls(host: Any, fleet: FleetConfig) -> None:
    for key, value in NAMESPACED.items():
        assert int(host.sysctl(key)) == value, key
    if not fleet.provisioning.base.owns_kernel:
        pytest.skip("a lab host shares this machine's kernel: kernel-wide sysctls are set only where the host "
                    "owns its kernel (the namespaced ones above were checked)")
    for key, value in KERNEL_WIDE.items():
        assert int(host.sysctl(key)) == value, key
    assert int(host.sysctl("kernel.perf_event_paranoid")) >= 2
