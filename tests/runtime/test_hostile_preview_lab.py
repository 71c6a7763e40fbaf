"""Issue 8, item 1, on real engines: what a tenant does inside its own preview bounds every read the backend makes
of it. The tenant acts as the preview's user (uid 1000, ``docker exec`` through the outer engine), the way a
user's code would: a sparse 64 GB phase file, a phase full of terminal escapes, a dev server that sends its status
line a byte a second (busybox httpd hands the connection to a CGI script that trickles).

Before the fix the phase file was read whole through the archive API (64 GB into the backend's memory) and the
readiness probe used ``http.client``, whose timeout is per socket read: either held ``start``, ``status`` and
``previews`` for as long as the tenant liked.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.status import PreviewStatus
from drape_fleet.runtime.untrusted import TEXT_MAX_CHARS

pytestmark = pytest.mark.lab

T = TypeVar("T")
READ_BUDGET_S = 1.0
BOUND_S = 4 * READ_BUDGET_S
"""A call that reads from a hostile preview returns within a few read budgets (one engine round trip or two
around each bounded read), on a loaded 2-core machine too."""

TRICKLE_CGI = r"""#!/bin/sh
printf HTTP
while :; do sleep 1; printf /; done
"""


def eventually(check: Callable[[], T | None], within: float = 30) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {within} s")


def as_tenant(lab: RuntimeLab, host: str, workspace: str, script: str) -> str:
    """Run ``script`` inside the workspace's preview as the preview's own user; its output."""
    quoted = script.replace("'", "'\"'\"'")
    return lab.on_host(host, f"docker exec -u 1000 drape-pv-{workspace} sh -c '{quoted}'")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def trickles(url: str) -> bool:
    """Whether the server at ``url`` sends the start of a status line and then nothing whole for two seconds."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname or "", address.port or 80), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: preview\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                received += sock.recv(64)
            except TimeoutError:
                break
        return received.startswith(b"HTTP") and b"\n" not in received


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_sparse_64_gb_phase_file_and_escapes_in_the_phase_stay_bounded(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes(background=True, preview_read_timeout_s=READ_BUDGET_S)
    runtime.start("hp-sparse", "u1", "tiny", env={"TINY_INSTALL_S": "600"})  # stays "installing" for ten minutes

    def installing() -> PreviewStatus | None:
        status = runtime.status("hp-sparse")
        return status if status is not None and status.phase is Phase.INSTALLING else None

    host = eventually(installing).host or ""
    before = peak_rss_mib()
    size = as_tenant(lab, host, "hp-sparse", "rm -f /drape/phase && truncate -s 64G /drape/phase && stat -c %s "
                                             "/drape/phase")
    assert int(size) == 64 * 1024**3  # control: the file the follower now finds is 64 GB
    time.sleep(2)  # the follower reads the phase file every half second: several reads of the 64 GB file
    other = runtimes(preview_read_timeout_s=READ_BUDGET_S)  # another backend process looks it up afresh
    for call in (lambda: runtime.status("hp-sparse"), lambda: other.status("hp-sparse"),
                 lambda: other.previews()):
        _, took = timed(call)
        assert took < BOUND_S, took
    seen = other.status("hp-sparse")
    assert seen is not None and seen.phase in (Phase.STARTING, Phase.INSTALLING), seen  # unknown, not failed
    assert peak_rss_mib() - before < 64, "the backend's memory grew while the tenant's 64 GB file was there"

    # then a failure whose reason is terminal escapes, a bidi override, a bell and 3,000 characters
    reason = "failed: \x1b[31mboom\x1b[0m \u202e\x07" + "y" * 3000  # under the 4 KiB cap: it is read
    as_tenant(lab, host, "hp-sparse", f"rm -f /drape/phase && printf '%s' '{reason}' > /drape/phase")
    failed = runtime.wait_ready("hp-sparse", 10)
    assert failed.phase is Phase.FAILED and failed.error is not None, failed
    assert failed.error.startswith("boom") and len(failed.error) <= TEXT_MAX_CHARS, failed.error
    assert all(ch.isprintable() for ch in failed.error) and "\u202e" not in failed.error


def test_a_dev_server_that_trickles_its_status_line_holds_no_call(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    ours = runtimes(preview_read_timeout_s=READ_BUDGET_S)
    status = ours.start("hp-trickle", "u1", "tiny", wait=30)
    assert status.phase is Phase.READY, status
    cgi = TRICKLE_CGI.replace("\n", "\\n")
    # busybox httpd runs cgi-bin/index.cgi for "/" once index.html is gone; /tmp is noexec, so the script lives in
    # the workspace and httpd finds it through a link
    as_tenant(lab, status.host or "", "hp-trickle",
              f"mkdir -p /workspace/cgi-bin && printf '{cgi}' > /workspace/cgi-bin/index.cgi"
              " && chmod 755 /workspace/cgi-bin/index.cgi && ln -s /workspace/cgi-bin /tmp/www/cgi-bin"
              " && rm /tmp/www/index.html")
    assert trickles(status.url or ""), "control: the dev server should now send its status line a byte a second"
    theirs = runtimes(preview_read_timeout_s=READ_BUDGET_S)  # a process that probes it to decide
    calls: dict[str, Callable[[], object]] = {
        "start (hot, other process)": lambda: theirs.start("hp-trickle", "u1", "tiny"),
        "status (other process)": lambda: theirs.status("hp-trickle"),
        "previews (probing)": lambda: theirs.previews(),
        "status (ours)": lambda: ours.status("hp-trickle"),
    }
    for name, call in calls.items():
        _, took = timed(call)
        assert took < BOUND_S, f"{name} took {took:.1f} s behind a server sending a byte a second"
    listed = {p.workspace: p for p in theirs.previews()}
    assert listed["hp-trickle"].phase is not Phase.READY  # a status line that never completes is no answer
