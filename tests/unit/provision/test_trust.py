"""First contact is explicit: `invoke hosts.trust` shows the key a host offers, compares it with the expected
fingerprint, and pins it; the known_hosts handling underneath is exact. The host's answer comes from a fake
ssh-keyscan; fingerprints are checked against OpenSSH's own ssh-keygen."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from provision_testdata import make_target

from drape_fleet import hostkeys
from drape_fleet.config import FleetConfig, Host
from drape_fleet.provision.trust import TrustRefused, trust_host


def _new_key(directory: Path, name: str) -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().split()[1]


def _ssh_keygen_fingerprint(directory: Path, name: str) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(directory / f"{name}.pub")], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


class Offers:
    """ssh-keyscan's answer for one host: its ed25519 key (and an RSA one we do not pin)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.asked: list[tuple[str, int]] = []

    def __call__(self, address: str, port: int) -> list[str]:
        self.asked.append((address, port))
        return [f"{address} ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB", f"{address} ssh-ed25519 {self.key}"]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return {name: _new_key(tmp_path, name) for name in ("first", "second")}


def test_fingerprints_are_openssh_s(tmp_path: Path, keys: dict[str, str]) -> None:
    assert hostkeys.fingerprint(keys["first"]) == _ssh_keygen_fingerprint(tmp_path, "first")
    fingerprint = hostkeys.fingerprint(keys["first"])
    assert hostkeys.normalise_fingerprint(fingerprint.removeprefix("SHA256:") + "=") == fingerprint
    with pytest.raises(hostkeys.BadHostKey, match="is not a SHA256 fingerprint"):
        hostkeys.normalise_fingerprint("MD5:12:34")


def test_known_hosts_lines_are_replaced_by_name_and_type() -> None:
    text = "# ours\n203.0.113.11,ax1 ssh-ed25519 OLD\n203.0.113.11 ssh-rsa KEEP\n203.0.113.12,ax2 ssh-ed25519 B\n"
    new = hostkeys.HostKey(hostkeys.host_names("ax1", "203.0.113.11", 22), "ssh-ed25519", "NEW")
    assert hostkeys.with_key(text, new) == (
        "# ours\n203.0.113.11 ssh-rsa KEEP\n203.0.113.12,ax2 ssh-ed25519 B\n203.0.113.11,ax1 ssh-ed25519 NEW\n")
    assert hostkeys.host_names("ax1", "203.0.113.11", 2222) == ("[203.0.113.11]:2222", "ax1")
    assert [k.key for k in hostkeys.pinned(hostkeys.parse(text), "ax2")] == ["B"]


def test_first_contact_shows_the_key_and_pins_it_once_confirmed(fleet: FleetConfig, tmp_path: Path,
                                                                 keys: dict[str, str]) -> None:
    target = make_target(fleet, tmp_path, pinned=False)
    shown: list[str] = []

    def confirm(host: Host, key: hostkeys.HostKey) -> bool:
        shown.append(f"{host.name} {key.fingerprint}")
        return True

    trusted = trust_host(target, fleet.host("ax1"), expected=None, confirm=confirm, scan=Offers(keys["first"]))
    assert (trusted.outcome, trusted.fingerprint) == ("pinned", _ssh_keygen_fingerprint(tmp_path, "first"))
    assert shown == [f"ax1 {trusted.fingerprint}"]
    assert target.env.known_hosts.read_text() == f"203.0.113.11,ax1 ssh-ed25519 {keys['first']}\n"
    again = trust_host(target, fleet.host("ax1"), expected=None, confirm=lambda *_: False, scan=Offers(keys["first"]))
    assert again.outcome == "already pinned"


def test_an_unconfirmed_key_is_not_written(fleet: FleetConfig, tmp_path: Path, keys: dict[str, str]) -> None:
    target = make_target(fleet, tmp_path, pinned=False)
    with pytest.raises(TrustRefused, match="not confirmed; nothing was written"):
        trust_host(target, fleet.host("ax1"), expected=None, confirm=lambda *_: False, scan=Offers(keys["first"]))
    assert not target.env.known_hosts.exists()


def test_the_expected_fingerprint_decides(fleet: FleetConfig, tmp_path: Path, keys: dict[str, str]) -> None:
    target = make_target(fleet, tmp_path, pinned=False)
    expected = _ssh_keygen_fingerprint(tmp_path, "first")
    refusal = rf"ax1 offers SHA256:\S+, not the expected {re.escape(expected)}: do not connect"
    with pytest.raises(TrustRefused, match=refusal):
        trust_host(target, fleet.host("ax1"), expected=expected, confirm=lambda *_: True, scan=Offers(keys["second"]))
    assert not target.env.known_hosts.exists()
    pinned = trust_host(target, fleet.host("ax1"), expected=expected, confirm=lambda *_: False,
                        scan=Offers(keys["first"]))
    assert pinned.outcome == "pinned"


def test_a_changed_key_needs_the_new_fingerprint(fleet: FleetConfig, tmp_path: Path, keys: dict[str, str]) -> None:
    target = make_target(fleet, tmp_path, pinned=False)
    trust_host(target, fleet.host("ax1"), expected=None, confirm=lambda *_: True, scan=Offers(keys["first"]))
    before = target.env.known_hosts.read_text()
    with pytest.raises(TrustRefused, match=r"pinned key \(SHA256:\S+\) differs from the one it offers now.*"
                                           r"--fingerprint SHA256:"):
        trust_host(target, fleet.host("ax1"), expected=None, confirm=lambda *_: True, scan=Offers(keys["second"]))
    assert target.env.known_hosts.read_text() == before
    replaced = trust_host(target, fleet.host("ax1"), expected=_ssh_keygen_fingerprint(tmp_path, "second"),
                          confirm=lambda *_: False, scan=Offers(keys["second"]))
    assert replaced.outcome == "replaced"
    assert target.env.known_hosts.read_text() == f"203.0.113.11,ax1 ssh-ed25519 {keys['second']}\n"


def test_a_host_that_offers_nothing(fleet: FleetConfig, tmp_path: Path) -> None:
    target = make_target(fleet, tmp_path, pinned=False)
    with pytest.raises(TrustRefused, match=r"ax2 \(203.0.113.12:22\) offered no ssh-ed25519 host key"):
        trust_host(target, fleet.host("ax2"), expected=None, confirm=lambda *_: True, scan=lambda *_: [])
