"""Fetching a user's repository: refs, tokens that are wrong, expired, revoked or for another repository, missing
repositories and refs, a full disk. Each ends in a failed phase a user understands, in seconds; and the token
never shows in the container's configuration, process list, logs or files."""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from preview_support import TOKEN_FILE, Outcome, PreviewLab, handover_tar, read_file, run_preview, run_previews

from drape_fleet.lab import gitserver

pytestmark = [pytest.mark.lab, pytest.mark.templates]
REFUSED = "the repository refused the access token (wrong, revoked or expired)"


def start(lab: PreviewLab, repo: str, name: str, *, token: str | None, ref: str | None = None,
          **kwargs: Any) -> Outcome:
    return run_preview(lab.client, lab.image, network=lab.settings.public_network, name=f"wtf-test-clone-{name}",
                       repo=lab.url(repo), ref=ref, token=token, ca=lab.ca, timeout_s=60, keep=True, **kwargs)


TOKEN_CASES = ("wrong", "expired", "revoked", "another repository", "none")
REFS = ("feature", "v1", "commit")
REF_SECRET: list[str] = []
"""The secret of the token the ref cases clone with (set by ``outcomes``): searched for in what the clone left."""


def rev_parse(lab: PreviewLab, revision: str) -> str:
    bare = gitserver.root_dir(lab.settings) / "repos" / "not-a-framework.git"
    return subprocess.run(["git", "-C", str(bare), "rev-parse", revision], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def outcomes(preview_lab: PreviewLab) -> Iterator[dict[str, Outcome]]:
    """Every fetch case at once, each its own preview (as a host runs them); each test reads its own."""
    lab = preview_lab
    tokens = gitserver.Tokens(lab.settings)
    revoked = tokens.create("vite-react")
    tokens.revoke(revoked)
    given = {"wrong": "preview-0000:not-the-secret", "expired": tokens.create("vite-react", ttl_s=-1).repo_token(),
             "revoked": revoked.repo_token(), "another repository": tokens.create("vite-vue").repo_token(),
             "none": None}
    runs: dict[str, Callable[[], Outcome]] = {
        f"token {case}": functools.partial(start, lab, "vite-react", f"token-{i}", token=given[case])
        for i, case in enumerate(TOKEN_CASES)}
    runs["no such repository"] = functools.partial(start, lab, "no-such-repo", "missing-repo",
                                                   token=lab.token("vite-react").repo_token())
    runs["no such ref"] = functools.partial(start, lab, "vite-react", "missing-ref", ref="no-such-branch",
                                            token=lab.token("vite-react").repo_token())
    # The commit case asks for the feature branch's tip by its id: not on main, so only a fetch by id finds it.
    # Each fails after the clone (no framework): the clone is what counts.
    ref_token = lab.token("not-a-framework")
    REF_SECRET.append(ref_token.secret)
    for ref in REFS:  # the workspace in the writable layer, not in memory: the test reads .git through the engine
        runs[f"ref {ref}"] = functools.partial(start, lab, "not-a-framework", f"ref-{ref}",
                                               ref=rev_parse(lab, "feature") if ref == "commit" else ref,
                                               token=ref_token.repo_token(), tmpfs={})
    # 64 MB of incompressible files, on a 40 MB workspace
    runs["too large"] = functools.partial(start, lab, "big-assets", "too-large",
                                          token=lab.token("big-assets").repo_token(),
                                          tmpfs={"/workspace": "size=40m,uid=1000,gid=1000"})
    found = run_previews(runs)
    yield found
    for outcome in found.values():
        outcome.container.remove(force=True)


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_a_token_that_does_not_open_the_repository_is_refused(outcomes: dict[str, Outcome], case: str) -> None:
    outcome = outcomes[f"token {case}"]
    assert outcome.phase == f"failed: {REFUSED}: reconnect the repository", outcome.details
    assert outcome.seconds < 20


def test_missing_repository_and_missing_ref(outcomes: dict[str, Outcome]) -> None:
    assert "does not exist, or this token cannot see it" in outcomes["no such repository"].why
    assert outcomes["no such ref"].why == "the branch, tag or commit 'no-such-branch' does not exist in the repository"


@pytest.mark.parametrize("ref", REFS)
def test_refs_branch_tag_and_commit_are_checked_out_shallow_and_blobless(preview_lab: PreviewLab,
                                                                          outcomes: dict[str, Outcome],
                                                                          ref: str) -> None:
    wanted = rev_parse(preview_lab, {"commit": "feature", "v1": "v1^{commit}"}.get(ref, ref))
    outcome = outcomes[f"ref {ref}"]
    container = outcome.container
    assert "neither Next.js nor Vite" in outcome.why
    git = "/workspace/app/.git/"
    head = (read_file(container, git + "HEAD") or "").strip()
    if head.startswith("ref: "):  # a branch or tag checkout: HEAD names the ref
        ref_file = head.removeprefix("ref: ")
        head = (read_file(container, git + ref_file) or "").strip() or next(
            line.split()[0] for line in (read_file(container, git + "packed-refs") or "").splitlines()
            if line.endswith(ref_file))
    shallow = (read_file(container, git + "shallow") or "").split()
    config = read_file(container, git + "config") or ""
    assert head == wanted
    assert shallow == [wanted]  # depth 1
    assert "partialclonefilter = blob:none" in config
    assert "credential" not in config and REF_SECRET[-1] not in config  # nothing of the token stays


def test_repository_too_large_for_the_disk(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["too large"]
    assert outcome.why.startswith("the repository does not fit the preview's disk"), outcome.details


def test_the_token_never_leaks(stored_lab: PreviewLab) -> None:
    """While the (large) repository is cloned, the process list is sampled; afterwards the container's
    configuration, logs and every file it can read are searched for the secret. (It installs from the shared
    store, read-only at /pnpm-store, so its own code runs before the search as a preview's does.)"""
    preview_lab = stored_lab
    token = preview_lab.token("big-assets")
    name = "wtf-test-leak"
    client = preview_lab.client
    container = client.containers.create(preview_lab.image, name=name, network=preview_lab.settings.public_network,
                                         user="1000:1000", labels={"drape.test": "previews"},
                                         volumes={str(preview_lab.store): {"bind": "/pnpm-store", "mode": "ro"}},
                                         environment={"PORT": "3000", "DRAPE_REPO": preview_lab.url("big-assets"),
                                                      "DRAPE_PNPM_STORE": "/pnpm-store",
                                                      "DRAPE_REPO_TOKEN_FILE": TOKEN_FILE})
    try:
        container.put_archive("/", handover_tar(token.repo_token(), preview_lab.ca))
        container.start()
        commands: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            container.reload()
            if container.status != "running":
                break
            try:
                listing = client.api.top(container.id, ps_args="-ww -o pid,args")["Processes"]
                commands += [" ".join(p[-1:]) for p in listing]
            except Exception:  # noqa: S112 - the container may stop between reload and top
                continue
            phase = (read_file(container, "/drape/phase") or "").strip().splitlines()
            if phase and phase[-1].startswith(("ready", "failed")):
                break
            time.sleep(0.05)
        assert any("git" in c and "clone" in c for c in commands), commands[:20]  # the sampling saw the clone
        assert not [c for c in commands if token.secret in c]
        assert read_file(container, TOKEN_FILE) is None  # deleted after the clone
        container.reload()
        assert token.secret not in str(container.attrs)  # env, labels, command, mounts
        assert token.secret not in container.logs().decode(errors="replace")
        # The shared store is read-only in every preview: nothing of this one can be there.
        search = f"grep -rl --exclude-dir=proc --exclude-dir=sys --exclude-dir=pnpm-store -e '{token.secret}' /"
        _, found = container.exec_run(["sh", "-c", f"{search} 2>/dev/null | head -5"])
        assert found.decode().strip() == "", found
    finally:
        container.remove(force=True)
