"""`invoke cutover ...` refuses bad input before it reads any host: the fleet here has hosts nobody can reach
(documentation addresses) and no PKI, so a task that went past its checks would fail differently (or hang)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from fleets import fleet_data
from invoke.context import Context

from drape_fleet.tasks.cutover_tasks import cutover


@pytest.fixture
def unreachable_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = fleet_data()
    data["cutover"] = {"internal_users": ["u-ops"], "users_file": "users.txt"}
    data["fly"] = {"apps": ["drape-previews"]}
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(tomli_w.dumps(data))
    (tmp_path / "users.txt").write_text("u-beta-1\nu-beta-2\n")
    env = {"DRAPE_ENV": "production", "DRAPE_FLEET_FILE": str(fleet), "DRAPE_PKI_DIR": str(tmp_path / "no-pki"),
           "DRAPE_SECRETS_FILE": str(tmp_path / "none")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return fleet


@pytest.mark.parametrize(("action", "options", "words"), [
    ("phase6", {}, "unknown cutover action 'phase6': use one of phase1, phase2"),
    ("phase1", {"percent": "5"}, "--percent applies to phase3 only, not to phase1"),
    ("status", {"apply": True}, "--apply applies to phase1 and phase2"),
    ("phase4", {"confirm": "drape-previews"}, "--confirm names the Fly app(s)"),
    ("phase3", {"percent": "ten"}, "--percent 'ten' is not a number"),
    ("phase3", {"percent": "-5", "apply": True}, "--percent -5 is not a share of users"),
    ("phase3", {"percent": "nan"}, "--percent nan is not a share of users"),
    ("phase3", {"percent": "12.345"}, "at most two decimals"),
    ("phase3", {"allow": "u-beta-1,bad user"}, "--allow names 'bad user', which are not user ids"),
    ("phase3", {"allow": "u-beta-1,u-ghost,[cutover]"}, "which are not user ids"),
    ("phase3", {"allow": "u-beta-2,u-ghost", "apply": True}, "--allow names 1 unknown user(s): u-ghost. Nothing"),
])
def test_bad_input_is_refused_before_any_host(unreachable_fleet: Path, capsys: pytest.CaptureFixture[str],
                                              action: str, options: dict[str, Any], words: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cutover(Context(), action, **options)
    assert exited.value.code == 1
    assert words in " ".join(capsys.readouterr().err.split())


def test_section_names_in_messages_survive_the_console(unreachable_fleet: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = fleet_data()
    data["cutover"] = {"internal_users": ["u-ops"]}  # no users_file: --allow cannot be checked
    unreachable_fleet.write_text(tomli_w.dumps(data))
    with pytest.raises(SystemExit):
        cutover(Context(), "phase3", allow="u-beta-1")
    assert "--allow needs [cutover] users_file" in " ".join(capsys.readouterr().err.split())
