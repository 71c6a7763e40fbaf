from __future__ import annotations

from drape_fleet.config.provisioning import SshSettings
from drape_fleet.provision.access import Proof, desired_authorized_keys, prove_deploy_user

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbc ops@laptop"


def test_configured_keys_are_the_whole_file() -> None:
    assert desired_authorized_keys(SshSettings(authorized_keys=(KEY,)), "old", "root") == KEY + "\n"


def test_existing_keys_are_kept_and_an_empty_user_is_seeded_from_root() -> None:
    assert desired_authorized_keys(SshSettings(), "ssh-ed25519 AAAA x\n", KEY) is None
    assert desired_authorized_keys(SshSettings(), None, f"# comment\n{KEY}\n\n") == KEY + "\n"
    assert desired_authorized_keys(SshSettings(), "", None) is None


def test_proof_rules() -> None:
    ok = Proof(True, "probe ok")
    assert prove_deploy_user(connected_as="deploy", deploy_user="deploy", current_keys=KEY, keys_change=False,
                             login_probe=None).proven
    assert not prove_deploy_user(connected_as="deploy", deploy_user="deploy", current_keys=KEY, keys_change=True,
                                 login_probe=ok).proven
    assert not prove_deploy_user(connected_as="root", deploy_user="deploy", current_keys=None, keys_change=False,
                                 login_probe=ok).proven
    assert not prove_deploy_user(connected_as="root", deploy_user="deploy", current_keys=KEY, keys_change=False,
                                 login_probe=None).proven
    assert prove_deploy_user(connected_as="root", deploy_user="deploy", current_keys=KEY, keys_change=False,
                             login_probe=ok) == ok
