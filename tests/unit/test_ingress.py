"""The preview ingress's pure parts: signed links and sessions, the gate's answers (against a recorded engine),
routes from the engine's view of a container, the files the deploy puts on a host (goldens), and that what runs
on the host needs nothing but the standard library. The real Caddy and gate run in tests/previews."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drape_fleet.config import load_fleet
from drape_fleet.config.previews import IngressSettings
from drape_fleet.ingress import host_files
from drape_fleet.ingress.gate import Gate, GateConfig
from drape_fleet.ingress.links import BadToken, host_label, preview_link, safe_next, sign, verify
from drape_fleet.ingress.routes import Route, route_of
from drape_fleet.lab.fleet import lab_fleet
from drape_fleet.lab.settings import LabSettings
from drape_fleet.paths import project_root

KEY = b"k" * 40
NOW = 1_800_000_000.0


def token(kind: str = "link", *, workspace: str = "ws-1", host: str = "ax1", ttl: float = 60, key: bytes = KEY,
          now: float = NOW) -> str:
    return sign(key, workspace=workspace, user="u-7", host=host, kind=kind, ttl_s=ttl, now=now)


# -- links ------------------------------------------------------------------------------------------------

def test_a_link_verifies_for_its_preview_only() -> None:
    claims = verify(KEY, token(), kind="link", host="ax1", label="ws-1", now=NOW + 30)
    assert (claims.workspace, claims.user, claims.host, claims.kind) == ("ws-1", "u-7", "ax1", "link")
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: verify(KEY, token(), kind="link", host="ax1", label="ws-1", now=NOW + 61), "has expired"),
        (lambda: verify(KEY, token(), kind="session", host="ax1", label="ws-1", now=NOW), "wrong kind"),
        (lambda: verify(KEY, token(), kind="link", host="ax2", label="ws-1", now=NOW), "for another preview"),
        (lambda: verify(KEY, token(), kind="link", host="ax1", label="ws-2", now=NOW), "for another preview"),
        (lambda: verify(b"x" * 40, token(), kind="link", host="ax1", label="ws-1", now=NOW), "not made by Drape"),
        (lambda: verify(KEY, "v1.e30.AAAA", kind="link", host="ax1", label="ws-1", now=NOW), "not made by Drape"),
        (lambda: verify(KEY, "garbage", kind="link", host="ax1", label="ws-1", now=NOW), "not a preview link"),
    ]
    for call, words in cases:
        with pytest.raises(BadToken, match=words):
            call()


def test_a_tampered_payload_is_refused_before_it_is_read() -> None:
    version, _payload, signature = token().split(".")
    other = token(workspace="ws-2").split(".")[1]
    with pytest.raises(BadToken, match="not made by Drape"):
        verify(KEY, f"{version}.{other}.{signature}", kind="link", host="ax1", label="ws-2", now=NOW)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        token(key=b"short")


def test_workspaces_become_distinct_dns_labels() -> None:
    assert host_label("ws-42") == "ws-42"
    odd = {w: host_label(w) for w in ("Ws_42", "ws_42", "WS-42", "-x", "a" * 63, "Ü")}
    assert len(set(odd.values())) == len(odd)
    for label in odd.values():
        assert len(label) <= 63 and label == label.lower() and label[0].isalnum() and label[-1].isalnum()
    assert odd["Ws_42"].startswith("ws-42-")


def test_the_backends_link_and_where_a_login_may_send_the_browser() -> None:
    link = preview_link(KEY, workspace="ws-1", user="u", host="ax1", host_domain="ax1.preview.drape.dev",
                        next_path="/app?x=1")
    assert link.startswith("https://ws-1.ax1.preview.drape.dev/__drape/login?t=v1.")
    assert link.endswith("&next=%2Fapp%3Fx%3D1")
    assert [safe_next(p) for p in ("/a/b?c", "//evil.example", "https://evil", "/\\evil", "/x\ny")] == [
        "/a/b?c", "/", "/", "/", "/"]


# -- the gate ---------------------------------------------------------------------------------------------

class RecordedEngine:
    """The engine's answers for one preview container, as the local socket would give them."""

    def __init__(self, phase: str = "ready", logged: list[str] | None = None) -> None:
        self.phase = phase
        self.logged = logged or []
        """What the supervisor logged on stderr (``drape-preview: <phase>`` lines and anything else)."""
        self.running = True
        self.reads: list[str] = []

    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        return [{"Id": "c1"}] if self.running else []

    def inspect(self, container: str) -> dict[str, Any]:
        return {"Id": "c1", "State": {"Running": True}, "Config": {"Labels": {
            "drape.owner": "drape", "drape.kind": "preview", "drape.workspace": "ws-1", "drape.user": "u-7",
            "drape.port": "3000", "drape.framework": "react"}},
            "NetworkSettings": {"Networks": {"drape-net-ws-1-abc": {"IPAddress": "10.240.3.2"}}}}

    def get_bytes(self, path: str, params: Any, max_bytes: int) -> bytes:
        import io
        import struct
        import tarfile

        self.reads.append(path.rsplit("/", 1)[-1])
        if path.endswith("/logs"):  # the engine's multiplexed frames, stream 2 (stderr)
            assert params == {"stdout": "0", "stderr": "1", "tail": "5"}
            return b"".join(b"\x02\0\0\0" + struct.pack(">I", len(line) + 1) + line.encode() + b"\n"
                            for line in self.logged[-5:])
        data = f"installing\ncompiling\n{self.phase}\n".encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo("phase")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def make_gate(engine: RecordedEngine, now: list[float]) -> Gate:
    config = GateConfig(host="ax1", host_domain="ax1.preview.lab.test", owner="drape", key_file="-", session_s=3600)
    return Gate(config, engine, KEY, clock=lambda: now[0])  # type: ignore[arg-type]


