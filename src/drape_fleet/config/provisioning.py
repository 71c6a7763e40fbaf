"""Settings the deploys read (per environment): filled in by the provisioning work."""

from __future__ import annotations

from drape_fleet.config.base import FrozenModel


class ProvisioningSettings(FrozenModel):
    pass
