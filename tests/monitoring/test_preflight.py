"""`invoke provision` refuses, after its host probes and before any host is changed, a fleet the monitoring
deploys cannot serve: no [monitoring] section, or a receiver whose secret the store lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet import shell
from drape_fleet.config import FleetConfig
from drape_fleet.environments import Environment, FleetTarget
from drape_fleet.paths import project_root
from drape_fleet.provision.preflight import PROBE, ProvisionRefused
from drape_fleet.provision.service import preflight
from drape_fleet.ssh import SshTarget
from tests.monitoring.conftest import FAKE_SECRETS

HEALTHY_MDSTAT = (project_root() / "tests" / "fixtures" / "storage" / "mdstat-healthy").read_text()
HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIBLi7uZVZ5jfqIq0q6MgoYB6fKuUtPVnRz8WlYbRo6dB"


class Probed:
    """The hosts' answers to the probe; anything else asked of them fails the test."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def __call__(self, target: SshTarget, command: str) -> shell.Result:
        self.commands.append(command)
        assert command == PROBE, "preflight changed something on a host"
        return shell.Result(0, f"client=203.0.113.7\n---mdstat---\n{HEALTHY_MDSTAT}", "")


def _target(fleet: FleetConfig, directory: Path) -> FleetTarget:
    (directory / "id_ed25519").write_text("(private key)\n")
    (directory / "known_hosts").write_text("".join(f"{h.public_address},{h.name} ssh-ed25519 {HOST_KEY}\n"
                                                   for h in fleet.hosts))
    env = Environment(name=fleet.environment.name, fleet_file=directory / "fleet.toml", state_dir=directory,
                      pki_dir=directory / "pki", known_hosts=directory / "known_hosts",
                      ssh_key=directory / "id_ed25519", ssh_user=None)
    return FleetTarget(env, fleet)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRAPE_SECRETS_FILE", str(tmp_path / "absent.toml"))
    for name in FAKE_SECRETS:
        monkeypatch.delenv(f"DRAPE_MONITORING_{name.upper()}", raising=False)


def test_receivers_without_their_secrets_refuse_the_run(production: FleetConfig, tmp_path: Path,
                                                        no_secrets: None) -> None:
    hosts = Probed()
    with pytest.raises(ProvisionRefused) as caught:
        preflight(_target(production, tmp_path), production.hosts, ("base", "monitoring", "monitoring_server"),
                  force=False, remote=hosts)
    message = str(caught.value)
    for secret in FAKE_SECRETS:
        assert f"monitoring.{secret}:" in message
    assert "Nothing was changed on any host." in message
    assert hosts.commands == [PROBE] * len(production.hosts)


def test_with_the_secrets_in_the_environment_the_run_goes_on(production: FleetConfig, tmp_path: Path,
                                                             no_secrets: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(f"DRAPE_MONITORING_{name.upper()}", value)
    probes = preflight(_target(production, tmp_path), production.hosts, ("monitoring_server",), force=False,
                       remote=Probed())
    assert set(probes) == set(production.host_names)


def test_a_fleet_without_monitoring_is_refused_only_when_monitoring_deploys_run(production: FleetConfig,
                                                                                tmp_path: Path) -> None:
    bare = production.model_copy(update={"monitoring": None})
    with pytest.raises(ProvisionRefused, match=r"(?s)no \[monitoring\] section.*Nothing was changed on any host"):
        preflight(_target(bare, tmp_path), bare.hosts, ("monitoring",), force=False, remote=Probed())
    assert set(preflight(_target(bare, tmp_path), bare.hosts, ("ssh",), force=False, remote=Probed())) == set(
        bare.host_names)
