"""The whole cutover on the lab, driven through `invoke cutover ...` as ops type it, against the Fly Machines fake
and the Hetzner Cloud DNS fake running as a process: phases 1 to 5 with a backend process routing by the policy
as it changes, the out-of-order and bad-option refusals, a gate that fails (then passes once its threshold, from
configuration, is met), an interrupted phase 4 run again, a rollback from phase 4 to phase 3 that brings the
stopped Fly machines back and keeps a running Hetzner preview, the report and its chart, and the Fly machines
destroyed after the grace period with a separate confirmation.

Outcomes are read back independently: the engines' volumes through `docker exec`, the fakes through plain HTTP.
"""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w
from cutover_lab import (
    APP,
    BETA,
    FLY_CNAME,
    INTERNAL,
    ROOT,
    USERS,
    Backend,
    FakeApis,
    Ops,
    cutover_fleet,
    newest_generation,
    preview_machines,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
HOSTS = ("ax1", "ax2", "ax3")


def _containers() -> list[str]:
    from drape_fleet.lab.previews import lab_settings

    return [lab_settings().container_name(h) for h in HOSTS]


def _generations() -> list[int]:
    return [newest_generation(c) for c in _containers()]


def _fail_text(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stderr + result.stdout).split())


def _set_gate(fleet: Path, **gate: float) -> None:
    data = tomllib.loads(fleet.read_text())
    data["cutover"]["gate"].update(gate)
    fleet.write_text(tomli_w.dumps(data))


