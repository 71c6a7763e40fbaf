"""The Hetzner Robot webservice (dedicated servers): one HTTP seam, one small client per resource."""

from drape_fleet.hetzner.robot._client import DEFAULT_BASE_URL
from drape_fleet.hetzner.robot.client import BASE_URL_VARIABLE, RobotClient, robot_base_url, robot_client
from drape_fleet.hetzner.robot.errors import (
    RobotAuthError,
    RobotConflict,
    RobotError,
    RobotInvalidInput,
    RobotNotFound,
    RobotRateLimited,
    RobotUnavailable,
)

__all__ = [
    "BASE_URL_VARIABLE",
    "DEFAULT_BASE_URL",
    "RobotAuthError",
    "RobotClient",
    "RobotConflict",
    "RobotError",
    "RobotInvalidInput",
    "RobotNotFound",
    "RobotRateLimited",
    "RobotUnavailable",
    "robot_base_url",
    "robot_client",
]
