"""The service inside this process, on a thread of its own: for the benchmark (service vs imported module, side by
side over the same runtime) and for tests that need a real HTTP server over a runtime they control.

    with EmbeddedService(runtime, settings=..., tokens_file=...) as service:
        requests.get(f"{service.url}/healthz")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter

from drape_fleet.config.service import ServiceSettings
from drape_fleet.runtime.events import RuntimeEvents
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.app import create_app
from drape_fleet.service.auth import TokenTable
from drape_fleet.service.metrics import ServiceMetrics
from drape_fleet.service.phases import Events, PhaseBoard


def service_events(instance: str = "embedded") -> tuple[ServiceMetrics, PhaseBoard, RuntimeEvents]:
    """The listeners a service needs, and the one ``events`` to give ``PreviewRuntime(events=...)``."""
    metrics = ServiceMetrics(instance)
    board = PhaseBoard()
    return metrics, board, Events(metrics, board)


class EmbeddedService:
    def __init__(self, runtime: PreviewRuntime, *, metrics: ServiceMetrics, board: PhaseBoard,
                 settings: ServiceSettings, tokens_file: Path, instance: str = "embedded",
                 host: str = "127.0.0.1", close_runtime: bool = False,
                 extra_routers: Iterable[APIRouter] = ()) -> None:
        import uvicorn

        tokens = TokenTable(tokens_file, settings.limits)
        app = create_app(runtime, settings=settings, instance=instance, tokens=tokens, metrics=metrics, board=board,
                         close_runtime=close_runtime, extra_routers=extra_routers)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", loop="auto", http="auto",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"drape-service-{instance}", daemon=True)

    def start(self, timeout: float = 10.0) -> EmbeddedService:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
