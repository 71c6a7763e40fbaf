"""Issue 9's runtime side: a template preview mounts its workspace's kept volume (and nothing else of the host but
the store), is ready only once its phase file says its start page is compiled, and gets its repository token and
the private git server's CA as files before it starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from runtime_testkit import TINY, World, eventually

from drape_fleet.config import FleetConfig
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.readiness import Phase, parse_phase
from drape_fleet.runtime.spec import REPO_CA_FILE, REPO_TOKEN_FILE, container_spec, make_request
from drape_fleet.runtime.state import inspect_problems, parse_container

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
REPO = "https://github.com/acme/shop.git"


def spec_for(fleet: FleetConfig, framework: str, user: str = "u-1", project: str = "p-1") -> dict[str, object]:
    request = make_request(fleet.runtime, fleet.hosts, workspace="ws-1", user=user, framework=framework,
                           project=project)
    return container_spec(request, fleet.runtime, claim="0123456789ab", created=NOW, network="drape-net-0123456789ab",
                          publish_address="10.0.0.11", disk_limit=False).body


def test_a_template_mounts_its_workspaces_kept_volume_made_with_its_labels(fleet: FleetConfig) -> None:
    host_config = spec_for(fleet, "nextjs")["HostConfig"]
    name = L.workspace_volume_name("ws-1", "u-1", "p-1")
    assert name.startswith("drape-ws-ws-1-") and len(name) == len("drape-ws-ws-1-") + 12
    assert host_config["Mounts"] == [{  # type: ignore[index]
        "Target": "/workspace", "Source": name, "Type": "volume", "ReadOnly": False,
        "VolumeOptions": {"Labels": {L.OWNER: "drape-fleet", L.KIND: L.KIND_WORKSPACE, L.WORKSPACE: "ws-1",
                                     L.USER: "u-1", L.PROJECT: "p-1"}}}]
    assert host_config["Init"] is True  # type: ignore[index]
    assert host_config["Binds"] == ["/srv/drape/pnpm-store:/pnpm-store:ro"]  # type: ignore[index]


def test_another_user_or_project_of_the_workspace_gets_another_volume() -> None:
    names = {L.workspace_volume_name("ws-1", user, project)
             for user, project in [("u-1", "p-1"), ("u-2", "p-1"), ("u-1", "p-2")]}
    assert len(names) == 3 and L.workspace_volume_name("ws-1", "u-1", "p-1") in names


def test_an_image_without_the_supervisor_keeps_nothing() -> None:
    world = World()
    try:
        body = spec_for(world.config, "tiny")
    finally:
        world.close()
    assert "Mounts" not in body["HostConfig"] and "Init" not in body["HostConfig"]  # type: ignore[operator]


def listed(mounts: list[dict[str, object]]) -> dict[str, object]:
    labels = {L.OWNER: "drape-fleet", L.KIND: L.KIND_PREVIEW, L.WORKSPACE: "ws-1", L.USER: "u-1", L.PROJECT: "p-1",
              L.FRAMEWORK: "nextjs", L.CREATED: L.format_time(NOW), L.MEMORY: str(512 * 2**20), L.CPUS: "1",
              L.PORT: "3000", L.CLAIM: "0123456789ab"}
    return {"Id": "c" * 64, "Names": ["/drape-pv-ws-1"], "State": "running", "Labels": labels, "Mounts": mounts,
            "HostConfig": {"NetworkMode": "drape-net-0123456789ab"}, "Ports": []}


STORE = {"Type": "bind", "Source": "/srv/drape/pnpm-store", "Destination": "/pnpm-store", "RW": False}


@pytest.mark.parametrize(("mount", "ours"), [
    ({"Type": "volume", "Name": L.workspace_volume_name("ws-1", "u-1", "p-1"), "Destination": "/workspace",
      "Driver": "local", "RW": True}, True),
    ({"Type": "volume", "Name": L.workspace_volume_name("ws-2", "u-1", "p-1"), "Destination": "/workspace",
      "Driver": "local", "RW": True}, False),  # another workspace's files
    ({"Type": "bind", "Source": "/", "Destination": "/workspace", "RW": True}, False),
    ({"Type": "volume", "Name": L.workspace_volume_name("ws-1", "u-1", "p-1"), "Destination": "/workspace",
      "Driver": "nfs", "RW": True}, False),
])
def test_only_its_own_kept_volume_is_accepted_beside_the_store(fleet: FleetConfig, mount: dict[str, object],
                                                               ours: bool) -> None:
    parsed = parse_container("ax1", listed([STORE, mount]), fleet.runtime)
    assert (type(parsed).__name__ == "PreviewRecord") is ours, parsed


def test_inspect_flags_a_mount_that_is_not_its_kept_volume(fleet: FleetConfig) -> None:
    record = parse_container("ax1", listed([STORE]), fleet.runtime)
    host_config = spec_for(fleet, "nextjs")["HostConfig"]
    inspected = {"HostConfig": {**host_config, "Memory": 512 * 2**20}}  # type: ignore[dict-item]
    assert inspect_problems(inspected, record, fleet.runtime) == []  # type: ignore[arg-type]
    inspected["HostConfig"]["Mounts"] = [{"Type": "bind", "Source": "/etc", "Target": "/workspace"}]
    assert inspect_problems(inspected, record, fleet.runtime) == ["mount '/etc' at '/workspace'"]  # type: ignore[arg-type]


def test_the_phase_file_says_ready_last() -> None:
    assert parse_phase("Vite project, Node 22.12.0 (default), pnpm 10\nstart page compiled in 1.2 s\nready\n") == \
        (Phase.READY, None)


def running(world: World, workspace: str) -> Any:
    """The workspace's preview container once the fake engine runs it."""
    return eventually(lambda: next((c for h in world.hosts.values() for c in h.named(f"drape-pv-{workspace}")
                                    if c.status == "running"), None))


