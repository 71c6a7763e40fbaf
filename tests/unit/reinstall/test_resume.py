"""Failures say which step, what was seen and what to do next; a re-run resumes where it makes sense instead of
starting blind (and never resets the server or restarts installimage without cause)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleets import RESCUE_HOST_KEY_MD5, make_fleet
from reinstall_bench import Bench
from world import OLD_OS_HOST_KEY

from drape_fleet.reinstall import commands
from drape_fleet.reinstall.context import FlowContext, StepFailed
from drape_fleet.reinstall.executor import ReinstallFailed
from drape_fleet.reinstall.plan import STEP_NAMES
from drape_fleet.reinstall.state import load_state
from drape_fleet.reinstall.steps import STEP_FUNCTIONS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
POSTS = ["POST /boot/2100001/rescue", "POST /reset/2100001"]


def posts(bench: Bench) -> list[str]:
    return [call for call in bench.robot_calls() if call.startswith("POST")]


def test_a_rescue_system_that_never_answers_times_out_with_next_steps_and_a_rerun_waits_again(bench: Bench) -> None:
    bench.world.never_boots = True
    with pytest.raises(ReinstallFailed) as failed:
        bench.reinstall().run(confirmed=True)
    message = str(failed.value)
    assert message.startswith("step 'wait-rescue' (wait for the rescue system) failed after 300 s: the rescue "
                              "system's SSH: not within 300 s")
    assert "seen:\n    no SSH answer at 203.0.113.11:22" in message
    assert "next: check the server in Robot" in message and "--restart" in message
    state = load_state(bench.state_dir / "ax1.json")
    assert state is not None and state.steps["wait-rescue"].status == "failed"
    bench.world.never_boots = False
    bench.progress.events.clear()
    bench.reinstall().run(confirmed=True)
    assert posts(bench) == POSTS
    assert bench.progress.of("skipped") == ["activate-rescue", "reset"]
    assert bench.progress.of("finished")[:2] == ["preflight", "wait-rescue"]


def test_a_server_presenting_an_unannounced_key_is_never_trusted(bench: Bench) -> None:
    bench.world.rescue_key = OLD_OS_HOST_KEY
    with pytest.raises(ReinstallFailed, match=r"SSH answers with keys Robot did not announce(.|\n)*Robot announced "
                                              + RESCUE_HOST_KEY_MD5):
        bench.reinstall().run(confirmed=True)
    assert not (bench.state_dir / "ax1.rescue_known_hosts").exists()
    assert bench.world.commands == []


def test_robot_announcing_no_host_key_stops_unless_ops_give_the_fingerprint(bench: Bench) -> None:
    bench.fake.state.servers[2100001].rescue_host_keys = []
    with pytest.raises(ReinstallFailed, match=r"answered no host keys, so the rescue system's identity cannot be"):
        bench.reinstall().run(confirmed=True)
    assert posts(bench) == POSTS[:1]
    bench.reinstall(rescue_host_fingerprints=(RESCUE_HOST_KEY_MD5,)).run(confirmed=True)
    assert posts(bench) == ["POST /boot/2100001/rescue", *POSTS]


def test_installimage_failure_shows_the_relevant_debug_lines_and_a_rerun_installs_again(bench: Bench) -> None:
    bench.world.install_debug = (FIXTURES / "reinstall" / "debug-lvm-failed.txt").read_text()
    with pytest.raises(ReinstallFailed) as failed:
        bench.reinstall().run(confirmed=True)
    message = str(failed.value)
    assert "step 'installimage' (run installimage) failed after 30 s: installimage exited with status 1" in message
    assert '    [12:00:33] :   Volume group "vg0" has insufficient free space (12800 extents): 76800 required.\n' \
           "    [12:00:33] => FAILED\n" in message
    assert "[12:00:01] :   CPU1" not in message
    assert "next: read the lines above (all of it: /root/debug.txt on the rescue system)" in message
    state = load_state(bench.state_dir / "ax1.json")
    assert state is not None and not state.done("validate") and not state.done("upload")
    bench.world.install_debug = ""
    bench.reinstall().run(confirmed=True)
    assert bench.progress.of("skipped")[-4:] == ["activate-rescue", "reset", "wait-rescue", "inspect"]
    assert bench.world.installs_started == 2
    assert posts(bench) == POSTS


def test_installimage_past_its_time_limit_is_stopped(bench: Bench) -> None:
    bench.world.install_polls = 10_000
    with pytest.raises(ReinstallFailed, match=r"installimage did not finish within 900 s and was stopped"):
        bench.reinstall().run(confirmed=True)
    assert bench.world.stopped


def test_a_run_interrupted_during_installimage_resumes_watching_the_same_process(bench: Bench) -> None:
    class Interrupting(type(bench.progress)):  # type: ignore[misc]
        def note(self, step: object, message: str) -> None:
            if message.startswith("waiting for installimage"):
                raise KeyboardInterrupt
    interrupted = Interrupting()
    reinstall = bench.reinstall()
    reinstall.progress = interrupted
    with pytest.raises(KeyboardInterrupt):
        reinstall.run(confirmed=True)
    bench.reinstall().run(confirmed=True)
    assert bench.world.installs_started == 1
    assert bench.progress.of("finished")[:2] == ["preflight", "installimage"]


def test_a_post_install_that_did_not_finish_is_caught_before_the_reboot(bench: Bench, monkeypatch: pytest.MonkeyPatch
                                                                        ) -> None:
    original = bench.world.install

    def without_marker() -> None:
        original()
        bench.world.marker = ""
    monkeypatch.setattr(bench.world, "install", without_marker)
    with pytest.raises(ReinstallFailed, match=r"step 'host-key'.*the post-install script did not finish"):
        bench.reinstall().run(confirmed=True)
    assert commands.REBOOT not in [command for _, command in bench.world.commands]
    state = load_state(bench.state_dir / "ax1.json")
    assert state is not None and not state.done("installimage")


@pytest.mark.parametrize(("extra", "problem"), [
    ({"drape_xfs_info": "xfs_info-noreflink.txt"}, "/srv/drape was made without reflink=1"),
    ({"mdstat": "mdstat-degraded"}, "is not a healthy mirror"),
    ({"mdstat": "mdstat-empty"}, "no software RAID array is assembled"),
])
def test_the_new_systems_storage_is_verified(bench: Bench, extra: dict[str, str], problem: str) -> None:
    bench.world.extra.update(extra)
    with pytest.raises(ReinstallFailed, match=rf"step 'verify-layout'.*{problem}"):
        bench.reinstall().run(confirmed=True)


def test_a_finished_reinstall_is_not_repeated_unless_restarted(bench: Bench) -> None:
    bench.reinstall().run(confirmed=True)
    calls = len(bench.robot_calls())
    bench.reinstall().run(confirmed=False)
    assert len(bench.robot_calls()) == calls
    assert bench.progress.of("skipped")[-len(STEP_NAMES):] == list(STEP_NAMES)
    bench.world.phase = "old-os"
    bench.reinstall().run(confirmed=True, restart=True)
    assert posts(bench) == POSTS * 2


def test_state_of_another_server_is_set_aside(bench: Bench) -> None:
    bench.reinstall().run(confirmed=True)
    moved = make_fleet(hosts=[{"name": "ax1", "public_address": "203.0.113.12", "private_address": "10.0.0.11",
                               "robot_server_number": 2100002,
                               "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}])
    assert "[done, skipped]" not in bench.reinstall(moved).dry_run()


def test_a_run_right_after_the_check_does_not_repeat_the_preflight(bench: Bench) -> None:
    reinstall = bench.reinstall()
    reinstall.check()
    reinstall.run(confirmed=True)
    assert bench.progress.of("started").count("preflight") == 1
    assert bench.robot_calls().count("GET /server/2100001") == 1


def test_a_mistyped_server_number_neither_loses_the_progress_nor_resets_the_server_again(bench: Bench) -> None:
    bench.world.never_boots = True
    with pytest.raises(ReinstallFailed, match="step 'wait-rescue'"):
        bench.reinstall().run(confirmed=True)
    typo = make_fleet(hosts=[{"name": "ax1", "public_address": "203.0.113.11", "private_address": "10.0.0.11",
                              "robot_server_number": 2100009,
                              "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}}])
    with pytest.raises(ReinstallFailed, match=r"step 'preflight'.*does not have ax1's address"):
        bench.reinstall(typo).run(confirmed=True)
    saved = load_state(bench.state_dir / "ax1.json")
    assert saved is not None and saved.server_number == 2100001 and saved.done("reset")
    bench.world.never_boots = False
    bench.progress.events.clear()
    bench.reinstall().run(confirmed=True)
    assert posts(bench) == POSTS
    assert bench.progress.of("skipped") == ["activate-rescue", "reset"]


@pytest.mark.parametrize("failing", STEP_NAMES[1:])
def test_a_rerun_after_a_failure_at_any_step_resumes_at_that_step(bench: Bench, monkeypatch: pytest.MonkeyPatch,
                                                                  failing: str) -> None:
    """Whatever stops a step (the specific failures have their own tests above), the next run makes the preflight,
    skips what was done, and goes on from the step that failed: one activation and one reset in all."""
    working = STEP_FUNCTIONS[failing]

    def broken(ctx: FlowContext) -> str:
        raise StepFailed(f"{failing} broke", seen="as arranged", next_steps="re-run")

    monkeypatch.setitem(STEP_FUNCTIONS, failing, broken)
    with pytest.raises(ReinstallFailed, match=rf"step '{failing}' \(.*\) failed after .*: {failing} broke"):
        bench.reinstall().run(confirmed=True)
    monkeypatch.setitem(STEP_FUNCTIONS, failing, working)
    bench.progress.events.clear()
    state = bench.reinstall().run(confirmed=True)
    index = STEP_NAMES.index(failing)
    assert bench.progress.of("skipped") == list(STEP_NAMES[1:index])
    assert bench.progress.of("finished") == ["preflight", *STEP_NAMES[index:]]
    assert posts(bench) == POSTS
    assert all(record.status == "done" for record in state.steps.values())
