"""Who can get in, and the rule that nobody is locked out: root login is disabled only once the deploy user
is proven (it logs in with a key and has passwordless sudo), and never in the same run that changes the deploy
user's keys."""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.provisioning import SshSettings
from drape_fleet.provision.render import render


def deploy_home(user: str) -> str:
    return f"/home/{user}"


def authorized_keys_path(user: str) -> str:
    return f"{deploy_home(user)}/.ssh/authorized_keys"


ROOT_AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"


def _normalise(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def desired_authorized_keys(settings: SshSettings, current: str | None, root_keys: str | None) -> str | None:
    """The deploy user's authorized_keys after this run, or None to leave the file as it is.

    Configured keys are the whole file. Without configured keys the user keeps what it has; a user with none
    is seeded once from root's keys (the key ops gave installimage)."""
    if settings.authorized_keys:
        return render("base/authorized_keys.j2", keys=settings.authorized_keys)
    if _normalise(current):
        return None
    if _normalise(root_keys):
        return render("base/authorized_keys.j2", keys=_normalise(root_keys).splitlines())
    return None


@dataclass(frozen=True)
class Proof:
    proven: bool
    why: str


def prove_deploy_user(*, connected_as: str, deploy_user: str, current_keys: str | None,
                      keys_change: bool, login_probe: Proof | None) -> Proof:
    """Whether the deploy user is a proven way in *after* this run.

    ``login_probe`` is the result of logging in as the deploy user and running ``sudo -n true`` (made by
    the caller when it is not already connected as that user)."""
    if keys_change:
        return Proof(False, f"this run changes {deploy_user}'s authorized_keys; its new keys are not proven yet")
    if not _normalise(current_keys):
        return Proof(False, f"{deploy_user} has no authorized keys")
    if connected_as == deploy_user:
        return Proof(True, f"this run is connected as {deploy_user} with sudo")
    if login_probe is None:
        return Proof(False, f"{deploy_user}'s login was not tested")
    return login_probe
