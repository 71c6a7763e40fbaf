"""`invoke provision --host ax10 --reinstall` end to end, as ops run it, against the fake Robot webservice (a process,
reached through $DRAPE_ROBOT_URL) and a bare-metal stand-in on the lab's networks (drape_fleet.lab.baremetal):
a machine running an older system, whose Robot reset boots a rescue system with an installimage stand-in, and
whose reboot boots what that installed.

One story, the way a first reinstall goes: the dry run, a fleet file whose drives are not the server's, an
installimage that fails, each fixed and resumed, then the new system provisioned and verified. The fleet file is
production-shaped (a scratch copy; HOME is a scratch directory too) with the lab's provisioning values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from fleets import XFS_VOLUMES
from robot_process import ROBOT_PASSWORD, RobotProcess, robot_process

from drape_fleet import hostkeys
from drape_fleet.config import FleetConfig
from drape_fleet.lab.baremetal.disk import OLD_DATA, disk_directory, installed_system
from drape_fleet.lab.baremetal.lifecycle import booted, down, firmware_command, inject_installimage_failure, up
from drape_fleet.lab.baremetal.machine import BareMetal
from drape_fleet.lab.baremetal.power import installimage_records, rescue_host_keys
from drape_fleet.lab.engine import engine_client
from drape_fleet.lab.fleet import lab_fleet_data
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.paths import project_root
from drape_fleet.reinstall.keys import PublicKey

pytestmark = pytest.mark.lab

SERVER_NUMBER = 2100010
BROKEN_DISK = "mdadm: cannot open /dev/nvme1n1p2: Device or resource busy\n:: ERROR: creating the RAID failed"


@pytest.fixture(scope="module")
def settings(lab_fleet: FleetConfig) -> LabSettings:
    return lab_state_settings()


@pytest.fixture(scope="module")
def machine(settings: LabSettings) -> Iterator[BareMetal]:
    server = BareMetal(name="ax10", robot_server_number=SERVER_NUMBER)
    try:
        up(settings, server, lambda message: print(f"[baremetal] {message}"))
    except Exception as exc:  # a stand-in that cannot start is a failure, never a skip
        pytest.fail(f"the bare-metal stand-in could not be brought up: {exc}", pytrace=False)
    yield server
    down(settings, server, lambda message: print(f"[baremetal] {message}"))


def md5(line: str) -> str:
    return PublicKey.parse(line).md5


@pytest.fixture(scope="module")
def robot(settings: LabSettings, machine: BareMetal, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[RobotProcess]:
    """Robot's view of the account: the machine as server #2100010 at its lab address, announcing its rescue
    host keys at activation, and the lab's SSH key stored under Key management."""
    ops_key = settings.ssh_key.with_suffix(".pub").read_text().strip()
    host_keys = [{"fingerprint": md5(line), "type": line.split()[0], "size": 256} for line in
                 rescue_host_keys(settings, machine)]
    scenario = {"servers": [{"number": SERVER_NUMBER, "name": machine.name, "ip": str(machine.public_address(settings)),
                             "rescue_host_keys": host_keys}],
                "keys": [{"name": "lab", "fingerprint": md5(ops_key), "data": ops_key}]}
    with robot_process(tmp_path_factory.mktemp("robot"), scenario, on_reset=firmware_command(sys.executable)) as fake:
        yield fake


