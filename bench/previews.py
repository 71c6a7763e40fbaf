"""`invoke bench.preview`: the lab's generated projects through the runtime, phase by phase, in every scenario, and
side by side in the same run the naive path.

  cold       the host's shared store emptied: the template image only (packages from the registry)
  warm       the store filled by the trusted job (drape_fleet.store) with the project's lockfile, new container
  kept       start() again after stop(): the workspace's kept volume has the clone, node_modules and the
             framework's caches (the install is skipped, the fetch brings only what changed)
  prewarmed  project_opened() at least 30 s before start()
  hot        start() again while the preview runs
  naive      what the seed describes for Fly today: a generic Node image, a full clone, `npm install` with an
             empty cache, the dev server (a raw container on the same engine)

Phases come from the template's timings file (``/drape/timings.json``): container = the backend's ``start()``
until the entrypoint runs, clone, install, compile = until the dev server listens, page = the start page and
its assets compiled. ``first 200`` is ``start()`` until the backend's own GET of the start page returns the app;
``via ingress`` the same through the host's HTTPS ingress with a signed link, as a user's browser gets it. Naive:
its ``page`` is everything after the install (compile included). Previews clone the lab's private repositories with
a token of their own, handed over by the runtime as a file, trusting the lab's CA (``repo_ca_file``); the naive
path clones the public copies (``pub-<name>``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.environments import FleetTarget
from drape_fleet.runtime.errors import HostUnavailable, RuntimeFailure
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime
from drape_fleet.runtime.untrusted import read_small_file
from drape_fleet.store import service as store
from drape_fleet.store.sources import Source

FRAMEWORK = {"vite-react": "react", "vite-vue": "vue", "next-app": "nextjs"}
HOST = "ax1"
PREWARM_S = 30.0
Log = Callable[[str], None]


@dataclass
class Bench:
    target: FleetTarget
    fleet: FleetConfig
    runtime: PreviewRuntime
    repos: dict[str, str]
    """Each project's private repository (a token opens it)."""
    public_repos: dict[str, str]
    """The same projects without a token: the naive path's."""
    token: Callable[[str], str]
    """A new token for a project, as the backend gets one per start."""
    projects_dir: Path
    key: bytes
    ca: Path
    log: Log

    @property
    def engine(self) -> Any:
        return self.runtime.fleet[HOST]


def marker(name: str) -> str:
    return f"Drape lab {name}" if name.startswith("next") else "<div id="


def read_file(bench: Bench, container_id: str, path: str) -> str | None:
    """A small file the preview wrote (its timings), read as the runtime reads what comes out of a preview."""
    try:
        data = read_small_file(bench.engine, container_id, path, max_bytes=65536, budget=10)
    except RuntimeFailure:
        return None
    return data.decode(errors="replace") if data is not None else None


def first_200(url: str, text: str, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the lab's address
                if response.status == 200 and text in response.read().decode(errors="replace"):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.05)
    return None


def via_ingress(bench: Bench, workspace: str, text: str, deadline: float) -> float | None:
    """The user's path: the signed link, the session cookie, then the start page over HTTPS until it is the app."""
    from drape_fleet.ingress.links import preview_link

    settings = bench.fleet.previews.ingress
    if settings is None:
        return None
    host = bench.fleet.host(HOST)
    link = preview_link(bench.key, workspace=workspace, user="bench", host=HOST,
                        host_domain=settings.host_domain(HOST))
    name = link.split("/")[2]
    context = ssl.create_default_context(cafile=str(bench.ca))

    def get(path: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
        raw = socket.create_connection((str(host.public_address), settings.https_port), timeout=30)
        connection = http.client.HTTPSConnection(name, settings.https_port, context=context, timeout=30)
        connection.sock = context.wrap_socket(raw, server_hostname=name)
        connection.request("GET", path, headers={"Host": name, **({"Cookie": cookie} if cookie else {})})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), body

    status, headers, _ = get(link.split(name, 1)[1])
    if status != 303:
        return None
    cookie = headers["Set-Cookie"].split(";")[0]
    while time.monotonic() < deadline:
        status, _, body = get("/", cookie)
        if status == 200 and text in body.decode(errors="replace"):
            return time.monotonic()
        time.sleep(0.05)
    return None


def wait_final(bench: Bench, workspace: str, status: Any, deadline: float) -> Any:
    """As the backend waits: woken by the runtime when the preview is ready (the service's phase stream does the
    same), not by polling."""
    if status.phase.final:
        return status
    return bench.runtime.wait_ready(workspace, max(0.0, deadline - time.monotonic()))


