"""Alertmanager's configuration from the fleet file's receivers and routes (pure).

Routing, top to bottom:
1. the ``Watchdog`` goes to the watchdog's receiver only, every ``watchdog.interval`` (the dead man's switch:
   its group is flushed every interval, and its repeat interval is half that, so each flush sends; with both
   equal, a flush a moment early skips and the pings come every other interval);
2. the fleet file's routes, in order (the first that matches wins unless it says ``continue_matching``);
3. everything else to ``default_receiver``.
Alerts are grouped by alert name and host. A host that is down silences its other alerts (they follow from it).

The rendered file carries the receivers' secrets: the deploy writes it mode 0640 root:prometheus and never
shows it. Quoted values are JSON strings, which YAML reads as the same strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from drape_fleet.config.monitoring import MonitoringSettings, Receiver, Route, seconds
from drape_fleet.monitoring.receivers import MonitoringSecrets
from drape_fleet.monitoring.rules import WATCHDOG
from drape_fleet.provision.render import render

GROUP_BY = ("alertname", "host")


@dataclass(frozen=True)
class RouteView:
    receiver: str
    matchers: tuple[str, ...]
    """Each a quoted Alertmanager matcher, all of which must hold."""
    continue_matching: bool


@dataclass(frozen=True)
class ReceiverView:
    name: str
    kind: str
    settings: tuple[tuple[str, str], ...]
    """(key, YAML value) pairs of its webhook_configs or email_configs entry."""


def quoted(value: str) -> str:
    return json.dumps(value)


def _matchers(route: Route) -> tuple[str, ...]:
    found = []
    if route.severity:
        found.append(f'severity=~"{"|".join(route.severity)}"')
    if route.alerts:
        found.append(f'alertname=~"{"|".join(route.alerts)}"')
    return tuple(quoted(m) for m in found)


def _receiver(receiver: Receiver, secret: str | None, *, heartbeat: bool) -> ReceiverView:
    """``heartbeat``: the watchdog's receiver never gets "resolved", which a heartbeat service would count as
    one more ping after monitoring died."""
    resolved = "true" if receiver.send_resolved and not heartbeat else "false"
    if receiver.kind == "webhook":
        url = secret if secret is not None else str(receiver.url)
        return ReceiverView(receiver.name, "webhook", (("url", quoted(url)), ("send_resolved", resolved)))
    settings = [("to", quoted(str(receiver.to))), ("from", quoted(str(receiver.sender))),
                ("smarthost", quoted(str(receiver.smarthost)))]
    if receiver.username is not None:
        settings += [("auth_username", quoted(receiver.username)), ("auth_password", quoted(secret or ""))]
    settings += [("require_tls", "true" if receiver.require_tls else "false"), ("send_resolved", resolved)]
    return ReceiverView(receiver.name, "email", tuple(settings))


def routes(monitoring: MonitoringSettings) -> tuple[RouteView, ...]:
    return tuple(RouteView(r.receiver, _matchers(r), r.continue_matching) for r in monitoring.routes)


def alertmanager_config(monitoring: MonitoringSettings, secrets: MonitoringSecrets) -> str:
    """/etc/prometheus/drape/alertmanager.yml (with the receivers' secrets)."""
    receivers = [_receiver(r, secrets.receiver(r.name), heartbeat=r.name == monitoring.watchdog.receiver)
                 for r in monitoring.receivers]
    watchdog_repeat = f"{max(1, int(seconds(monitoring.watchdog.interval) // 2))}s"
    return render("monitoring/alertmanager.yml.j2", settings=monitoring, group_by=GROUP_BY,
                  watchdog_repeat=watchdog_repeat,
                  watchdog_matcher=quoted(f'alertname="{WATCHDOG}"'), routes=routes(monitoring),
                  receivers=receivers, host_down_matcher=quoted('alertname="HostDown"'),
                  inhibited_matchers=[quoted('alertname!="HostDown"'), quoted(f'alertname!="{WATCHDOG}"')])
