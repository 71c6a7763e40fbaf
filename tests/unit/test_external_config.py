"""The fleet file's optional [fly] and [preview_dns] sections: defaults, checks naming field and fix, and the
clients built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet.config import ConfigError, load_secrets, parse_fleet
from drape_fleet.fly import FlyClient
from drape_fleet.hetzner.cloud_dns import CloudDns
from drape_fleet.hetzner.dns_plan import preview_target

PRODUCTION = (Path(__file__).resolve().parents[2] / "config" / "production.toml").read_text()
SECRETS = load_secrets({"DRAPE_SECRETS_FILE": "/nonexistent", "DRAPE_FLY_API_TOKEN": "f", "DRAPE_HCLOUD_TOKEN": "h"})


def fleet_with(extra: str):  # type: ignore[no-untyped-def]
    return parse_fleet(PRODUCTION + "\n" + extra, source="fleet.toml")


def test_sections_are_optional_and_their_absence_is_explained() -> None:
    fleet = fleet_with("")
    assert fleet.fly is None and fleet.preview_dns is None
    with pytest.raises(ConfigError, match=r"fly: this section is missing.*apps ="):
        FlyClient.for_fleet(fleet, SECRETS)
    with pytest.raises(ConfigError, match=r"preview_dns: this section is missing"):
        preview_target(fleet)
    with pytest.raises(ConfigError, match=r"preview_dns: this section is missing"):
        CloudDns.for_fleet(fleet, SECRETS)


def test_sections_build_the_clients_and_the_dns_target() -> None:
    fleet = fleet_with('[fly]\napps = ["drape-previews"]\npreview_metadata = { drape_role = "preview" }\n'
                       '[preview_dns]\nzone = "drape.dev"\n')
    assert fleet.fly is not None and fleet.fly.preview_metadata == {"drape_role": "preview"}
    assert FlyClient.for_fleet(fleet, SECRETS).base_url == "https://api.machines.dev/v1"
    target = preview_target(fleet)
    assert (target.zone, target.name, target.ttl) == ("drape.dev", "*.preview", 300)
    assert [str(a) for a in target.addresses] == ["203.0.113.11", "203.0.113.12", "203.0.113.13"]
    assert [str(a) for a in preview_target(fleet, ["198.51.100.7"]).addresses] == ["198.51.100.7"]
    assert CloudDns.for_fleet(fleet, SECRETS) is not None


@pytest.mark.parametrize(("extra", "message"), [
    ('[fly]\napps = []\n', "fly.apps"),
    ('[fly]\napps = ["Drape"]\n', "fly.apps[0]: String should match pattern"),
    ('[fly]\napps = ["a", "a"]\n', "fly.apps: an app is listed twice. Fix: list each app once"),
    ('[fly]\napps = ["a"]\napi_url = "http://api.machines.dev/v1"\n', "fly.api_url: 'http://api.machines.dev/v1' would "
                                                                      "send the token unencrypted. Fix: use an https"),
    ('[preview_dns]\nzone = "drape.dev"\nname = "*.preview.drape.dev"\n', "preview_dns.name: '*.preview.drape.dev' "
                                                                         "repeats the zone"),
    ('[preview_dns]\nzone = "drape.dev"\nttl = 10\n', "preview_dns.ttl"),
    ('[preview_dns]\nzone = "Drape"\n', "preview_dns.zone"),
    ('[preview_dns]\nzone = "drape.dev"\nbogus = 1\n', "unknown field 'bogus'"),
])
def test_bad_sections_name_the_file_field_and_fix(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        fleet_with(extra)
    assert str(caught.value).startswith("fleet.toml: 1 problem(s)")
    assert message in str(caught.value)


def test_loopback_http_is_allowed_for_the_lab_fakes() -> None:
    fleet = fleet_with('[fly]\napps = ["a"]\napi_url = "http://127.0.0.1:4280/v1"\n'
                       '[preview_dns]\nzone = "lab.test"\napi_endpoint = "http://127.0.0.1:4281/v1"\n')
    assert FlyClient.for_fleet(fleet, SECRETS).base_url == "http://127.0.0.1:4280/v1"
