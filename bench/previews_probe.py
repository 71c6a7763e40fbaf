"""Probe for `invoke bench.preview`: real generated projects started through the current runtime on the lab,
phase by phase, cold and warm, next to the naive path in the same run.

  cold   the host's shared store is empty: the template image only (packages from the registry)
  warm   the host's store holds the project's packages (filled by the trusted job), new container
  hot    start() again while the preview runs
  naive  what the seed describes for Fly today: a generic Node image, a full clone, `npm install` with an
         empty cache, the dev server (a raw container on the same engine)

Columns: container = start() call until the entrypoint runs; clone, install, compile (until the dev server
listens) and page (the start page compiled) come from the template's timings file; ready = start() until the
runtime says ready; first 200 = start() until the backend's own GET of the start page answers 200 with the app.

Until the runtime hands tokens over (see docs/previews.md, integration plan), previews clone the public
copies (``pub-<name>``) and reach the lab git server with ``GIT_SSL_NO_VERIFY`` in their env: the probe
measures speed, the token path is proven by tests/previews. Run on a provisioned lab:
``DRAPE_LAB_PREFIX=... python bench/previews_probe.py [--projects vite-react,vite-vue,next-app]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from drape_fleet.config import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime.errors import HostUnavailable
from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

FRAMEWORK = {"vite-react": "react", "vite-vue": "vue", "next-app": "nextjs"}
MARKER = "Drape lab {name}"
STORE = "/srv/drape/pnpm-store"
CACHE_UID = 10100
INSECURE_LAB_GIT = {"GIT_SSL_NO_VERIFY": "1"}


def log(message: str) -> None:
    print(f"[probe] {message}", file=sys.stderr, flush=True)


def lab_exec(container: str, command: str, timeout: float = 900) -> str:
    result = subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{container}: {command[:120]}: {result.stderr[-800:]}{result.stdout[-400:]}")
    return result.stdout


def prepare(frameworks: set[str]) -> tuple[FleetConfig, Any, dict[str, str]]:
    """Templates (Node 22) on every host, the projects on the lab git server; the fleet narrowed to ax1."""
    from drape_fleet.lab import node_images, previews, projects
    from drape_fleet.lab.state import load_lab_fleet
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.runtime.engines import Fleet, TlsFiles, tls_endpoints

    fleet, _ = load_lab_fleet()
    settings = previews.lab_settings()
    tags = {fw: node_images.ensure_template(fw, log) for fw in sorted(frameworks)}
    engines = Fleet.from_endpoints(tls_endpoints(fleet, TlsFiles.from_pki_dir(pki_dir("lab"))), fleet.runtime)
    try:
        for tag in tags.values():
            previews.ship_image(engines.engines(), tag, log)
    finally:
        engines.close()
    projects.publish_all(settings, projects.ensure_projects(log), log)
    runtime = fleet.runtime.model_dump()
    for fw, tag in tags.items():
        runtime["frameworks"][fw] = {**runtime["frameworks"][fw], "image": tag}
    one_host = [h for h in fleet.hosts if h.name == "ax1"]
    narrowed = fleet.model_copy(update={"runtime": RuntimeSettings.model_validate(runtime), "hosts": one_host})
    return narrowed, settings, tags


def read_file(runtime: PreviewRuntime, host: str, container_id: str, path: str) -> str | None:
    def fetch(api: Any) -> bytes:
        stream, _ = api.get_archive(container_id, path)
        return b"".join(stream)

    try:
        data = runtime.fleet[host].call(fetch, "read file")
    except Exception:
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read(65536).decode(errors="replace") if handle is not None else None


def get_page(url: str, marker: str, deadline: float) -> float | None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the lab's address
                if response.status == 200 and marker in response.read().decode(errors="replace"):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.05)
    return None


def through_runtime(runtime: PreviewRuntime, name: str, repo: str, scenario: str) -> dict[str, Any]:
    workspace = f"probe-{name}-{scenario}"
    wall0, t0 = time.time(), time.monotonic()
    status = runtime.start(workspace, "probe", FRAMEWORK[name], repo=repo, env=INSECURE_LAB_GIT)
    deadline = t0 + 600
    while not status.phase.final and time.monotonic() < deadline:
        time.sleep(0.05)
        status = runtime.status(workspace) or status
    row: dict[str, Any] = {"project": name, "scenario": scenario, "ready": time.monotonic() - t0}
    if status.phase is not Phase.READY or status.container_id is None or status.host is None:
        row["error"] = f"{status.phase}: {status.error}"
        stop(runtime, workspace)
        return row
    phase = ""
    while time.monotonic() < deadline:  # the template's own "ready": the start page compiled
        phase = (read_file(runtime, status.host, status.container_id, "/drape/phase") or "").strip()
        if phase.splitlines() and phase.splitlines()[-1].startswith(("ready", "failed")):
            break
        time.sleep(0.05)
    first = get_page(f"{status.url}/", MARKER.format(name=name) if name.startswith("next") else "<div id=",
                     deadline)
    timings = json.loads(read_file(runtime, status.host, status.container_id, "/drape/timings.json") or "{}")
    row.update({
        "container": timings.get("started_at", wall0 * 1000) / 1000 - wall0,
        "clone": timings.get("fetch_s"), "install": timings.get("install_s"), "path": timings.get("install_path"),
        "compile": timings.get("listen_s"), "page": timings.get("page_s"),
        "first 200": (first - t0) if first else None, "template": phase.splitlines()[-1] if phase else "?",
    })
    t1 = time.monotonic()
    hot = runtime.start(workspace, "probe", FRAMEWORK[name], repo=repo, env=INSECURE_LAB_GIT)
    row["hot"] = time.monotonic() - t1 if hot.phase is Phase.READY else None
    stop(runtime, workspace)
    return row


def stop(runtime: PreviewRuntime, workspace: str) -> None:
    """Removing a container holding a real node_modules can outlast the runtime's call timeout (issue 8 #8):
    wait for the engine to finish instead of failing the run."""
    with contextlib.suppress(HostUnavailable):
        runtime.stop(workspace)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and runtime.status(workspace) is not None:
        time.sleep(1)


def fill_store(host: str, image: str, repo: str) -> None:
    """The trusted job: the project's packages into the host's shared store (as the store's owner)."""
    lab_exec(host, f"docker run --rm --user {CACHE_UID}:{CACHE_UID} -e GIT_SSL_NO_VERIFY=1 "
                   f"--tmpfs /workspace:exec,uid={CACHE_UID},gid={CACHE_UID},size=3g -e HOME=/workspace "
                   f"-v {STORE}:/store --entrypoint sh {image} -c 'git clone -q --depth 1 {repo} /workspace/app "
                   "&& cd /workspace/app && /opt/drape/pnpm/10/bin/pnpm install --frozen-lockfile --ignore-scripts "
                   "--reporter=silent --store-dir /store'")


def naive(runtime: PreviewRuntime, name: str, repo: str, image: str) -> dict[str, Any]:
    """Generic Node image (the template image's Node 22, npm and git, none of its machinery), full clone,
    `npm install` with an empty cache, the dev server: to the first 200 of the start page."""
    engine = runtime.fleet["ax1"]
    address = str(runtime.config.host("ax1").private_address)
    dev = "npx next dev -H 0.0.0.0 -p 3000" if name.startswith("next") else "npx vite --host 0.0.0.0 --port 3000"
    script = (f"t() {{ echo MARK $1 $(date +%s%3N); }}; t start; GIT_SSL_NO_VERIFY=1 git clone -q {repo} /tmp/app "
              "&& t cloned && cd /tmp/app && npm install --no-audit --no-fund --cache /tmp/empty-cache "
              f">/dev/null 2>&1 && t installed && exec {dev}")
    t0, wall0 = time.monotonic(), time.time()
    config = engine.api.create_host_config(port_bindings={"3000/tcp": (address, None)}, mem_limit="1g",
                                           tmpfs={"/tmp": "size=3g,exec"})  # noqa: S108 - the container's own
    created = engine.call(lambda api: api.create_container(
        image, name=f"probe-naive-{name}", entrypoint=["sh", "-c", script], host_config=config, ports=[3000],
        user="1000:1000", labels={"probe": "naive"}, use_config_proxy=False), "create")
    cid = created["Id"]
    try:
        engine.call(lambda api: api.start(cid), "start")
        port = int(engine.call(lambda api: api.port(cid, 3000), "port")[0]["HostPort"])
        first = get_page(f"http://{address}:{port}/", MARKER.format(name=name) if name.startswith("next")
                         else "<div id=", t0 + 900)
        logs = engine.call(lambda api: api.logs(cid), "logs").decode(errors="replace")
    finally:
        engine.call(lambda api: api.remove_container(cid, force=True), "remove", timeout=120)
    marks = {line.split()[1]: int(line.split()[2]) / 1000 - wall0 for line in logs.splitlines()
             if line.startswith("MARK ")}
    return {"project": name, "scenario": "naive", "container": marks.get("start"),
            "clone": (marks["cloned"] - marks["start"]) if "cloned" in marks else None,
            "install": (marks["installed"] - marks["cloned"]) if "installed" in marks else None,
            "first 200": (first - t0) if first else None, "path": "npm, no cache"}


COLUMNS = ("container", "clone", "install", "compile", "page", "ready", "first 200", "hot")


def render(rows: list[dict[str, Any]]) -> str:
    head = f"{'project':<12}{'scenario':<9}" + "".join(f"{c:>10}" for c in COLUMNS) + f"  {'vs naive':>8}  install path"
    lines = [head]
    naive_total = {r["project"]: r.get("first 200") for r in rows if r["scenario"] == "naive"}
    for r in rows:
        cells = "".join(f"{r[c]:>10.2f}" if isinstance(r.get(c), float | int) else f"{'-':>10}" for c in COLUMNS)
        base, total = naive_total.get(r["project"]), r.get("first 200")
        ratio = f"{base / total:>7.1f}x" if base and total else f"{'-':>8}"
        lines.append(f"{r['project']:<12}{r['scenario']:<9}{cells}  {ratio}  {r.get('path') or ''}"
                     + (f"  ERROR {r['error']}" if r.get("error") else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", default="vite-react,vite-vue,next-app")
    args = parser.parse_args()
    names = args.projects.split(",")
    fleet, settings, tags = prepare({FRAMEWORK[n] for n in names})
    from drape_fleet.lab import gitserver
    from drape_fleet.pki.paths import pki_dir

    host = settings.container_name("ax1")
    runtime = PreviewRuntime.connect(fleet, pki_dir=pki_dir("lab"), background=False, reaper=False)
    rows: list[dict[str, Any]] = []
    try:
        for name in names:
            repo = gitserver.repo_url(settings, f"pub-{name}")
            lab_exec(host, f"find {STORE} -mindepth 1 -delete")
            for scenario in ("cold", "warm", "naive"):
                log(f"{name}: {scenario}")
                try:
                    if scenario == "warm":
                        fill_store(host, tags[FRAMEWORK[name]], repo)
                    rows.append(naive(runtime, name, repo, tags[FRAMEWORK[name]]) if scenario == "naive"
                                else through_runtime(runtime, name, repo, scenario))
                except Exception as exc:  # one failed scenario must not lose the others
                    rows.append({"project": name, "scenario": scenario, "error": str(exc)[:200]})
    finally:
        runtime.close()
    print(render(rows))
    print(json.dumps(rows, default=str))


if __name__ == "__main__":
    main()
