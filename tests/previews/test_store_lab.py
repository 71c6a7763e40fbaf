"""The shared store on a provisioned lab host, filled by the trusted job (what `invoke cache.warm` runs): a preview
then installs every package from it and the store's hit rate counts it; a rebuild (`invoke cache.prune`) waits
for an install in progress before it swaps, and keeps the old store when a source it needs fails. Observations are
the host's files, the preview's timings and the job's own log."""

from __future__ import annotations

import json
import time

import pytest
from preview_support import FleetLab

from drape_fleet.store import service
from drape_fleet.store.sources import Source, popular_source

pytestmark = [pytest.mark.lab, pytest.mark.templates]


def source(lab: FleetLab, project: str) -> Source:
    files = {f: (lab.previews.projects / project / f).read_bytes() for f in ("package.json", "pnpm-lock.yaml")}
    return Source("project", project, files)


def on_host(lab: FleetLab, command: str) -> str:
    """A command on the lab host, as root (the engine's own view of its files)."""
    import subprocess

    name = lab.previews.settings.container_name(lab.engine.name)
    return subprocess.run(["docker", "exec", name, "sh", "-c", command], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def plant_dead_job(lab: FleetLab) -> str:
    """What a host that died or rebooted under a job keeps: the job's container, stopped, holding its name."""
    from drape_fleet.store.job import JOB_NAME

    image = lab.fleet.runtime.frameworks["react"].image
    on_host(lab, f"docker rm -f {JOB_NAME} >/dev/null 2>&1; docker run --name {JOB_NAME} --entrypoint sh {image} "
                 "-c 'exit 255'; true")
    return on_host(lab, f"docker inspect -f '{{{{.State.Status}}}}' {JOB_NAME}").strip()


def test_a_warm_store_serves_the_whole_install_and_counts_as_a_hit(fleet_lab: FleetLab) -> None:
    assert plant_dead_job(fleet_lab) == "exited"  # a fill after a crash is not blocked by the dead job
    report = service.fill(fleet_lab.engine, fleet_lab.fleet, sources=[source(fleet_lab, "vite-react")])
    assert report.exit_code == 0 and not report.failed, report
    store = fleet_lab.fleet.provisioning.cache.store_path
    assert on_host(fleet_lab, f"find {store} ! -user drape-cache | wc -l").strip() == "0"  # the owner wrote all
    assert json.loads(on_host(fleet_lab, f"cat {store}/.drape-warm.json"))["failed"] == 0

    status = fleet_lab.start("store-hit", "react", "vite-react")
    assert status.phase.value == "ready", status
    timings = json.loads(fleet_lab.file(status.container_id, "/drape/timings.json") or "{}")
    assert timings["install_path"] == "shared store"
    found = service.status(fleet_lab.engine, fleet_lab.fleet)
    assert found.hits.hits >= 1 and found.files > 1000 and "v10" in found.layouts
    fleet_lab.runtime.stop(status.workspace)


def test_a_rebuild_waits_for_the_install_in_progress_then_swaps(fleet_lab: FleetLab) -> None:
    cache = fleet_lab.fleet.provisioning.cache
    image = fleet_lab.fleet.runtime.frameworks["react"].image
    # What a preview's install holds while it reads the store: its shared lock (here for 5 s).
    holder = fleet_lab.engine.call(lambda api: api.create_container(
        image, entrypoint=["sh", "-c", "flock --shared /pnpm-store sh -c 'sleep 5; date +%s.%N'"], user="1000:1000",
        host_config=api.create_host_config(binds=[f"{cache.store_path}:/pnpm-store:ro"])), "holder")["Id"]
    try:
        fleet_lab.engine.call(lambda api: api.start(holder), "start holder")
        time.sleep(1)
        report = service.fill(fleet_lab.engine, fleet_lab.fleet, rebuild=True,
                              sources=[source(fleet_lab, "vite-react")])
        released = float(fleet_lab.engine.call(lambda api: api.logs(holder), "holder log").decode().split()[-1])
    finally:
        fleet_lab.engine.call(lambda api: api.remove_container(holder, force=True), "remove holder")
    assert report.swapped and report.exit_code == 0, report.log_tail
    swapped = float(report.log_tail.split("swapped at ")[1].split()[0])
    assert swapped > released  # the swap waited for the install's lock
    assert set(on_host(fleet_lab, f"ls -A {cache.store_path}").split()) - {".warm.lock"} == {".drape-warm.json", "v10"}

    status = fleet_lab.start("store-rebuilt", "react", "vite-react")
    timings = json.loads(fleet_lab.file(status.container_id, "/drape/timings.json") or "{}")
    assert timings["install_path"] == "shared store"  # the rebuilt store holds what the project needs
    fleet_lab.runtime.stop(status.workspace)


def test_a_rebuild_whose_popular_packages_fail_keeps_the_old_store(fleet_lab: FleetLab) -> None:
    store = fleet_lab.fleet.provisioning.cache.store_path
    before = on_host(fleet_lab, f"stat -c %i {store}/v10").strip()
    report = service.fill(fleet_lab.engine, fleet_lab.fleet, rebuild=True,
                          sources=[popular_source(["drape-no-such-package-4f1c@^1"])])
    assert not report.swapped and report.exit_code == 3
    assert "the old store stays" in report.log_tail
    assert report.failed and ("ERR_PNPM" in report.failed[0].note or "404" in report.failed[0].note)
    assert on_host(fleet_lab, f"stat -c %i {store}/v10").strip() == before
    assert set(on_host(fleet_lab, f"ls -A {store}").split()) - {".warm.lock"} == {".drape-warm.json", "v10"}  # no .next


def test_kept_workspaces_are_measured_and_pruned_least_recently_started_first(fleet_lab: FleetLab) -> None:
    """Three kept workspaces as the runtime labels them (2, 1 and 3 MiB; started the 20th, the 28th, and one a
    container still mounts): a budget of 4.5 MiB removes the oldest idle one only; the mounted one, older still,
    counts but is never touched."""
    from drape_fleet.runtime import labels as L
    from drape_fleet.store.workspaces import prune

    fleet, engine = fleet_lab.fleet, fleet_lab.engine
    image = fleet.runtime.frameworks["react"].image
    made = {"old": (2, "2026-11-20T10:00:00.000Z"), "new": (1, "2026-11-28T10:00:00.000Z"),
            "busy": (3, "2026-11-01T10:00:00.000Z")}
    names = {key: f"drape-ws-t9-prune-{key}" for key in made}
    holder = None
    try:
        for key, (mib, at) in made.items():
            engine.call(lambda api, k=key: api.create_volume(names[k], labels={
                L.OWNER: fleet.runtime.owner, L.KIND: "workspace", L.WORKSPACE: f"t9-prune-{k}"}), "volume")
            on_host(fleet_lab, f"docker run --rm -u 1000:1000 -v {names[key]}:/workspace --entrypoint sh {image} -c "
                               f"'mkdir -p /workspace/.drape /workspace/app && head -c {mib}M /dev/zero > "
                               f"/workspace/app/blob && echo {{\\\"at\\\":\\\"{at}\\\"}} > "
                               "/workspace/.drape/installs.jsonl'")
        holder = on_host(fleet_lab, f"docker run -d -v {names['busy']}:/workspace --entrypoint sleep {image} 600"
                         ).strip()
        others = sum(w.kib for w in service.workspaces(engine, fleet).keep if w.volume not in names.values())
        budget_gib = (others + 4.5 * 1024) / 1024**2  # room for the host's other kept workspaces, and 4.5 MiB
        small = fleet.model_copy(update={"previews": fleet.previews.model_copy(update={
            "store": fleet.previews.store.model_copy(update={"workspace_budget_gib": budget_gib})})})
        found = service.workspaces(engine, small)
        ours = {w.volume: w for w in found.remove + found.keep if w.volume in names.values()}
        assert ours[names["old"]].kib >= 2048 and ours[names["old"]].last_start == made["old"][1]
        assert ours[names["busy"]].in_use
        assert [w.volume for w in found.remove if w.volume in names.values()] == [names["old"]]
        removed, left = prune(engine, [w for w in found.remove if w.volume in names.values()])
        assert removed == [names["old"]] and left == []
        present = on_host(fleet_lab, "docker volume ls -q").split()
        assert names["old"] not in present and names["new"] in present and names["busy"] in present
    finally:
        if holder:
            on_host(fleet_lab, f"docker rm -f {holder}")
        on_host(fleet_lab, "docker volume rm -f " + " ".join(names.values()))
