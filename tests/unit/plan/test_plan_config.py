"""Bad plan files fail with the file, the field and the fix; `invoke plan` exits non-zero on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context

from drape_fleet.config import ConfigError
from drape_fleet.plan.settings import load_plan, parse_plan
from drape_fleet.tasks import plan_tasks

ROOT = Path(__file__).resolve().parents[3]
GOOD = tomllib.loads((ROOT / "config" / "plan.toml").read_text())


def changed(section: str, key: str, value: Any) -> dict[str, Any]:
    data = {name: dict(body) if isinstance(body, dict) else body for name, body in GOOD.items()}
    if value is None:
        del data[section][key]
    else:
        data[section][key] = value
    return data


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("hetzner", "server_monthly", None, "hetzner.server_monthly: this required field is missing. Fix: add "
                                        "server_monthly = 99.0 (one AX102 per month)"),
    ("fly", "vm_monthly", None, "fly.vm_monthly: this required field is missing. Fix: add vm_monthly = 12.0"),
    ("offer", "monthly_price", 0, "offer.monthly_price: Input should be greater than 0 (got 0). Fix: use a number "
                                  "above zero"),
    ("capacity", "headroom_percent", 100, "capacity.headroom_percent: Input should be less than 100 (got 100). Fix: "
                                          "use a percentage from 0 to 99"),
    ("capacity", "headroom_percent", -5, "capacity.headroom_percent: Input should be greater than or equal to 0"),
    ("capacity", "os_reserve_memory_gib", 128, "capacity.os_reserve_memory_gib: the OS reserve (128 GiB) leaves "
                                               "nothing"),
    ("capacity", "preview_memory_gib", 200, "capacity.preview_memory_gib: one preview (200 GiB) does not fit"),
    ("capacity", "cpu_overcommit", 0.5, "capacity.cpu_overcommit: Input should be greater than or equal to 1"),
    ("hetzner", "cores", "sixteen", "hetzner.cores: Input should be a valid integer"),
    ("hetzner", "colour", "red", "hetzner.colour: unknown field 'colour'. Fix: remove it or correct its spelling"),
])
def test_each_bad_value_names_field_and_fix(section: str, key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_plan(changed(section, key, value), source="config/plan.toml")
    assert str(caught.value).startswith("config/plan.toml: 1 problem(s)")
    assert expected in str(caught.value)


def test_missing_file_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"the file does not exist. Fix: pass --config"):
        load_plan(tmp_path / "plan.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[fly\n")
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        load_plan(broken)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", "plan", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_task_prints_the_tables_and_json() -> None:
    tables = invoke("--containers", "50")
    assert tables.returncode == 0, tables.stderr
    for title in ("Costi Dettagliati", "Confronto costi Fly.io vs Hetzner", "Revenue vs Costi (50 utenti piano Go",
                  "Risorse per container", "Scalabilità", "Where the seed's tables disagree"):
        assert title in tables.stdout
    data = json.loads(invoke("--containers", "100", "--json").stdout)
    assert (data["asked"]["servers"], data["asked"]["hetzner_monthly"]) == (6, 594.0)


@pytest.mark.parametrize(("options", "message"), [
    ({"containers": "0"}, "pass a whole number from 1 to 100000"),
    ({"containers": "-3"}, "pass a whole number from 1 to 100000"),
    ({"containers": "many"}, "is not a whole number"),
    ({"containers": "50", "users": "-1"}, "is not a number of paying users"),
    ({}, "say how many active previews"),
    ({"containers": "50", "config": "/nonexistent/plan.toml"}, "the file does not exist"),
])
def test_bad_input_exits_non_zero_with_the_fix(options: dict[str, str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        plan_tasks.plan(Context(), **options)
    assert exited.value.code == 1 and message in capsys.readouterr().err


def test_the_cli_fails_the_same_way() -> None:
    result = invoke("--containers=-3")
    assert result.returncode == 1 and "pass a whole number from 1 to 100000" in result.stderr
