"""`invoke lab.up | lab.status | lab.down`: the local stand-ins for AX102 servers."""

from __future__ import annotations

import dataclasses
import json
import time
from ipaddress import IPv4Network

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from pydantic import ValidationError
from rich.table import Table

from drape_fleet.config import ConfigError
from drape_fleet.console import console, fail, say
from drape_fleet.lab import LabError, LabSettings, gitserver
from drape_fleet.lab.down import down as lab_down
from drape_fleet.lab.down import planned_removal
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.lab.status import status as lab_status
from drape_fleet.lab.up import up as lab_up


def lab_settings(hosts: int | None = None, public_subnet: str | None = None,
                 private_subnet: str | None = None) -> LabSettings:
    """The lab the options name (drape_fleet.lab.state resolves the rest); bad options end the task."""
    subnets: dict[str, IPv4Network] = {}
    for which, given in (("public", public_subnet), ("private", private_subnet)):
        if given is not None:
            try:
                subnets[f"{which}_subnet"] = IPv4Network(given)
            except ValueError as exc:
                fail(f"--{which}-subnet {given!r} is not an IPv4 network ({exc}); write it like 172.29.10.0/24")
    try:
        return lab_state_settings(hosts, **subnets)
    except ValidationError as exc:
        messages = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or (error.get("ctx") or {}).get("at", "")
            fix = (error.get("ctx") or {}).get("fix", "")
            if where == "hosts":
                fix = f"use a count from 1 to {LabSettings.model_fields['hosts'].metadata[1].le}"
            option = "--" + str(where).replace("_", "-")
            messages.append(f"{option}: {error['msg']}" + (f". Fix: {fix}" if fix else ""))
        fail("; ".join(messages))


@task(help={
    "hosts": "how many stand-in servers (1-9, default 3, or as many as the running lab has)",
    "public_subnet": "the lab's public network (default 172.29.10.0/24)",
    "private_subnet": "the lab's private network, the vSwitch stand-in (default 172.29.20.0/24)",
})
def up(c: Context, hosts: int | None = None, public_subnet: str | None = None,
       private_subnet: str | None = None) -> None:
    """Bring up N stand-in AX102 servers (systemd + sshd containers) on lab bridges."""
    settings = lab_settings(hosts, public_subnet, private_subnet)
    started = time.monotonic()
    try:
        fleet = lab_up(settings, say)
    except (LabError, ConfigError) as exc:
        fail(str(exc))
    console.print(f"[green]lab up[/green]: {len(fleet.hosts)} hosts in {time.monotonic() - started:.1f} s "
                  f"(inventory: inventories/lab.py, ssh config: {settings.ssh_config})")


@task(help={"json": "print JSON ({hosts: [one object per host], git_server: {...}}) instead of tables"})
def status(c: Context, json_: bool = False) -> None:
    """Show each lab host (addresses, SSH, its Docker engine over SSH and over TLS) and the lab's git server."""
    settings = lab_settings()
    try:
        rows = lab_status(settings)
    except LabError as exc:
        fail(str(exc))
    git = gitserver.server_status(settings)
    healthy = all(row.healthy for row in rows) and git.healthy
    if json_:
        console.print_json(json.dumps({"hosts": [{**dataclasses.asdict(row), "healthy": row.healthy} for row in rows],
                                       "git_server": {**dataclasses.asdict(git), "healthy": git.healthy}}))
        if not healthy:
            raise Exit(code=1)
        return
    if not rows:
        console.print("the lab is down (no lab hosts); bring it up with `invoke lab.up`")
        return
    table = Table(title="lab hosts")
    for column in ("host", "public", "private", "container", "ssh", "docker (over ssh)", "docker API (mutual TLS)"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.public_address, row.private_address, row.container, row.ssh, row.docker,
                      row.docker_api)
    console.print(table)
    console.print(f"git server {git.name}: {git.container}, {git.url} {git.https}, {git.repositories} repositories")
    if not healthy:
        fail("some of the lab is not healthy (see above); `invoke lab.up` repairs a half-made lab")


@task(help={"yes": "do not ask for confirmation", "dry": "only show what would be removed"})
def down(c: Context, yes: bool = False, dry: bool = False) -> None:
    """Remove everything the lab made: host and git server containers, networks, volumes, data disks, keys, files."""
    settings = lab_settings()
    plan = planned_removal(settings)
    if plan.nothing:
        console.print("nothing to remove: the lab is already down")
        return
    console.print("[bold]lab.down will destroy:[/bold]")
    for kind, names in (("containers", plan.containers), ("volumes", plan.volumes),
                        ("networks", plan.networks), ("data disks", plan.disks), ("files", plan.files)):
        if names:
            console.print(f"  {kind}: {', '.join(names)}")
    if dry:
        console.print("(dry run: nothing removed)")
        return
    if not yes:
        answer = input("type 'down' to destroy the lab: ") if console.is_terminal else ""
        if answer.strip() != "down":
            fail("not confirmed; nothing removed (pass --yes to skip the question)")
    try:
        lab_down(settings, say)
    except LabError as exc:
        fail(str(exc))
    console.print("[green]lab down[/green]: everything it made is removed (the images stay: every lab on this "
                  "machine shares them)")


@task
def projects(c: Context) -> None:
    """Serve real projects on the lab's git server: made by their generators (create-vite, create-next-app) at
    their current versions, with history and the bad cases (minutes the first time, then cached)."""
    from drape_fleet.lab import projects as lab_projects

    settings = lab_settings()
    started = time.monotonic()
    try:
        urls = lab_projects.publish_all(settings, lab_projects.ensure_projects(say), say)
    except LabError as exc:
        fail(str(exc))
    console.print(f"[green]projects served[/green] in {time.monotonic() - started:.0f} s: "
                  + ", ".join(sorted(urls)))
