"""The fake Robot webservice as a process, as end-to-end tests run it: the tasks reach it through $DRAPE_ROBOT_URL
from their own processes, its reset hook runs a command (the lab's bare-metal stand-in boots), and it tells the
test every request it answered (a JSON-lines log), since its memory is in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORT = Path(__file__).resolve().parent
ROBOT_USER = "robot-user"
ROBOT_PASSWORD = "robot-secret"


@dataclass(frozen=True)
class RobotProcess:
    url: str
    request_log: Path

    def requests(self) -> list[dict[str, Any]]:
        """Every request answered so far: method, path, form, status, user."""
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text().splitlines()]

    def calls(self) -> list[str]:
        return [f"{r['method']} {r['path']} {r['status']}" for r in self.requests()]

    def posts(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests() if r["method"] != "GET"]

    def env(self, password: str = ROBOT_PASSWORD) -> dict[str, str]:
        """What a task's process needs to reach this fake with the webservice user."""
        return {"DRAPE_ROBOT_URL": self.url, "DRAPE_ROBOT_USER": ROBOT_USER, "DRAPE_ROBOT_PASSWORD": password}


@contextmanager
def robot_process(directory: Path, scenario: dict[str, Any], *, on_reset: str = "") -> Iterator[RobotProcess]:
    """Start ``python -m fakes.robot`` with ``scenario`` on a free loopback port; stop it afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    scenario_file, ready, log = directory / "robot.json", directory / "robot.url", directory / "robot-requests.jsonl"
    scenario_file.write_text(json.dumps(scenario))
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "fakes.robot", "--scenario", str(scenario_file), "--ready-file", str(ready),
            "--request-log", str(log)]
    if on_reset:
        argv += ["--on-reset", on_reset]
    process = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(SUPPORT)}, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not ready.exists():
            raise RuntimeError(f"the fake Robot process did not start (exit status {process.poll()})")
        yield RobotProcess(ready.read_text().strip(), log)
    finally:
        process.terminate()
        process.wait(timeout=10)