def fleet_data(settings: LabSettings, machine: BareMetal, **drive: Any) -> dict[str, Any]:
    """Production's shape with the lab's provisioning values and one host: the machine."""
    data = lab_fleet_data(settings)
    data["environment"] = {"name": "production", "deploy_user": "deploy"}
    data["provisioning"]["storage"]["volumes"] = XFS_VOLUMES
    data["hosts"] = [{"name": machine.name, "public_address": str(machine.public_address(settings)),
                      "private_address": str(machine.private_address(settings)),
                      "robot_server_number": SERVER_NUMBER, "roles": ["preview"],
                      "capacity": {"cpus": 2, "memory_gib": 4, "disk_gib": 20}}]
    ops_key = settings.ssh_key.with_suffix(".pub").read_text().strip()
    # Backups have their own lab tests (tests/backup); a reinstalled host without a backup section is provisioned
    # without the backup deploy, which would otherwise ask for the target's pinned key (backup.trust) first.
    data.pop("backup", None)
    data.pop("service", None)  # the runtime service has its own lab tests (tests/service); this host runs none
    data.pop("previews", None)  # the lab's preview ingress uses the lab CA, which production refuses (tests/previews)
    data["runtime"].pop("disk_limit")  # production's own: every preview limited (this test places none)
    data["reinstall"] = {"rescue_keys": [md5(ops_key)],
                         "drives": [{"device": f"/dev/nvme{n}n1", "size_gb": drive.get("size_gb", 1920)}
                                    for n in (0, 1)],
                         "timeouts": {"rescue_boot_s": 120, "installimage_s": 120, "os_boot_s": 120,
                                      "command_s": 60, "poll_s": 1, "scan_s": 2}}
    # Monitored as production is: the machine is its own monitoring server, and its receivers' URLs come from the
    # secrets store (monitoring_secrets), since a production fleet file may not write them inline.
    data["monitoring"]["server"] = machine.name
    data["monitoring"]["receivers"] = [{"name": name, "kind": "webhook", "secret": secret}
                                       for name, secret in monitoring_secrets(settings)]
    return data


def monitoring_secrets(settings: LabSettings) -> list[tuple[str, str]]:
    """(receiver, the name of its secret) for the lab's receivers."""
    receivers = lab_fleet_data(settings)["monitoring"]["receivers"]
    return [(r["name"], r["name"].replace("-", "_") + "_url") for r in receivers]


class Ops:
    def __init__(self, home: Path, settings: LabSettings, robot: RobotProcess) -> None:
        self.fleet_file = home / "fleet.toml"
        self.known_hosts = home / "fleet.known_hosts"
        self.env = {**os.environ, "DRAPE_ENV": "production", "DRAPE_FLEET_FILE": str(self.fleet_file),
                    "HOME": str(home), "DRAPE_SECRETS_FILE": str(home / "no-secrets.toml"),
                    "DRAPE_SSH_KEY": str(settings.ssh_key.resolve()), "DRAPE_PKI_DIR": str(home / "pki"),
                    "COLUMNS": "200", **robot.env(ROBOT_PASSWORD),
                    **{f"DRAPE_MONITORING_{secret.upper()}": "http://127.0.0.1:9/nobody-listens"
                       for _, secret in monitoring_secrets(settings)}}
        self.state_dir = home / ".config" / "drape-fleet" / "reinstall"

    def write_fleet(self, data: dict[str, Any]) -> None:
        self.fleet_file.write_text(tomli_w.dumps(data))

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=project_root(), env=self.env,
                                capture_output=True, text=True, timeout=900, check=False)
        print(f"$ invoke {' '.join(args)}  (exit {result.returncode})\n{result.stdout}\n{result.stderr}")
        return result


