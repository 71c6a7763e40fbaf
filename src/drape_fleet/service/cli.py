"""``drape-runtime``: the runtime service's command (a console script of the package).

    drape-runtime serve --config /etc/drape-runtime/service.toml   # what the systemd unit runs
    drape-runtime check --config FILE                              # load everything, contact nothing, exit 0/2

The OpenAPI document is ``GET /openapi.json`` on any instance (with a token).

Bad configuration stops the process before it listens, naming the file, the field and the fix (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drape_fleet.config import ConfigError, FleetConfig, load_fleet
from drape_fleet.config.errors import Problem
from drape_fleet.config.service import InstanceConfig, ServiceSettings, load_instance
from drape_fleet.routing.api import RoutingApi
from drape_fleet.routing.router import Router
from drape_fleet.runtime.clients import TlsFiles
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.service.api_routing import routing_router
from drape_fleet.service.app import create_app
from drape_fleet.service.auth import TokenTable
from drape_fleet.service.guard import Asgi
from drape_fleet.service.metrics import MULTIPROC_ENV, ServiceMetrics
from drape_fleet.service.phases import Events, PhaseBoard

log = logging.getLogger("drape_fleet.service")


@dataclass(frozen=True)
class Loaded:
    config: InstanceConfig
    fleet: FleetConfig
    settings: ServiceSettings
    tokens: TokenTable

    @property
    def port(self) -> int:
        return self.config.port or self.settings.port


def load(path: Path) -> Loaded:
    """Everything an instance reads before it listens; ``ConfigError`` names what is wrong."""
    config = load_instance(path)
    fleet = load_fleet(config.fleet_file)
    settings = fleet.service or ServiceSettings()
    tokens = TokenTable(config.tokens_file, settings.limits)
    tls = config.engine_tls
    missing = [str(p) for p in (tls.ca, tls.cert, tls.key) if not p.is_file()] if tls is not None else []
    if missing:
        raise ConfigError(str(path), [Problem("engine_tls", f"missing {', '.join(missing)}",
                                              "deploy the service again (deploys/service.py), or correct the paths")])
    return Loaded(config, fleet, settings, tokens)


def build(loaded: Loaded) -> Asgi:
    metrics = ServiceMetrics(loaded.config.instance)
    board = PhaseBoard()
    tls = loaded.config.engine_tls
    runtime = PreviewRuntime.connect(loaded.fleet, events=Events(metrics, board),
                                     tls=TlsFiles(ca=tls.ca, cert=tls.cert, key=tls.key) if tls else None)
    router = Router.for_runtime(runtime)  # the cutover's routing policy, read from the engines like the runtime
    return create_app(runtime, settings=loaded.settings, instance=loaded.config.instance, tokens=loaded.tokens,
                      metrics=metrics, board=board, log_workspace=loaded.config.workspace_log,
                      extra_routers=[routing_router(RoutingApi(router), metrics)], on_close=[router.close])


CONFIG_ENV = "DRAPE_RUNTIME_CONFIG"
LOG_LEVEL_ENV = "DRAPE_RUNTIME_LOG_LEVEL"


def serve(loaded: Loaded, config_path: Path, log_level: str) -> None:
    """One process, or ``service.workers`` processes under uvicorn's supervisor (each builds its own runtime from
    the same files; their metrics meet in a directory of the service's runtime directory, or a private one)."""
    import uvicorn

    options: dict[str, Any] = {
        "host": str(loaded.config.listen), "port": loaded.port, "loop": "auto", "http": "auto", "access_log": False,
        "log_config": None, "proxy_headers": True, "forwarded_allow_ips": "127.0.0.1", "server_header": False,
        "timeout_graceful_shutdown": 10, "timeout_keep_alive": 75, "limit_concurrency": 4096, "backlog": 2048,
    }
    if loaded.settings.workers == 1:
        uvicorn.Server(uvicorn.Config(build(loaded), **options)).run()
        return
    metrics_dir, private = _metrics_dir(loaded)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    os.environ[CONFIG_ENV] = str(config_path.resolve())
    os.environ[LOG_LEVEL_ENV] = log_level
    try:
        # A worker imports and builds its runtime before it answers the supervisor's health check: on a busy host
        # that takes longer than uvicorn's default of 5 s, and the worker would be killed as hung while it starts.
        uvicorn.run("drape_fleet.service.cli:worker_app", factory=True, workers=loaded.settings.workers,
                    timeout_worker_healthcheck=30, **options)
    finally:
        shutil.rmtree(metrics_dir.parent if private else metrics_dir, ignore_errors=True)


def worker_app() -> Asgi:
    """A worker process's app (uvicorn's factory): the same files, read again in this process."""
    logging.basicConfig(level=os.environ.get(LOG_LEVEL_ENV, "info").upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s[%(process)d]: %(message)s")
    return build(load(Path(os.environ[CONFIG_ENV])))


def _metrics_dir(loaded: Loaded) -> tuple[Path, bool]:
    """An empty directory for the workers' metrics (values of processes that are gone must not count): in the
    unit's runtime directory, else a private temporary one (True: remove it all afterwards)."""
    given = os.environ.get("RUNTIME_DIRECTORY")  # systemd's RuntimeDirectory= (the unit's /run/drape-runtime)
    runtime_dir = Path(given) if given else None
    private = not (runtime_dir is not None and runtime_dir.is_absolute() and runtime_dir.is_dir()
                   and os.access(runtime_dir, os.W_OK))
    base = Path(tempfile.mkdtemp(prefix=f"drape-runtime-{loaded.config.instance}-")) if private else runtime_dir
    assert base is not None
    directory = base / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    return directory, private


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drape-runtime", description="Drape's preview runtime as an HTTP service.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run the service"), ("check", "load the configuration and tokens, then exit")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", required=True, type=Path, help="the instance's service.toml")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        loaded = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.config}: instance {loaded.config.instance}, fleet {loaded.fleet.environment.name} "
              f"({len(loaded.fleet.hosts)} hosts), listening on {loaded.config.listen}:{loaded.port}, "
              f"callers {', '.join(loaded.tokens.callers)}")
        return 0
    serve(loaded, args.config, args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
