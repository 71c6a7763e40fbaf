"""Real projects, made by their generators, started by the Node 22 template from the lab's git server: the good
ones reach `ready` with their start page compiled and served on $PORT whatever their own configuration says;
the bad ones fail fast with a reason a user understands."""

from __future__ import annotations

import pytest
from preview_support import PreviewLab, run_preview

pytestmark = [pytest.mark.lab, pytest.mark.templates]


def start_page(lab: PreviewLab, outcome_container: object) -> str:
    code, out = outcome_container.exec_run(  # type: ignore[attr-defined]
        ["node", "-e", "fetch('http://127.0.0.1:3000/').then(r => r.text()).then(t => process.stdout.write(t))"])
    assert code == 0, out
    return str(out.decode())


@pytest.mark.parametrize(("project", "marker"), [
    ("vite-react", "<title>Drape lab vite-react</title>"),
    ("vite-vue", "<title>Drape lab vite-vue</title>"),
    ("next-app", "Drape lab next-app"),  # server-rendered: the page itself was compiled before `ready`
])
def test_generated_project_is_ready_with_its_page_compiled(preview_lab: PreviewLab, project: str,
                                                          marker: str) -> None:
    token = preview_lab.token(project)
    outcome = run_preview(preview_lab.client, preview_lab.image, network=preview_lab.settings.public_network,
                          name=f"wtf-test-{project}", repo=preview_lab.url(project), credential=token.credential(),
                          ca=preview_lab.ca, keep=True, timeout_s=300)
    try:
        assert outcome.phase == "ready", (outcome.phase, outcome.details, outcome.logs[-3000:])
        assert outcome.timings["node"].startswith("22."), outcome.timings
        assert outcome.timings["page_status"] == 200
        assert marker in start_page(preview_lab, outcome.container)
    finally:
        outcome.container.remove(force=True)


def test_own_port_in_env_and_config_is_overridden(preview_lab: PreviewLab) -> None:
    """VITE_PORT=8848 in .env and server.port/host in vite.config: the dev server still listens on $PORT on
    every interface (reached here from another container, not from inside)."""
    token = preview_lab.token("vite-own-port")
    outcome = run_preview(preview_lab.client, preview_lab.image, network=preview_lab.settings.public_network,
                          name="wtf-test-own-port", repo=preview_lab.url("vite-own-port"),
                          credential=token.credential(), ca=preview_lab.ca, keep=True, timeout_s=300)
    try:
        assert outcome.phase == "ready", (outcome.details, outcome.logs[-2000:])
        address = outcome.container.attrs["NetworkSettings"]["Networks"][preview_lab.settings.public_network][
            "IPAddress"]
        page = preview_lab.client.containers.run(
            preview_lab.image, ["node", "-e", f"fetch('http://{address}:3000/').then(r => r.text())"
                                              ".then(t => process.stdout.write(t))"],
            entrypoint=[], network=preview_lab.settings.public_network, remove=True).decode()
        assert "<title>Drape lab vite-own-port</title>" in page
    finally:
        outcome.container.remove(force=True)


def test_npm_lockfile_starts_on_the_slower_path_and_says_so(preview_lab: PreviewLab) -> None:
    token = preview_lab.token("vite-npm")
    outcome = run_preview(preview_lab.client, preview_lab.image, network=preview_lab.settings.public_network,
                          name="wtf-test-npm", repo=preview_lab.url("vite-npm"), credential=token.credential(),
                          ca=preview_lab.ca, timeout_s=300)
    assert outcome.phase == "ready", (outcome.details, outcome.logs[-2000:])
    assert outcome.timings["install_path"] == "npm"
    assert any("slower path" in line for line in outcome.details), outcome.details


@pytest.mark.parametrize(("project", "words", "within_s"), [
    ("node16", "asks for Node 16", 30),
    ("outdated-lockfile", "pnpm-lock.yaml is out of date with package.json", 60),
    ("not-a-framework", "neither Next.js nor Vite", 30),
    ("config-crashes", "the dev server exited (code 1) before answering on port 3000", 90),
    ("never-answers", "nothing answers on port 3000 after 15 s", 120),
])
def test_bad_project_fails_fast_with_a_reason(preview_lab: PreviewLab, project: str, words: str,
                                              within_s: float) -> None:
    token = preview_lab.token(project)
    outcome = run_preview(preview_lab.client, preview_lab.image, network=preview_lab.settings.public_network,
                          name=f"wtf-test-{project}", repo=preview_lab.url(project), credential=token.credential(),
                          ca=preview_lab.ca, env={"DRAPE_LISTEN_TIMEOUT_S": "15"}, timeout_s=within_s)
    assert outcome.phase.startswith("failed: "), (outcome.phase, outcome.seconds, outcome.logs[-2000:])
    assert words in outcome.why
    assert outcome.inspect["State"]["Status"] == "exited"  # nothing left running or hanging
    if project == "config-crashes":  # the reason comes with the log's headline, not a stack trace
        assert any("does-not-exist.js" in line for line in outcome.details), outcome.details
        assert not any(line.lstrip().startswith("at ") for line in outcome.details)
