"""The shared store's trusted job and status: sources, the job's script and container, results and the hit rate,
as pure data (the job itself runs on the lab: tests/previews/test_store_lab.py)."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from drape_fleet.config.previews import PreviewsSettings, StoreSettings
from drape_fleet.config.provisioning import CacheSettings
from drape_fleet.store.job import (
    fill_script,
    inputs_archive,
    is_leftover,
    job_container,
    parse_results,
    source_dirs,
)
from drape_fleet.store.sources import Source, last_start, popular_source, select
from drape_fleet.store.status import hit_rate, parse_lines
from drape_fleet.store.workspaces import KeptWorkspace, parse_measure, plan


def project(name: str, lock: str, started: str) -> Source:
    return Source("project", name, {"package.json": b'{"name": "p"}', "pnpm-lock.yaml": lock.encode()}, started)


def test_popular_packages_become_one_project() -> None:
    source = popular_source(["react@^19", "@vitejs/plugin-react@^5", "next@>=16 <17"])
    assert json.loads(source.files["package.json"]) == {
        "name": "drape-store-popular", "private": True,
        "dependencies": {"@vitejs/plugin-react": "^5", "next": ">=16 <17", "react": "^19"}}


def test_selection_keeps_templates_popular_then_the_newest_projects_each_once() -> None:
    template = Source("template", "template react", {"package.json": b"{}", "pnpm-lock.yaml": b"a"})
    popular = popular_source(["react@^19"])
    projects = [project("old", "x", "2026-11-01T00:00:00.000Z"), project("new", "y", "2026-11-29T10:00:00.000Z"),
                project("same-as-template", "a", "2026-11-29T11:00:00.000Z"),
                project("mid", "z", "2026-11-20T00:00:00.000Z")]
    projects[2] = Source("project", "same-as-template", template.files, "2026-11-29T11:00:00.000Z")
    chosen = select([template], popular, projects, recent=3)
    assert [s.name for s in chosen] == ["template react", "popular packages", "new", "mid"]
    assert [s.name for s in select([template], None, projects, recent=0)] == ["template react"]


def test_last_start_is_the_last_recorded_install() -> None:
    lines = b'{"at": "2026-11-28T09:00:00.000Z", "path": "registry"}\nnot json\n' \
            b'{"at": "2026-11-29T09:00:00.000Z", "path": "kept"}\n{"path": "no time"}\n'
    assert last_start(lines) == "2026-11-29T09:00:00.000Z"
    assert last_start(b"") == ""


def test_the_job_runs_as_the_store_owner_with_only_the_store_writable() -> None:
    spec = job_container("drape-react:1", CacheSettings(), StoreSettings(), rebuild=False)
    host = spec["host_config"]
    assert spec["user"] == "10100:10100" and spec["name"] == "drape-store-job"
    assert host["binds"] == ["/srv/drape/pnpm-store:/pnpm-store:rw"]
    assert host["cap_drop"] == ["ALL"] and host["security_opt"] == ["no-new-privileges:true"]
    assert host["mem_limit"] == "3072m" and host["pids_limit"] == 4096
    assert set(host["tmpfs"]) == {"/workspace", "/tmp"} and "uid=10100" in host["tmpfs"]["/workspace"]


def test_a_fill_runs_the_supervisor_per_source_and_records_when_it_finished() -> None:
    script = fill_script(rebuild=False)
    assert "DRAPE_FILL_STORE=1 DRAPE_PNPM_STORE=\"$TARGET\"" in script and "TARGET=/pnpm-store;" in script
    assert "cd /workspace/app" in script  # the path previews install at (pnpm 10 registers projects by path)
    assert "--shared" not in script  # the supervisor holds the store's shared lock itself around pnpm
    # The writer lock a backup of the store takes too (deploys/backup.py), held for the whole job.
    assert script.splitlines()[2:4] == ['exec 9>>"$STORE/.warm.lock"', "flock --wait 600 9 || { echo 'DRAPE-FILL "
                                        "the store stayed locked by a backup: run again later'; exit 5; }"]
    assert '> "$STORE/.drape-warm.json"' in script and '"kind": "warm"' in script


def test_a_rebuild_swaps_only_under_the_exclusive_lock_and_keeps_the_old_store_when_essentials_fail() -> None:
    script = fill_script(rebuild=True)
    assert "TARGET=/pnpm-store/.next;" in script
    swap = next(line for line in script.splitlines() if line.startswith("flock --exclusive"))
    assert swap.startswith('flock --exclusive --wait 600 "$STORE" sh -c')
    keep = script.index("if [ $essential_failed = 1 ]")
    assert keep < script.index("flock --exclusive") < script.index('rm -rf "$STORE/.old"')
    assert "*-template|*-popular) essential_failed=1" in script


def test_inputs_archive_and_results_map_back_to_their_sources() -> None:
    sources = [Source("template", "template react", {"package.json": b"{}", "pnpm-lock.yaml": b"lock"}),
               popular_source(["react@^19"])]
    assert source_dirs(sources) == ["000-template", "001-popular"]
    with tarfile.open(fileobj=io.BytesIO(inputs_archive(sources))) as tar:
        assert sorted(tar.getnames()) == ["fill/000-template", "fill/000-template/package.json",
                                          "fill/000-template/pnpm-lock.yaml", "fill/001-popular",
                                          "fill/001-popular/package.json"]
    logs = ("noise\n"
            'DRAPE-FILL 000-template {"fill_s": 1.5, "fill": {"code": 0, "pnpm": 10, "reused": 3, "downloaded": 7}}\n'
            'DRAPE-FILL 001-popular {"fill_s": 2, "fill": {"code": 1, "error": "pnpm exited with 1: ERR"}}\n'
            "DRAPE-FILL 002-project {}\n"
            "DRAPE-FILL-LOG 002-project drape-preview: failed: package.json is not valid JSON\n")
    results = parse_results(logs, [*sources, project("p", "l", "")])
    assert [(r.source, r.ok, r.downloaded, r.seconds) for r in results] == [
        ("template react", True, 7, 1.5), ("popular packages", False, None, 2), ("p", False, None, None)]
    assert results[1].note == "failed: pnpm exited with 1: ERR"
    assert results[2].note == "failed: drape-preview: failed: package.json is not valid JSON"


def test_hit_rate_counts_store_installs_against_registry_ones_in_the_window() -> None:
    records = parse_lines(b"\n".join([
        b'{"at": "2026-11-29T10:00:00.000Z", "path": "shared store"}',
        b'{"at": "2026-11-29T10:01:00.000Z", "path": "shared store"}',
        b'{"at": "2026-11-29T10:02:00.000Z", "path": "registry"}',
        b'{"at": "2026-11-29T10:03:00.000Z", "path": "kept"}',
        b'{"at": "2026-11-29T10:04:00.000Z", "path": "npm"}',
        b'{"at": "2026-11-01T10:00:00.000Z", "path": "registry"}',  # outside the window
        b"garbage", b'{"path": "shared store"}']))
    rate = hit_rate(records, since=datetime(2026, 11, 28, tzinfo=UTC))
    assert (rate.hits, rate.misses, rate.kept, rate.other) == (2, 1, 1, 1)
    assert rate.rate == pytest.approx(2 / 3)
    assert rate.describe() == "67% (2/3; 1 kept, 1 npm/yarn)"
    assert hit_rate([], since=datetime(2026, 11, 28, tzinfo=UTC)).describe() == "- (0/0; 0 kept, 0 npm/yarn)"


@pytest.mark.parametrize(("data", "words"), [
    ({"store": {"popular": ["react"]}}, "store.popular.0"),
    ({"store": {"popular": ["react@^19; rm -rf /"]}}, "store.popular.0"),
    ({"store": {"recent_projects": -1}}, "store.recent_projects"),
    ({"ingress": {"domain": "Preview.Drape.dev"}}, "ingress.domain"),
    ({"ingress": {"domain": "preview.drape.dev", "gate_port": 8443, "https_port": 8443}}, "share a port"),
    ({"ingress": {"domain": "preview.drape.dev", "certificates": "acme"}}, "ingress.certificates"),
])
def test_bad_previews_settings_are_refused(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PreviewsSettings.model_validate(data)
    assert words in str(caught.value)


NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "created", "leftover"), [
    ("exited", "2026-11-29T14:59:59.123456789Z", True),  # the host died or rebooted under the job
    ("dead", "2026-11-29T14:59:59Z", True),
    ("created", "2026-11-29T14:40:00.5Z", True),  # a client died between create and start
    ("created", "2026-11-29T14:59:30.123456789Z", False),  # another fill about to start it
    ("running", "2026-11-28T00:00:00Z", False),  # a long job is still a job
    ("created", "not a time", False),
])
def test_a_job_container_that_cannot_be_running_is_a_leftover(status: str, created: str, leftover: bool) -> None:
    assert is_leftover({"State": {"Status": status}, "Created": created}, NOW) is leftover


def kept(volume: str, mib: int, last: str, in_use: bool = False) -> KeptWorkspace:
    return KeptWorkspace(volume, volume.removeprefix("drape-ws-"), mib * 1024, last, in_use)


def test_pruning_removes_the_least_recently_started_idle_workspaces_until_the_rest_fit() -> None:
    every = [kept("drape-ws-a", 400, "2026-11-20T10:00:00.000Z"), kept("drape-ws-b", 300, ""),  # never started
             kept("drape-ws-c", 500, "2026-11-28T10:00:00.000Z"), kept("drape-ws-d", 900, "2026-11-01T00:00:00Z",
                                                                         in_use=True),
             kept("drape-ws-e", 200, "2026-11-29T09:00:00.000Z")]
    chosen = plan(every, budget_kib=1700 * 1024)
    assert [w.volume for w in chosen.remove] == ["drape-ws-b", "drape-ws-a"]  # the oldest idle ones, in order
    assert chosen.after_kib == 1600 * 1024 and chosen.total_kib == 2300 * 1024
    assert plan(every, budget_kib=10_000 * 1024).remove == ()  # within budget: nothing goes
    crowded = plan(every, budget_kib=100 * 1024)
    assert "drape-ws-d" not in {w.volume for w in crowded.remove} and len(crowded.remove) == 4  # in use stays


def test_measure_lines_map_to_the_runtimes_volumes_only() -> None:
    labels = {"drape-ws-a": {"drape.workspace": "a"}, "drape-ws-b": {"drape.workspace": "b"}}
    output = ("KEPT drape-ws-a 2048 2026-11-29T09:00:00.000Z\nKEPT drape-ws-b 10 -\nKEPT other-volume 5 -\n"
              "KEPT drape-ws-a not-a-size -\nnoise\n")
    assert parse_measure(output, labels, in_use=set()) == [
        KeptWorkspace("drape-ws-a", "a", 2048, "2026-11-29T09:00:00.000Z", False),
        KeptWorkspace("drape-ws-b", "b", 10, "", False)]
