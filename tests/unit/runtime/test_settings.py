from __future__ import annotations

from typing import Any

import pytest

from drape_fleet.config import ConfigError
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.lab.fleet import lab_fleet
from drape_fleet.lab.settings import LabSettings


def test_defaults_are_the_plans_numbers() -> None:
    settings = RuntimeSettings()
    assert settings.preview.cpus == 4
    assert settings.preview.cpu_limit is None  # burst to the whole host when it is idle
    assert settings.preview.memory_mib == 7 * 1024
    assert settings.persist_minutes == 30
    assert set(settings.frameworks) == {"nextjs", "react", "vue"}
    assert settings.largest_preview == settings.preview


def test_lab_fleet_has_small_previews_that_fill_a_lab_host() -> None:
    fleet = lab_fleet(LabSettings())
    per_host = fleet.hosts[0].capacity.memory_gib * 1024 // fleet.runtime.preview.memory_mib
    assert 8 <= per_host <= 32
    assert "tiny" in fleet.runtime.frameworks


@pytest.mark.parametrize(("runtime", "field", "fix"), [
    ({"preview": {"cpus": 4, "cpu_limit": 2}}, "runtime.preview.cpu_limit", "raise cpu_limit"),
    ({"cap_add": ["SYS_ADMIN"]}, "runtime.cap_add", "use only"),
    ({"frameworks": {}}, "runtime.frameworks", "add at least one"),
    ({"frameworks": {"next": {"image": "Not An Image"}}}, "runtime.frameworks.next.image", "image"),
    ({"subnet_pool": "8.8.0.0/16"}, "runtime.subnet_pool", "private"),
    ({"max_preview": {"memory_mib": 1024}}, "runtime.max_preview.memory_mib", "at least as large"),
    ({"preview": {"memory_mib": 7168, "bogus": 1}}, "runtime.preview", "remove it"),
])
def test_bad_runtime_settings_name_field_and_fix(runtime: dict[str, object], field: str, fix: str,
                                                 fleet_data: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_fleet(fleet_data(**runtime), source="fleet.toml")
    text = str(caught.value)
    assert "fleet.toml" in text
    assert field in text
    assert fix in text
