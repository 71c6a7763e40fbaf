"""Where the project's own files are (deploys, inventories, images, lab state)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def project_root() -> Path:
    """The checkout ops work from: ``$DRAPE_PROJECT_ROOT``, else the one this package was installed from."""
    if env := os.environ.get("DRAPE_PROJECT_ROOT"):
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "deploys").is_dir():
            return parent
    return Path.cwd()


DEFAULT_LAB_PREFIX = "drape-lab"


def lab_prefix() -> str:
    """What the lab calls its Docker objects: ``$DRAPE_LAB_PREFIX`` runs a second lab beside the main one."""
    return os.environ.get("DRAPE_LAB_PREFIX", DEFAULT_LAB_PREFIX)


def lab_state_dir() -> Path:
    """Where the lab keeps its files (fleet file, SSH key, PKI): ``.lab``, or ``.lab-<prefix>``."""
    prefix = lab_prefix()
    return project_root() / (".lab" if prefix == DEFAULT_LAB_PREFIX else f".lab-{prefix}")


# The lab's files, relative to its state directory (drape_fleet.lab.settings and drape_fleet.environments).
LAB_FLEET_FILE = "fleet.toml"
LAB_SSH_KEY = "ssh/id_ed25519"
LAB_KNOWN_HOSTS = "ssh/known_hosts"
