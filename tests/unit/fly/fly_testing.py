"""What the Fly tests share (imported by conftest and the tests)."""

from __future__ import annotations

APP = "drape-previews"


class RecordedSleeps(list[float]):
    """Stands in for time.sleep in the client: records each backoff instead of waiting it out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
