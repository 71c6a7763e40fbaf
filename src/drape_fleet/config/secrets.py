"""Secrets come from the environment or a file outside the repository, never from the repository.

Precedence: an environment variable beats the secrets file. The file is
``$DRAPE_SECRETS_FILE`` or ``~/.config/drape-fleet/secrets.toml``; it must be private (mode 600)
and must not live inside the repository, where it could be committed.

Alert receivers' secrets (webhook URLs, SMTP passwords) are named by the fleet file's ``[monitoring]`` section;
they sit in the file's ``[monitoring]`` table (``ops_webhook_url = "https://..."``) or in
``$DRAPE_MONITORING_<NAME>`` (``DRAPE_MONITORING_OPS_WEBHOOK_URL``).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from drape_fleet.config.base import FrozenModel
from drape_fleet.config.errors import ConfigError, Problem

ENV_PREFIX = "DRAPE_"
MONITORING_TABLE = "monitoring"
MONITORING_ENV_PREFIX = f"{ENV_PREFIX}MONITORING_"
DEFAULT_SECRETS_FILE = Path("~/.config/drape-fleet/secrets.toml")


class Secrets(FrozenModel):
    """Credentials for the external systems. Each is optional until a task needs it."""

    robot_user: SecretStr | None = None
    robot_password: SecretStr | None = None
    hcloud_token: SecretStr | None = None
    fly_api_token: SecretStr | None = None
    preview_url_key: SecretStr | None = None
    """Signs the preview links the backend hands out; each host's ingress checks them (drape_fleet.ingress)."""
    backup_passphrase: SecretStr | None = None
    """From which every backup repository's password is derived (drape_fleet.backup.keys); escrowed."""
    monitoring: dict[str, SecretStr] = Field(default_factory=dict)
    """Alert receivers' secrets by the name a receiver gives (drape_fleet.config.monitoring)."""

    source: str = "(none)"

    def require(self, *names: str) -> None:
        """Fail, naming each missing secret and where to put it, before anything is contacted."""
        missing = [name for name in names if getattr(self, name) is None]
        if missing:
            raise ConfigError(self.source, [
                Problem(name, "this secret is not set",
                        f"export {ENV_PREFIX}{name.upper()}=... or add {name} = \"...\" to "
                        f"{DEFAULT_SECRETS_FILE} (mode 600, outside the repository)")
                for name in missing
            ])

    def value(self, name: str) -> str:
        self.require(name)
        secret = getattr(self, name)
        assert isinstance(secret, SecretStr)
        return secret.get_secret_value()


def secret_names() -> tuple[str, ...]:
    return tuple(name for name in Secrets.model_fields if name not in ("source", MONITORING_TABLE))


def load_secrets(
    environ: Mapping[str, str] | None = None,
    *,
    repo_root: Path | None = None,
) -> Secrets:
    """Read secrets from ``environ`` (default ``os.environ``) and the secrets file, if there is one."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get(f"{ENV_PREFIX}SECRETS_FILE", str(DEFAULT_SECRETS_FILE))).expanduser()
    values: dict[str, str] = {}
    monitoring: dict[str, str] = {}
    sources: list[str] = []
    if path.exists():
        file_values = _read_secrets_file(path, repo_root)
        monitoring.update(file_values.pop(MONITORING_TABLE, {}))
        values.update(file_values)
        sources.append(str(path))
    for name in secret_names():
        env_value = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if env_value:
            values[name] = env_value
            if "environment" not in sources:
                sources.append("environment")
    for key, env_value in environ.items():
        if key.startswith(MONITORING_ENV_PREFIX) and env_value:
            monitoring[key.removeprefix(MONITORING_ENV_PREFIX).lower()] = env_value
            if "environment" not in sources:
                sources.append("environment")
    return Secrets(**values, monitoring=monitoring,
                   source=" + ".join(sources) or f"secrets (environment, {DEFAULT_SECRETS_FILE})")


def _read_secrets_file(path: Path, repo_root: Path | None) -> dict[str, Any]:
    resolved = path.resolve()
    if repo_root is not None and resolved.is_relative_to(repo_root.resolve()):
        raise ConfigError(str(path), [Problem("(file)", "the secrets file is inside the repository",
                                              f"move it outside, e.g. to {DEFAULT_SECRETS_FILE}")])
    mode = resolved.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(path), [Problem("(file)", f"the secrets file is readable by others "
                                                        f"(mode {stat.S_IMODE(mode):o})",
                                              f"chmod 600 {path}")])
    try:
        data = tomllib.loads(resolved.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Problem("(syntax)", f"not valid TOML: {exc}",
                                              "correct the line it names")]) from None
    known = set(secret_names())
    table = data.pop(MONITORING_TABLE, {})
    problems = [Problem(key, "unknown secret", f"remove it or use one of: {', '.join(sorted(known))} "
                                               f"(receivers' secrets go in a [{MONITORING_TABLE}] table)")
                for key in data if key not in known]
    problems += [Problem(key, "a secret must be a string", "quote the value")
                 for key, value in data.items() if key in known and not isinstance(value, str)]
    if not isinstance(table, dict):
        problems.append(Problem(MONITORING_TABLE, "must be a table of named secrets",
                                f'write [{MONITORING_TABLE}] and name = "value" lines under it'))
    else:
        problems += [Problem(f"{MONITORING_TABLE}.{key}", "a secret must be a string", "quote the value")
                     for key, value in table.items() if not isinstance(value, str)]
    if problems:
        raise ConfigError(str(path), problems)
    return {**{key: str(value) for key, value in data.items()}, MONITORING_TABLE: dict(table)}