def started_template(world: World, workspace: str, *, phase: str, logs: bytes) -> tuple[Any, Any]:
    """A template preview started, its phase file and its supervisor's log (stderr) as given."""
    runtime = world.runtime()
    runtime.start(workspace, "u1", "tmpl")
    container = running(world, workspace)
    container.set_phase(phase)
    container.logs = logs
    return runtime, container


@pytest.fixture
def template_world(tmp_path: Path) -> Iterator[tuple[World, Path]]:
    ca = tmp_path / "git-ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n")
    world = World(frameworks={"tiny": {"image": TINY, "port": 3000},
                              "tmpl": {"image": "drape-lab/preview-react:node22", "port": 3000,
                                       "ready_when": "page-compiled", "keep_workspace": True}},
                  repo_ca_file=str(ca))
    yield world, ca
    world.close()


def test_a_template_is_ready_once_its_page_is_compiled_not_when_its_port_first_answers(
        template_world: tuple[World, Path]) -> None:
    world, _ = template_world
    runtime = world.runtime()
    runtime.start("tmpl-1", "u1", "tmpl")
    container = running(world, "tmpl-1")
    container.set_phase("installing\ncompiling")  # the dev server answers HTTP: Vite does before compiling
    compiling = eventually(lambda: (s := runtime.status("tmpl-1")) and s.phase is Phase.COMPILING and s)
    assert compiling.phase is Phase.COMPILING
    container.set_phase("Vite project\nstart page compiled in 1.0 s\nready")
    assert eventually(lambda: (s := runtime.status("tmpl-1")) and s.phase is Phase.READY)
    assert runtime.start("tiny-1", "u1", "tiny", wait=5).phase is Phase.READY  # no supervisor: answers is ready


