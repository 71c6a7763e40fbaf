"""Shared fixtures. Lab fixtures bring the lab up themselves and FAIL (never skip) when it cannot start:
CI must not pass a lab test it did not run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drape_fleet.config import FleetConfig


@pytest.fixture(scope="session")
def lab_fleet() -> Iterator[FleetConfig]:
    """The main lab (3 hosts), brought up if needed. Left running afterwards: later runs reuse it."""
    from drape_fleet.lab import LabError
    from drape_fleet.lab import fleet as lab
    from drape_fleet.lab.state import lab_state_settings

    settings = lab_state_settings()
    saved = lab.saved_settings(settings.state_dir)
    if saved is not None:
        settings = saved
    try:
        fleet = lab.up(settings, lambda message: print(f"[lab] {message}"))
    except (LabError, Exception) as exc:  # any failure to start the lab is a test failure
        pytest.fail(f"the lab could not be brought up: {exc}", pytrace=False)
    yield fleet


@pytest.fixture(scope="session")
def provisioned_lab(lab_fleet: FleetConfig) -> FleetConfig:
    """The main lab after `deploys/site.py` ran on every host (once per session)."""
    import subprocess

    from drape_fleet.paths import project_root

    root = project_root()
    result = subprocess.run(
        [str(root / ".venv" / "bin" / "pyinfra"), "-y", "inventories/lab.py", "deploys/site.py"],
        cwd=root, capture_output=True, text=True, timeout=1200, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"provisioning the lab failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                    pytrace=False)
    return lab_fleet