def test_login_sets_a_session_for_this_preview_once_and_check_routes_it_when_ready() -> None:
    now = [NOW]
    engine = RecordedEngine(phase="compiling")
    gate = make_gate(engine, now)
    gate.resync()
    host = "ws-1.ax1.preview.lab.test"

    link = token()
    status, headers, _ = gate.login(host, f"t={link}&next=/page")
    assert status == 303 and headers["Location"] == "/page"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("drape_preview=v1.") and "; Secure; HttpOnly; SameSite=Lax" in cookie
    assert "Domain=" not in cookie  # host-only: never sent to another preview
    status, _, body = gate.login(host, f"t={link}")  # a link opens once
    assert status == 403 and b"used already" in body
    assert gate.login(host, f"t={token()}")[0] == 303  # a new link does

    session = cookie.split(";")[0]
    assert gate.check(host, session)[0] == 503  # compiling: not routed yet, the page retries
    engine.phase = "ready"
    now[0] += 1
    status, headers, _ = gate.check(host, f"other=1; {session}")
    assert status == 200 and headers["X-Drape-Upstream"] == "10.240.3.2:3000"

    assert gate.check(host, "")[0] == 401
    assert gate.check("ws-2.ax1.preview.lab.test", session)[0] == 401  # the cookie is ws-1's
    assert gate.check("evil.example", session)[0] == 404
    engine.running = False
    gate.resync()
    assert gate.check(host, session)[0] == 404  # the route went with the container


def test_a_users_request_is_answered_from_a_check_made_after_it_came() -> None:
    """Seen in the lab test: the runtime said ready, the user's first request came 0.1 s after the gate's last
    check (which found it compiling) and got 503. A request waits out the rest of the recheck interval instead."""
    import time

    engine = RecordedEngine(phase="compiling")
    gate = Gate(GateConfig(host="ax1", host_domain="ax1.preview.lab.test", owner="drape", key_file="-",
                           session_s=3600), engine, KEY, clock=time.time)  # type: ignore[arg-type]
    host = "ws-1.ax1.preview.lab.test"
    session = gate.login(host, f"t={token(now=time.time())}")[1]["Set-Cookie"].split(";")[0]
    gate.resync()
    gate.recheck_pending()  # the follower's check: still compiling
    engine.phase = "ready"  # a moment later
    started = time.monotonic()
    status, headers, _ = gate.check(host, session)
    assert status == 200 and headers["X-Drape-Upstream"] == "10.240.3.2:3000"
    assert time.monotonic() - started <= 0.3  # at most the rest of the interval


def test_the_gate_reads_the_phase_file_only_once_the_supervisors_log_says_ready() -> None:
    """The archive read costs the engine ~45 ms of CPU and pending previews are rechecked twice a second: while the
    supervisor's logged phase says compiling, the log's tail (next to free) is all the gate reads."""
    now = [NOW]
    engine = RecordedEngine(phase="ready", logged=["drape-preview: installing", "drape-preview: compiling"])
    gate = make_gate(engine, now)
    gate.resync()
    for _ in range(4):
        now[0] += 0.5
        gate.recheck_pending()
    assert engine.reads.count("archive") == 0 and engine.reads.count("logs") == 5
    assert not gate.routes["ws-1"].ready  # the file says ready, the supervisor does not yet: not routed
    engine.logged.append("drape-preview: ready")
    now[0] += 0.5
    gate.recheck_pending()
    assert gate.routes["ws-1"].ready and engine.reads.count("archive") == 1

    engine = RecordedEngine(phase="compiling", logged=["drape-preview: ready"])  # the log is a hint, the file decides
    gate = make_gate(engine, now)
    gate.resync()
    assert not gate.routes["ws-1"].ready and engine.reads == ["logs", "archive"]
    engine = RecordedEngine(phase="ready", logged=["not the supervisor"])  # no hint: the file, as before
    gate = make_gate(engine, now)
    gate.resync()
    assert gate.routes["ws-1"].ready and engine.reads == ["logs", "archive"]


