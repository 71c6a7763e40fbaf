"""Every file the deploys put on a host, rendered exactly as the deploys render it, for the lab fleet and for
config/production.toml, compared byte for byte with a reviewed golden file in tests/fixtures/files/.

After an intended change: ``DRAPE_UPDATE_GOLDENS=1 pytest tests/unit/provision/test_host_files.py`` rewrites
the goldens (and fails, so the diff is reviewed before the next run passes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from jinja2 import UndefinedError

from drape_fleet.backup import host_files as backup_files
from drape_fleet.config import FleetConfig, load_fleet
from drape_fleet.config.provisioning import DistroProfile, SshSettings
from drape_fleet.lab.fleet import lab_fleet
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import project_root
from drape_fleet.provision import base, cache, daemon, firewall, hardening, safety, storage
from drape_fleet.provision.access import desired_authorized_keys
from drape_fleet.provision.distro import load_profile
from drape_fleet.provision.render import TEMPLATE_SUFFIX, files_dir, render
from drape_fleet.provision.sshd import access_decision, sshd_config

GOLDENS = Path(__file__).resolve().parents[2] / "fixtures" / "files"
HOST = "ax1"
KEYS = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenKeyForTheTemplateTestOnly000000000000 ops@example",)


@dataclass(frozen=True)
class Case:
    """One environment's inputs: its fleet, and the distribution its hosts run."""

    name: str
    fleet: FleetConfig
    profile: DistroProfile


def _cases() -> dict[str, Case]:
    return {
        "lab": Case("lab", lab_fleet(LabSettings()), load_profile("debian-12")),
        "production": Case("production", load_fleet(project_root() / "config" / "production.toml"),
                           load_profile("ubuntu-24.04")),
    }


def _sshd(case: Case) -> str:
    access = access_decision(port=case.fleet.environment.ssh_port, deploy_user=case.fleet.environment.deploy_user,
                             deploy_user_proven=True)
    return sshd_config(case.profile, access)


def _authorized_keys(case: Case) -> str:
    text = desired_authorized_keys(SshSettings(authorized_keys=KEYS), None, None)
    assert text is not None
    return text


# Template (under files/) -> what the deploys render from it. Every template must be here (tested below).
RENDERS: dict[str, Callable[[Case], str]] = {
    "ssh/sshd_config.j2": _sshd,
    "firewall/drape-firewall.nft.j2": lambda c: firewall.nftables_ruleset(firewall.firewall_policy(c.fleet, HOST)),
    "firewall/drape-firewall.service.j2": lambda c: firewall.systemd_unit(),
    "firewall/drape-firewall-closed.nft.j2": lambda c: firewall.closed_ruleset(firewall.firewall_policy(c.fleet, HOST)),
    "docker/daemon.json.j2": lambda c: daemon.daemon_json(c.fleet, HOST),
    "docker/10-drape.conf.j2": lambda c: daemon.systemd_drop_in(daemon.engine_packages(c.fleet, c.profile)),
    "docker/10-drape-socket.conf.j2": lambda c: daemon.socket_drop_in(),
    "docker/docker.sources.j2": lambda c: daemon.apt_source(c.profile, "/etc/apt/keyrings/docker.asc"),
    "base/60-drape-sysctl.conf.j2": lambda c: base.sysctl_file(base.sysctls(c.fleet)),
    "base/60-drape-journald.conf.j2": lambda c: base.journald_conf(c.fleet),
    "base/52drape-unattended-upgrades.j2": lambda c: base.unattended_upgrades_conf(c.fleet, c.profile),
    "base/90-drape-deploy.j2": lambda c: base.sudoers_rule(c.fleet.environment.deploy_user),
    "base/authorized_keys.j2": _authorized_keys,
    "base/drape-security.sources.j2": lambda c: base.security_source(c.profile),
    "hardening/60-drape-audit.rules.j2": lambda c: hardening.audit_rules(daemon.engine_packages(c.fleet, c.profile)),
    "hardening/60-drape-modprobe.conf.j2": lambda c: hardening.modprobe_conf(),
    "hardening/60-drape-pwquality.conf.j2": lambda c: hardening.pwquality_conf(),
    "hardening/aide.conf.j2": lambda c: hardening.aide_conf(),
    "storage/mdadm-monitor.conf.j2": lambda c: "".join(
        f"{line}\n" for line in storage.mdadm_monitor_lines(c.fleet.provisioning.storage).values()),
    "storage/smartd.conf.j2": lambda c: storage.smartd_conf(c.fleet.provisioning.storage),
    "cache/pnpm-store.conf.j2": lambda c: cache.store_conf(c.fleet.provisioning.cache),
    "cache/drape-pnpm-store-guard.j2": lambda c: cache.guard_script(),
    "cache/drape-pnpm-store-guard.service.j2": lambda c: cache.guard_service(),
    **{f"backup/{unit}.j2": (lambda c, unit=unit: backup_files.unit(unit)) for unit in backup_files.UNITS},
}

