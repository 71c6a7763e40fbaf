"""One module owns environments: production, the lab, and a staging environment ops add as data
(config/staging.toml). Each resolves to its fleet file, state and PKI directories, pinned host keys and SSH
settings; the checkout is a temporary directory and $HOME another, so nothing real is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet import environments
from drape_fleet.config import ConfigError
from drape_fleet.environments import Environment, UnknownEnvironment, environment, names, pki_dir
from drape_fleet.paths import project_root

STAGING = (project_root() / "config" / "production.toml").read_text().replace(
    'name = "production"', 'name = "staging"')


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with production's fleet file and a staging one; $HOME elsewhere; no overrides set."""
    root = tmp_path / "checkout"
    (root / "config").mkdir(parents=True)
    (root / "config" / "production.toml").write_text((project_root() / "config" / "production.toml").read_text())
    (root / "config" / "staging.toml").write_text(STAGING)
    monkeypatch.setattr(environments, "project_root", lambda: root)
    monkeypatch.setattr(environments, "lab_state_dir", lambda: root / ".lab-wtx")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("DRAPE_ENV", "DRAPE_FLEET_FILE", "DRAPE_PKI_DIR", "DRAPE_SSH_KEY", "DRAPE_SSH_USER"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_production_is_the_default(checkout: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert environment() == Environment(
        name="production", fleet_file=checkout / "config" / "production.toml",
        state_dir=home / ".config" / "drape-fleet", pki_dir=home / ".config" / "drape-fleet" / "pki",
        known_hosts=checkout / "config" / "production.known_hosts", ssh_key=home / ".ssh" / "id_ed25519",
        ssh_user=None)
    target = environment().load()
    assert target.environment == "production" and target.ssh_user == "deploy"
    assert target.ssh_target(target.fleet.host("ax2")).known_hosts == checkout / "config" / "production.known_hosts"


def test_overrides_from_the_environment(checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moved = tmp_path / "elsewhere.toml"
    moved.write_text((checkout / "config" / "production.toml").read_text())
    monkeypatch.setenv("DRAPE_FLEET_FILE", str(moved))
    monkeypatch.setenv("DRAPE_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("DRAPE_SSH_KEY", str(tmp_path / "ops.pub"))
    monkeypatch.setenv("DRAPE_SSH_USER", "root")
    env = environment("production")
    assert (env.fleet_file, env.known_hosts) == (moved, tmp_path / "elsewhere.known_hosts")
    assert (env.pki_dir, env.ssh_key, env.ssh_user) == (tmp_path / "pki", tmp_path / "ops.pub", "root")
    assert env.load().ssh_user == "root"
    monkeypatch.setenv("DRAPE_ENV", "staging")  # the override follows the chosen environment
    assert (environment().name, environment().fleet_file) == ("staging", moved)
    monkeypatch.setenv("DRAPE_ENV", "lab")  # but never the lab's, which lab.up writes
    assert environment().fleet_file == checkout / ".lab-wtx" / "fleet.toml"


def test_the_lab_lives_in_its_state_directory(checkout: Path) -> None:
    lab = environment("lab")
    state = checkout / ".lab-wtx"
    assert lab == Environment(name="lab", fleet_file=state / "fleet.toml", state_dir=state, pki_dir=state / "pki",
                              known_hosts=state / "ssh" / "known_hosts", ssh_key=state / "ssh" / "id_ed25519",
                              ssh_user="deploy")
    assert lab.is_lab and not environment("production").is_lab
    with pytest.raises(ConfigError, match=r"no fleet file for the lab environment.*invoke lab\.up"):
        lab.load()


def test_staging_is_added_as_data(checkout: Path, tmp_path: Path) -> None:
    (checkout / "config" / "robot.toml").write_text("# some other configuration, not a fleet\n")
    assert names() == ["production", "lab", "staging"]
    staging = environment("staging")
    assert staging.fleet_file == checkout / "config" / "staging.toml"
    assert staging.known_hosts == checkout / "config" / "staging.known_hosts"
    assert staging.state_dir == tmp_path / "home" / ".config" / "drape-fleet" / "staging"
    assert staging.pki_dir == pki_dir("staging") == staging.state_dir / "pki"
    assert staging.load().fleet.environment.name == "staging"


def test_a_fleet_file_for_another_environment_is_refused(checkout: Path) -> None:
    (checkout / "config" / "staging.toml").write_text(STAGING.replace('name = "staging"', 'name = "production"'))
    with pytest.raises(ConfigError, match=r"environment\.name: is 'production', but this file was chosen for the "
                                          r"staging environment\. Fix: write name = \"staging\""):
        environment("staging").load()


def test_unknown_and_malformed_names(checkout: Path) -> None:
    with pytest.raises(UnknownEnvironment, match=r"no environment 'qa'.*are production, lab, staging; add one by "
                                                 r"writing config/qa\.toml"):
        environment("qa")
    with pytest.raises(UnknownEnvironment, match=r"'../etc' is not an environment name"):
        environment("../etc")
    with pytest.raises(UnknownEnvironment):
        pki_dir("Prod uction")
