"""``drape-runtime serve`` as ops run it, with several worker processes: started from its files, both workers
answering, every worker's requests summed in one scrape, a killed worker replaced. Engines are not needed for
this (the fleet's are unreachable on purpose: the answers are the runtime's "no such preview")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tomli_w
from service_testkit import Tokens

from drape_fleet.service.metrics import MULTIPROC_ENV


@pytest.fixture
def served_by_two(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fleet = {
        "environment": {"name": "lab"},
        "network": {"admin_allowlist": ["10.0.9.1/32"], "backend_addresses": ["127.0.0.0/8"]},
        "hosts": [{"name": f"ax{i}", "public_address": f"192.0.2.{10 + i}", "private_address": f"127.0.0.{10 + i}",
                   "capacity": {"cpus": 2, "memory_gib": 1, "disk_gib": 20}} for i in (1, 2)],
        "runtime": {"request_timeout_s": 1, "snapshot_timeout_s": 1},
        "service": {"workers": 2},
    }
    (tmp_path / "fleet.toml").write_text(tomli_w.dumps(fleet))
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not used: no engine answers\n")
    tokens = Tokens(tmp_path / "tokens.toml")
    token = tokens.add("ops", ("previews", "metrics"), rate=10_000, burst=10_000)
    (tmp_path / "service.toml").write_text(
        f'fleet_file = "{tmp_path / "fleet.toml"}"\ninstance = "two"\nport = {port}\n'
        f'tokens_file = "{tokens.path}"\n\n[engine_tls]\nca = "{tmp_path / "ca.pem"}"\n'
        f'cert = "{tmp_path / "cert.pem"}"\nkey = "{tmp_path / "key.pem"}"\n')
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    process = subprocess.Popen([sys.executable, "-m", "drape_fleet.service.cli", "serve", "--config",
                                str(tmp_path / "service.toml")], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        time.sleep(0.2)
    yield url, token, process
    process.terminate()
    process.wait(timeout=30)


def _workers(parent: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(parent):
            found.add(int(status.parent.name))
    return found


def test_two_workers_answer_and_one_scrape_counts_them_all(served_by_two: tuple[str, str,
                                                                                 subprocess.Popen[bytes]]) -> None:
    url, token, process = served_by_two
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    workers = {pid for pid in _workers(process.pid) if Path(f"/proc/{pid}/cmdline").read_bytes().count(b"spawn")}
    assert len(workers) == 2, workers
    for _ in range(30):  # new connections: the kernel spreads them over both workers' accepts
        assert requests.get(f"{url}/v1/previews/ws-1", headers=session.headers, timeout=10).status_code == 404
    scrape = session.get(f"{url}/metrics", timeout=10).text
    line = 'drape_runtime_requests_total{caller="ops",method="GET",route="/v1/previews/{workspace}",status="404"}'
    assert f"{line} 30.0" in scrape, [x for x in scrape.splitlines() if "requests_total" in x]

    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len({p for p in _workers(process.pid) if p != victim}) < 2:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.2)
    answers = [requests.get(f"{url}/healthz", timeout=10).status_code for _ in range(10)]
    assert answers == [200] * 10
