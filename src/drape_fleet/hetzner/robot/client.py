"""``RobotClient``: the Robot webservice's resources on one HTTP seam (``_client.RobotHttp``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from drape_fleet.config.secrets import Secrets
from drape_fleet.hetzner.robot._client import DEFAULT_BASE_URL, RetryPolicy, RobotHttp
from drape_fleet.hetzner.robot.boot import BootClient
from drape_fleet.hetzner.robot.firewall import FirewallClient
from drape_fleet.hetzner.robot.keys import KeysClient
from drape_fleet.hetzner.robot.reset import ResetClient
from drape_fleet.hetzner.robot.servers import ServersClient

BASE_URL_VARIABLE = "DRAPE_ROBOT_URL"
"""Points every task at another webservice (a local fake in end-to-end tests); unset, the real one is used."""


class RobotClient:
    def __init__(self, user: str, password: str, *, base_url: str = DEFAULT_BASE_URL,
                 timeout: tuple[float, float] = (10.0, 30.0), retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> None:
        self.http = RobotHttp(user, password, base_url=base_url, timeout=timeout, retry=retry, sleep=sleep,
                              clock=clock)
        self.servers = ServersClient(self.http)
        self.boot = BootClient(self.http)
        self.reset = ResetClient(self.http)
        self.keys = KeysClient(self.http)
        self.firewall = FirewallClient(self.http)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def close(self) -> None:
        self.http.close()


def robot_base_url() -> str:
    return os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL


def robot_client(secrets: Secrets, *, base_url: str | None = None) -> RobotClient:
    """A client with the webservice user from the secrets (fails, naming what to set, when they are missing)."""
    secrets.require("robot_user", "robot_password")
    return RobotClient(secrets.value("robot_user"), secrets.value("robot_password"),
                       base_url=base_url or robot_base_url())
