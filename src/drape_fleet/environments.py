"""Environments: which fleet a command acts on, and everything that follows from that choice.

``--env NAME`` (or ``$DRAPE_ENV``; the default is production) picks one:

==============  ======================================================  ==================================
environment     fleet file                                              state directory
==============  ======================================================  ==================================
``production``  ``config/production.toml``                             ``~/.config/drape-fleet``
``lab``         ``<state>/fleet.toml``, written by `invoke lab.up`       ``.lab`` (``.lab-<prefix>``)
any other name  ``config/<name>.toml``: ops add a staging fleet as data  ``~/.config/drape-fleet/<name>``
==============  ======================================================  ==================================

``$DRAPE_FLEET_FILE`` moves the fleet file of the chosen environment (not the lab's, which `lab.up` writes).

and from it follow the PKI directory (``<state>/pki``; ``$DRAPE_PKI_DIR`` overrides), the pinned host keys
(lab: ``<state>/ssh/known_hosts``, written by `invoke lab.up` from each host over the engine; otherwise the
fleet file's ``.known_hosts`` sibling, written by `invoke hosts.trust`), the one SSH key ops offer (lab:
``<state>/ssh/id_ed25519``; otherwise ``$DRAPE_SSH_KEY``, default ``~/.ssh/id_ed25519``) and the SSH user (lab:
``deploy``; otherwise ``$DRAPE_SSH_USER``, default the fleet's deploy user).

Standard library only: the runtime finds its PKI directory through ``pki_dir`` without the ops extra.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drape_fleet.paths import LAB_FLEET_FILE, LAB_KNOWN_HOSTS, LAB_SSH_KEY, lab_state_dir, project_root
from drape_fleet.ssh import SshTarget

if TYPE_CHECKING:
    from drape_fleet.config import FleetConfig, Host

ENV_VAR = "DRAPE_ENV"
PRODUCTION = "production"
LAB = "lab"
FLEET_FILE_VAR = "DRAPE_FLEET_FILE"
"""Moves the chosen environment's fleet file (ops keep one outside the checkout; tests point it at a throwaway)."""
PKI_DIR_VAR = "DRAPE_PKI_DIR"
SSH_KEY_VAR = "DRAPE_SSH_KEY"
SSH_USER_VAR = "DRAPE_SSH_USER"
OPS_STATE_DIR = Path("~/.config/drape-fleet")
DEFAULT_SSH_KEY = Path("~/.ssh/id_ed25519")
LAB_SSH_USER = "deploy"
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class UnknownEnvironment(ValueError):
    """The name is not an environment; the message lists the ones there are."""


def default_name() -> str:
    return os.environ.get(ENV_VAR) or PRODUCTION


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise UnknownEnvironment(f"{name!r} is not an environment name: use lowercase letters, digits and dashes "
                                 f"(production, lab, or the name of a config/<name>.toml)")
    return name


def state_dir(name: str) -> Path:
    """Where an environment's local files live (PKI, and the lab's keys and fleet file)."""
    if _checked(name) == LAB:
        return lab_state_dir()
    ops = OPS_STATE_DIR.expanduser()
    return ops if name == PRODUCTION else ops / name


def pki_dir(name: str) -> Path:
    if override := os.environ.get(PKI_DIR_VAR):
        return Path(override).expanduser()
    return state_dir(name) / "pki"


def fleet_file(name: str) -> Path:
    if _checked(name) == LAB:
        return state_dir(LAB) / LAB_FLEET_FILE
    if override := os.environ.get(FLEET_FILE_VAR):
        return Path(override)
    return project_root() / "config" / f"{name}.toml"


def _declares_itself(path: Path) -> bool:
    """A fleet file for environment ``<name>`` says so: ``[environment] name = "<name>"``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return bool(_NAME.match(path.stem)) and data.get("environment", {}).get("name") == path.stem


def names() -> list[str]:
    """The environments there are: production, lab, and every fleet file ops added under config/."""
    found = {PRODUCTION, LAB} | {p.stem for p in (project_root() / "config").glob("*.toml") if _declares_itself(p)}
    return sorted(found, key=lambda n: (n != PRODUCTION, n != LAB, n))


@dataclass(frozen=True)
class Environment:
    """One environment's files and how ops reach its hosts."""

    name: str
    fleet_file: Path
    state_dir: Path
    pki_dir: Path
    known_hosts: Path
    ssh_key: Path
    ssh_user: str | None
    """None: the fleet's deploy user."""

    @property
    def is_lab(self) -> bool:
        """The lab makes its own CA, keeps its PKI in the checkout (git-ignored) and pins keys at lab.up."""
        return self.name == LAB

    def load(self) -> FleetTarget:
        """The fleet file, validated; ``ConfigError`` (file, field, fix) when it is missing or wrong."""
        from drape_fleet.config import ConfigError, load_fleet
        from drape_fleet.config.errors import Problem

        if not self.fleet_file.exists():
            fix = ("run `invoke lab.up` first" if self.is_lab else
                   f"write the fleet file (config/production.toml shows the shape), or choose one of "
                   f"{', '.join(names())}")
            raise ConfigError(str(self.fleet_file), [Problem("(file)", f"no fleet file for the {self.name} "
                                                                       "environment", fix)])
        fleet = load_fleet(self.fleet_file)
        if fleet.environment.name != self.name:
            raise ConfigError(str(self.fleet_file), [Problem(
                "environment.name", f"is {fleet.environment.name!r}, but this file was chosen for the {self.name} "
                "environment", f'write name = "{self.name}" there, or choose --env {fleet.environment.name}')])
        return FleetTarget(self, fleet)


def environment(name: str | None = None) -> Environment:
    """The environment called ``name`` (default: ``$DRAPE_ENV``, else production)."""
    name = _checked(name or default_name())
    state = state_dir(name)
    if name == LAB:
        return Environment(name=LAB, fleet_file=fleet_file(LAB), state_dir=state, pki_dir=pki_dir(LAB),
                           known_hosts=state / LAB_KNOWN_HOSTS, ssh_key=state / LAB_SSH_KEY,
                           ssh_user=LAB_SSH_USER)
    fleet = fleet_file(name)
    if name != PRODUCTION and not fleet.exists():
        raise UnknownEnvironment(f"no environment {name!r}: there is no {fleet}. Environments are "
                                 f"{', '.join(names())}; add one by writing config/{name}.toml")
    key = Path(os.environ.get(SSH_KEY_VAR) or DEFAULT_SSH_KEY).expanduser()
    return Environment(name=name, fleet_file=fleet, state_dir=state, pki_dir=pki_dir(name),
                       known_hosts=fleet.with_suffix(".known_hosts"), ssh_key=key,
                       ssh_user=os.environ.get(SSH_USER_VAR) or None)


@dataclass(frozen=True)
class FleetTarget:
    """An environment with its fleet loaded: what every command that reaches hosts starts from."""

    env: Environment
    fleet: FleetConfig

    @property
    def environment(self) -> str:
        """The environment's name: production, lab, staging..."""
        return self.env.name

    @property
    def ssh_user(self) -> str:
        return self.env.ssh_user or self.fleet.environment.deploy_user

    def ssh_target(self, host: Host, user: str | None = None) -> SshTarget:
        """How ops reach ``host``: its public address, this environment's key and pinned host keys."""
        return SshTarget(hostname=str(host.public_address), user=user or self.ssh_user,
                         port=self.fleet.environment.ssh_port, key=self.env.ssh_key,
                         known_hosts=self.env.known_hosts, alias=host.name)


def load(name: str | None = None) -> FleetTarget:
    return environment(name).load()
