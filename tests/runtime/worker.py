"""A second backend process for the lab tests: ``python worker.py '<json command>'``; prints one JSON line.

Commands: {"action": "start", "workspaces": [...], "framework", "user", "wait", "overrides"} starts them from
as many threads; {"action": "reap", "seconds", "overrides"} runs reaper passes back to back.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.lab.state import load_lab_fleet
from drape_fleet.runtime.service import PreviewRuntime


def main(command: dict[str, Any]) -> dict[str, Any]:
    fleet, _ = load_lab_fleet()
    runtime_settings = RuntimeSettings.model_validate({**fleet.runtime.model_dump(), **command.get("overrides", {})})
    fleet = fleet.model_copy(update={"runtime": runtime_settings})
    runtime = PreviewRuntime.connect(fleet, background=command.get("background", False), reaper=False)
    try:
        if command["action"] == "start":
            def one(workspace: str) -> dict[str, Any]:
                status = runtime.start(workspace, command.get("user", "u-worker"), command.get("framework", "tiny"),
                                       wait=command.get("wait", 60))
                return {"workspace": workspace, "phase": str(status.phase), "host": status.host,
                        "error": status.error, "container_id": status.container_id}

            with ThreadPoolExecutor(max_workers=len(command["workspaces"])) as pool:
                return {"results": list(pool.map(one, command["workspaces"]))}
        if command["action"] == "reap":
            reports = []
            deadline = time.monotonic() + command["seconds"]
            while time.monotonic() < deadline:
                report = runtime.reap()
                reports.append({"removed": report.removed, "kept": report.kept, "skipped": report.skipped,
                                "errors": report.errors})
            return {"reports": reports}
        raise SystemExit(f"unknown action {command['action']!r}")
    finally:
        runtime.close()


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