def stop(bench: Bench, workspace: str) -> None:
    """A removal of a container holding a real node_modules can outlast a call's timeout: wait for it."""
    with contextlib.suppress(HostUnavailable):
        bench.runtime.stop(workspace)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and bench.runtime.status(workspace) is not None:
        time.sleep(1)


def workspace_of(name: str, scenario: str) -> str:
    """The kept scenario starts the warm scenario's workspace again."""
    return f"bench-{name}-{'warm' if scenario == 'kept' else scenario}"


def project(bench: Bench, name: str) -> dict[str, Any]:
    return {"project": name, "repo": bench.repos[name], "repo_token": bench.token(name)}


def forget_workspace(bench: Bench, workspace: str) -> None:
    """A scenario that is not "kept" starts without the workspace's kept volume (left by an earlier run)."""
    from drape_fleet.runtime import labels as L

    def remove(api: Any) -> None:
        for volume in api.volumes(filters={"label": [f"{L.KIND}={L.KIND_WORKSPACE}",
                                                     f"{L.WORKSPACE}={workspace}"]}).get("Volumes") or []:
            api.remove_volume(volume["Name"], force=True)

    bench.engine.call(remove, "forget the workspace's kept volume", timeout=300)


def through_runtime(bench: Bench, name: str, scenario: str, *, prewarm: bool = False) -> list[dict[str, Any]]:
    """One start (and, for warm, the hot start after it): rows with every phase."""
    workspace = workspace_of(name, scenario)
    framework = FRAMEWORK[name]
    row: dict[str, Any] = {"project": name, "scenario": scenario, "framework": framework}
    if scenario != "kept":
        forget_workspace(bench, workspace)
    if prewarm:
        opened = time.monotonic()
        status = bench.runtime.project_opened(workspace, "bench", framework, **project(bench, name))
        status = wait_final(bench, workspace, status, opened + 900)
        prepared = time.monotonic() - opened
        time.sleep(max(0.0, opened + PREWARM_S - time.monotonic()))
        row["note"] = (f"opened {time.monotonic() - opened:.0f} s before start(); the pre-warm was {status.phase} "
                       f"after {prepared:.0f} s" + (f" ({status.error})" if status.error else ""))
    request = project(bench, name)  # the backend has its token before it calls: not part of the start's time
    wall0, t0 = time.time(), time.monotonic()
    status = bench.runtime.start(workspace, "bench", framework, **request)
    status = wait_final(bench, workspace, status, t0 + 900)
    if status.phase is not Phase.READY or status.container_id is None:
        stop(bench, workspace)
        return [{**row, "error": f"{status.phase}: {status.error}"}]
    first = first_200(f"{status.url}/", marker(name), t0 + 900)
    row["first 200"] = (first - t0) if first else None
    ingress = via_ingress(bench, workspace, marker(name), t0 + 900)
    row["via ingress"] = (ingress - t0) if ingress else None
    if not prewarm:
        timings = json.loads(read_file(bench, status.container_id, "/drape/timings.json") or "{}")
        row.update({"container": timings.get("started_at", wall0 * 1000) / 1000 - wall0,
                    "clone": timings.get("fetch_s"),
                    "install": timings.get("install_s", 0.0 if timings.get("install_path") == "kept" else None),
                    "compile": timings.get("listen_s"), "page": timings.get("page_s"),
                    "path": timings.get("install_path")})
    rows = [row]
    if scenario == "warm":
        request = project(bench, name)
        t1 = time.monotonic()
        again = bench.runtime.start(workspace, "bench", framework, **request)
        hot = first_200(f"{again.url}/", marker(name), t1 + 60) if again.phase is Phase.READY else None
        rows.append({"project": name, "scenario": "hot", "framework": framework,
                     "first 200": (hot - t1) if hot else None, "note": "start() while it runs"})
    stop(bench, workspace)
    return rows


def empty_store(bench: Bench) -> None:
    """Cold: the host's store as on a new host (run as the store's owner, like the trusted job)."""
    cache = bench.fleet.provisioning.cache
    image = bench.fleet.runtime.frameworks["react"].image

    def run(api: Any) -> None:
        created = api.create_container(image, entrypoint=["sh", "-c", "find /pnpm-store -mindepth 1 -delete"],
                                       user=f"{cache.uid}:{cache.uid}", host_config=api.create_host_config(
                                           binds=[f"{cache.store_path}:/pnpm-store:rw"]))
        try:
            api.start(created["Id"])
            api.wait(created["Id"], timeout=600)
        finally:
            api.remove_container(created["Id"], force=True)

    bench.engine.call(run, "empty the store", timeout=660)