# Templates for a server's rescue system rather than a provisioned host, with goldens of their own (BIOS and
# UEFI layouts of a production fleet): tests/unit/installimage/test_render_and_layout.py.
RENDERED_ELSEWHERE = {"installimage/installimage.conf.j2", "installimage/post-install.sh.j2"}
# The cutover's WireGuard link (deploys/link.py), with goldens of their own: tests/unit/cutover/test_link.py.
RENDERED_ELSEWHERE |= {"link/wg-drape.conf.j2", "link/drape-link.nft.j2", "link/drape-link-firewall.service.j2",
                       "link/wg-quick-userspace.conf.j2", "link/backend-wg.conf.j2"}

# Plain files (nothing varies), put as they are.
PLAIN = {base.AUTO_UPGRADES_FILE, base.UPGRADE_TIMER_FILE, storage.ALERT_SCRIPT_FILE, cache.TIMER_FILE,
         safety.SCRIPT_FILE, *hardening.PLAIN_FILES, backup_files.AGENT_FILE}


# Deploys whose files have golden tests of their own, under the same rules (tests/monitoring/test_files.py).
OWN_GOLDENS = ("monitoring/", "service/", "ingress/")
# service and the Caddyfile: tests/service/test_service_files.py; previews' site and gate: tests/unit/test_ingress.py


def _on_disk() -> set[str]:
    names = {str(p.relative_to(files_dir())) for p in files_dir().rglob("*") if p.is_file()}
    return {name for name in names if not name.startswith(OWN_GOLDENS)}


def test_files_holds_exactly_the_templates_and_plain_files_the_deploys_use() -> None:
    templates = {name for name in _on_disk() if name.endswith(TEMPLATE_SUFFIX)}
    assert templates == set(RENDERS) | RENDERED_ELSEWHERE, \
        "a template without a golden test, or a test for a missing template"
    assert _on_disk() - templates == PLAIN


@pytest.mark.parametrize("environment", ["lab", "production"])
@pytest.mark.parametrize("template", sorted(RENDERS))
def test_render_matches_the_reviewed_golden(template: str, environment: str) -> None:
    text = RENDERS[template](_cases()[environment])
    golden = GOLDENS / environment / template.removesuffix(TEMPLATE_SUFFIX)
    if os.environ.get("DRAPE_UPDATE_GOLDENS"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
        pytest.fail(f"rewrote {golden}: review the diff, then run again without DRAPE_UPDATE_GOLDENS")
    assert text == golden.read_text()


def test_a_value_the_model_does_not_have_fails_the_render() -> None:
    """StrictUndefined: an attribute missing from a model, or a value not passed, is an error, not blank text."""
    profile = load_profile("debian-12")
    access = access_decision(port=22, deploy_user="deploy", deploy_user_proven=True)
    without_kex = SimpleNamespace(**{k: v for k, v in profile.ssh.model_dump().items() if k != "kex"})
    with pytest.raises(UndefinedError, match="kex"):
        render("ssh/sshd_config.j2", access=access, ssh=without_kex, host_key="/k", allow_users=["deploy"])
    with pytest.raises(UndefinedError, match="allow_users"):
        render("ssh/sshd_config.j2", access=access, ssh=profile.ssh, host_key="/k")


def test_lab_and_production_differ_where_the_data_says() -> None:
    """The goldens are not copies of each other: the lab's stand-in limits show in its files."""
    for name in ("docker/daemon.json", "base/60-drape-sysctl.conf", "firewall/drape-firewall.nft"):
        assert (GOLDENS / "lab" / name).read_text() != (GOLDENS / "production" / name).read_text(), name
    assert '"userns-remap": "default"' in (GOLDENS / "production" / "docker" / "daemon.json").read_text()
    assert "userns-remap" not in (GOLDENS / "lab" / "docker" / "daemon.json").read_text()
