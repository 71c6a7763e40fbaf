"""`invoke monitoring.open | monitoring.health | monitoring.receiver`: where to look, whether monitoring works,
and (lab) what the alert receivers get. Thin over drape_fleet.monitoring."""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, fail, say
from drape_fleet.environments import FleetTarget
from drape_fleet.monitoring.health import MonitoringHealth, check
from drape_fleet.monitoring.plan import MonitoringPlan, MonitoringRefused, monitoring_plan
from drape_fleet.monitoring.receiver import AlertReceiver, Notification, receiver_endpoint
from drape_fleet.monitoring.tunnel import Tunnel, forwards, places
from drape_fleet.tasks.common import ENV_HELP, target_of


def _plan(env: str) -> tuple[FleetTarget, MonitoringPlan]:
    target = target_of(env)
    try:
        return target, monitoring_plan(target.fleet, str(target.env.fleet_file))
    except MonitoringRefused as exc:
        fail(str(exc))


@task(help={"tunnel": "keep a tunnel open so the addresses work from this machine (Ctrl-C ends it)",
            "prometheus_port": "local port for Prometheus (default: the server's, 9090)",
            "alertmanager_port": "local port for Alertmanager (default: the server's, 9093)", "env": ENV_HELP})
def open(c: Context, tunnel: bool = False, prometheus_port: int = 0, alertmanager_port: int = 0,
         env: str = "") -> None:
    """Where to look: the consoles, alerts and Alertmanager, and the tunnel that reaches them."""
    target, plan = _plan(env)
    prometheus, alertmanager = forwards(plan, prometheus_port or None, alertmanager_port or None)
    console.print(f"Monitoring of [bold]{target.environment}[/bold] runs on [cyan]{plan.server.name}[/cyan] "
                  f"({plan.server.private_address}); Prometheus and Alertmanager listen on its 127.0.0.1 only.")
    for label, url in places(prometheus, alertmanager):
        console.print(f"  {label:<55} {url}")
    if not tunnel:
        console.print(f"\nThese addresses work while a tunnel runs on this machine: [bold]invoke monitoring.open "
                      f"--tunnel{' --env ' + env if env else ''}[/bold]. The fleet's sshd forwards no ports "
                      "(`ssh -L` is refused by design): the tunnel opens an SSH session per connection, as "
                      f"{target.ssh_user}, running `busybox nc` on {plan.server.name}.")
        return
    try:
        with Tunnel(target.ssh_target(plan.server), (prometheus, alertmanager)):
            say(f"tunnel open to {plan.server.name} (Ctrl-C ends it)")
            while True:
                time.sleep(3600)
    except OSError as exc:
        fail(f"cannot listen on this machine's 127.0.0.1 ({exc}); choose other ports with --prometheus-port and "
             "--alertmanager-port")
    except KeyboardInterrupt:
        say("tunnel closed")


def _lab_receiver(target: FleetTarget, plan: MonitoringPlan) -> AbstractContextManager[object]:
    """In the lab this machine is the outside receiver: listen while checking (unless something already does)."""
    if not target.env.is_lab:
        return nullcontext()
    address, port = receiver_endpoint(plan.settings)
    try:
        receiver = AlertReceiver(address, port)
    except OSError:
        return nullcontext()  # a test or `invoke monitoring.receiver` listens already
    say(f"lab: listening as the alert receivers on {address}:{port} while checking")
    return receiver


def _show(health: MonitoringHealth) -> None:
    for item in health.checks:
        mark = "[green]ok[/green]  " if item.ok else "[red]FAIL[/red]"
        console.print(f"  {mark} {item.name:<13} {item.detail}", soft_wrap=True)


@task(help={"wait": "seconds to keep checking until every check passes (after a deploy)",
            "json": "print the checks as JSON", "env": ENV_HELP})
def health(c: Context, wait: int = 0, json: bool = False, env: str = "") -> None:
    """Is monitoring working: targets up, rules loaded, alerts delivered, the watchdog firing. Non-zero if not."""
    target, plan = _plan(env)
    deadline = time.monotonic() + wait
    with _lab_receiver(target, plan):
        result = check(target)
        while not result.ok and time.monotonic() < deadline:
            time.sleep(5)
            result = check(target)
    if json:
        _print_json(result)
    else:
        say(f"monitoring of {target.environment} on {result.server}")
        _show(result)
    if not result.ok:
        fail(f"monitoring is not working: {', '.join(item.name for item in result.failed())} failed")


def _print_json(result: MonitoringHealth) -> None:
    print(json.dumps({"server": result.server, "ok": result.ok,
                      "checks": [{"name": i.name, "ok": i.ok, "detail": i.detail} for i in result.checks]}, indent=2))


@task(help={"env": ENV_HELP})
def receiver(c: Context, env: str = "lab") -> None:
    """Lab: listen as the alert receivers (on this machine's private lab address) and print what arrives."""
    target, plan = _plan(env)
    if not target.env.is_lab:
        fail("only the lab's receivers are webhooks on this machine; production's go to real services")
    address, port = receiver_endpoint(plan.settings)

    def show(notification: Notification) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {notification.describe()}", soft_wrap=True)

    try:
        with AlertReceiver(address, port, on_arrival=show):
            say(f"listening on {address}:{port} as the lab's alert receivers (Ctrl-C ends it)")
            while True:
                time.sleep(3600)
    except OSError as exc:
        fail(f"cannot listen on {address}:{port}: {exc}")
    except KeyboardInterrupt:
        say("stopped")
