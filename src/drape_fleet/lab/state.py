"""The lab's settings, resolved in one place, and the files on this machine that record a running lab.

``lab_state_settings`` is the one resolver every command, test and benchmark uses: ``$DRAPE_LAB_PREFIX``
names the lab and its state directory (``.lab``, or ``.lab-<prefix>`` for a second lab beside the main one);
what the running lab was made with fills in the rest (its ``lab.json``, else the subnets of its Docker
networks); options given on the command line win.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import tomli_w

from drape_fleet import hostkeys
from drape_fleet.config import FleetConfig
from drape_fleet.environments import LAB, environment
from drape_fleet.lab.engine import engine_answers, engine_client
from drape_fleet.lab.fleet import lab_fleet_data
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import lab_prefix, lab_state_dir
from drape_fleet.ssh import ssh_config


def saved_settings(settings: LabSettings) -> LabSettings | None:
    """What ``up`` was last asked for in this state directory (None before the first ``up``)."""
    if not settings.saved_file.exists():
        return None
    return LabSettings.model_validate_json(settings.saved_file.read_text())


def lab_state_settings(hosts: int | None = None, public_subnet: IPv4Network | None = None,
                       private_subnet: IPv4Network | None = None) -> LabSettings:
    """The lab these settings describe (raises pydantic's ValidationError for values a lab cannot have)."""
    base = LabSettings(state_dir=lab_state_dir(), prefix=lab_prefix())
    values: dict[str, Any] = {"state_dir": base.state_dir, "prefix": base.prefix}
    saved = saved_settings(base)
    if saved is not None:
        values.update(hosts=saved.hosts, public_subnet=saved.public_subnet, private_subnet=saved.private_subnet)
    elif engine_answers():
        from drape_fleet.lab.ranges import current_subnets

        current = current_subnets(engine_client(), base)
        values.update({f"{which}_subnet": subnet for which, subnet in current.items()})
    overrides = {"hosts": hosts, "public_subnet": public_subnet, "private_subnet": private_subnet}
    values.update({key: value for key, value in overrides.items() if value is not None})
    return LabSettings.model_validate(values)


def write_state(settings: LabSettings, host_keys: Sequence[hostkeys.HostKey]) -> None:
    """The lab's fleet file, its pinned host keys, an ssh_config for people (``ssh -F .lab/ssh/config ax1``)
    and what ``up`` was asked for."""
    header = "# Written by `invoke lab.up`: the lab fleet. Do not edit; `invoke lab.down` removes it.\n"
    settings.fleet_file.write_text(header + tomli_w.dumps(lab_fleet_data(settings)))
    settings.known_hosts.write_text("".join(f"{key.line()}\n" for key in host_keys))
    targets = [settings.ssh_target(index) for index in range(1, settings.hosts + 1)]
    settings.ssh_config.write_text(ssh_config(targets))
    settings.saved_file.write_text(settings.model_dump_json(indent=2) + "\n")


def load_lab_fleet() -> tuple[FleetConfig, Path]:
    """The running lab's fleet and its file: the lab environment's (``drape_fleet.environments``)."""
    target = environment(LAB).load()
    return target.fleet, target.env.fleet_file
