"""Issue 8, item 5: a replacement on another host (drain, failover before ready) carries the user's project (repo,
ref, env, a fresh token), never the framework's starter; the original stays until the replacement is ready."""

from __future__ import annotations

from runtime_testkit import World, down, eventually

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.projects import Project
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.spec import REPO_TOKEN_FILE

REPO = "https://github.com/acme/shop.git"
PROJECT = {"repo": REPO, "ref": "feature/cart", "env": {"API_URL": "https://api.acme.test", "FEATURE_X": "1"}}


def preview(world: World, workspace: str) -> object:
    return next(c for h in world.hosts.values() for c in h.named(f"drape-pv-{workspace}"))


def test_a_drained_preview_comes_back_with_its_project_and_a_fresh_token(world: World) -> None:
    issued: list[tuple[str, str, str]] = []

    def project_source(workspace: str, user: str, project: str) -> Project:
        issued.append((workspace, user, project))
        return Project(repo_token="ghs_fresh")

    starter = world.runtime()  # the process the user started it from...
    status = starter.start("shop", "u1", "tiny", project="p-shop", repo_token="ghs_first", **PROJECT, wait=5)
    original = preview(world, "shop")
    assert original.files[REPO_TOKEN_FILE][0] == b"ghs_first"  # type: ignore[attr-defined]
    ops = world.runtime(project_source=project_source)  # ...and ops, draining from another process
    report = ops.drain(status.host or "", idle_s=3600, deadline_s=0, poll_s=0.05)
    assert report.done and report.moved == [f"shop -> {report.moved[0].split(' -> ')[1]}"]
    moved = preview(world, "shop")
    env = moved.env  # type: ignore[attr-defined]
    assert (env["DRAPE_REPO"], env["DRAPE_REF"], env["API_URL"], env["FEATURE_X"]) == \
        (REPO, "feature/cart", "https://api.acme.test", "1")  # the project, not the starter
    assert moved.files[REPO_TOKEN_FILE][0] == b"ghs_fresh"  # type: ignore[attr-defined]
    assert issued == [("shop", "u1", "p-shop")]
    for secret in ("ghs_first", "ghs_fresh"):  # the token is in the file only
        assert secret not in repr(moved.body) and secret not in repr(moved.labels)  # type: ignore[attr-defined]
    assert moved.labels[L.REPO] == REPO and moved.labels[L.ENV_KEYS] == "API_URL,FEATURE_X"  # type: ignore[attr-defined]


def test_a_project_that_cannot_be_rebuilt_is_not_moved_and_its_original_stays(world: World) -> None:
    starter = world.runtime()
    status = starter.start("private", "u1", "tiny", repo=REPO, repo_token="ghs_first", wait=5)
    ops = world.runtime()  # no project_source: nobody can issue the token again
    report = ops.drain(status.host or "", idle_s=3600, deadline_s=0, poll_s=0.05)
    assert not report.done and "repo_token could not be recovered" in report.failed[0]
    assert world.owned(status.host or "") == ["drape-pv-private"]  # still serving where it was
    assert sum(len(names) for names in world.everywhere().values()) == 1  # and no starter was made anywhere


def test_the_original_stays_until_its_replacement_is_ready(world: World) -> None:
    runtime = world.runtime(queue_timeout_s=30)
    status = runtime.start("slowmove", "u1", "tiny", **PROJECT, wait=5)
    for name, host in world.hosts.items():
        host.ready_on_start = name == status.host
    record = next(p for p in runtime.observer.host_view(status.host or "").previews if p.workspace == "slowmove")
    reaper = world.runtime()
    world.clock.advance(60)  # the move comes a while after the start
    with world.ticking(seconds=30):
        moved = runtime.move(record, timeout=2)  # the replacement never gets ready in time
        assert reaper.reap().removed == []  # meanwhile, another process's reaper left both copies alone
    assert moved.phase is not Phase.READY
    assert world.owned(status.host or "") == ["drape-pv-slowmove"]  # the original stayed
    assert runtime.status("slowmove").container_id == status.container_id  # type: ignore[union-attr]


def test_a_preview_taken_over_without_its_token_is_lost_not_replaced_by_the_starter(world: World) -> None:
    starter = world.runtime()
    for host in world.hosts.values():
        host.ready_on_start = False
    starter.start("tok", "u1", "tiny", repo=REPO, repo_token="ghs_first")
    follower = world.runtime()  # another process follows it (status), without the token
    eventually(lambda: follower.status("tok"))  # once started: a claim created but not started serves nothing
    starter.close()  # the process that had the token is gone (a restart): only the follower is left to act
    host = next(n for n, h in world.hosts.items() if h.named("drape-pv-tok"))
    world.hosts[host].down = True
    down(follower, host)
    lost = eventually(lambda: (s := follower.status("tok")) and s.phase is Phase.LOST and s)
    assert "repo_token could not be recovered" in (lost.error or "")
    assert not [n for name, names in world.everywhere().items() if name != host for n in names]  # no starter