def test_a_template_that_logs_its_phases_is_followed_by_its_log_and_its_phase_file_read_once_ready(
        template_world: tuple[World, Path]) -> None:
    """A phase-file read costs the engine ~45 ms of CPU (an archive); the supervisor's log line costs next to
    nothing. While the template compiles, the follower reads only the log; the file once the log says ready."""
    world, _ = template_world
    runtime, container = started_template(
        world, "hint-1", phase="installing\ncompiling",
        logs=b"drape-preview: installing\nnext dev output\ndrape-preview: compiling\n")
    host = world.hosts[container.host.name]
    assert eventually(lambda: (s := runtime.status("hint-1")) and s.phase is Phase.COMPILING)
    reads_before = host.count("stream:archive")
    time.sleep(2)  # four looks, about ten probes
    status = runtime.status("hint-1")
    assert status is not None and status.phase is Phase.COMPILING
    assert host.count("stream:archive") == reads_before, "the phase file was read while the log said compiling"
    assert host.count("stream:logs") >= 5
    container.set_phase("Next.js project\nstart page compiled in 1.0 s\nready")  # the file first, then the log
    container.logs += b"drape-preview: ready\n GET / 200 in 80ms\n"
    assert eventually(lambda: (s := runtime.status("hint-1")) and s.phase is Phase.READY, within=5)
    assert host.count("stream:archive") - reads_before <= 2


def test_a_template_whose_log_says_ready_before_its_file_does_is_not_ready_yet(
        template_world: tuple[World, Path]) -> None:
    """The log is a hint from the tenant's side: ready is still the phase file and the port."""
    runtime, container = started_template(template_world[0], "hint-2", phase="installing\ncompiling",
                                          logs=b"drape-preview: ready\n")
    time.sleep(1.5)
    status = runtime.status("hint-2")
    assert status is not None and status.phase is not Phase.READY
    container.set_phase("Vite project\nready")
    assert eventually(lambda: (s := runtime.status("hint-2")) and s.phase is Phase.READY, within=5)


def test_a_failure_the_log_tells_of_is_reported_with_the_phase_files_reason(
        template_world: tuple[World, Path]) -> None:
    why = "pnpm-lock.yaml is out of date"
    runtime, _ = started_template(
        template_world[0], "hint-3", phase=f"installing\nERR_PNPM_OUTDATED_LOCKFILE\nfailed: {why}",
        logs=b"drape-preview: installing\ndrape-preview: failed: pnpm-lock.yaml is out of date\n")
    status = eventually(lambda: (s := runtime.status("hint-3")) and s.phase is Phase.FAILED and s, within=5)
    assert status.error == "pnpm-lock.yaml is out of date"


def test_the_token_and_the_git_servers_ca_are_files_before_start(template_world: tuple[World, Path]) -> None:
    world, ca = template_world
    world.runtime().start("tok-1", "u1", "tmpl", repo=REPO, repo_token="preview-7:s3cr3t")
    container = eventually(lambda: next(iter(c for h in world.hosts.values() for c in h.named("drape-pv-tok-1")),
                                        None))
    files = eventually(lambda: REPO_CA_FILE in container.files and container.files)
    assert files[REPO_TOKEN_FILE][0] == b"preview-7:s3cr3t" and files[REPO_CA_FILE][0] == ca.read_bytes()
    assert "s3cr3t" not in str(container.body)  # never in the configuration (env, labels, command)


def test_an_engine_that_cannot_read_the_phase_file_just_now_does_not_fail_the_start(
        template_world: tuple[World, Path]) -> None:
    """Seen on a loaded lab host: the phase file's read timed out while the port answered; the start failed."""
    world, _ = template_world
    runtime = world.runtime()
    runtime.start("slow-1", "u1", "tmpl")
    container = running(world, "slow-1")
    host = world.hosts[container.host.name]
    host.delays["stream:archive"] = 30.0  # reads of the preview's files time out for now (budget: 2 s)
    container.set_phase("Vite project\nready")
    time.sleep(3)  # probes: the port answers each time, the phase file's read times out
    status = runtime.status("slow-1")
    assert status is not None and status.phase not in (Phase.FAILED, Phase.READY), status
    host.delays.pop("stream:archive")
    assert eventually(lambda: (s := runtime.status("slow-1")) and s.phase is Phase.READY, within=20)
