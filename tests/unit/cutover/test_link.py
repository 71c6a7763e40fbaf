"""The link's files, rendered for a production fleet and a lab fleet, compared whole with reviewed goldens
(``DRAPE_UPDATE_GOLDENS=1`` rewrites them for review), and the backend's side built from the hosts' keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fleets import fleet_data

from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.models import FleetConfig
from drape_fleet.cutover.link import (
    backend_config,
    firewall_unit,
    host_link,
    nft_ruleset,
    userspace_dropin,
    wg_quick_config,
)

GOLDENS = Path(__file__).with_name("goldens")
BACKEND_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
HOST_KEYS = {"ax1": "gBKDFRLtBxHRm6JwBls/xwnva+vyVlzdWUHVf4uWIGU=",
             "ax2": "oVcQPmEaDfhfhTgwJZdti8KP3j00GEXgbCXKGws1LCo="}


def _fleet(userspace: bool) -> FleetConfig:
    data: dict[str, Any] = fleet_data(cutover={"link": {
        "backend_public_key": BACKEND_KEY, "backend_endpoint": "203.0.113.50:51820", "backend_address": "10.250.0.2/32",
        "host_addresses": {"ax1": "10.250.0.11/32", "ax2": "10.250.0.12/32"}, "userspace": userspace}})
    data["network"]["backend_addresses"] = ["10.0.0.2/32", "10.250.0.2/32"]
    data["provisioning"]["firewall"] = {"private_network": ["10.0.0.0/24", "10.250.0.0/24"]}
    return validate_fleet(data, source="fleet.toml")


def _renders(userspace: bool) -> dict[str, str]:
    fleet = _fleet(userspace)
    end = host_link(fleet, "ax1")
    assert end is not None
    renders = {"wg-drape.conf": wg_quick_config(end), "drape-link.nft": nft_ruleset(fleet, end),
               "drape-link-firewall.service": firewall_unit(end),
               "backend-wg.conf": backend_config(fleet, HOST_KEYS, private_key_file="/secrets/wg.key")}
    if userspace:
        renders["wg-quick-userspace.conf"] = userspace_dropin()
    return renders


@pytest.mark.parametrize("userspace", [False, True], ids=["kernel", "userspace"])
def test_the_links_files_match_the_reviewed_goldens(userspace: bool) -> None:
    for name, text in _renders(userspace).items():
        golden = GOLDENS / ("userspace" if userspace else "kernel") / name
        if os.environ.get("DRAPE_UPDATE_GOLDENS"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs from the render"


def test_the_backend_routes_each_hosts_private_address_to_that_host() -> None:
    text = backend_config(_fleet(False), HOST_KEYS, private_key_file="/k")
    assert f"PublicKey = {HOST_KEYS['ax1']}\nAllowedIPs = 10.250.0.11/32, 10.0.0.11/32" in text
    assert "ListenPort = 51820" in text and "PostUp = wg set %i private-key /k" in text
    with pytest.raises(ValueError, match="no public key for ax2"):
        backend_config(_fleet(False), {"ax1": HOST_KEYS["ax1"]}, private_key_file="/k")


def test_a_host_the_link_does_not_name_gets_no_link() -> None:
    assert host_link(_fleet(False), "ax1") is not None
    assert host_link(validate_fleet(fleet_data(), source="x"), "ax1") is None


def test_handshake_ages_read_wg_show() -> None:
    from drape_fleet.cutover.link import handshake_ages

    output = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\t1700000000\nother=\t0\n"
    assert handshake_ages(output, 1700000090.0) == [90.0, float("inf")]
    assert handshake_ages("", 1.0) == []
