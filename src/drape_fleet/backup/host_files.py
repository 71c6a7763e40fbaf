"""What the backup deploy puts on a host, as text (pure): the plan, the pinned key file, the systemd units."""

from __future__ import annotations

import json

from drape_fleet.backup.plan import AGENT, host_plan
from drape_fleet.config.models import FleetConfig
from drape_fleet.provision.render import render

AGENT_FILE = "backup/drape-backup.py"
UNITS = ("drape-backup.service", "drape-backup.timer", "drape-backup-drill.service", "drape-backup-drill.timer")
SPREAD_S = 900
"""Timers fire within 15 minutes of their time, so hosts do not all reach the target at once."""
TIMEOUT_S = 6 * 3600


def plan_json(fleet: FleetConfig, host: str) -> str:
    return json.dumps(host_plan(fleet, host), indent=2, sort_keys=True) + "\n"


def unit(name: str) -> str:
    """A systemd unit of the backup (the same on every host: intervals are in the plan, not the units)."""
    return render(f"backup/{name}.j2", agent=AGENT, timeout_s=TIMEOUT_S, spread_s=SPREAD_S)


def known_hosts_text(pinned: str) -> str:
    """The target's pinned key lines as the host's ssh reads them (comments and blanks dropped)."""
    lines = [line.strip() for line in pinned.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"