def _interrupt_phase4(ops: Ops) -> str:
    """Start `phase4 --apply`, kill it (SIGKILL, no cleanup) right after it stopped its first Fly machine."""
    env = ops.env()
    process = subprocess.Popen(ops.argv("cutover", "phase4", "--apply"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**env, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "Fly: stopped" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def test_the_whole_cutover_as_ops_run_it(clean_lab: Path, tmp_path: Path) -> None:
    apis = FakeApis.start(tmp_path, preview_machines(["started"] * 4 + ["stopped"]))
    try:  # the fakes' process is stopped however the test ends, even when the backend cannot start
        fleet = cutover_fleet(clean_lab, tmp_path, apis)
        ops = Ops(fleet, clean_lab)
        backend = Backend(fleet, clean_lab / "pki")
        try:
            fly_user = _phases_1_to_3(ops, backend)
            _failed_gate_then_phase4(ops, backend)
            _rollback_4_to_3(ops, backend, apis, fly_user)
            _phases_4_and_5_again(ops, backend, apis, tmp_path)
        finally:
            backend.close()
    finally:
        apis.stop()
    print("\ninvoke timings (s): " + "; ".join(f"{k}: {v:.1f}" for k, v in ops.timings.items()))


def _phases_1_to_3(ops: Ops, backend: Backend) -> str:
    """Phases 1 to 3; returns a user the phase 3 split keeps on Fly."""
    refused = ops("cutover", "phase2", expect=1)
    assert "phase 2 is out of order: the last phase done is 0" in _fail_text(refused)
    assert ops.status()["phase"] == 0

    dry = ops("cutover", "phase1")
    assert "dry run: nothing changed" in dry.stdout and "a salt for the sticky share is made" in dry.stdout
    assert _generations() == [0, 0, 0], "a dry run wrote state"
    ops("cutover", "phase1", "--apply")
    assert min(_generations()) > 0 and len(set(_generations())) == 1
    assert backend.route("u-ops-1")["provider"] == "fly"

    refused = ops("cutover", "rollback", expect=1)
    assert "never past phase 1" in _fail_text(refused)

    before = time.monotonic()
    ops("cutover", "phase2", "--apply")
    took = backend.wait_for_phase(2)
    print(f"\nphase 2's policy reached the backend process {took:.2f} s after the task ended "
          f"(task {time.monotonic() - before - took:.1f} s)")
    assert backend.route(INTERNAL[0])["provider"] == "hetzner"
    assert backend.route(BETA[0])["provider"] == "fly"
    status = ops.status()
    assert status["phases"]["2"] == "done" and status["phases"]["3"] == "not started"

    for args, words in ((("--percent", "150"), "--percent 150 is not a share of users"),
                        (("--allow", f"{BETA[0]},u-nobody,u-ghost"),
                         "--allow names 2 unknown user(s): u-nobody, u-ghost")):
        refused = ops("cutover", "phase3", *args, "--apply", expect=1)
        assert words in _fail_text(refused)
    assert len(set(_generations())) == 1 and backend.route("u-probe")["phase"] == 2  # nothing was written

    ops("cutover", "phase3", "--allow", f"{BETA[0]},{BETA[1]}", "--percent", "30", "--apply")
    backend.wait_for_phase(3)
    assert backend.route(BETA[0])["reason"] == "allowlisted beta user"
    others = [u for u in USERS if u not in INTERNAL and u not in BETA[:2]]
    first = {u: backend.route(u)["provider"] for u in others}
    again = {u: backend.route(u)["provider"] for u in others}
    assert first == again, "the sticky share moved users between requests"
    share = sum(p == "hetzner" for p in first.values()) / len(first)
    assert 0.1 < share < 0.55, f"{share:.0%} of {len(first)} users on Hetzner at 30%"

    # The backend reports what it sees: Fly's starts and one Hetzner placement that failed and fell back.
    for seconds in (190, 230, 260, 210, 280):
        backend.ask("record", provider="fly", kind="cold", seconds=seconds)
    for seconds in (130, 150, 170):
        backend.ask("record", provider="fly", kind="warm", seconds=seconds)
    fell_back = backend.ask("failed", user=BETA[1], reason="queue full")
    assert fell_back["provider"] == "fly" and "fell back to Fly" in fell_back["reason"]
    assert backend.ask("flush")
    return next(user for user, side in first.items() if side == "fly")


def _failed_gate_then_phase4(ops: Ops, backend: Backend) -> None:
    refused = ops("cutover", "phase4", "--apply", expect=1)
    text = _fail_text(refused)
    assert "the gate into phase 4 is closed: 1 check(s) failed" in text
    assert "FAILED Hetzner start error rate in phase 3: 7.69% (1 of 13): queue full x1 (needs <= 1%)" in text
    assert ops.status()["phase"] == 3 and backend.route("u-probe")["phase"] == 3

    _set_gate(ops.fleet, max_error_percent=8.0)  # ops judge one queue-full in 13 acceptable for the lab
    killed = _interrupt_phase4(ops)
    assert "routing policy generation" in killed
    status = ops.status()
    assert status["phase"] == 3 and status["applying"] == 4
    assert status["steps_done"] == ["policy", "dns"]
    refused = ops("cutover", "phase5", expect=1)
    assert "phase 4 was started and did not finish (done: policy, dns)" in _fail_text(refused)

    resumed = ops("cutover", "phase4", "--apply")
    assert "(resuming an interrupted run)" in resumed.stdout and resumed.stdout.count("Fly: stopped") >= 1
    summary = " ".join(resumed.stdout[resumed.stdout.index("phase 4 applied in"):].split())
    assert "fly-stop: stopped" in summary and "next: invoke cutover phase5" in summary, summary
    status = ops.status()
    assert status["phase"] == 4 and status["applying"] is None
    assert status["fly"]["by_state"] == {"stopped": 5} and status["fly"]["stopped_by_cutover"] == 4
    assert backend.wait_for_phase(4) < 3
    assert backend.route(USERS[-1])["provider"] == "hetzner"
    again = ops("cutover", "phase4", "--apply")
    assert "nothing to change" in again.stdout


def _public_addresses(fleet: Path) -> list[str]:
    return sorted(host["public_address"] for host in tomllib.loads(fleet.read_text())["hosts"])


def _rollback_4_to_3(ops: Ops, backend: Backend, apis: FakeApis, fly_user: str) -> None:
    assert apis.dns_records() == {"A": _public_addresses(ops.fleet)}
    # A user the phase 3 split sends to Fly starts a preview on Hetzner while everyone is there (phase 4).
    started = backend.ask("start", workspace="ws-rollback", user=fly_user, framework="tiny")
    assert started["phase"] == "ready", started

    dry = ops("cutover", "rollback")
    assert "rollback: phase 4 (full migration) -> phase 3 (parallel testing)" in dry.stdout
    assert apis.fly_states() == {f"preview-{n}": "stopped" for n in range(5)}
    rolled = " ".join(ops("cutover", "rollback", "--apply").stdout.split())
    assert "rolled back to phase 3: - fly-start: started 4 Fly machine(s) again - dns-restore:" in rolled, rolled
    assert apis.fly_states() == {**{f"preview-{n}": "started" for n in range(4)}, "preview-4": "stopped"}
    assert apis.dns_records() == {"CNAME": [FLY_CNAME]}
    backend.wait_for_phase(3)
    kept = backend.route(fly_user, "ws-rollback")
    assert kept["provider"] == "hetzner" and "still runs on" in kept["reason"], kept
    assert backend.route(fly_user)["provider"] == "fly"


def _phases_4_and_5_again(ops: Ops, backend: Backend, apis: FakeApis, tmp: Path) -> None:
    ops("cutover", "phase4", "--apply")
    finished = ops("cutover", "phase5", "--apply", expect=2)
    assert "monitoring on ax1: delivering:" in " ".join(finished.stdout.split())  # no alert receiver listens
    status = ops.status()
    assert status["phase"] == 5 and status["policy"]["features"] == {"prewarm": True, "keep_alive": True}
    assert backend.wait_for_phase(5) < 3

    chart = tmp / "report.png"
    out = ops("cutover", "report", "--out", str(chart)).stdout
    assert "hetzner" in out and "fly" in out and f"chart: {chart}" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    print("\n" + out)

    refused = ops("cutover", "phase4", "--destroy-fly", "--apply", expect=1)
    assert "Confirm by naming the app(s): --confirm drape-previews" in _fail_text(refused)
    assert len(apis.fly_states()) == 5
    ops("cutover", "phase4", "--destroy-fly", "--apply", "--confirm", APP)
    # Destroying is asynchronous on Fly, and in its fake: the machines leave the list once flyd has settled them.
    deadline = time.monotonic() + 30
    while (states := apis.fly_states()) != {"preview-4": "stopped"} and time.monotonic() < deadline:
        assert set(states.values()) <= {"destroying", "stopped"}, states
        time.sleep(0.5)
    assert states == {"preview-4": "stopped"}
