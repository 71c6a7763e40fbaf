"""Through the runtime on a provisioned lab host, as the backend starts a user's preview: a private repository on
the lab's git server, the token handed over as a file (with the lab CA the fleet names), `ready` only once the
start page is compiled, and the workspace's kept volume, so the next start installs nothing. Observations are the
engine's (inspect, volumes, the preview's own files), never the runtime's word."""

from __future__ import annotations

import json
from typing import Any

import pytest
from preview_support import WORKSPACE_PREFIX, FleetLab

from drape_fleet.runtime import labels as L

pytestmark = [pytest.mark.lab, pytest.mark.templates]


def timings(lab: FleetLab, status: Any) -> dict[str, Any]:
    return dict(json.loads(lab.file(status.container_id, "/drape/timings.json") or "{}"))


def test_a_private_repository_through_the_runtime_and_its_kept_workspace(fleet_lab: FleetLab) -> None:
    token = fleet_lab.previews.token("vite-react")
    workspace = WORKSPACE_PREFIX + "kept"
    first = fleet_lab.runtime.start(workspace, "u-7", "react", project="vite-react",
                                    repo=fleet_lab.previews.url("vite-react"), repo_token=token.repo_token())
    first = fleet_lab.wait(first)
    assert first.phase.value == "ready", first
    phase = (fleet_lab.file(first.container_id, "/drape/phase") or "").strip().splitlines()
    assert phase[-1] == "ready" and any("start page compiled" in line for line in phase)  # not merely answering
    inspected = fleet_lab.engine.call(lambda api: api.inspect_container(first.container_id), "inspect")
    assert token.secret not in json.dumps(inspected)  # env, labels, command, mounts: nowhere
    assert fleet_lab.file(first.container_id, "/drape/repo-token") is None  # deleted after the clone
    before = timings(fleet_lab, first)
    assert before["install_path"] in ("shared store", "registry"), before
    volume = L.workspace_volume_name(workspace, "u-7", "vite-react")
    found = fleet_lab.engine.call(lambda api: api.inspect_volume(volume), "inspect the kept volume")
    assert found["Labels"][L.KIND] == L.KIND_WORKSPACE and found["Labels"][L.WORKSPACE] == workspace

    fleet_lab.runtime.stop(workspace)
    fleet_lab.gone(workspace)
    assert fleet_lab.engine.call(lambda api: api.inspect_volume(volume), "kept after stop")["Name"] == volume
    again = fleet_lab.start("kept", "react", "vite-react")  # a new token, as the backend issues per start
    assert again.phase.value == "ready", again
    after = timings(fleet_lab, again)
    assert after["install_path"] == "kept" and "install_s" not in after, after  # nothing installed
    assert after["fetch_s"] < 30
    fleet_lab.runtime.stop(workspace)
    fleet_lab.gone(workspace)
    fleet_lab.engine.call(lambda api: api.remove_volume(volume), "remove the kept volume")  # what the test made

