"""Settings for the external systems the cutover talks to: the Fly.io app(s) previews run on today, and the
Hetzner Cloud DNS zone the preview domain lives in. Both sections are optional in a fleet file: only the
cutover and the preview ingress need them. Tokens are secrets (``fly_api_token``, ``hcloud_token``), never here.

The API URLs exist so the lab can point the cutover at the local fakes; production leaves the defaults.
A token only travels over https (plain http only to loopback), checked when the file is loaded::

    [fly]
    apps = ["drape-previews"]
    preview_metadata = { drape_role = "preview" }

    [preview_dns]
    zone = "drape.dev"
    name = "*.preview"
    ttl = 300
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.endpoints import require_secure_endpoint

FLY_API_URL = "https://api.machines.dev/v1"
HCLOUD_API_URL = "https://api.hetzner.cloud/v1"

FlyAppName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DomainName = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}(?:\.{_LABEL})+$")]
RecordName = Annotated[str, StringConstraints(pattern=r"^(?:@|\*|(?:\*\.)?[a-z0-9_](?:[a-z0-9_.-]{0,200}[a-z0-9_])?)$")]


def _endpoint(url: str, field: str, default: str) -> None:
    try:
        require_secure_endpoint(url, default=default)
    except ValueError:
        raise invalid("insecure_endpoint", f"{url!r} would send the token unencrypted", at=field,
                      fix=f"use an https URL (plain http only for a test server on 127.0.0.1), or leave it out for "
                          f"{default}") from None


class FlySettings(FrozenModel):
    apps: Annotated[tuple[FlyAppName, ...], Field(min_length=1)]
    """The Fly apps whose machines serve previews today (``fly apps list``)."""
    preview_metadata: dict[MetadataKey, str] = Field(default_factory=dict)
    """Metadata that marks a machine as a preview (e.g. ``{ drape_role = "preview" }``); empty: every machine."""
    lease_ttl_s: Annotated[int, Field(ge=10, le=3600)] = 120
    api_url: str = FLY_API_URL

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if len(set(self.apps)) != len(self.apps):
            raise invalid("duplicate_app", "an app is listed twice", at="apps", fix="list each app once")
        _endpoint(self.api_url, "api_url", FLY_API_URL)
        return self


class PreviewDnsSettings(FrozenModel):
    zone: DomainName
    """The Hetzner Cloud DNS zone (primary mode), e.g. ``drape.dev``."""
    name: RecordName = "*.preview"
    """The preview name relative to the zone; previews are ``<workspace>.preview.drape.dev``."""
    ttl: Annotated[int, Field(ge=60, le=2_147_483_647)] | None = 300
    api_endpoint: str = HCLOUD_API_URL

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.name.endswith(self.zone):
            raise invalid("name_not_relative", f"{self.name!r} repeats the zone", at="name",
                          fix=f"write it relative to {self.zone}, e.g. *.preview")
        _endpoint(self.api_endpoint, "api_endpoint", HCLOUD_API_URL)
        return self
