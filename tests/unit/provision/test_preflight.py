"""Refusals before any host is touched, with a fake SSH seam standing in for the hosts' answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from provision_testdata import fixture_text, make_target

from drape_fleet import shell
from drape_fleet.config import FleetConfig
from drape_fleet.environments import FleetTarget
from drape_fleet.pki.authority import init_ca
from drape_fleet.provision.notes import DeployNote, NoteKind
from drape_fleet.provision.preflight import (
    PROBE,
    ProvisionRefused,
    ensure_pki,
    resolve_hosts,
)
from drape_fleet.provision.service import preflight, provision
from drape_fleet.ssh import SshTarget


class FakeHosts:
    """Answers the probe as the hosts would; records who was asked what."""

    def __init__(self, mdstat: str = "", client: str = "203.0.113.7", refuse_users: tuple[str, ...] = (),
                 unreachable: bool = False) -> None:
        self.mdstat, self.client, self.refuse_users, self.unreachable = mdstat, client, refuse_users, unreachable
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, target: SshTarget, command: str) -> shell.Result:
        self.calls.append((target.user, target.hostname, command))
        if self.unreachable:
            return shell.Result(255, "", f"ssh: connect to host {target.hostname} port 22: No route to host\n")
        if target.user in self.refuse_users:
            return shell.Result(255, "", f"{target.user}@{target.hostname}: Permission denied (publickey).\n")
        assert command == PROBE
        return shell.Result(0, f"client={self.client}\n---mdstat---\n{self.mdstat}", "")


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRAPE_PKI_DIR", str(tmp_path / "pki"))
    init_ca(tmp_path / "pki", allow_in_repo=True)
    return tmp_path / "pki"


@pytest.fixture
def ops_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``target`` keeps the key ops offer and the pinned host keys."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def target(fleet: FleetConfig, *, pinned: bool = True, key: bool = True) -> FleetTarget:
    return make_target(fleet, Path.cwd(), pinned=pinned, key=key)


def test_unknown_host_lists_the_known_ones(fleet: FleetConfig) -> None:
    with pytest.raises(ProvisionRefused, match=r"unknown host 'ax7': this fleet \(production\) has ax1, ax2"):
        resolve_hosts(fleet, ["ax1", "ax7"], False)
    with pytest.raises(ProvisionRefused, match=r"--host NAME \(one of ax1, ax2\) or --all"):
        resolve_hosts(fleet, [], False)
    assert [h.name for h in resolve_hosts(fleet, [], True)] == ["ax1", "ax2"]


def test_missing_ca_is_refused_in_production_and_made_in_the_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fleet: FleetConfig) -> None:
    monkeypatch.setenv("DRAPE_PKI_DIR", str(tmp_path / "pki"))
    with pytest.raises(ProvisionRefused, match=r"missing TLS CA: .*ca.pem does not exist.*invoke pki.init"):
        ensure_pki(fleet, fleet.hosts, create_ca=False)
    report = ensure_pki(fleet, fleet.hosts, create_ca=True)
    assert report.notes[0].startswith("made a lab CA in")
    assert "issued ax1's server certificate (missing)" in report.notes


def test_degraded_raid_refuses_every_host_before_any_change(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    hosts = FakeHosts(mdstat=fixture_text("mdstat-degraded"))
    with pytest.raises(ProvisionRefused) as refused:
        provision(target(fleet), every=True, remote=hosts)
    message = str(refused.value)
    assert message.count("RAID not redundant") == 2 and "--force" in message
    assert message.endswith("Nothing was changed on any host.")
    assert {command for _, _, command in hosts.calls} == {PROBE}  # only read, nothing run


def test_force_goes_on_loudly(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    notes: list[str] = []
    probes = preflight(target(fleet), fleet.hosts, ("storage",), force=True,
                       remote=FakeHosts(mdstat=fixture_text("mdstat-degraded")), note=notes.append)
    assert set(probes) == {"ax1", "ax2"}
    assert notes and all("FORCED despite: RAID not redundant" in n for n in notes)


def test_healthy_raid_passes(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    probes = preflight(target(fleet), fleet.hosts, ("storage", "firewall"), force=False,
                       remote=FakeHosts(mdstat=fixture_text("mdstat-healthy")))
    assert probes["ax1"].client_address == "203.0.113.7"


def test_allowlist_without_the_ops_address_is_refused(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    remote = FakeHosts(mdstat=fixture_text("mdstat-healthy"), client="198.51.100.23")
    with pytest.raises(ProvisionRefused, match=r"you connect from 198.51.100.23.*lock you out"):
        preflight(target(fleet), fleet.hosts[:1], ("firewall",), force=False, remote=remote)
    # Without the firewall in the run there is nothing to lock out.
    preflight(target(fleet), fleet.hosts[:1], ("ssh",), force=False, remote=remote)


def test_unreachable_host(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    with pytest.raises(ProvisionRefused, match=r"ax1 is unreachable: ssh deploy@203.0.113.11 -p 22 failed "
                                               r"\(ssh: connect to host 203.0.113.11 port 22: No route to host\)"):
        preflight(target(fleet), fleet.hosts[:1], ("base",), force=False, remote=FakeHosts(unreachable=True))


def test_a_fresh_host_is_reached_as_root(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    remote = FakeHosts(mdstat=fixture_text("mdstat-healthy"), refuse_users=("deploy",))
    probes = preflight(target(fleet), fleet.hosts[:1], ("base",), force=False, remote=remote)
    assert probes["ax1"].user == "root"
    assert [user for user, _, _ in remote.calls] == ["deploy", "root"]


def test_a_fresh_host_gets_root_login_turned_off_once_the_deploy_user_works(
        pki: Path, ops_files: Path, fleet: FleetConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Provisioned as root (root login KEPT by the ssh deploy), then the ssh deploy runs again as deploy."""
    from drape_fleet.provision import service
    from drape_fleet.provision.runner import DeployResult, HostRun

    calls: list[list[str]] = []

    def fake_run(argv: list[str], host: str, **_: object) -> HostRun:
        calls.append(argv)
        if "--user" in argv:
            return HostRun(host, False, True, {"ssh": DeployResult("ssh", changed=["sshd_config candidate"])},
                           notes=[DeployNote(host, "ssh", NoteKind.ROOT_LOGIN_KEPT, "deploy is not proven yet")])
        return HostRun(host, False, True, {"ssh": DeployResult("ssh", changed=["sshd reloaded"])})

    class Hosts(FakeHosts):
        def __call__(self, target: SshTarget, command: str) -> shell.Result:
            if command == "sudo -n true":  # after the first run, the deploy user works
                self.calls.append((target.user, target.hostname, command))
                return shell.Result(0, "", "")
            return super().__call__(target, command)

    monkeypatch.setattr(service, "run_pyinfra", fake_run)
    remote = Hosts(mdstat=fixture_text("mdstat-healthy"), refuse_users=("deploy",))
    # Every deploy but monitoring's, which refuse a fleet without a [monitoring] section (tests/monitoring).
    result = provision(target(fleet), ["ax1"], only="storage,base,ssh,firewall,docker,cache", remote=remote)
    assert result.ok
    assert calls[0][calls[0].index("--user") + 1] == "root"
    assert "--user" not in calls[1] and calls[1][-1] == "deploys/ssh.py"
    assert result.runs[0].deploys["ssh"].changed == ["sshd_config candidate", "sshd reloaded"]
    assert ("deploy", "203.0.113.11", "sudo -n true") in remote.calls


def test_a_host_whose_key_is_not_pinned_is_refused_before_any_connection(pki: Path, ops_files: Path,
                                                                         fleet: FleetConfig) -> None:
    hosts = FakeHosts(mdstat=fixture_text("mdstat-healthy"))
    with pytest.raises(ProvisionRefused, match=r"no pinned host key for ax1, ax2 in .*fleet\.known_hosts\. "
                                               r"Fix: `invoke hosts\.trust --host ax1"):
        provision(target(fleet, pinned=False), every=True, remote=hosts)
    assert hosts.calls == []


def test_a_missing_ssh_key_is_refused_before_any_connection(pki: Path, ops_files: Path, fleet: FleetConfig) -> None:
    hosts = FakeHosts(mdstat=fixture_text("mdstat-healthy"))
    with pytest.raises(ProvisionRefused, match=r"the SSH key .*id_ed25519 does not exist\. Fix: set \$DRAPE_SSH_KEY"):
        provision(target(fleet, key=False), every=True, remote=hosts)
    assert hosts.calls == []
