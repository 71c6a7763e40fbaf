from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from drape_fleet.runtime import labels as L
from drape_fleet.runtime.activity import ActivityBuffer, parse_rfc3339, parse_stat_header, stamp_archive
from drape_fleet.runtime.readiness import Phase, http_answers, parse_phase


def test_stamp_is_a_root_owned_file_whose_mtime_is_the_activity() -> None:
    moment = datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
    with tarfile.open(fileobj=io.BytesIO(stamp_archive(moment))) as tar:
        (member,) = tar.getmembers()
        assert member.name == ".drape-activity"
        assert member.uid == 0 and member.mode == 0o644
        assert member.mtime == int(moment.timestamp())


def test_stat_header_with_nanoseconds() -> None:
    header = base64.b64encode(json.dumps({"name": ".drape-activity", "mtime": "2025-03-01T12:30:05.123456789Z"})
                              .encode()).decode()
    assert parse_stat_header(header) == datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    assert parse_stat_header(None) is None
    assert parse_stat_header("garbage") is None
    assert parse_rfc3339("2025-03-01T13:30:05+01:00") == datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)


def test_time_labels_round_trip() -> None:
    moment = datetime(2025, 3, 1, 12, 30, 5, 250000, tzinfo=UTC)
    assert L.parse_time(L.format_time(moment)) == moment


def test_activity_buffer_keeps_the_latest_and_puts_back_failures() -> None:
    buffer = ActivityBuffer()
    early, late = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
    buffer.note("w", early)
    taken = buffer.take()
    assert taken == {"w": early}
    buffer.note("w", late)
    buffer.put_back(taken)  # a failed flush must not overwrite a newer ping
    assert buffer.take() == {"w": late}
    assert buffer.last_seen("w") == late


def test_phase_file() -> None:
    assert parse_phase("installing\n") == (Phase.INSTALLING, None)
    assert parse_phase("installing\ncompiling\n") == (Phase.COMPILING, None)
    assert parse_phase("failed: pnpm install exited 1") == (Phase.FAILED, "pnpm install exited 1")
    assert parse_phase("") == (None, None)
    assert Phase.QUEUED.active and Phase.READY.final and not Phase.READY.active


def test_ready_means_http_answers_below_500() -> None:
    status = {"code": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert not http_answers("127.0.0.1", port, budget=2)
        status["code"] = 404
        assert http_answers("127.0.0.1", port, budget=2)
    finally:
        server.shutdown()
    assert not http_answers("127.0.0.1", port, budget=0.5)
