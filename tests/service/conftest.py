"""Fixtures for the service's tests over fake engines (fast, no lab): ``served`` is a real service on loopback
over a runtime whose engines are the runtime's in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_testkit import ServedWorld, served

HERE = Path(__file__).parent


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[ServedWorld]:
    yield from served(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A bound on every service test over fakes: a wait that never ends fails the test instead of the run."""
    for item in items:
        if item.path.parent == HERE:
            item.add_marker(pytest.mark.timeout(60))
