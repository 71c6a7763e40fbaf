"""Real projects, made by their generators, started by the Node 22 template from the lab's git server with a
shared store the trusted job filled (``stored_lab``): the good ones reach `ready` with their start page compiled
and served on $PORT whatever their own configuration says, installing offline from the store; the bad ones fail
fast with a reason a user understands. Every project starts at once, as on a host (``outcomes``), and each test
reads its own. (Each phase's timings, cold and warm, are the benchmark's: `invoke bench.preview`.)"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from preview_support import Outcome, PreviewLab, run_preview, run_previews

pytestmark = [pytest.mark.lab, pytest.mark.templates]

GOOD = ("vite-react", "vite-vue", "next-app", "vite-own-port", "vite-npm")
BAD: dict[str, tuple[str, float]] = {  # project: (what the reason says, seconds it may take at most)
    "node16": ("asks for Node 16", 30),
    "outdated-lockfile": ("pnpm-lock.yaml is out of date with package.json", 60),
    "not-a-framework": ("neither Next.js nor Vite", 30),
    "config-crashes": ("the dev server exited (code 1) before answering on port 3000", 90),
    "never-answers": ("nothing answers on port 3000 after 5 s", 90),  # the listen timeout shortened to 5 s
}


def start(lab: PreviewLab, project: str, **kwargs: Any) -> Outcome:
    token = lab.token(project)
    return run_preview(lab.client, lab.image, network=lab.settings.public_network, name=f"wtf-test-{project}",
                       repo=lab.url(project), token=token.repo_token(), ca=lab.ca, store=lab.store, keep=True,
                       **kwargs)


@pytest.fixture(scope="module")
def outcomes(stored_lab: PreviewLab) -> Iterator[dict[str, Outcome]]:
    runs = {name: functools.partial(start, stored_lab, name, timeout_s=300) for name in GOOD}
    runs |= {name: functools.partial(start, stored_lab, name, timeout_s=within,
                                     env={"DRAPE_LISTEN_TIMEOUT_S": "5"} if name == "never-answers" else {})
             for name, (_, within) in BAD.items()}
    found = run_previews(runs)
    yield found
    for outcome in found.values():
        outcome.container.remove(force=True)


def page(lab: PreviewLab, container: Any, address: str = "127.0.0.1") -> str:
    """The start page as another container on the network gets it (not from inside the preview)."""
    script = f"fetch('http://{address}:3000/').then(r => r.text()).then(t => process.stdout.write(t))"
    if address == "127.0.0.1":
        code, out = container.exec_run(["node", "-e", script])
        assert code == 0, out
        return str(out.decode())
    return str(lab.client.containers.run(lab.image, ["node", "-e", script], entrypoint=[],
                                         network=lab.settings.public_network, remove=True).decode())


@pytest.mark.parametrize(("project", "marker"), [
    ("vite-react", "<title>Drape lab vite-react</title>"),
    ("vite-vue", "<title>Drape lab vite-vue</title>"),
    ("next-app", "Drape lab next-app"),  # server-rendered: the page itself was compiled before `ready`
])
def test_generated_project_is_ready_with_its_page_compiled(stored_lab: PreviewLab, outcomes: dict[str, Outcome],
                                                          project: str, marker: str) -> None:
    outcome = outcomes[project]
    assert outcome.phase == "ready", (outcome.phase, outcome.details, outcome.logs[-3000:])
    assert outcome.timings["node"].startswith("22."), outcome.timings
    assert outcome.timings["install_path"] == "shared store"  # every package from the trusted job's store
    assert outcome.timings["page_status"] == 200
    assert outcome.details[0].startswith(("Vite project, Node 22.", "Next.js project, Node 22."))  # said throughout
    assert marker in page(stored_lab, outcome.container)


def test_own_port_in_env_and_config_is_overridden(stored_lab: PreviewLab, outcomes: dict[str, Outcome]) -> None:
    """VITE_PORT=8848 in .env and server.port/host in vite.config: the dev server still listens on $PORT on
    every interface (reached here from another container, not from inside)."""
    outcome = outcomes["vite-own-port"]
    assert outcome.phase == "ready", (outcome.details, outcome.logs[-2000:])
    address = outcome.container.attrs["NetworkSettings"]["Networks"][stored_lab.settings.public_network]["IPAddress"]
    assert "<title>Drape lab vite-own-port</title>" in page(stored_lab, outcome.container, address)


def test_npm_lockfile_starts_on_the_slower_path_and_says_so(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["vite-npm"]
    assert outcome.phase == "ready", (outcome.details, outcome.logs[-2000:])
    assert outcome.timings["install_path"] == "npm"
    assert any("slower path" in line for line in outcome.details), outcome.details


@pytest.mark.parametrize("project", list(BAD))
def test_bad_project_fails_fast_with_a_reason(outcomes: dict[str, Outcome], project: str) -> None:
    outcome = outcomes[project]
    words, within = BAD[project]
    assert outcome.phase.startswith("failed: "), (outcome.phase, outcome.seconds, outcome.logs[-2000:])
    assert words in outcome.why and outcome.seconds < within
    assert outcome.inspect["State"]["Status"] == "exited"  # nothing left running or hanging
    if project == "config-crashes":  # the reason comes with the log's headline, not a stack trace
        assert any("does-not-exist.js" in line for line in outcome.details), outcome.details
        assert not any(line.lstrip().startswith("at ") for line in outcome.details)


def test_next_keeps_its_compile_cache_in_the_workspace_across_a_stop(stored_lab: PreviewLab) -> None:
    """Next.js writes Turbopack's compile cache only as it stops, and only when given the time (its CLI kills its
    server 100 ms after a signal unless told to wait). Stopped as the runtime stops a preview (SIGTERM through
    docker-init, 10 s), the workspace keeps the cache; its next start finds it, installs nothing, and its own
    `next dev` starts although the previous one held the project's lock until it had written it."""
    from docker.types import Mount

    volume = stored_lab.client.volumes.create(labels={"drape.test": "previews"})
    mounts = [Mount("/workspace", volume.name, type="volume")]

    def kept_start() -> Outcome:
        token = stored_lab.token("next-app")
        return run_preview(stored_lab.client, stored_lab.image, network=stored_lab.settings.public_network,
                           name="wtf-test-next-kept", repo=stored_lab.url("next-app"), token=token.repo_token(),
                           ca=stored_lab.ca, store=stored_lab.store, keep=True, tmpfs={}, init=True, mounts=mounts)

    try:
        first = kept_start()
        assert first.phase == "ready", (first.details, first.logs[-2000:])
        first.container.stop(timeout=10)
        first.container.remove()
        listing = stored_lab.client.containers.run(
            stored_lab.image, ["sh", "-c", "find /w/app/.next/dev/cache/turbopack -name '*.sst' | wc -l; "
                               "du -sk /w/app/.next/dev/cache/turbopack"],
            entrypoint=[], user="1000:1000", network_mode="none", remove=True,
            volumes={volume.name: {"bind": "/w", "mode": "ro"}}).decode()
        tables, size = listing.split()[0], listing.split()[1]
        assert int(tables) > 0 and int(size) > 1024, listing  # Turbopack's tables, megabytes of them

        again = kept_start()
        assert again.phase == "ready", (again.details, again.logs[-2000:])
        assert again.timings["install_path"] == "kept", again.timings
        again.container.remove(force=True)
    finally:
        volume.remove(force=True)
