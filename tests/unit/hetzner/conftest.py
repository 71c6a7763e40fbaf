"""A fake Hetzner Cloud DNS API per test, with the zone drape.dev, and our module pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import hcloud._client
import pytest
from dns_testing import ZONE
from fakes.hcloud_dns import DEFAULT_TOKEN, FakeCloudDns

from drape_fleet.hetzner.cloud_dns import CloudDns


@pytest.fixture()
def api() -> Iterator[FakeCloudDns]:
    with FakeCloudDns({DEFAULT_TOKEN: True, "read-only-token": False}) as fake:
        fake.world.add_zone(ZONE)
        yield fake


@pytest.fixture()
def dns(api: FakeCloudDns) -> CloudDns:
    return CloudDns.connect(DEFAULT_TOKEN, api_endpoint=api.url)


@pytest.fixture()
def hcloud_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """hcloud backs off 1, 2, 4... s between retries: record those waits instead of sleeping them."""
    sleeps: list[float] = []
    monkeypatch.setattr(hcloud._client, "time", SimpleNamespace(sleep=sleeps.append))
    return sleeps
