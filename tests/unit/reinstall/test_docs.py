"""The reinstall README lists every validation rule with its source, so the table cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from drape_fleet.installimage import validate  # noqa: F401 (registers every rule)
from drape_fleet.installimage.problems import RULES

README = Path(__file__).resolve().parents[3] / "src" / "drape_fleet" / "reinstall" / "README.md"


def test_every_rule_is_in_the_readme_with_its_source() -> None:
    text = README.read_text()
    for rule in RULES.values():
        assert f"| `{rule.name}` | {rule.summary} | {rule.source} |" in text, rule.name
