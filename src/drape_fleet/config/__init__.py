"""Validated, immutable configuration: the fleet, per-environment settings and secrets."""

from drape_fleet.config.errors import ConfigError
from drape_fleet.config.loader import load_fleet, parse_fleet
from drape_fleet.config.models import (
    Capacity,
    EnvironmentSettings,
    FleetConfig,
    Host,
    Role,
)
from drape_fleet.config.secrets import Secrets, load_secrets

__all__ = [
    "Capacity",
    "ConfigError",
    "EnvironmentSettings",
    "FleetConfig",
    "Host",
    "Role",
    "Secrets",
    "load_fleet",
    "load_secrets",
    "parse_fleet",
]
