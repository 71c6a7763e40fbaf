"""Fingerprints as OpenSSH computes them (checked against ssh-keygen itself), pinning, known_hosts files, the
commands sent to the servers (exact), their parsers on real output formats, and the detached installimage runner
executed for real with a stand-in installimage."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fleets import NEW_OS_HOST_KEY, OPS_KEY, OPS_KEY_MD5, RESCUE_HOST_KEY, RESCUE_HOST_KEY_MD5

from drape_fleet import hostkeys
from drape_fleet.reinstall import commands
from drape_fleet.reinstall.keys import NotAKey, PublicKey, parse_keys, pin, replace_known_hosts, rescue_fingerprints
from drape_fleet.reinstall.plan import STEPS, resume_index
from drape_fleet.reinstall.state import ReinstallState, StepRecord

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize("line", [OPS_KEY, RESCUE_HOST_KEY, NEW_OS_HOST_KEY])
def test_fingerprints_are_the_ones_ssh_keygen_prints(line: str, tmp_path: Path) -> None:
    (tmp_path / "key.pub").write_text(line + "\n")
    key = PublicKey.parse(line)
    for digest, ours in (("md5", "MD5:" + key.md5), ("sha256", key.sha256)):
        printed = subprocess.run(["ssh-keygen", "-l", "-E", digest, "-f", str(tmp_path / "key.pub")],
                                 check=True, capture_output=True, text=True).stdout.split()[1]
        assert printed == ours


def test_known_fingerprints_match_in_either_form() -> None:
    key = PublicKey.parse(RESCUE_HOST_KEY)
    assert key.md5 == RESCUE_HOST_KEY_MD5
    assert key.matches(RESCUE_HOST_KEY_MD5) and key.matches("MD5:" + RESCUE_HOST_KEY_MD5.upper())
    assert key.matches(key.sha256) and not key.matches(OPS_KEY_MD5)


def test_keyscan_output_is_read_and_pinned_against_robots_fingerprints() -> None:
    scanned = parse_keys(f"# 203.0.113.11:22 SSH-2.0-OpenSSH_9.2p1\n203.0.113.11 {RESCUE_HOST_KEY}\n"
                         f"203.0.113.11 {OPS_KEY}\nnot a key\n")
    result = pin(scanned, [RESCUE_HOST_KEY_MD5])
    assert result.pinned == (PublicKey.parse(RESCUE_HOST_KEY),)
    assert result.unannounced == (PublicKey.parse(OPS_KEY),)
    with pytest.raises(NotAKey):
        PublicKey.parse("ssh-ed25519 not-base64!")


def test_known_hosts_get_exactly_the_new_keys_for_the_host_under_its_address_and_name(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    old_rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"
    path.write_text(f"203.0.113.12,ax2 {OPS_KEY}\n203.0.113.11 {RESCUE_HOST_KEY}\nax1 {old_rsa}\n"
                    f"[203.0.113.11]:2222 {OPS_KEY}\n")
    replace_known_hosts(path, "ax1", "203.0.113.11", 22, [PublicKey.parse(NEW_OS_HOST_KEY)])
    new = " ".join(NEW_OS_HOST_KEY.split()[:2])
    assert path.read_text() == (f"203.0.113.12,ax2 {OPS_KEY}\n[203.0.113.11]:2222 {OPS_KEY}\n"
                                f"203.0.113.11,ax1 {new}\n")
    [pinned] = hostkeys.pinned(hostkeys.read(path), "203.0.113.11")
    assert pinned.fingerprint == PublicKey.parse(NEW_OS_HOST_KEY).sha256


def test_rescue_keys_are_the_configured_ones_then_the_deploy_keys_each_once() -> None:
    assert rescue_fingerprints(["aa:" * 15 + "aa", OPS_KEY_MD5], [OPS_KEY]) == ("aa:" * 15 + "aa", OPS_KEY_MD5)


def test_the_run_resumes_at_the_first_step_not_done() -> None:
    state = ReinstallState(host="ax1", server_number=1, address="203.0.113.11")
    assert resume_index(None) == 0 and resume_index(state) == 1  # the preflight runs on every run anyway
    done = StepRecord(status="done", seconds=1)
    state = state.model_copy(update={"steps": {"preflight": done, "activate-rescue": done,
                                               "reset": StepRecord(status="failed", seconds=1)}})
    assert STEPS[resume_index(state)].name == "reset"
    refused_later = state.model_copy(update={"steps": {**state.steps, "preflight": StepRecord(status="failed",
                                                                                              seconds=1)}})
    assert STEPS[resume_index(refused_later)].name == "reset"  # a failed preflight does not undo the reset
    everything = state.model_copy(update={"steps": {s.name: done for s in STEPS}})
    assert resume_index(everything) == len(STEPS)


def test_installimage_runs_detached_unattended_and_with_its_exit_status_kept() -> None:
    assert commands.start_installimage() == (
        "rm -f /root/drape/installimage.exit /root/drape/installimage.pid; cd /root/drape || exit 1; "
        "setsid nohup sh -c "
        "'TERM=xterm /root/.oldroot/nfs/install/installimage -a -c /root/drape/installimage.conf -x "
        "/root/drape/post-install.sh </dev/null >/root/drape/installimage.log 2>&1; echo $? > "
        "/root/drape/installimage.exit' </dev/null >/dev/null 2>&1 & echo $! > /root/drape/installimage.pid; "
        "cat /root/drape/installimage.pid")


def _local(command: str, workdir: Path, stand_in: Path) -> str:
    return command.replace(commands.INSTALLIMAGE, str(stand_in)).replace(commands.WORKDIR, str(workdir))


def _end_group(pid: int) -> None:
    """Whatever a failed test left running of the stand-in is ended (its process group was made for it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], check=True, capture_output=True, text=True, timeout=20).stdout


