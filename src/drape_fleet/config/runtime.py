"""Settings the runtime reads (per environment): filled in by the runtime work."""

from __future__ import annotations

from drape_fleet.config.base import FrozenModel


class RuntimeSettings(FrozenModel):
    pass
