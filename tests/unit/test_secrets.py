"""Secrets: environment beats file, the file must be private and outside the repo, missing ones are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet.config import ConfigError, load_secrets
from drape_fleet.paths import project_root


def secrets_file(directory: Path, text: str, mode: int = 0o600) -> Path:
    path = directory / "secrets.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_missing_secret_names_variable_and_file(tmp_path: Path) -> None:
    secrets = load_secrets({"DRAPE_SECRETS_FILE": str(tmp_path / "none.toml")})
    with pytest.raises(ConfigError) as caught:
        secrets.require("robot_user", "robot_password")
    message = str(caught.value)
    assert "robot_user: this secret is not set" in message
    assert "export DRAPE_ROBOT_PASSWORD=..." in message
    assert "mode 600, outside the repository" in message


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, 'robot_user = "from-file"\nrobot_password = "pw-file"\n')
    secrets = load_secrets({"DRAPE_SECRETS_FILE": str(path), "DRAPE_ROBOT_USER": "from-env"})
    assert secrets.value("robot_user") == "from-env"
    assert secrets.value("robot_password") == "pw-file"
    assert "pw-file" not in repr(secrets) and "pw-file" not in str(secrets)


def test_world_readable_file_is_refused(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, 'robot_user = "u"\n', mode=0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        load_secrets({"DRAPE_SECRETS_FILE": str(path)})


def test_file_inside_the_repository_is_refused(tmp_path: Path) -> None:
    inside = project_root() / ".pytest-secrets.toml"
    inside.write_text('robot_user = "u"\n')
    inside.chmod(0o600)
    try:
        with pytest.raises(ConfigError, match="inside the repository"):
            load_secrets({"DRAPE_SECRETS_FILE": str(inside)}, repo_root=project_root())
    finally:
        inside.unlink()


def test_unknown_and_non_string_secrets_are_refused(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, 'robot_usr = "u"\nfly_api_token = 42\n')
    with pytest.raises(ConfigError) as caught:
        load_secrets({"DRAPE_SECRETS_FILE": str(path)})
    fields = {p.field for p in caught.value.problems}
    assert fields == {"robot_usr", "fly_api_token"}
