"""Fetching a user's repository: refs, tokens that are wrong, expired, revoked or for another repository, missing
repositories and refs, a full disk. Each ends in a failed phase a user understands, in seconds; and the token
never shows in the container's configuration, process list, logs or files."""

from __future__ import annotations

import subprocess
import time

import pytest
from preview_support import PreviewLab, handover_tar, read_file, run_preview

from drape_fleet.lab import gitserver

pytestmark = [pytest.mark.lab, pytest.mark.templates]
REFUSED = "the repository refused the access token (wrong, revoked or expired)"


def start(lab: PreviewLab, repo: str, *, credential: bytes | None, ref: str | None = None, **kwargs: object) -> object:
    return run_preview(lab.client, lab.image, network=lab.settings.public_network, name="wtf-test-clone",
                       repo=lab.url(repo), ref=ref, credential=credential, ca=lab.ca, timeout_s=60, **kwargs)


@pytest.mark.parametrize("case", ["wrong", "expired", "revoked", "another repository", "none"])
def test_a_token_that_does_not_open_the_repository_is_refused(preview_lab: PreviewLab, case: str) -> None:
    tokens = gitserver.Tokens(preview_lab.settings)
    credential: bytes | None
    if case == "wrong":
        credential = b"username=preview-0000\npassword=not-the-secret\n"
    elif case == "expired":
        credential = tokens.create("vite-react", ttl_s=-1).credential()
    elif case == "revoked":
        token = tokens.create("vite-react")
        tokens.revoke(token)
        credential = token.credential()
    elif case == "another repository":
        credential = tokens.create("vite-vue").credential()
    else:
        credential = None
    outcome = start(preview_lab, "vite-react", credential=credential)
    assert outcome.phase == f"failed: {REFUSED}: reconnect the repository", outcome.details  # type: ignore[attr-defined]
    assert outcome.seconds < 20  # type: ignore[attr-defined]


def test_missing_repository_and_missing_ref(preview_lab: PreviewLab) -> None:
    token = preview_lab.token("vite-react")
    missing = start(preview_lab, "no-such-repo", credential=token.credential())
    assert "does not exist, or this token cannot see it" in missing.why  # type: ignore[attr-defined]
    bad_ref = start(preview_lab, "vite-react", credential=token.credential(), ref="no-such-branch")
    assert bad_ref.why == "the branch, tag or commit 'no-such-branch' does not exist in the repository"  # type: ignore[attr-defined]


@pytest.mark.parametrize("ref", ["feature", "v1", "commit"])
def test_refs_branch_tag_and_commit_are_checked_out_shallow_and_blobless(preview_lab: PreviewLab, ref: str) -> None:
    bare = gitserver.root_dir(preview_lab.settings) / "repos" / "not-a-framework.git"
    revision = {"commit": "feature", "v1": "v1^{commit}"}.get(ref, ref)
    wanted = subprocess.run(["git", "-C", str(bare), "rev-parse", revision], capture_output=True, text=True,
                            check=True).stdout.strip()
    # The commit case asks for the feature branch's tip by its id: not on main, so only a fetch by id finds it.
    # It fails after the clone (no framework): the clone is what counts.
    token = preview_lab.token("not-a-framework")
    outcome = start(preview_lab, "not-a-framework", credential=token.credential(),
                    ref=wanted if ref == "commit" else ref, keep=True)
    container = outcome.container  # type: ignore[attr-defined]
    try:
        assert "neither Next.js nor Vite" in outcome.why  # type: ignore[attr-defined]
        git = "/workspace/app/.git/"
        head = (read_file(container, git + "HEAD") or "").strip()
        if head.startswith("ref: "):  # a branch or tag checkout: HEAD names the ref
            ref_file = head.removeprefix("ref: ")
            head = (read_file(container, git + ref_file) or "").strip() or next(
                line.split()[0] for line in (read_file(container, git + "packed-refs") or "").splitlines()
                if line.endswith(ref_file))
        shallow = (read_file(container, git + "shallow") or "").split()
        config = read_file(container, git + "config") or ""
    finally:
        container.remove(force=True)
    assert head == wanted
    assert shallow == [wanted]  # depth 1
    assert "partialclonefilter = blob:none" in config
    assert token.secret not in config and "credential" not in config


def test_repository_too_large_for_the_disk(preview_lab: PreviewLab) -> None:
    token = preview_lab.token("big-assets")  # 64 MB of incompressible files, on a 40 MB workspace
    outcome = start(preview_lab, "big-assets", credential=token.credential(),
                    tmpfs={"/workspace": "size=40m,uid=1000,gid=1000"})
    assert outcome.why.startswith("the repository does not fit the preview's disk"), outcome.details  # type: ignore[attr-defined]


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
                                                      "DRAPE_PNPM_STORE": "/pnpm-store"})
    try:
        container.put_archive("/drape", handover_tar(token.credential(), preview_lab.ca))
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
        assert read_file(container, "/drape/handover/git-credentials") is None  # deleted after the clone
        container.reload()
        assert token.secret not in str(container.attrs)  # env, labels, command, mounts
        assert token.secret not in container.logs().decode(errors="replace")
        # The shared store is read-only in every preview: nothing of this one can be there.
        search = f"grep -rl --exclude-dir=proc --exclude-dir=sys --exclude-dir=pnpm-store -e '{token.secret}' /"
        _, found = container.exec_run(["sh", "-c", f"{search} 2>/dev/null | head -5"])
        assert found.decode().strip() == "", found
    finally:
        container.remove(force=True)
