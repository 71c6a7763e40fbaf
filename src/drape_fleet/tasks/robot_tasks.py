"""`invoke fleet.robot-list` and `invoke robot.firewall`: thin over drape_fleet.hetzner.

Both need the Robot webservice user (secrets robot_user/robot_password). ``$DRAPE_ROBOT_URL`` points them at
another webservice (a local fake in tests); the real one is the default.
"""

from __future__ import annotations

import json
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drape_fleet.config import ConfigError, FleetConfig, Host, load_secrets
from drape_fleet.console import console, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.hetzner.inventory import missing_from_robot, server_rows
from drape_fleet.hetzner.robot import DEFAULT_BASE_URL, RobotClient, RobotError, robot_client
from drape_fleet.hetzner.robot.keys import StoredKey
from drape_fleet.hetzner.robot_firewall import RobotFirewallError, refuse_lockout
from drape_fleet.hetzner.robot_firewall import robot_firewall as build_firewall
from drape_fleet.paths import project_root
from drape_fleet.reinstall.keys import NotAKey, rescue_fingerprints
from drape_fleet.ssh import ssh_run
from drape_fleet.tasks.common import ENV_HELP, environment_of, hosts_of


def _client() -> RobotClient:
    try:
        client = robot_client(load_secrets(repo_root=project_root()))
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    if client.base_url != DEFAULT_BASE_URL:
        say(f"Robot webservice: {client.base_url} ($DRAPE_ROBOT_URL)")
    return client


def _fleet_or_none(env: str) -> tuple[FleetConfig | None, str]:
    """The fleet, to match Robot's servers against it; listing still works when the fleet file is incomplete."""
    try:
        return environment_of(env).load().fleet, ""
    except Exception as exc:  # the listing is how ops fill a fleet file that does not load yet
        return None, str(exc).splitlines()[0]


@task(help={"json": "print JSON instead of a table", "keys": "also list the SSH keys stored in Robot",
            "env": ENV_HELP})
def robot_list(c: Context, json_: bool = False, keys: bool = False, env: str = "") -> None:
    """The Robot account's servers (number, name, IP, product, DC, status) and which fleet host each one is."""
    client = _client()
    fleet, problem = _fleet_or_none(env)
    try:
        servers = client.servers.list()
        stored = client.keys.list() if keys else []
    except RobotError as exc:
        fail(str(exc))
    finally:
        client.close()
    rows = server_rows(servers, fleet)
    configured = _configured_fingerprints(fleet)
    if json_:
        payload: dict[str, object] = {"servers": [row.as_json() for row in rows]}
        if keys:
            payload["keys"] = [{"name": k.name, "fingerprint": k.fingerprint, "type": k.type, "size": k.size,
                                "in_rescue_keys": k.fingerprint in configured} for k in stored]
        console.print_json(json.dumps(payload))
        return
    table = Table(title=f"Robot servers ({len(rows)})")
    for column in ("#", "name", "IP", "product", "DC", "status", "fleet host", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row.status + (" (cancelled)" if row.cancelled else "")
        table.add_row(str(row.number), row.name, row.ip, row.product, row.dc, status, row.fleet_host,
                      f"[yellow]{row.note}[/yellow]" if row.note else "")
    console.print(table)
    if fleet is None:
        say(f"fleet file not loaded, so no 'fleet host' column: {problem}")
    else:
        for missing in missing_from_robot(servers, fleet):
            say(f"[yellow]not on this Robot account:[/yellow] {missing}")
    if keys:
        _keys_table(stored, configured)


def _configured_fingerprints(fleet: FleetConfig | None) -> set[str]:
    if fleet is None:
        return set()
    try:
        return set(rescue_fingerprints(fleet.reinstall.rescue_keys, fleet.provisioning.ssh.authorized_keys))
    except NotAKey:
        return set(fleet.reinstall.rescue_keys)


def _keys_table(stored: list[StoredKey], configured: set[str]) -> None:
    table = Table(title="SSH keys stored in Robot (the rescue system accepts only these)")
    for column in ("name", "fingerprint (MD5)", "type", "size", "in reinstall.rescue_keys"):
        table.add_column(column)
    for key in stored:
        table.add_row(key.name, key.fingerprint, key.type, str(key.size), "yes" if key.fingerprint in configured
                      else "")
    console.print(table)


def _ops_address(target: FleetTarget, host: Host) -> str:
    """The address this machine connects from, as the host sees it ($SSH_CONNECTION over a fresh login)."""
    result = ssh_run(target.ssh_target(host), 'echo "${SSH_CONNECTION%% *}"', timeout=30, check=False)
    if not result.ok or not result.stdout.strip():
        fail(f"cannot tell which address you connect from ({result.stderr.strip()[-200:] or 'empty'}): pass it "
             "with --ops-address, so the rules can be checked against locking you out")
    return result.stdout.strip()


@task(help={"host": "host whose Robot firewall to generate", "out": "write the rules (JSON) to this file",
            "apply": "send them to the Robot webservice (needs robot_user/robot_password secrets)",
            "ops_address": "the address you connect from (default: as the host sees it over SSH)",
            "env": ENV_HELP})
def firewall(c: Context, host: str = "", out: str = "", apply: bool = False, ops_address: str = "",
             env: str = "") -> None:
    """Hetzner Robot switch-port firewall rules for a host, from the same policy as its nftables."""
    target, (entry,) = hosts_of(env, [host] if host else [], False)
    try:
        rules = build_firewall(target.fleet, entry.name)
    except RobotFirewallError as exc:
        fail(str(exc))
    table = Table(title=f"Robot firewall for {entry.name} (server #{rules.server_number}): input, first match wins")
    for column in ("#", "name", "proto", "source", "src port", "destination", "dst port", "flags", "action"):
        table.add_column(column)
    for index, rule in enumerate(rules.input, start=1):
        table.add_row(str(index), rule.name, rule.protocol or "*", rule.src_ip or "*", rule.src_port or "*",
                      rule.dst_ip or "*", rule.dst_port or "*", rule.tcp_flags or "", rule.action)
    console.print(table)
    console.print(f"output: {', '.join(r.name for r in rules.output)}; anything else inbound: discarded")
    if out:
        Path(out).write_text(json.dumps(rules.as_json(), indent=2) + "\n")
        say(f"rules written to {out}")
    if apply:
        # Never send rules that would cut off the address ops connect from (as the host sees it over SSH).
        seen = ops_address or _ops_address(target, entry)
        try:
            refuse_lockout(rules, target.fleet, entry.name, seen)
        except RobotFirewallError as exc:
            fail(str(exc))
        client = _client()
        try:
            state = client.firewall.apply(rules.server_number, rules.form())
        except RobotError as exc:
            fail(str(exc))
        finally:
            client.close()
        console.print(f"[green]Robot firewall {state.get('status')}[/green] for server #{rules.server_number}")
