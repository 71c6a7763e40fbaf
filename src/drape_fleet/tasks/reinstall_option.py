"""`invoke provision --host ax1 --reinstall`: the reinstall from bare metal (drape_fleet.reinstall) before the
provisioning. Thin: the dry run, the confirmation naming the server and what is destroyed, the progress.

Order of a run: the read-only preflight (Robot knows the server at the fleet file's address, stores the keys, the
layout passes installimage's rules), which ends bad input before anything is touched; then the confirmation
(unless --yes), only when a destructive step is still ahead; then the steps, resuming where the last run stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

from drape_fleet.config import ConfigError, Host
from drape_fleet.console import console, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.reinstall.executor import Reinstall, ReinstallFailed, ReinstallRefused
from drape_fleet.reinstall.report import ConsoleProgress
from drape_fleet.reinstall.service import dry_run, open_reinstall, state_dir

AFTERWARDS = "then: the provisioning (every deploy) and `invoke verify` of the new system"


def reinstall_first(target: FleetTarget, host: Host, *, yes: bool, dry: bool, restart: bool,
                    rescue_fingerprints: Sequence[str] = ()) -> bool:
    """Reinstall ``host`` (or show the plan): True when the provisioning should follow."""
    if host.robot_server_number is None:
        fail(f"{host.name} has no robot_server_number in {target.env.fleet_file}: add it (Robot, Servers, "
             "column #, or `invoke fleet.robot-list`); nothing was touched")
    if dry:
        console.print(dry_run(target, host.name), soft_wrap=True)
        console.print(f"\n{AFTERWARDS}")
        console.print("[green]dry run done[/green]: nothing was contacted or changed")
        return False
    try:
        reinstall = open_reinstall(target, host.name, progress=ConsoleProgress(console, host=host.name),
                                   rescue_host_fingerprints=rescue_fingerprints)
    except (ConfigError, ValueError, ReinstallRefused) as exc:
        fail(f"cannot reinstall {host.name}: {exc}")
    try:
        _run(reinstall, host, yes=yes, restart=restart)
    finally:
        reinstall.robot.close()
    say(f"{host.name}: reinstalled; its state is in {state_dir(target)}")
    return True


def _run(reinstall: Reinstall, host: Host, *, yes: bool, restart: bool) -> None:
    pending = reinstall.pending(restart=restart)
    if not pending:
        say(f"{host.name} was reinstalled on {reinstall.finished_at()}: not again (pass --restart to reinstall it "
            "anew); provisioning it")
        return
    try:
        confirmation = reinstall.check(restart=restart)
        if any(step.destructive for step in pending):
            _confirm(confirmation, host, yes=yes)
        else:
            say(f"resuming at '{pending[0].title}': the destructive steps are done")
        reinstall.run(confirmed=True, restart=restart)
    except ReinstallFailed as exc:
        fail(f"reinstalling {host.name} stopped:\n{exc}")
    except ReinstallRefused as exc:
        fail(str(exc))


def _confirm(confirmation: str, host: Host, *, yes: bool) -> None:
    console.print(f"[bold red]{confirmation}[/bold red]", soft_wrap=True)
    if yes:
        say("confirmed by --yes")
        return
    if not console.is_terminal:
        fail("not confirmed: nothing was touched. Run it on a terminal to answer, or pass --yes")
    answer = input(f"type the host's name ({host.name}) to reinstall it, anything else stops: ")
    if answer.strip() != host.name:
        fail("not confirmed: nothing was touched")
