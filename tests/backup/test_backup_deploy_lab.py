"""What the backup deploy leaves on a host, read from the host: secrets root-only, the target pinned, timers on,
and the repository password nowhere it should not be."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from backup_lab import BackupLab

from drape_fleet.backup import keys
from drape_fleet.backup.plan import HOST_DIR, HOST_KNOWN_HOSTS, PASSWORD_FILE, known_hosts_path

pytestmark = pytest.mark.lab


def test_secrets_are_root_only_the_target_pinned_and_the_timers_on(backup_lab: BackupLab) -> None:
    lab = backup_lab
    settings = lab.target.fleet.backup
    assert settings is not None
    pinned = known_hosts_path(lab.target.env.fleet_file, settings.target).read_text().strip()
    for host in lab.target.fleet.host_names:
        password = keys.repository_password(keys.passphrase(lab.target.env), lab.target.environment, host)
        modes = lab.root(host, f"stat -c '%a %U' {HOST_DIR} {PASSWORD_FILE} {HOST_DIR}/id_ed25519").split("\n")
        assert modes[:3] == ["700 root", "400 root", "600 root"], (host, modes)
        assert lab.root(host, f"cat {PASSWORD_FILE}").strip() == password  # its own repository's, derived
        assert lab.root(host, f"cat {HOST_KNOWN_HOSTS}").strip() == pinned
        for timer in ("drape-backup.timer", "drape-backup-drill.timer"):
            assert lab.root(host, f"systemctl is-enabled {timer}; systemctl is-active {timer}").split() == [
                "enabled", "active"], (host, timer)
        # The password is searched for without ever being on a command line (sudo logs those).
        leaks = lab.root(host, "umask 077; cat > /run/drape-probe; "
                               "grep -rlF -f /run/drape-probe /etc /var/log /var/lib/drape /tmp 2>/dev/null "
                               f"| grep -vx {PASSWORD_FILE} || true; "
                               "journalctl --no-pager -q | grep -cF -f /run/drape-probe || true; rm /run/drape-probe",
                         input=password + "\n").split()
        assert leaks == ["0"], (host, leaks)


def test_trust_pins_only_the_fingerprint_it_was_given(backup_lab: BackupLab) -> None:
    from drape_fleet import hostkeys
    from drape_fleet.backup import service
    from drape_fleet.backup.agent import BackupError

    settings = backup_lab.target.fleet.backup
    assert settings is not None
    path = known_hosts_path(backup_lab.target.env.fleet_file, settings.target)
    before = path.read_text()
    [pinned] = hostkeys.parse(before)
    wrong = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
    with pytest.raises(BackupError, match="refusing to pin it"):
        service.trust(backup_lab.target, wrong, lambda question: True)
    assert path.read_text() == before
    with pytest.raises(BackupError, match="not pinned"):
        service.trust(backup_lab.target, None, lambda question: False)  # ops did not confirm
    assert service.trust(backup_lab.target, pinned.fingerprint, lambda question: False) == path
    assert [k.fingerprint for k in hostkeys.parse(path.read_text())] == [pinned.fingerprint]


def test_the_tasks_as_ops_type_them(backup_lab: BackupLab) -> None:
    """invoke in a subprocess: the listing as JSON, a dry-run restore that changes nothing, a refusal's exit code."""
    import json
    import os
    import subprocess

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["invoke", *args, "--env", "lab"], capture_output=True, text=True, timeout=300,
                              check=False, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                                                                      f"{os.environ['PATH']}"})

    from drape_fleet.backup import service

    [ran] = service.run(backup_lab.target, ["ax2"], "pnpm-store")  # a snapshot to restore, whatever ran before
    assert ran.ok, ran.error
    listed = invoke("backup.list", "--json")
    assert listed.returncode == 0, listed.stderr
    sources = json.loads(listed.stdout)
    assert {"ops", *backup_lab.target.fleet.host_names} <= set(sources)
    dry = invoke("backup.restore", "--host", "ax2", "--item", "pnpm-store", "--dry")
    assert dry.returncode == 0 and "dry run: nothing changed" in dry.stdout, dry.stdout + dry.stderr
    refused = invoke("backup.restore", "--host", "ax2", "--item", "pnpm-store", "--at", "nope", "--yes")
    assert refused.returncode == 1 and "neither latest, a snapshot id nor a time" in refused.stderr


def test_node_exporter_serves_the_backup_metrics_to_the_monitoring_server(backup_lab: BackupLab) -> None:
    """The agent's textfile reaches Prometheus' side: the monitoring server reads it from ax2's node_exporter."""
    from drape_fleet.backup import service

    fleet = backup_lab.target.fleet
    assert fleet.monitoring is not None, "the lab fleet is monitored"
    [ran] = service.run(backup_lab.target, ["ax2"], "pnpm-store")
    assert ran.ok, ran.error
    ax2 = fleet.host("ax2")
    url = f"http://{ax2.private_address}:{fleet.monitoring.exporters.node_exporter_port}/metrics"
    text = backup_lab.root(fleet.monitoring.server, f"curl -s --max-time 10 {url}")
    for metric in ("drape_backup_last_success_timestamp_seconds", "drape_backup_max_age_seconds"):
        assert f'{metric}{{item="pnpm-store",source="ax2"}}' in text, metric