def test_the_detached_runner_reports_running_then_the_exit_status(tmp_path: Path, request: pytest.FixtureRequest
                                                                   ) -> None:
    stand_in, gate = tmp_path / "installimage", tmp_path / "gate"
    stand_in.write_text(f"#!/bin/sh\necho '  1/17 : Deleting partitions ... done'\n"
                        f"while [ ! -f {gate} ]; do sleep 0.05; done\necho \"args: $*\"\nexit 3\n")
    stand_in.chmod(0o755)
    workdir = tmp_path / "drape"
    workdir.mkdir()
    pid = int(_sh(_local(commands.start_installimage(), workdir, stand_in)).split()[-1])
    request.addfinalizer(lambda: _end_group(pid))
    time.sleep(0.3)
    running = commands.parse_poll(_sh(_local(commands.poll_installimage(pid), workdir, stand_in)))
    assert (running.state, running.progress) == ("running", "1/17 : Deleting partitions ... done")
    gate.touch()
    deadline = time.monotonic() + 10
    while (status := commands.parse_poll(_sh(_local(commands.poll_installimage(pid), workdir, stand_in)))).state \
            == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (status.state, status.exit_code) == ("exit", 3)
    assert f"args: -a -c {workdir}/installimage.conf -x {workdir}/post-install.sh" in \
        (workdir / "installimage.log").read_text()


def test_stopping_the_runner_ends_installimage_and_its_children(tmp_path: Path, request: pytest.FixtureRequest
                                                                ) -> None:
    stand_in = tmp_path / "installimage"
    stand_in.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    stand_in.chmod(0o755)
    workdir = tmp_path / "drape"
    workdir.mkdir()
    pid = int(_sh(_local(commands.start_installimage(), workdir, stand_in)).split()[-1])
    request.addfinalizer(lambda: _end_group(pid))
    time.sleep(0.3)
    _sh(_local(commands.stop_installimage(pid), workdir, stand_in))
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert commands.parse_poll(_sh(_local(commands.poll_installimage(pid), workdir, stand_in))).state in ("gone",
                                                                                                         "exit")


def test_relevant_debug_lines_are_the_errors_and_the_end() -> None:
    lines = commands.relevant_lines((FIXTURES / "reinstall" / "debug-lvm-failed.txt").read_text(), context=3)
    assert lines == ['[12:00:33] :   Volume group "vg0" has insufficient free space (12800 extents): 76800 required.',
                     "[12:00:33] => FAILED", "[12:00:33] # cleaning up",
                     "[12:00:34] :   umount: /installimage.abcde/hdd: not mounted."]


def test_the_new_systems_files_are_read_from_one_listing() -> None:
    output = (f"== keys\n{NEW_OS_HOST_KEY}\n== fstab\n"
              "/dev/vg0/docker /var/lib/docker xfs defaults,noatime,prjquota 0 0\n"
              "# /dev/md/0\n== marker\ndrape-fleet post-install done\n")
    new = commands.parse_new_system(output)
    assert new.host_keys == (PublicKey.parse(NEW_OS_HOST_KEY),)
    assert commands.fstab_options(new.fstab) == {"/var/lib/docker": ("xfs", "defaults,noatime,prjquota")}
    assert new.marker == "drape-fleet post-install done"


def test_mounts_and_reflinks_are_read_from_findmnt_and_xfs_info() -> None:
    mounts = commands.parse_findmnt((FIXTURES / "reinstall" / "findmnt-ax1.json").read_text())
    assert mounts["/srv/drape"] == ("xfs", "rw,noatime,attr2,inode64,logbufs=8,logbsize=32k,prjquota")
    assert mounts["/"][0] == "ext4"
    assert commands.reflink_enabled((FIXTURES / "reinstall" / "xfs_info-reflink.txt").read_text()) is True
    assert commands.reflink_enabled((FIXTURES / "reinstall" / "xfs_info-noreflink.txt").read_text()) is False
    assert commands.reflink_enabled("xfs_info: /x is not a mounted XFS filesystem") is None
