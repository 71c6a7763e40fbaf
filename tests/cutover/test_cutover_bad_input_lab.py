"""Bad input at phase 4, on the lab, through `invoke cutover ...`: a Fly token that may only read, and a Fly app
with machines in states the cutover does not act on. Phase 3 is set up directly in the store (the whole path
to it is test_cutover_lab's); each refusal must leave the policy, DNS and Fly exactly as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cutover_lab import (
    FLY_CNAME,
    INTERNAL,
    READ_ONLY_FLY_TOKEN,
    FakeApis,
    Ops,
    cutover_fleet,
    newest_generation,
    preview_machines,
)

from drape_fleet.config import FleetConfig
from drape_fleet.cutover.progress import LoadTestResult, PhaseEntry, Progress, SmokeResult
from drape_fleet.routing.metrics import MetricsStore, StartRecorder
from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.store import StateStore

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def _at_phase3(lab_fleet: FleetConfig, lab_state: Path) -> int:
    """The store as phase 3 leaves it, with measurements that open the gate into phase 4."""
    from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
    from drape_fleet.runtime.fleet import Fleet

    now = datetime.now(UTC)
    engines = Fleet.from_endpoints(tls_endpoints(lab_fleet, TlsFiles.from_pki_dir(lab_state / "pki")),
                                   lab_fleet.runtime)
    try:
        policy = RoutingPolicy(phase=3, internal_users=INTERNAL, percent=20, salt="0123abcd")
        progress = Progress(phase=3, entered=tuple(PhaseEntry(phase=n, policy=policy.model_copy(update={"phase": n}),
                                                              completed=now) for n in (1, 2, 3)),
                            smoke=SmokeResult(at=now, seconds=dict.fromkeys(lab_fleet.host_names, 1.0)),
                            load_test=LoadTestResult(at=now, framework="tiny", previews=4, failures=0, cold_p50_s=2,
                                                     cold_p95_s=3, max_s=3, passed=True, detail="seeded"))
        record = StateStore(engines, lab_fleet.runtime.owner).write(policy, progress.to_json(), expected=0,
                                                                    writer="test")
        recorder = StartRecorder()
        for kind, seconds in (("cold", 3.0), ("warm", 2.0)):
            for _ in range(8):
                recorder.record(3, "hetzner", kind, seconds)  # type: ignore[arg-type]
        recorder.flush(MetricsStore(engines, lab_fleet.runtime.owner))
        return record.generation
    finally:
        engines.close()


def _generations(lab_fleet: FleetConfig) -> set[int]:
    from drape_fleet.lab.previews import lab_settings

    return {newest_generation(lab_settings().container_name(h)) for h in lab_fleet.host_names}


def test_a_fly_token_that_may_only_read_is_refused_before_anything_changes(
        clean_lab: Path, lab_fleet: FleetConfig, tmp_path: Path) -> None:
    apis = FakeApis.start(tmp_path, preview_machines(["started", "started"]))
    try:
        generation = _at_phase3(lab_fleet, clean_lab)
        ops = Ops(cutover_fleet(clean_lab, tmp_path, apis), clean_lab, fly_token=READ_ONLY_FLY_TOKEN)
        dry = ops("cutover", "phase4")  # reading is all a dry run does: the read-only token suffices
        assert "stop drape-previews/" in dry.stdout
        refused = ops("cutover", "phase4", "--apply", expect=1)
        text = " ".join(refused.stderr.split())
        assert "answered 403: unauthorized" in text and "the token lacks permissions for this app or action" in text
        assert "Nothing was changed." in text
        assert _generations(lab_fleet) == {generation}
        assert apis.fly_states() == {"preview-0": "started", "preview-1": "started"}
        assert apis.dns_records() == {"CNAME": [FLY_CNAME]}
    finally:
        apis.stop()


def test_machines_in_unexpected_states_close_the_gate(clean_lab: Path, lab_fleet: FleetConfig, tmp_path: Path) -> None:
    apis = FakeApis.start(tmp_path, preview_machines(["started", "failed", "replacing", "stopped"]))
    try:
        generation = _at_phase3(lab_fleet, clean_lab)
        ops = Ops(cutover_fleet(clean_lab, tmp_path, apis), clean_lab)
        refused = ops("cutover", "phase4", "--apply", expect=1)
        text = " ".join((refused.stdout + refused.stderr).split())
        assert "the gate into phase 4 is closed: 1 check(s) failed" in text
        failed_id, replacing_id = apis.machines["preview-1"], apis.machines["preview-2"]
        assert (f"drape-previews/{failed_id} (preview-1, failed, cdg): it failed: look at it (`fly machine status "
                f"{failed_id} -a drape-previews`), then restart or destroy it") in text
        assert f"drape-previews/{replacing_id} (preview-2, replacing, cdg): a deploy or update is replacing it" in text
        assert _generations(lab_fleet) == {generation}
        assert apis.fly_states()["preview-0"] == "started"
        status = ops.status()
        assert status["phase"] == 3 and status["fly"]["by_state"] == {"failed": 1, "replacing": 1, "started": 1,
                                                                      "stopped": 1}
    finally:
        apis.stop()
