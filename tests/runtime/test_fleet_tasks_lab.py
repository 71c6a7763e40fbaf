"""`invoke fleet.status` as ops run it (a subprocess, the lab's environment): health, why a host takes no
previews, and the days left on the certificates in use (the served ones read from a TLS handshake)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.paths import project_root
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab


def fleet_status() -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "240"}
    return subprocess.run([sys.executable, "-m", "invoke", "fleet.status", "--env", "lab"], cwd=project_root(),
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_fleet_status_shows_health_placement_and_certificate_days(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    runtimes().cordon("ax3", "kernel update")
    done = fleet_status()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("│ ax")}
    assert set(rows) == {"ax1", "ax2", "ax3"}
    assert "cordoned kernel" in rows["ax3"] and "open" in rows["ax1"]  # (the reason may wrap)
    served = [int(re.split(r"\s*│\s*", row)[10]) for row in rows.values()]
    assert all(30 < days <= 825 for days in served), rows  # what each engine presents, days left
    assert re.search(r"certificates: CA \d+ days, backend client \d+ days", done.stdout)
