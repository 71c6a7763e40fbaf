"""A stand-in for a backend process: the runtime and the router as the backend imports them, driven by JSON
lines on stdin (one answer per line on stdout). Its own process, its own memory: what it sees of a policy change
reached it through the store, not through the test.

    python tests/cutover/backend_process.py FLEET_FILE PKI_DIR [--poll 0.5]

Commands: {"op": "route", "user": U, "workspace": W}, {"op": "failed", "user": U, "reason": R},
{"op": "record", "provider": P, "kind": K, "seconds": S, "ok": true}, {"op": "start", "workspace": W, "user": U,
"framework": F}, {"op": "flush"}, {"op": "quit"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from drape_fleet.config import load_fleet
from drape_fleet.routing.router import Router
from drape_fleet.runtime.service import PreviewRuntime


def answer(router: Router, runtime: PreviewRuntime, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "route":
        route = router.route(command["user"], command.get("workspace"))
        return route.model_dump()
    if op == "failed":
        return router.placement_failed(command["user"], reason=command["reason"]).model_dump()
    if op == "record":
        router.record_start(command["provider"], command["kind"], float(command["seconds"]), ok=command.get("ok", True),
                            reason=command.get("reason", ""))
        return True
    if op == "start":
        started = time.monotonic()
        status = runtime.start(command["workspace"], command["user"], command["framework"], wait=90)
        return {"phase": str(status.phase), "host": status.host, "seconds": time.monotonic() - started}
    if op == "flush":
        return router.recorder.flush(router.metrics_store, force=True)
    if op == "generation":
        return router.generation
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("fleet")
    parser.add_argument("pki")
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()
    fleet = load_fleet(args.fleet)
    runtime = PreviewRuntime.connect(fleet, pki_dir=Path(args.pki), background=False, reaper=False)
    router = Router.for_runtime(runtime, poll_s=args.poll, flush_s=1.0)
    print(json.dumps({"ready": router.generation}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                print(json.dumps({"ok": answer(router, runtime, command)}), flush=True)
            except Exception as exc:  # the test reads the error instead of a hung pipe
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        router.close()
        runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
