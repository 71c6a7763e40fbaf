"""Lab-only wiring for the runtime: preview images for the lab hosts, built without a registry.

The lab hosts are provisioned by the real deploys (``invoke provision --env lab``): their engines listen with
mutual TLS on the private address, the firewall fences preview bridges, and the shared pnpm store exists. What
the lab still lacks is a registry, so the preview images (the tiny test preview and the framework templates on
a locally made Node base) are built on this machine's engine from the lab's debootstrap rootfs and loaded
into every host engine through the runtime's own TLS connection. Nothing here is imported by
``drape_fleet.runtime``; production never runs it (``invoke fleet.images`` builds on the hosts there).
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from docker.errors import NotFound

from drape_fleet.config import FleetConfig
from drape_fleet.console import Log
from drape_fleet.lab.images import IMAGE_LABEL
from drape_fleet.lab.images import ROOTFS_IMAGE as ROOTFS
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.paths import project_root
from drape_fleet.runtime.engines import Engine

TINY_IMAGE = "drape-lab/preview-tiny:1"
NODE_BASE = "drape-lab/node:bookworm"


def lab_settings() -> LabSettings:
    return lab_state_settings()


# ---------------------------------------------------------------------------------------------------
# Preview images, built on the outer engine from the lab's debootstrap rootfs (no registry here)
# ---------------------------------------------------------------------------------------------------

def images_dir() -> Path:
    return project_root() / "images" / "preview"


def build_local(tag: str, context: Path, base: str, log: Log) -> str:
    """Build ``context`` on this machine's engine with ``BASE`` substituted (the lab's own base images)."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_image, ensure_rootfs_image

    client = ensure_engine(log)
    if base == ROOTFS:
        ensure_rootfs_image(client, log)
    return ensure_image(client, log, context=context, tag=tag, base=base)


def ensure_tiny_image(log: Log) -> str:
    return build_local(TINY_IMAGE, images_dir() / "tiny", ROOTFS, log)


MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def ensure_node_base(log: Log) -> str:
    """The lab's Node base: built from a context with this machine's CA bundle next to the Dockerfile."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_rootfs_image
    from drape_fleet.runtime import templates

    client = ensure_engine(log)
    ensure_rootfs_image(client, log)
    files = {"Dockerfile": (images_dir() / "lab-node-base" / "Dockerfile").read_bytes(),
             "machine-ca.crt": MACHINE_CA.read_bytes() if MACHINE_CA.exists() else b""}
    base_id = client.images.get(ROOTFS).id or ROOTFS
    wanted = templates.recipe(files, base_id)
    try:
        if (client.images.get(NODE_BASE).labels or {}).get(templates.RECIPE_LABEL) == wanted:
            return NODE_BASE
    except NotFound:
        pass
    log(f"building {NODE_BASE} (Debian's nodejs on the lab rootfs; about 2 minutes)")
    chunks = client.api.build(fileobj=io.BytesIO(templates.context_tar(files)), custom_context=True, tag=NODE_BASE,
                              buildargs={"BASE": ROOTFS}, labels={templates.RECIPE_LABEL: wanted, IMAGE_LABEL: "true"},
                              rm=True, forcerm=True, decode=True, network_mode="host")
    lines, errors = templates.build_log_errors(chunks)
    if errors:
        raise RuntimeError(f"building {NODE_BASE} failed: {'; '.join(errors)}\n" + "\n".join(lines[-15:]))
    return NODE_BASE


def ensure_lab_template(framework: str, fleet: FleetConfig, log: Log) -> str:
    """Build a framework template on this machine's engine from the lab's Node base (tagged as the lab fleet
    names it), with the host network for npm."""
    from drape_fleet.lab.engine import engine_client
    from drape_fleet.runtime import templates

    tag = fleet.runtime.frameworks[framework].image
    if tag == TINY_IMAGE:  # the lab's own test "framework": a dev server in a few MB, no Node
        return ensure_tiny_image(log)
    base = ensure_node_base(log)
    log(f"building {tag} (template {framework}) on {base}")
    client = engine_client(timeout=1800)
    try:
        return templates.build_with(client.api, framework, tag, base=base, network_mode="host",
                                    labels={IMAGE_LABEL: "true"})  # shared by every lab: lab.down keeps it
    finally:
        client.close()


def image_id(tag: str) -> str:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip()


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
