"""The alert rules handed to monitoring (files/monitoring/rules/backup.rules.yml): promtool checks them and runs
their tests (tests/backup/rules), and every metric they read is one the agent writes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "files" / "monitoring" / "rules" / "backup.rules.yml"
RULE_TESTS = ROOT / "tests" / "backup" / "rules" / "backup.rules.test.yml"


def promtool() -> str:
    """The promtool ./dev unpacks into the venv from Debian's prometheus package (installing the package would
    start a Prometheus on this machine), else one on PATH."""
    found = Path(sys.executable).with_name("promtool")
    if found.exists():
        return str(found)
    on_path = shutil.which("promtool")
    assert on_path, "promtool is missing: run ./dev test once (it unpacks promtool into .venv/bin)"
    return on_path


@pytest.fixture(scope="module")
def tool() -> str:
    return promtool()


def test_rules_parse(tool: str) -> None:
    done = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_rules_fire_when_they_should_and_only_then(tool: str) -> None:
    done = subprocess.run([tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_the_rules_read_is_one_the_agent_writes() -> None:
    spec = importlib.util.spec_from_file_location("drape_backup_agent", ROOT / "files" / "backup" / "drape-backup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = {name for name, _key, _help in module.METRICS}
    read = set(re.findall(r"drape_backup_[a-z_]+", RULES.read_text()))
    assert read and read <= written, read - written
