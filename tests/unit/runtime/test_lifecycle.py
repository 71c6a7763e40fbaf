"""``lifecycle.still_serving``: what ``status()`` asks a host about a preview it remembers as ready. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docker.errors import NotFound

from drape_fleet.runtime import labels as L
from drape_fleet.runtime import lifecycle


class OneContainerEngine:
    """An engine whose API knows one container (or none); records the calls made."""

    def __init__(self, inspected: dict[str, Any] | None) -> None:
        self.inspected = inspected
        self.calls: list[str] = []

    def call(self, fn: Callable[[Any], Any], what: str, **_: Any) -> Any:
        self.calls.append(what)
        return fn(self)

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if self.inspected is None:
            raise NotFound(f"no such container: {container_id}")
        return self.inspected


def test_still_serving_is_one_inspect_of_a_running_container_under_its_name() -> None:
    running = OneContainerEngine({"Name": "/drape-pv-ws-1", "State": {"Status": "running"}})
    assert lifecycle.still_serving(running, "c1", "ws-1")  # type: ignore[arg-type]
    assert running.calls == ["inspect"]  # nothing written: asking is not activity


def test_gone_stopped_or_tombstoned_is_not_serving() -> None:
    tombstone = "/" + L.tombstone_name("ws-1", "abc")
    for inspected in (None, {"Name": "/drape-pv-ws-1", "State": {"Status": "exited"}},
                      {"Name": tombstone, "State": {"Status": "running"}}):
        assert not lifecycle.still_serving(OneContainerEngine(inspected), "c1", "ws-1")  # type: ignore[arg-type]