def fill_store(bench: Bench, name: str) -> None:
    """Warm: the trusted job fills the store with this project's lockfile (what `invoke cache.warm` does for a
    recently started project)."""
    project = bench.projects_dir / name
    files = {f: (project / f).read_bytes() for f in ("package.json", "pnpm-lock.yaml") if (project / f).exists()}
    report = store.fill(bench.engine, bench.fleet, sources=[Source("project", name, files)])
    if report.failed or report.exit_code:
        raise RuntimeError(f"filling the store for {name} failed: {[r.note for r in report.failed]}")


def naive(bench: Bench, name: str) -> dict[str, Any]:
    """Generic Node image (the template image's Node 22, npm and git, none of its machinery), a full clone,
    `npm install` with an empty cache, the dev server: to the first 200 of the start page."""
    engine = bench.engine
    image = bench.fleet.runtime.frameworks[FRAMEWORK[name]].image
    address = str(bench.fleet.host(HOST).private_address)
    dev = "npx next dev -H 0.0.0.0 -p 3000" if name.startswith("next") else "npx vite --host 0.0.0.0 --port 3000"
    clone = f"GIT_SSL_NO_VERIFY=1 git clone -q {bench.public_repos[name]}"
    script = (f"t() {{ echo MARK $1 $(date +%s%3N); }}; t start; {clone} "
              "/tmp/app && t cloned && cd /tmp/app && npm install --no-audit --no-fund --cache /tmp/empty-cache "  # noqa: S108
              f"> /tmp/npm.log 2>&1 || {{ tail -n 5 /tmp/npm.log; exit 1; }}; t installed && exec {dev}")
    t0, wall0 = time.monotonic(), time.time()
    config = engine.api.create_host_config(port_bindings={"3000/tcp": (address, None)}, mem_limit="2g",
                                           tmpfs={"/tmp": "size=3g,exec"})  # noqa: S108 - the container's own
    created = engine.call(lambda api: api.create_container(
        image, name=f"bench-naive-{name}", entrypoint=["sh", "-c", script], host_config=config, ports=[3000],
        user="1000:1000", labels={"bench": "naive"}, use_config_proxy=False), "create")
    cid = created["Id"]
    try:
        engine.call(lambda api: api.start(cid), "start")
        port = int(engine.call(lambda api: api.port(cid, 3000), "port")[0]["HostPort"])
        first = first_200(f"http://{address}:{port}/", marker(name), t0 + 900)
        logs = engine.call(lambda api: api.logs(cid), "logs").decode(errors="replace")
    finally:
        engine.call(lambda api: api.remove_container(cid, force=True), "remove", timeout=180)
    marks = {line.split()[1]: int(line.split()[2]) / 1000 - wall0 for line in logs.splitlines()
             if line.startswith("MARK ")}
    total = (first - t0) if first else None
    failure = {} if total else {"error": "no 200 within 900 s: " + " | ".join(logs.strip().splitlines()[-3:])[-300:]}
    return {**failure, "project": name, "scenario": "naive", "framework": FRAMEWORK[name],
            "container": marks.get("start"),
            "clone": (marks["cloned"] - marks["start"]) if "cloned" in marks else None,
            "install": (marks["installed"] - marks["cloned"]) if "installed" in marks else None,
            "page": (total - marks["installed"]) if total and "installed" in marks else None,
            "first 200": total, "path": "npm, no cache"}


def run(bench: Bench, names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        steps: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
            ("cold", lambda name=name: (empty_store(bench), through_runtime(bench, name, "cold"))[1]),
            ("warm", lambda name=name: (fill_store(bench, name), through_runtime(bench, name, "warm"))[1]),
            ("kept", lambda name=name: through_runtime(bench, name, "kept")),
            ("prewarmed", lambda name=name: through_runtime(bench, name, "prewarmed", prewarm=True)),
            ("naive", lambda name=name: [naive(bench, name)]),
        ]
        for scenario, step in steps:
            bench.log(f"{name}: {scenario}")
            try:
                rows += step()
            except Exception as exc:  # one failed scenario must not lose the others
                rows.append({"project": name, "scenario": scenario, "framework": FRAMEWORK[name],
                             "error": str(exc)[:200]})
    return rows
