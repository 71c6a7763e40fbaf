"""The [backup] section, the plans built from it, the per-repository passwords, and what the deploy writes:
pure, exact."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fleets import fleet_data

from drape_fleet.backup import host_files, keys
from drape_fleet.backup.catalogue import CATALOGUE, item
from drape_fleet.backup.plan import Access, host_plan, repository_url, source_plan
from drape_fleet.backup.service import authorized_keys
from drape_fleet.config import ConfigError
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.models import FleetConfig

TARGET = {"host": "u123456.your-storagebox.de", "user": "u123456", "known_hosts": "production.backup.known_hosts"}


def fleet(**backup: Any) -> FleetConfig:
    return validate_fleet(fleet_data(backup={"target": TARGET, **backup}), source="config/production.toml")


def problems(**backup: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        fleet(**backup)
    return str(caught.value)


def test_production_host_plan_snapshots_the_lvm_volume_that_holds_the_store() -> None:
    plan = host_plan(fleet(items={"pnpm-store": {"every_hours": 12, "retention": {"keep_daily": 3,
                                                                                   "keep_weekly": 0,
                                                                                   "keep_monthly": 0}}}), "ax1")
    [store] = plan["items"]
    assert plan["repository"] == "sftp:u123456@u123456.your-storagebox.de:drape/production/ax1"
    assert plan["password_file"] == "/etc/drape/backup/password"
    assert store == {
        "name": "pnpm-store", "root": "/srv/drape", "path": "pnpm-store",
        "consistency": {"kind": "lvm", "volume": "vg0/drape", "mount": "/srv/drape", "lock_file": "",
                        "export_argv": [], "export_name": ""},
        "every_hours": 12, "max_age_s": 14 * 3600, "drill_max_age_s": (7 * 24 + 2) * 3600,
        "retention": ["--keep-daily", "3"],
    }
    assert sorted(plan) == ["cache_dir", "environment", "items", "lvm_snapshot_size", "metrics_file", "min_free_mib",
                            "password_file", "prune_every_days", "quiesce_timeout_s", "repository", "sftp_command",
                            "snapshot_dir", "source", "state_dir", "target", "version"]  # paths, never a secret


def test_the_target_is_reached_through_the_one_ssh_seam_with_its_key_pinned() -> None:
    plan = source_plan(fleet(), "ops", access=Access("/home/ops/.config/drape-fleet/backup/id_ed25519",
                                                     "/repo/config/production.backup.known_hosts"),
                       password_file="/dev/shm/x/password", pki_dir="/home/ops/.config/drape-fleet/pki")
    argv = shlex.split(plan["sftp_command"])
    assert argv[0] == "ssh" and argv[-3:] == ["u123456.your-storagebox.de", "-s", "sftp"]
    options = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert options["StrictHostKeyChecking"] == "yes" and options["IdentitiesOnly"] == "yes"
    assert options["Port"] == "23" and options["User"] == "u123456" and options["BatchMode"] == "yes"
    assert options["UserKnownHostsFile"] == "/repo/config/production.backup.known_hosts"
    assert [i["name"] for i in plan["items"]] == ["pki"]
    assert plan["items"][0]["root"] == "/home/ops/.config/drape-fleet" and plan["items"][0]["path"] == "pki"


def test_without_lvm_the_store_is_quiesced_by_its_writer_lock() -> None:
    data = fleet_data(backup={"target": TARGET})
    data["provisioning"] = {**data["provisioning"], "storage": {"manage_volumes": False, "expect_raid": False}}
    plan = host_plan(validate_fleet(data, source="(lab-like)"), "ax2")
    assert plan["items"][0]["consistency"]["kind"] == "lock"
    assert plan["items"][0]["consistency"]["lock_file"] == "/srv/drape/pnpm-store/.warm.lock"


@pytest.mark.parametrize(("backup", "expected"), [
    ({"items": {"pnpm-sotre": {}}},
     "backup.items.pnpm-sotre: 'pnpm-sotre' is not an item of the backup catalogue. Fix: use one of: pki, pnpm-store"),
    ({"items": {"workspaces": {"every_hours": 1}}},
     "backup.items.workspaces: 'workspaces' is not backed up (not backed up). Fix: remove the override"),
    ({"retention": {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}},
     "backup.retention: every keep_* is 0, which would forget every snapshot"),
    ({"target": {**TARGET, "api_endpoint": "http://api.example.com/v1"}},
     "backup.target.api_endpoint: 'http://api.example.com/v1' would send the token unencrypted"),
    ({"target": {**TARGET, "port": 0}}, "backup.target.port: Input should be greater than or equal to 1"),
    ({"lvm_snapshot_size": "20GB"}, "backup.lvm_snapshot_size"),
    ({"target": {k: v for k, v in TARGET.items() if k != "known_hosts"}},
     "backup.target.known_hosts: this required field is missing. Fix: add it"),
])
def test_bad_backup_sections_name_the_file_the_field_and_the_fix(backup: dict[str, Any], expected: str) -> None:
    merged = {"target": TARGET, **backup}
    with pytest.raises(ConfigError) as caught:
        validate_fleet(fleet_data(backup=merged), source="config/production.toml")
    message = str(caught.value)
    assert message.startswith("config/production.toml: 1 problem(s)")
    assert expected in message


def test_repository_passwords_follow_the_escrow_formula_ops_can_run_by_hand() -> None:
    """docs/backups.md tells ops how to recompute a password with openssl alone: that must be this function."""
    passphrase = "escrowed passphrase from the vault"
    ours = keys.repository_password(passphrase, "production", "ax1")
    command = ('printf %s "drape-fleet/restic/production/ax1" | openssl dgst -sha256 -hmac "$PASSPHRASE" -binary '
               "| basenc --base64url | tr -d '='")
    by_hand = subprocess.run(["sh", "-c", command], env={"PASSPHRASE": passphrase, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout.strip()
    assert ours == by_hand
    assert len({keys.repository_password(passphrase, "production", s) for s in ("ax1", "ax2", "ops")}) == 3
    assert keys.repository_password(passphrase, "staging", "ax1") != ours


def test_the_deploy_writes_units_that_run_the_agent_and_a_plan_that_names_no_secret() -> None:
    fleet_config = fleet()
    service = host_files.unit("drape-backup.service")
    assert "ExecStart=/usr/local/sbin/drape-backup run --due" in service and "IOSchedulingClass=idle" in service
    timer = host_files.unit("drape-backup-drill.timer")
    assert "Persistent=true" in timer and "OnCalendar=*-*-* 04:00:00" in timer
    assert json.loads(host_files.plan_json(fleet_config, "ax2"))["source"] == "ax2"
    pinned = "# pinned by invoke backup.trust\n[u1.example]:23 ssh-ed25519 AAAAC3Nz\n\n"
    assert host_files.known_hosts_text(pinned) == "[u1.example]:23 ssh-ed25519 AAAAC3Nz\n"


def test_authorized_keys_hold_the_admin_key_and_each_hosts_own() -> None:
    text = authorized_keys("ssh-ed25519 AAAA admin\n", {"ax2": "ssh-ed25519 BBBB drape-backup@ax2",
                                                         "ax1": "ssh-ed25519 CCCC drape-backup@ax1"})
    assert text.splitlines()[1:] == ["ssh-ed25519 AAAA admin", "ssh-ed25519 CCCC drape-backup@ax1",
                                     "ssh-ed25519 BBBB drape-backup@ax2"]


def test_every_catalogue_entry_is_in_the_docs_with_its_decision() -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "backups.md").read_text()
    for entry in CATALOGUE:
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{entry.name}`")), None)
        assert row is not None, f"docs/backups.md has no row for {entry.name}"
        assert entry.decision in row, f"docs/backups.md: {entry.name} is {entry.decision!r} in the catalogue"
    assert item("pki").runs_on == "ops" and item("cutover-state").decision == "pending"
    assert repository_url(fleet().backup.target, "lab", "ops").endswith(":drape/lab/ops")  # type: ignore[union-attr]


def test_the_pki_item_covers_the_ca_key_and_the_backend_certificate(tmp_path: Path) -> None:
    """If the CA key or the client certificate moves out of the PKI directory (the key is being split away from
    the backend's directory), this fails: the pki item must then name the new place too."""
    from drape_fleet.backup.catalogue import Context
    from drape_fleet.pki.paths import ca_files, client_tls_files

    pki = tmp_path / "pki"
    entry = item("pki")
    assert entry.where is not None
    where = entry.where(Context(fleet=fleet(), pki_dir=str(pki)))
    covered = Path(where.absolute)
    for path in (*ca_files(pki), *client_tls_files(pki)):
        assert path.is_relative_to(covered), f"{path} is outside the backed-up {covered}"
