"""The Robot account the tests' fake webservice holds: ax1 and ax2 of tests/support/fleets.py, a spare server,
and the ops key stored in Robot. ax1's rescue system presents RESCUE_HOST_KEY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakes.robot_state import FakeKey, FakeServer, RobotFakeState
from fleets import OPS_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY_MD5


def account(clock: Callable[[], float], **overrides: Any) -> RobotFakeState:
    servers = [FakeServer(2100001, "ax1", "203.0.113.11",
                          rescue_host_keys=[{"fingerprint": RESCUE_HOST_KEY_MD5, "type": "ED25519", "size": 256}]),
               FakeServer(2100002, "ax2", "203.0.113.12"),
               FakeServer(2100009, "spare", "198.51.100.9", product="AX41-NVMe", dc="HEL1-DC2")]
    keys = [FakeKey("ops", OPS_KEY_MD5, data=OPS_KEY)]
    return RobotFakeState(servers=servers, keys=keys, clock=clock, **overrides)
