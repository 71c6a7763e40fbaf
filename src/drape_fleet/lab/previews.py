"""Lab-only wiring for the runtime: preview images for the lab hosts, built without a registry.

The lab hosts are provisioned by the real deploys (``invoke provision --env lab``): their engines listen with
mutual TLS on the private address, the firewall fences preview bridges, and the shared pnpm store exists. What
the lab still lacks is a registry, so the preview images (the tiny test preview, and the framework templates on
the lab's Node 22 base from ``drape_fleet.lab.node_images``) are built on this machine's engine and loaded
into every host engine through the runtime's own TLS connection. Nothing here is imported by
``drape_fleet.runtime``; production never runs it (``invoke fleet.images`` builds on the hosts there).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from docker.errors import NotFound

from drape_fleet import preview_images
from drape_fleet.config import FleetConfig
from drape_fleet.console import Log
from drape_fleet.lab import node_images
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.runtime.engines import Engine

TINY_IMAGE = "drape-lab/preview-tiny:1"


def lab_settings() -> LabSettings:
    return lab_state_settings()


# ---------------------------------------------------------------------------------------------------
# Preview images, built on the outer engine from the lab's debootstrap rootfs (no registry here)
# ---------------------------------------------------------------------------------------------------

def ensure_tiny_image(log: Log) -> str:
    """The lab's own test "framework": a dev server in a few MB, no Node."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_image, ensure_rootfs_image

    client = ensure_engine(log)
    base = ensure_rootfs_image(client, log)
    return ensure_image(client, log, context=preview_images.images_dir() / "tiny", tag=TINY_IMAGE, base=base)


def ensure_lab_template(framework: str, fleet: FleetConfig, log: Log) -> str:
    """The image the lab fleet names for ``framework``, built on this machine's engine: the tiny test preview, or
    a real template on the lab's Node 22 base (``drape_fleet.lab.node_images``, the one naming scheme)."""
    tag = fleet.runtime.frameworks[framework].image
    if tag == TINY_IMAGE:
        return ensure_tiny_image(log)
    built = node_images.ensure_template(framework, log)
    if built != tag:
        raise RuntimeError(f"the lab fleet names {tag} for {framework}, but the lab builds {built}: "
                           "run `invoke lab.up` again to rewrite the lab's fleet file")
    return built


def image_id(tag: str) -> str:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip()


def ship_tiny_image(fleet: FleetConfig, log: Log) -> None:
    """The tiny preview built here and loaded into every host of ``fleet`` (over the lab PKI's TLS)."""
    from drape_fleet.pki.paths import pki_dir
    from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
    from drape_fleet.runtime.fleet import Fleet

    ensure_tiny_image(log)
    engines = Fleet.from_endpoints(tls_endpoints(fleet, TlsFiles.from_pki_dir(pki_dir("lab"))), fleet.runtime)
    try:
        ship_image(engines.engines(), TINY_IMAGE, log)
    finally:
        engines.close()


def ship_image(engines: Iterable[Engine], tag: str, log: Log) -> list[str]:
    """Load ``tag`` from this machine's engine into every host engine that lacks it, through the runtime's own
    TLS seam (``POST /images/load``). Returns the hosts it was loaded on."""
    wanted = image_id(tag)
    if not wanted:
        raise RuntimeError(f"{tag} is not built on this machine")
    need: list[Engine] = []
    for engine in engines:
        try:
            have = engine.call(lambda api: cast(dict[str, Any], api.inspect_image(tag)),  # type: ignore[no-untyped-call]
                               "inspect image").get("Id")
        except NotFound:
            have = None
        if have != wanted:
            need.append(engine)
    if not need:
        return []
    log(f"shipping {tag} to {', '.join(e.name for e in need)}")
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout

    def load(engine: Engine) -> None:
        engine.call(lambda api: list(cast(Iterable[Any], api.load_image(saved))),  # type: ignore[no-untyped-call]
                    "load image", timeout=1800)

    with ThreadPoolExecutor(max_workers=len(need)) as pool:
        list(pool.map(load, need))
    return [e.name for e in need]
