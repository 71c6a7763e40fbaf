"""Fixtures for real projects in previews: the lab's git server holding the generated projects, and the Node 22
template image. Previews run directly on this machine's engine, on the lab's public network (where the git
server is), the way the runtime will run them once the handover is wired in. Like every lab fixture they FAIL
(never skip) when something cannot be prepared.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from preview_support import FLEET_HOST, WORKSPACE_PREFIX, FleetLab, PreviewLab

from drape_fleet.config import FleetConfig

SHARED = ("vite-react", "vite-vue", "next-app")
"""The projects whose packages the shared store holds (the variants of vite-react share its lockfile)."""


@pytest.fixture(scope="session")
def preview_lab(lab_fleet: FleetConfig) -> Iterator[PreviewLab]:
    from drape_fleet.lab import gitserver, node_images, previews, projects

    def say(message: str) -> None:
        print(f"[previews] {message}")

    try:
        settings = previews.lab_settings()
        image = node_images.ensure_template("react", say)
        made = projects.ensure_projects(say)
        projects.publish_all(settings, made, say)
        ca = gitserver.ca_file(settings).read_bytes()
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the previews lab could not be prepared: {exc}", pytrace=False)
    client = docker.from_env(timeout=300)
    yield PreviewLab(settings=settings, client=client, image=image, ca=ca, projects=made)
    for container in client.containers.list(all=True, filters={"label": "drape.test=previews"}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def stored_lab(preview_lab: PreviewLab, tmp_path_factory: pytest.TempPathFactory) -> PreviewLab:
    """The previews lab with a shared store on this machine, filled once by the trusted job (drape_fleet.store:
    the template's supervisor in fill mode, as the store's owner) with the generated projects' lockfiles: every
    test that installs them installs offline from it, as previews do on a warm host."""
    from drape_fleet.config.previews import StoreSettings
    from drape_fleet.config.provisioning import CacheSettings
    from drape_fleet.config.runtime import RuntimeSettings
    from drape_fleet.runtime.engines import Endpoint, Engine
    from drape_fleet.store.job import run_job
    from drape_fleet.store.sources import Source

    cache = CacheSettings()
    store = tmp_path_factory.mktemp("pnpm-store")
    os.chown(store, cache.uid, cache.uid)
    store.chmod(0o755)  # the store's contract: its owner writes, every preview reads
    sources = [Source("project", name, {f: (preview_lab.projects / name / f).read_bytes()
                                        for f in ("package.json", "pnpm-lock.yaml")}) for name in SHARED]
    engine = Engine(Endpoint("local", "unix:///var/run/docker.sock"), RuntimeSettings())
    try:
        report = run_job(engine, preview_lab.image, cache.model_copy(update={"store_path": str(store)}),
                         StoreSettings(), sources)
    finally:
        engine.close()
    if report.exit_code != 0 or report.failed:
        pytest.fail(f"the trusted job could not fill the test store: {report.failed} {report.log_tail[-800:]}",
                    pytrace=False)
    return replace(preview_lab, store=Path(store))


@pytest.fixture(scope="session")
def fleet_lab(provisioned_lab: object, preview_lab: PreviewLab) -> Iterator[FleetLab]:
    """One provisioned lab host (ingress deployed, store owned by its owner) with the tiny preview and the react
    template on it, and a runtime placing only there."""
    from drape_fleet.environments import LAB, load
    from drape_fleet.ingress.credentials import lab_ca, link_key
    from drape_fleet.lab import previews
    from drape_fleet.runtime.service import PreviewRuntime

    def say(message: str) -> None:
        print(f"[previews] {message}")

    try:
        target = load(LAB)
        fleet = target.fleet.model_copy(update={"hosts": [target.fleet.host(FLEET_HOST)]})
        runtime = PreviewRuntime.connect(fleet, pki_dir=target.env.pki_dir, background=False, reaper=False)
        engines = runtime.fleet.engines()
        for framework in ("tiny", "react"):
            previews.ship_image(engines, previews.ensure_lab_template(framework, fleet, say), say)
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the previews fleet lab could not be prepared: {exc}", pytrace=False)
    lab = FleetLab(target, fleet, runtime, runtime.fleet[FLEET_HOST], preview_lab, link_key(target), lab_ca(target))
    yield lab
    for status in runtime.previews():
        if status.workspace.startswith(WORKSPACE_PREFIX):
            runtime.stop(status.workspace)
    deadline = time.monotonic() + 120  # stops return before a real node_modules is removed
    while any(s.workspace.startswith(WORKSPACE_PREFIX) for s in runtime.previews()) and time.monotonic() < deadline:
        time.sleep(1)

    def remove_kept(api: object) -> None:  # the kept workspaces these tests' previews left
        for volume in api.volumes(filters={"label": "drape.kind=workspace"}).get("Volumes") or []:  # type: ignore[attr-defined]
            if (volume.get("Labels") or {}).get("drape.workspace", "").startswith(WORKSPACE_PREFIX):
                try:
                    api.remove_volume(volume["Name"], force=True)  # type: ignore[attr-defined]
                except docker.errors.APIError as exc:  # a removal still under way holds it: said, not fatal
                    print(f"[previews] kept workspace {volume['Name']} left: {exc}")

    lab.engine.call(remove_kept, "remove the tests' kept workspaces", timeout=300)
    runtime.close()
