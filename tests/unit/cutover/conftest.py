from __future__ import annotations

from collections.abc import Iterator

import pytest
from volume_engines import OWNER, VolumeFleet

from drape_fleet.routing.store import StateStore


@pytest.fixture
def volumes() -> Iterator[VolumeFleet]:
    made = VolumeFleet()
    yield made
    made.close()


@pytest.fixture
def store(volumes: VolumeFleet) -> StateStore:
    return StateStore(volumes.fleet, OWNER, timeout_s=2.0)
