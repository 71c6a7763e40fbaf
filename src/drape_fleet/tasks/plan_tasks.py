"""`invoke plan --containers N`: what N active previews cost on Fly.io and on Hetzner, the revenue and margin,
what each container gets, and where the migration plan's own tables disagree with the model.

Prices and the capacity model come from config/plan.toml (``--config`` for another file); the numbers are
computed by drape_fleet.plan, this module only parses options and prints.
"""

from __future__ import annotations

import json
import sys

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.config import ConfigError
from drape_fleet.console import console, fail
from drape_fleet.paths import project_root
from drape_fleet.plan.model import PlanInputError, check_counts
from drape_fleet.plan.report import plan_data, plan_tables
from drape_fleet.plan.settings import load_plan


def _whole(option: str, value: str, example: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not a whole number: pass e.g. {option} {example}")


@task(help={"containers": "active previews to plan for (one per active user), e.g. 50",
            "users": "paying users (default: one per container)",
            "json": "print the plan as JSON instead of tables",
            "config": "the prices and capacity file (default: config/plan.toml)"})
def plan(c: Context, containers: str = "", users: str = "", json: bool = False, config: str = "") -> None:
    """Cost and capacity: Fly.io per VM vs AX102 per server, revenue and margin, and the seed's tables checked."""
    if not containers:
        fail("say how many active previews to plan for: invoke plan --containers 50")
    count = _whole("--containers", containers, "50")
    paying = _whole("--users", users, "50") if users else None
    try:
        check_counts(count, paying)
        settings = load_plan(config or project_root() / "config" / "plan.toml")
    except (PlanInputError, ConfigError) as exc:
        fail(str(exc))
    data = plan_data(settings, count, paying)
    if json:
        sys.stdout.write(_dumps(data) + "\n")
        return
    console.print(f"[bold]Plan for {count} active previews[/bold]: {data['capacity_model']['explanation']}")
    for table in plan_tables(data):
        console.print(table)
    for warning in data["warnings"]:
        console.print(f"[yellow]![/yellow] {warning}")


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
