"""What the service and ingress deploys put on a host, rendered as they render it for the lab fleet, compared with
reviewed goldens (tests/fixtures/files/lab/{service,ingress}/; ``DRAPE_UPDATE_GOLDENS=1`` rewrites them); and the
fleet file's [service] section refusing what cannot work, naming the field and the fix."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drape_fleet.config import ConfigError, FleetConfig
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.service import InstanceConfig, load_instance
from drape_fleet.lab.fleet import lab_fleet, lab_fleet_data
from drape_fleet.lab.settings import LabSettings
from drape_fleet.service_deploy import host as layout

GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "files" / "lab"
FLEET = lab_fleet(LabSettings())
AX1 = FLEET.host("ax1")

RENDERS: dict[str, Callable[[FleetConfig], str]] = {
    "service/drape-runtime.service": layout.unit_file,
    "service/service.toml": lambda f: layout.instance_config(f, AX1),
    "service/drape-runtime.caddy": lambda f: layout.caddy_site(f, AX1),
    "ingress/Caddyfile": lambda f: layout.caddyfile(AX1),
}


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_render_matches_the_reviewed_golden(name: str) -> None:
    text = RENDERS[name](FLEET)
    golden = GOLDENS / name
    if os.environ.get("DRAPE_UPDATE_GOLDENS"):
        golden.write_text(text)
        pytest.fail(f"rewrote {golden}: review the diff, then run again without DRAPE_UPDATE_GOLDENS")
    assert text == golden.read_text()


def test_the_rendered_instance_config_is_what_the_service_loads(tmp_path: Path) -> None:
    config = load_instance_text(layout.instance_config(FLEET, AX1), tmp_path)
    assert config.instance == "ax1" and str(config.listen) == "127.0.0.1" and config.port == 8420
    assert config.engine_tls is not None and str(config.engine_tls.key) == "/run/drape-runtime/engine-client-key"
    assert f"{layout.RUNTIME_DIR}/engine-client-key" in layout.unit_file(FLEET)
    with pytest.raises(ConfigError, match=r"listen: .*Fix"):
        load_instance_text('fleet_file = "/f"\ninstance = "ax1"\nlisten = "nowhere"\ntokens_file = "/t"\n', tmp_path)
    with pytest.raises(ConfigError, match=r"instance: this required field is missing. Fix: add it"):
        load_instance_text('fleet_file = "/f"\ntokens_file = "/t"\n', tmp_path)


def load_instance_text(text: str, tmp_path: Path) -> InstanceConfig:
    path = tmp_path / "service.toml"
    path.write_text(text)
    return load_instance(path)


def test_urls_are_every_instance_on_its_public_address() -> None:
    assert layout.base_urls(FLEET) == ["https://172.29.10.11", "https://172.29.10.12", "https://172.29.10.13"]
    only_two = FLEET.model_copy(update={"service": FLEET.service.model_copy(update={"hosts": ("ax1", "ax3")})})
    assert layout.base_urls(only_two) == ["https://172.29.10.11", "https://172.29.10.13"]
    assert layout.runs_here(only_two, "ax1") and not layout.runs_here(only_two, "ax2")


def _fleet_with(**changes: Any) -> dict[str, Any]:
    data = tomllib.loads(tomllib_text(lab_fleet_data(LabSettings())))
    for path, value in changes.items():
        section, key = path.split(".")
        data.setdefault(section, {})[key] = value
    return data


def tomllib_text(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def test_a_service_host_outside_the_backend_addresses_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_fleet(_fleet_with(**{"network.backend_addresses": ["172.29.20.1/32"]}), source="fleet.toml")
    text = str(caught.value)
    assert "network.backend_addresses: ax1 runs the runtime service, but its private address 172.29.20.11" in text
    assert "Fix: add 172.29.20.11/32 (or the private network) to network.backend_addresses" in text
    with pytest.raises(ConfigError, match=r"service.hosts\[1\]: 'ax9' is not a host of this fleet.*Fix: use one of"):
        validate_fleet(_fleet_with(**{"service.hosts": ["ax1", "ax9"]}), source="fleet.toml")
    with pytest.raises(ConfigError, match=r"service.max_body_bytes"):
        validate_fleet(_fleet_with(**{"service.max_body_bytes": 10}), source="fleet.toml")
    fleet = validate_fleet(_fleet_with(**{"service.hosts": ["ax2"], "network.backend_addresses": [
        "172.29.20.1/32", "172.29.20.12/32"]}), source="fleet.toml")
    assert fleet.service is not None and fleet.service.runs_on(fleet.host_names) == ("ax2",)