def host_keys_on(disk: Path) -> set[str]:
    """The public host keys of the system the machine's disk boots, read from the disk."""
    ssh = installed_system(disk).root / "etc" / "ssh"
    return {" ".join(path.read_text().split()[:2]) for path in ssh.glob("ssh_host_*_key.pub")}


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_server_is_reinstalled_through_its_failures_then_provisioned_and_verified(
        settings: LabSettings, machine: BareMetal, robot: RobotProcess, tmp_path: Path) -> None:
    client = engine_client()
    disk = disk_directory(client, settings, machine)
    old_keys = host_keys_on(disk)
    ops = Ops(tmp_path, settings, robot)
    ops.write_fleet(fleet_data(settings, machine))
    assert ops.invoke("pki.init").returncode == 0
    reinstall = ("provision", "--host", machine.name, "--reinstall")

    # The dry run: the steps and the config, nothing contacted; the old system runs on.
    dry = ops.invoke(*reinstall, "--dry")
    assert dry.returncode == 0 and "HOSTNAME ax10" in dry.stdout
    assert "LV vg0 docker /var/lib/docker xfs 1200G" in dry.stdout
    assert robot.requests() == [] and booted(client, settings, machine) == "disk"

    # A fleet file that says 3.84 TB drives: the rescue system's lsblk says 1.92 TB. Stopped before a byte is written.
    ops.write_fleet(fleet_data(settings, machine, size_gb=3840))
    wrong = ops.invoke(*reinstall, "--yes")
    assert wrong.returncode == 1
    assert "ALL DATA ON BOTH DRIVES (/dev/nvme0n1 and /dev/nvme1n1) WILL BE DESTROYED" in flat(wrong.stdout)
    assert "step 'validate' (render and check the config) failed" in wrong.stderr
    assert "the fleet file says /dev/nvme0n1 has 3840 GB, the server's is 1920 GB" in flat(wrong.stderr)
    assert booted(client, settings, machine) == "rescue"
    assert (disk / "lv" / "vg0" / "drape" / OLD_DATA).exists()
    assert robot.posts() == [f"POST /boot/{SERVER_NUMBER}/rescue", f"POST /reset/{SERVER_NUMBER}"]

    # Fixed; now installimage fails (a busy disk): its debug log says why. The rescue system is not reset again.
    ops.write_fleet(fleet_data(settings, machine))
    inject_installimage_failure(client, settings, machine, BROKEN_DISK)
    failed = ops.invoke(*reinstall, "--yes")
    assert failed.returncode == 1
    assert "wait for the rescue system: done earlier" in flat(failed.stdout)
    assert "step 'installimage' (run installimage) failed" in failed.stderr
    assert "installimage exited with status 1" in failed.stderr
    assert "mdadm: cannot open /dev/nvme1n1p2: Device or resource busy" in failed.stderr
    assert "the rescue system is still up, and the config is checked, uploaded and installed again" in flat(
        failed.stderr)

    # Fixed again: validate, upload and installimage run again, then the new system, its provisioning and verify.
    inject_installimage_failure(client, settings, machine, None)
    done = ops.invoke(*reinstall, "--yes")
    assert done.returncode == 0, done.stderr
    assert robot.posts() == [f"POST /boot/{SERVER_NUMBER}/rescue", f"POST /reset/{SERVER_NUMBER}"]
    for line in ("[12/12] verify the layout", "not checked in this environment: the XFS volumes",
                 "provisioned: ax10", "verified"):
        assert line in done.stdout

    # installimage got the config the flow rendered, twice, and judged it itself, on this machine's own report.
    records = [json.loads(line) for line in installimage_records(settings, machine).read_text().splitlines()]
    rendered = (ops.state_dir / "ax10.installimage.conf").read_text()
    assert [r["outcome"] for r in records] == ["failed (injected)", "installed"]
    for record in records:
        assert record["config"] == rendered and record["boot_mode"] == "bios" and not record["terminal"]
        assert record["validator"]["exit"] == 0 and "0 error(s)" in record["validator"]["output"]
        assert record["argv"] == ["-a", "-c", "/root/drape/installimage.conf", "-x", "/root/drape/post-install.sh"]

    # The new system: its keys (read from its disk here, a trusted path) are the ones pinned, under its address and
    # name; nothing of the old system or the rescue system stays trusted; the old data is gone.
    on_disk = host_keys_on(disk)
    pinned = hostkeys.pinned(hostkeys.read(ops.known_hosts), str(machine.public_address(settings)))
    assert {f"{key.key_type} {key.key}" for key in pinned} == on_disk
    assert all(key.names == (str(machine.public_address(settings)), "ax10") for key in pinned)
    rescue = {" ".join(line.split()[:2]) for line in rescue_host_keys(settings, machine)}
    assert not on_disk & (rescue | old_keys)
    assert not (disk / "lv" / "vg0" / "drape" / OLD_DATA).exists()
    assert booted(client, settings, machine) == "disk"
    state = json.loads((ops.state_dir / "ax10.json").read_text())
    assert all(record["status"] == "done" for record in state["steps"].values()) and len(state["steps"]) == 12
