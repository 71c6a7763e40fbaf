"""The reinstall run end to end against the fake Robot webservice and the fake server: what reaches Robot, what
reaches the server, what is pinned where, what ops see; and every way it must refuse before touching anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleets import NEW_OS_HOST_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY, XFS_VOLUMES, make_fleet
from reinstall_bench import Bench
from rich.console import Console

from drape_fleet.hetzner.robot import RobotClient
from drape_fleet.reinstall import commands
from drape_fleet.reinstall.executor import ReinstallFailed, ReinstallRefused
from drape_fleet.reinstall.keys import PublicKey
from drape_fleet.reinstall.plan import STEP_NAMES
from drape_fleet.reinstall.report import ConsoleProgress

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "installimage"


def test_a_bare_server_is_reinstalled_step_by_step(bench: Bench) -> None:
    state = bench.reinstall().run(confirmed=True)
    assert list(state.steps) == list(STEP_NAMES)
    assert all(record.status == "done" for record in state.steps.values())
    assert bench.progress.of("finished") == list(STEP_NAMES)
    assert bench.robot_calls() == ["GET /server/2100001", "GET /key", "GET /boot/2100001/rescue",
                                   "POST /boot/2100001/rescue", "GET /reset/2100001", "POST /reset/2100001"]
    activation = bench.fake.state.requests[3].form
    assert activation == [("os", "linux"), ("authorized_key[]", OPS_KEY_MD5)]
    assert bench.fake.state.resets == [(2100001, "hw")]
    assert bench.world.uploads[commands.CONFIG_PATH] == (GOLDEN / "ax1-bios.conf").read_text()
    assert bench.world.installs_started == 1
    assert bench.world.phase == "new-os"


def test_the_new_host_key_replaces_the_old_one_in_known_hosts_and_nothing_else(bench: Bench) -> None:
    old = "203.0.113.11 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7\n"
    bench.known_hosts.write_text(bench.known_hosts.read_text() + old)
    bench.reinstall().run(confirmed=True)
    lines = bench.known_hosts.read_text().splitlines()
    assert lines[0].startswith("203.0.113.12 ")
    assert lines[1:] == ["203.0.113.11,ax1 " + " ".join(NEW_OS_HOST_KEY.split()[:2])]


def test_the_rescue_system_is_reached_only_through_the_key_robot_announced(bench: Bench) -> None:
    reinstall = bench.reinstall()
    reinstall.run(confirmed=True)
    pins = (bench.state_dir / "ax1.rescue_known_hosts").read_text()
    assert pins == "203.0.113.11 " + " ".join(RESCUE_HOST_KEY.split()[:2]) + "\n"
    rescue_commands = [command for phase, command in bench.world.commands if phase == "rescue"]
    assert rescue_commands[0] == commands.IDENTIFY_RESCUE


def test_uefi_servers_get_an_efi_system_partition(bench: Bench) -> None:
    bench.world.boot_mode = "uefi"
    bench.reinstall().run(confirmed=True)
    assert bench.world.uploads[commands.CONFIG_PATH] == (GOLDEN / "ax1-uefi.conf").read_text()


def test_each_step_reports_its_progress_and_duration(bench: Bench) -> None:
    state = bench.reinstall().run(confirmed=True)
    assert state.steps["wait-rescue"].seconds == 20.0  # two scans without answer, 10 s apart
    assert state.steps["installimage"].seconds == 30.0
    notes = [message for kind, name, message in bench.progress.events if kind == "note" and name == "installimage"]
    assert notes[0] == "installimage started (pid 4242); it takes 5 to 15 minutes"
    assert "waiting for installimage (0 of 900 s): 6/17 : Extracting image (local) ... busy" in notes
    saved = json.loads((bench.state_dir / "ax1.json").read_text())
    assert saved["steps"]["verify-layout"]["summary"].startswith("/var/lib/docker, /srv/drape: XFS, prjquota")
    assert "password" not in (bench.state_dir / "ax1.json").read_text()


def test_nothing_destructive_happens_without_confirmation(bench: Bench) -> None:
    with pytest.raises(ReinstallRefused, match="destroys its data: confirm first"):
        bench.reinstall().run(confirmed=False)
    assert bench.robot_calls() == []


def test_the_check_names_the_server_as_robot_knows_it(bench: Bench) -> None:
    text = bench.reinstall().check()
    assert text == ("Reinstall ax1: Robot server #2100001 ax1 (203.0.113.11, AX102, FSN1-DC14).\n"
                    "The running system is reset at once and Ubuntu-2404-noble-amd64-base.tar.gz is installed on a "
                    "fresh RAID1 with LVM: ALL DATA ON BOTH DRIVES (/dev/nvme0n1 and /dev/nvme1n1) WILL BE "
                    "DESTROYED.")
    assert not any(r.method == "POST" for r in bench.fake.state.requests)


def test_the_dry_run_shows_the_steps_and_both_configs(bench: Bench) -> None:
    text = bench.reinstall().dry_run()
    assert " 3. hardware reset: Robot: hardware reset; the running system stops at once  [DESTROYS DATA]" in text
    assert "installimage config (bios boot):" in text and "installimage config (uefi boot):" in text
    assert "    PART /boot/efi esp 256M" in text
    assert bench.robot_calls() == []


def test_a_server_number_of_another_server_is_refused(bench: Bench) -> None:
    fleet = make_fleet(hosts=[{"name": "ax1", "public_address": "203.0.113.11", "private_address": "10.0.0.11",
                               "robot_server_number": 2100002,
                               "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}])
    with pytest.raises(ReinstallFailed, match=r"step 'preflight'.*#2100002 ax2 \(203.0.113.12.*does not have ax1's "
                                              r"address 203.0.113.11(.|\n)*wrong number would reinstall another"):
        bench.reinstall(fleet).run(confirmed=True)
    assert not any(r.method == "POST" for r in bench.fake.state.requests)


def test_an_unknown_server_number_is_refused(bench: Bench) -> None:
    fleet = make_fleet(hosts=[{"name": "ax1", "public_address": "203.0.113.11", "private_address": "10.0.0.11",
                               "robot_server_number": 2199999,
                               "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}])
    with pytest.raises(ReinstallFailed, match=r"Robot has no server #2199999(.|\n)*invoke fleet.robot-list"):
        bench.reinstall(fleet).run(confirmed=True)


def test_a_key_robot_does_not_store_is_refused(bench: Bench) -> None:
    fleet = make_fleet(reinstall={"rescue_keys": ["00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"]})
    with pytest.raises(ReinstallFailed, match=r"Robot does not store the key\(s\) 00:11(.|\n)*Key management"):
        bench.reinstall(fleet).run(confirmed=True)


def test_wrong_credentials_stop_at_the_first_refusal(bench: Bench) -> None:
    bench.robot = RobotClient("robot-user", "wrong", base_url=bench.fake.url)
    with pytest.raises(ReinstallFailed, match=r"step 'preflight'.*UNAUTHORIZED(.|\n)*10 minutes after 3 failed"):
        bench.reinstall().run(confirmed=True)
    assert len(bench.fake.state.requests) == 1


def test_a_volume_plan_larger_than_the_drives_is_refused_before_robot_is_asked_to_do_anything(bench: Bench) -> None:
    fleet = make_fleet(provisioning={"storage": {"volumes": [dict(XFS_VOLUMES[0], size="1700G"), XFS_VOLUMES[1]]}})
    with pytest.raises(ReinstallFailed, match=r"\[space\] the layout needs 2151424 MiB .*the drives offer 1830030 MiB"):
        bench.reinstall(fleet).run(confirmed=True)
    assert not any(r.method == "POST" for r in bench.fake.state.requests)


def test_drives_unlike_the_model_stop_the_flow_before_anything_is_written(bench: Bench) -> None:
    bench.world.lsblk = bench.world.lsblk.replace("1920383410176", "3840755982336")
    with pytest.raises(ReinstallFailed, match=r"step 'validate'(.|\n)*\[drive-model-size\] the fleet file says "
                                              r"/dev/nvme0n1 has 1920 GB, the server's is 3841 GB"):
        bench.reinstall().run(confirmed=True)
    assert bench.world.uploads == {}


def test_ops_see_each_step_with_its_duration_and_waits_without_repetition(bench: Bench) -> None:
    console = Console(record=True, width=1000, color_system=None)
    reinstall = bench.reinstall()
    reinstall.progress = ConsoleProgress(console, host="ax1")
    reinstall.run(confirmed=True)
    lines = console.export_text().splitlines()
    assert lines[:2] == ["ax1 [1/12] check Robot and the layout ...",
                         "    done in 0.0 s: #2100001 ax1 (203.0.113.11, AX102, FSN1-DC14); 1 rescue key(s) stored in "
                         "Robot; layout valid for bios and uefi"]
    assert "    done in 20.0 s: rescue system up; host key pinned: ssh-ed25519 " + \
        PublicKey.parse(RESCUE_HOST_KEY).sha256 in lines
    waits = [line for line in lines if "Extracting image" in line]
    assert len(waits) == 3  # the elapsed time changes each poll, so each is shown once
    assert lines[-1].startswith("    done in 0.0 s: /var/lib/docker, /srv/drape: XFS, prjquota, reflink=1; md2 ")


def test_hosts_that_cannot_be_reinstalled_are_refused_by_name(bench: Bench) -> None:
    with pytest.raises(ReinstallRefused, match=r"unknown host 'ax9': this fleet has ax1, ax2"):
        bench.reinstall(host="ax9")
    lab = make_fleet(environment={"name": "lab"}, hosts=[
        {"name": "ax1", "public_address": "172.29.10.11", "private_address": "172.29.20.11",
         "capacity": {"cpus": 1, "memory_gib": 1, "disk_gib": 1}}])
    with pytest.raises(ReinstallRefused, match=r"ax1 has no robot_server_number in the fleet file"):
        bench.reinstall(lab)