def test_a_preview_that_started_before_its_event_was_followed_is_found_on_its_first_request() -> None:
    now = [NOW]
    engine = RecordedEngine()
    engine.running = False
    gate = make_gate(engine, now)
    gate.resync()  # the table before the preview started; its start event not followed yet
    host = "ws-1.ax1.preview.lab.test"
    session = gate.login(host, f"t={token()}")[1]["Set-Cookie"].split(";")[0]
    engine.running = True
    status, headers, _ = gate.check(host, session)
    assert status == 200 and headers["X-Drape-Upstream"] == "10.240.3.2:3000"

    engine.running = False
    gate.resync()
    reads = []
    engine.containers = lambda labels: reads.append(labels) or []  # type: ignore[method-assign]
    now[0] += 1.5
    assert [gate.check(host, session)[0] for _ in range(5)] == [404] * 5
    assert len(reads) == 1, "misses reread the engine at most once a second"
    now[0] += 1.5
    assert gate.check(host, session)[0] == 404 and len(reads) == 2


def test_a_link_for_another_host_or_an_expired_one_sets_nothing() -> None:
    gate = make_gate(RecordedEngine(), [NOW])
    for link, words in ((token(host="ax2"), b"another preview"), (token(ttl=-1), b"expired")):
        status, headers, body = gate.login("ws-1.ax1.preview.lab.test", f"t={link}")
        assert status == 403 and "Set-Cookie" not in headers and words in body


def test_route_of_reads_labels_and_the_preview_network_address() -> None:
    inspected = RecordedEngine().inspect("c1")
    assert route_of(inspected, "drape") == Route("ws-1", "ws-1", "u-7", "c1", "10.240.3.2", 3000, "react", False)
    assert route_of(inspected, "someone-else") is None
    assert route_of({**inspected, "State": {"Running": False}}, "drape") is None
    # A preview in a network holder's namespace (the runtime's spare networks) is reached at the holder's address.
    joined = {**inspected, "HostConfig": {"NetworkMode": "container:" + "h" * 64},
              "NetworkSettings": {"Networks": {}}}
    holder = {"NetworkSettings": {"Networks": {"drape-net-0123456789ab": {"IPAddress": "10.240.7.2"}}}}
    assert route_of(joined, "drape", holder) == Route("ws-1", "ws-1", "u-7", "c1", "10.240.7.2", 3000, "react", False)
    assert route_of(joined, "drape") is None  # the holder is gone: no address, no route


# -- what goes on a host ----------------------------------------------------------------------------------

STDLIB = set(sys.stdlib_module_names)


@pytest.mark.parametrize("module", host_files.SHIPPED_MODULES)
def test_the_gate_runs_on_the_hosts_python_with_the_standard_library_only(module: str) -> None:
    tree = ast.parse((host_files.package_dir() / module).read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            top = name.split(".")[0]
            shipped = name.removeprefix("drape_fleet.").replace(".", "/") + ".py"
            assert top in STDLIB or (top == "drape_fleet" and shipped in host_files.SHIPPED_MODULES), \
                f"{module} imports {name}, which the host does not have"


GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "files"
PRODUCTION_INGRESS = IngressSettings(domain="preview.drape.dev")


def _renders() -> dict[tuple[str, str], str]:
    lab = lab_fleet(LabSettings())
    production = load_fleet(project_root() / "config" / "production.toml")
    out = {}
    for name, fleet, settings in (("lab", lab, lab.previews.ingress), ("production", production, PRODUCTION_INGRESS)):
        assert settings is not None
        host = fleet.hosts[0]
        out[(name, "ingress/Caddyfile")] = host_files.caddyfile(host)
        out[(name, "ingress/drape-previews.caddy")] = host_files.previews_site(settings, host)
        out[(name, "ingress/drape-preview-gate.service")] = host_files.gate_unit()
        out[(name, "ingress/preview-gate.json")] = host_files.gate_config(fleet, settings, host)
    return out


@pytest.mark.parametrize("case", sorted(_renders()), ids=lambda c: "/".join(c))
def test_ingress_files_match_their_reviewed_goldens(case: tuple[str, str]) -> None:
    text = _renders()[case]
    golden = GOLDENS / case[0] / case[1]
    if os.environ.get("DRAPE_UPDATE_GOLDENS"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
        pytest.fail(f"rewrote {golden}: review the diff, then run again")
    assert text == golden.read_text()
