"""The reinstall of an environment's host, as `invoke provision --reinstall` runs it: the environment chooses the
fleet file, the one SSH key ops offer, the known_hosts file the new system's keys are pinned in, and where each
reinstall's state is kept; the Robot webservice user comes from the secrets.

Nothing here asks or prints: the task asks for the confirmation and shows the progress it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drape_fleet.config import load_secrets
from drape_fleet.environments import FleetTarget
from drape_fleet.hetzner.robot import RobotClient, robot_client
from drape_fleet.paths import project_root
from drape_fleet.reinstall.context import Progress
from drape_fleet.reinstall.executor import Reinstall
from drape_fleet.reinstall.plan import plan_text
from drape_fleet.reinstall.remote import OpenSshRemote
from drape_fleet.reinstall.state import for_server, load_state, state_path

STATE_SUBDIR = "reinstall"


def state_dir(target: FleetTarget) -> Path:
    """``<environment's state directory>/reinstall``: production's ``~/.config/drape-fleet/reinstall``, the lab's
    ``.lab/reinstall``. One JSON file per host, the rescue pins and the rendered config beside it."""
    return target.env.state_dir / STATE_SUBDIR


def open_reinstall(target: FleetTarget, host: str, *, progress: Progress, robot: RobotClient | None = None,
                   rescue_host_fingerprints: Sequence[str] = ()) -> Reinstall:
    """The reinstall of ``host``, ready to ``check()`` and ``run()``. Without ``robot``, a client for the
    webservice user in the secrets ($DRAPE_ROBOT_URL moves it to a local fake); the caller closes it.

    Raises ``ConfigError`` when the webservice user is not set, ``ReinstallRefused`` for a host that cannot be
    reinstalled (unknown, or without its Robot server number)."""
    client = robot or robot_client(load_secrets(repo_root=project_root()))
    try:
        return Reinstall(target.fleet, host, client, OpenSshRemote(target.env.ssh_key), target.env.known_hosts,
                         state_dir=state_dir(target), progress=progress,
                         rescue_host_fingerprints=tuple(rescue_host_fingerprints))
    except Exception:
        if robot is None:
            client.close()
        raise


def dry_run(target: FleetTarget, host: str) -> str:
    """The steps and the installimage config, from the fleet file and the saved state alone: no credentials
    needed, nothing contacted."""
    entry = target.fleet.host(host)
    state = for_server(load_state(state_path(state_dir(target), host)), entry.robot_server_number,
                       str(entry.public_address))
    return plan_text(target.fleet, host, state)
