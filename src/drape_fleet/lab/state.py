"""The running lab as files: its fleet and how to connect (for inventories/lab.py and tasks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drape_fleet.config import ConfigError, FleetConfig, load_fleet
from drape_fleet.config.errors import Problem
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import lab_prefix, lab_state_dir


def lab_state_settings() -> LabSettings:
    """Where the lab keeps its files and what it calls its Docker objects.

    ``$DRAPE_LAB_PREFIX`` runs a second lab beside the main one (a work tree of its own, say);
    its state then lives in ``.lab-<prefix>``.
    """
    return LabSettings(state_dir=lab_state_dir(), prefix=lab_prefix())


def load_lab_fleet() -> tuple[FleetConfig, Path]:
    settings = lab_state_settings()
    if not settings.fleet_file.exists():
        raise ConfigError(str(settings.fleet_file), [Problem(
            "(file)", "the lab is not up, so there is no lab fleet", "run `invoke lab.up` first")])
    return load_fleet(settings.fleet_file), settings.fleet_file.resolve()


def lab_connection() -> dict[str, Any]:
    settings = lab_state_settings()
    return {"ssh_user": "deploy", "ssh_key": settings.ssh_key.resolve(),
            "known_hosts": settings.known_hosts.resolve()}
