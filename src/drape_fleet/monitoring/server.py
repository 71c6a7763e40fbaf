"""The monitoring server (pure): Prometheus and Alertmanager from the distribution's packages, configured by
systemd drop-ins (the packages' own files stay untouched, so upgrades never stop on a changed conffile) and by
files of ours under /etc/prometheus/drape. Both listen on 127.0.0.1 only: ops reach them through
`invoke monitoring.open` (SSH), the library through drape_fleet.monitoring.api (SSH too).

Validated before use: the deploy writes candidates, runs ``promtool check config`` (which checks the rule files
too) and ``amtool check-config`` on them, and only then installs them and reloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.monitoring.alertmanager import alertmanager_config
from drape_fleet.monitoring.plan import CONFIG_DIR, MonitoringPlan
from drape_fleet.monitoring.receivers import MonitoringSecrets
from drape_fleet.monitoring.rules import RULES_FILE, rules_file
from drape_fleet.provision.render import files_path, render

PACKAGES = ("prometheus", "prometheus-alertmanager")
PROMETHEUS_BINARY = "/usr/bin/prometheus"
ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
PROMETHEUS_UNIT = "prometheus.service"
ALERTMANAGER_UNIT = "prometheus-alertmanager.service"
GROUP = "prometheus"
"""The packages' service user and group: the secret-bearing files are root:prometheus, mode 0640."""

CANDIDATE_DIR = f"{CONFIG_DIR}/candidate"
PROMETHEUS_YML = "prometheus.yml"
ALERTMANAGER_YML = "alertmanager.yml"
RULES_PATH = f"rules/{RULES_FILE}"
BACKUP_RULES_PATH = "rules/backup.rules.yml"
"""The backups' alerts (docs/backups.md): a plain file in files/monitoring/rules/, tested by promtool there."""
CONSOLES_DIR = f"{CONFIG_DIR}/consoles"
CONSOLE_LIBRARIES_DIR = f"{CONFIG_DIR}/console_libraries"
CONSOLES = ("drape-fleet.html", "drape-cutover.html")
CONSOLE_LIBRARY = "drape.lib"
TSDB_PATH = "/var/lib/prometheus/metrics2/"
ALERTMANAGER_STORAGE = "/var/lib/prometheus/alertmanager/"


@dataclass(frozen=True)
class ServerFile:
    """A file the server deploy writes: relative to CONFIG_DIR (and CANDIDATE_DIR when it is validated)."""

    path: str
    text: str
    secret: bool = False
    """Holds secrets: mode 0640 root:prometheus, never shown in a diff or log."""
    validated: bool = True


def drop_in_path(unit: str) -> str:
    return f"/etc/systemd/system/{unit}.d/10-drape.conf"


def prometheus_config(plan: MonitoringPlan) -> str:
    settings = plan.settings
    return render("monitoring/prometheus.yml.j2", settings=settings, environment=plan.environment,
                  alertmanager=plan.alertmanager_address, jobs=plan.jobs,
                  rule_files=(RULES_PATH, BACKUP_RULES_PATH))


def prometheus_args(plan: MonitoringPlan) -> tuple[str, ...]:
    settings = plan.settings
    return (
        f"--config.file={CONFIG_DIR}/{PROMETHEUS_YML}",
        f"--web.listen-address={plan.prometheus_address}",
        f"--web.external-url=http://localhost:{settings.prometheus_port}/",
        f"--web.console.templates={CONSOLES_DIR}",
        f"--web.console.libraries={CONSOLE_LIBRARIES_DIR}",
        f"--storage.tsdb.path={TSDB_PATH}",
        f"--storage.tsdb.retention.time={plan.retention_days}d",
        f"--storage.tsdb.retention.size={plan.retention_gib}GB",
        f"--rules.alert.resend-delay={settings.resend_delay}",
    )


def alertmanager_args(plan: MonitoringPlan) -> tuple[str, ...]:
    return (
        f"--config.file={CONFIG_DIR}/{ALERTMANAGER_YML}",
        f"--storage.path={ALERTMANAGER_STORAGE}",
        f"--web.listen-address={plan.alertmanager_address}",
        f"--web.external-url=http://localhost:{plan.settings.alertmanager.port}/",
        "--cluster.listen-address=",  # one instance: no gossip port on any address
    )


def service_drop_in(what: str, binary: str, args: tuple[str, ...]) -> str:
    return render("monitoring/service-args.conf.j2", what=what, binary=binary, args=args)


def server_files(plan: MonitoringPlan, secrets: MonitoringSecrets) -> tuple[ServerFile, ...]:
    """Everything under CONFIG_DIR, rendered: configuration, rules, receivers (with their secrets), tokens."""
    found = [
        ServerFile(PROMETHEUS_YML, prometheus_config(plan)),
        ServerFile(RULES_PATH, rules_file(plan.settings, clock_synced_here=plan.clock_synced_here)),
        ServerFile(BACKUP_RULES_PATH, files_path(f"monitoring/{BACKUP_RULES_PATH}").read_text()),
        ServerFile(ALERTMANAGER_YML, alertmanager_config(plan.settings, secrets), secret=True),
    ]
    found += [ServerFile(job.bearer_file.removeprefix(f"{CONFIG_DIR}/"),
                         secrets.bearer_tokens[job.name].get_secret_value() + "\n", secret=True, validated=False)
              for job in plan.jobs if job.bearer_file is not None]
    return tuple(found)
