"""The [cutover] section: refused with file, field and fix before any host is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fleets import fleet_data

from drape_fleet.config import ConfigError
from drape_fleet.config.loader import validate_fleet
from drape_fleet.cutover.context import known_users, settings_of

KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def _fleet(**cutover: Any) -> Any:
    data = fleet_data(cutover=cutover)
    return validate_fleet(data, source="fleet.toml")


def _problems(**cutover: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_of(_fleet(**cutover), "fleet.toml")
    return str(caught.value)


def _link(**overrides: Any) -> dict[str, Any]:
    return {"backend_public_key": KEY, "backend_endpoint": "backend.example:51820", "backend_address": "10.250.0.2/32",
            "host_addresses": {"ax1": "10.250.0.11/32", "ax2": "10.250.0.12/32"}, **overrides}


def test_defaults_are_the_plans_targets() -> None:
    settings = settings_of(_fleet(), "fleet.toml")
    assert (settings.gate.p95_cold_s, settings.gate.p95_warm_s, settings.gate.max_error_percent) == (40, 20, 1.0)
    assert settings.load_test.framework == "nextjs" and settings.verify


def test_frameworks_must_be_configured_ones() -> None:
    text = _problems(smoke={"framework": "svelte"}, required_frameworks=["nextjs", "qwik"])
    assert "cutover.smoke.framework: 'svelte' is not a framework of [runtime.frameworks]. Fix: use one of nextjs, " \
           "react, vue" in text
    assert "cutover.required_frameworks: 'qwik'" in text


def test_the_link_must_cover_every_preview_host_and_be_a_backend_address() -> None:
    text = _problems(link=_link(host_addresses={"ax1": "10.250.0.11/32", "ax9": "10.250.0.19/32"}))
    assert "cutover.link.host_addresses: ax9 are not hosts of the fleet" in text
    assert "preview host(s) ax2 have no tunnel address" in text
    assert 'cutover.link.backend_address: 10.250.0.2 is not in network.backend_addresses' in text
    assert 'Fix: add "10.250.0.2/32" to network.backend_addresses' in text


def test_link_values_are_checked_when_the_file_loads() -> None:
    for link, words in ((_link(backend_address="10.99.0.2/32"), "10.99.0.2 is not in the link's subnet"),
                        (_link(host_addresses={"ax1": "10.250.0.2/32", "ax2": "10.250.0.12/32"}), "is also"),
                        (_link(backend_public_key="not-a-key"), "backend_public_key"),
                        (_link(backend_endpoint="no port"), "backend_endpoint")):
        with pytest.raises(ConfigError, match=words):
            _fleet(link=link)
    with pytest.raises(ConfigError, match="a user is listed twice"):
        _fleet(internal_users=["u-1", "u-1"])


def test_known_users_come_from_the_users_file_and_the_internal_users(tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("# exported from the backend\nu-1\n  u-2  # trailing comment\n\n")
    settings = settings_of(_fleet(users_file="users.txt", internal_users=["u-ops"]), "fleet.toml")
    assert known_users(tmp_path / "fleet.toml", settings) == {"u-1", "u-2", "u-ops"}
    assert known_users(tmp_path / "fleet.toml", settings_of(_fleet(), "x")) is None
    missing = settings_of(_fleet(users_file="gone.txt"), "fleet.toml")
    with pytest.raises(ConfigError, match=r"cutover\.users_file: cannot read"):
        known_users(tmp_path / "fleet.toml", missing)
