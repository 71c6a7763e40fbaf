"""The production fleet file and how ops connect to it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig, load_fleet
from drape_fleet.paths import project_root


def production_fleet_file() -> Path:
    return Path(os.environ.get("DRAPE_FLEET_FILE", project_root() / "config" / "production.toml"))


def load_production_fleet() -> tuple[FleetConfig, Path]:
    path = production_fleet_file()
    return load_fleet(path), path.resolve()


def production_connection(fleet: FleetConfig) -> dict[str, Any]:
    known_hosts = project_root() / "inventories" / "known_hosts"
    return {
        "ssh_user": os.environ.get("DRAPE_SSH_USER", fleet.environment.deploy_user),
        "known_hosts": known_hosts if known_hosts.exists() else None,
    }
