"""What the phases check on the Hetzner side: engines answering over mutual TLS (the provisioned Docker API),
template images present, Docker's health checks green, and the smoke preview on every host."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from docker.errors import APIError, NotFound

from drape_fleet.cutover.context import CutoverContext
from drape_fleet.cutover.gates import Check
from drape_fleet.cutover.progress import SmokeResult
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clients import Endpoint
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure

SMOKE_USER = "drape-smoke"


@dataclass(frozen=True)
class EngineState:
    host: str
    reachable: bool
    detail: str
    missing_images: tuple[str, ...] = ()
    unhealthy: tuple[str, ...] = ()


def _has_image(engine: Engine, image: str) -> bool:
    try:
        engine.call(lambda api: api.inspect_image(image), f"inspect image {image}")  # type: ignore[no-untyped-call]
    except NotFound:
        return False
    return True


def _inspect(engine: Engine, images: list[str]) -> EngineState:
    info = engine.call(lambda api: api.info(), "info")
    missing = []
    for image in images:
        if not _has_image(engine, image):
            missing.append(image)
    unhealthy = engine.call(lambda api: api.containers(all=False, filters={"health": "unhealthy",
                                                                          "label": L.OWNER}), "list unhealthy")
    return EngineState(engine.name, True, f"Docker {info.get('ServerVersion', '?')}", tuple(missing),
                       tuple(str(c.get("Names", ["?"])[0]).lstrip("/") for c in unhealthy))


def engine_states(ctx: CutoverContext, frameworks: list[str] | None = None) -> dict[str, EngineState]:
    """Every preview host: does its engine answer, which required template images it lacks, which of our
    containers Docker's health checks call unhealthy."""
    wanted = frameworks if frameworks is not None else list(ctx.settings.required_frameworks
                                                            or sorted(ctx.fleet.runtime.frameworks))
    images = [ctx.fleet.runtime.frameworks[name].image for name in wanted]
    results = ctx.engines.each(lambda engine: _inspect(engine, images), hosts=ctx.preview_hosts, timeout=15)
    states = {}
    for host, result in results.items():
        if isinstance(result, EngineState):
            states[host] = result
        else:
            known = isinstance(result, RuntimeFailure | APIError)
            reason = str(result) if known else f"{type(result).__name__}: {result}"
            states[host] = EngineState(host, False, reason)
    return states


def engine_checks(states: dict[str, EngineState], *, images: bool = True, health: bool = False) -> list[Check]:
    checks = []
    for host, state in states.items():
        checks.append(Check(f"{host}: Docker API over mutual TLS", state.detail if state.reachable else
                            f"unreachable ({state.detail})", "answering", state.reachable,
                            f"provision it (`invoke provision --host {host}`) and check the network"))
        if state.reachable and images:
            checks.append(Check(f"{host}: template images", "missing " + ", ".join(state.missing_images)
                                if state.missing_images else "present", "all present", not state.missing_images,
                                "build and ship them: `invoke fleet.images`"))
        if state.reachable and health:
            checks.append(Check(f"{host}: Docker health checks", "unhealthy: " + ", ".join(state.unhealthy)
                                if state.unhealthy else "green", "no unhealthy container", not state.unhealthy,
                                f"look at them (`docker ps --filter health=unhealthy` on {host})"))
    return checks


def _smoke_one(ctx: CutoverContext, host: str, endpoint: Endpoint) -> tuple[float | None, str | None]:
    from drape_fleet.runtime.service import PreviewRuntime

    settings = ctx.settings.smoke
    single = ctx.fleet.model_copy(update={"hosts": (ctx.fleet.host(host),)})
    workspace = f"smoke-{host}-{secrets.token_hex(3)}"
    ctx.say(f"{host}: smoke preview {workspace} ({settings.framework})")
    runtime = PreviewRuntime.from_endpoints(single, [endpoint], background=False, reaper=False)
    started = time.monotonic()
    took: float | None = None
    error: str | None = None
    try:
        status = runtime.start(workspace, SMOKE_USER, settings.framework, wait=settings.timeout_s)
        if status.ready:
            took = round(time.monotonic() - started, 2)
            ctx.say(f"{host}: ready in {took:.1f} s at {status.url}; tearing it down")
        else:
            error = f"{status.phase}: {status.error or 'not ready in time'}"
    except RuntimeFailure as exc:
        error = str(exc)
    finally:
        try:
            runtime.stop(workspace)
        except RuntimeFailure as exc:
            error = error or f"could not tear the smoke preview down: {exc}"
        runtime.close()
    return took, error


def smoke_previews(ctx: CutoverContext, hosts: list[str]) -> SmokeResult:
    """One preview of the smoke framework started to ready and torn down on every host, all hosts at once (each
    through a runtime that sees only that host, so it is placed there)."""
    from drape_fleet.runtime.clients import TlsFiles, tls_endpoints

    endpoints = {e.host: e for e in tls_endpoints(ctx.fleet, TlsFiles.from_pki_dir(ctx.pki_dir))}
    with ThreadPoolExecutor(max_workers=max(1, len(hosts)), thread_name_prefix="drape-smoke") as pool:
        outcomes = dict(zip(hosts, pool.map(lambda h: _smoke_one(ctx, h, endpoints[h]), hosts), strict=True))
    seconds = {h: took for h, (took, _) in outcomes.items() if took is not None}
    errors = {h: error for h, (_, error) in outcomes.items() if error is not None}
    return SmokeResult(at=ctx.clock.now(), seconds=seconds, errors=errors)


def link_checks(ctx: CutoverContext) -> list[Check]:
    """With ``[cutover.link]``: has every preview host shaken hands with the backend lately (over SSH, ``wg show``)?
    The backend on Fly proxies Hetzner previews through the link from phase 2 on."""
    from drape_fleet.cutover.link import HANDSHAKE_FRESH_S, handshake_ages, host_link
    from drape_fleet.shell import CommandFailed
    from drape_fleet.ssh import ssh_run

    checks = []
    for name in ctx.preview_hosts:
        end = host_link(ctx.fleet, name)
        if end is None:
            continue
        label = f"{name}: WireGuard link to the backend ({end.interface})"
        try:
            shown = ssh_run(ctx.target.ssh_target(ctx.fleet.host(name)),
                            f"sudo -n wg show {end.interface} latest-handshakes; date +%s", timeout=20)
        except CommandFailed as exc:
            checks.append(Check(label, f"cannot read it ({str(exc).strip()[-160:]})", "a handshake within "
                                f"{HANDSHAKE_FRESH_S} s", False, "provision the link: `invoke provision --only link`"))
            continue
        lines = shown.stdout.strip().splitlines()
        now = float(lines[-1]) if lines and lines[-1].isdigit() else time.time()
        ages = handshake_ages("\n".join(lines[:-1]), now)
        fresh = bool(ages) and min(ages) <= HANDSHAKE_FRESH_S
        value = "no peer" if not ages else ("never" if min(ages) == float("inf") else f"{min(ages):.0f} s ago")
        checks.append(Check(label, f"last handshake {value}", f"within {HANDSHAKE_FRESH_S} s", fresh,
                            "bring the backend's end up on Fly (docs/cutover.md, the link), check its endpoint"))
    return checks
