"""The confirmation login after an sshd or nftables change: a restarting sshd is tried again, an answer is not."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from drape_fleet import shell
from drape_fleet.provision import safety
from drape_fleet.ssh import SshTarget


def _target(tmp_path: Path, port: int) -> SshTarget:
    key = tmp_path / "id_ed25519"
    key.write_text("")
    return SshTarget(hostname="127.0.0.1", user="deploy", key=key, known_hosts=tmp_path / "known_hosts", port=port)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_port_that_stays_closed_is_tried_until_the_timeout_then_refused(tmp_path: Path) -> None:
    """Real ssh against a real closed port: 'Connection refused' each time, for the whole budget."""
    started = time.monotonic()
    confirmation = safety.confirm_by_new_login(_target(tmp_path, _closed_port()), "ssh", timeout=2.5)
    elapsed = time.monotonic() - started
    assert not confirmation.ok
    assert "Connection refused" in confirmation.detail and "after the ssh change" in confirmation.detail
    assert 2.0 <= elapsed < 6, elapsed


def test_a_restart_then_a_login_confirms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [shell.Result(255, "", "ssh: connect to host 127.0.0.1 port 22: Connection refused"),
               shell.Result(255, "", "kex_exchange_identification: Connection closed by remote host"),
               shell.Result(0, "confirmed\n", "")]
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> shell.Result:
        calls.append(argv)
        return answers.pop(0)

    monkeypatch.setattr(shell, "run", run)
    confirmation = safety.confirm_by_new_login(_target(tmp_path, 22), "ssh", timeout=10)
    assert confirmation.ok and len(calls) == 3
    assert all("ControlMaster=no" in " ".join(argv) for argv in calls)  # each one a fresh login


def test_a_refused_key_is_an_answer_not_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> shell.Result:
        calls.append(argv)
        return shell.Result(255, "", "deploy@127.0.0.1: Permission denied (publickey).")

    monkeypatch.setattr(shell, "run", run)
    confirmation = safety.confirm_by_new_login(_target(tmp_path, 22), "ssh", timeout=10)
    assert not confirmation.ok and "Permission denied" in confirmation.detail and len(calls) == 1


def test_no_answer_at_all_is_no_confirmation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], **_: object) -> shell.Result:
        raise shell.CommandFailed(argv, -1, "timed out after 3 s")

    monkeypatch.setattr(shell, "run", run)
    confirmation = safety.confirm_by_new_login(_target(tmp_path, 22), "firewall", timeout=3)
    assert not confirmation.ok and "timed out" in confirmation.detail
