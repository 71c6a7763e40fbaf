"""Base images for the lab, made without a registry: a debootstrap rootfs, then the lab-host image.

Each image carries a ``drape.lab.recipe`` label: the hash of what it was made from. An image whose
label matches is reused, so a second ``lab.up`` builds nothing. Every lab on this machine shares these
images, so ``lab.down`` leaves them (removing them would only slow down the next ``up`` of any lab).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import BuildError, ImageNotFound

from drape_fleet.console import Log
from drape_fleet.lab.engine import ENGINE_ROOT, ensure_tools
from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LABEL
from drape_fleet.paths import project_root

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOTFS_IMAGE = f"drape-lab/rootfs:{SUITE}"
HOST_IMAGE = f"drape-lab/host:{SUITE}"
ROOTFS_PACKAGES = ("ca-certificates",)
RECIPE_LABEL = "drape.lab.recipe"
IMAGE_LABEL = f"{LABEL}.image"


def debian_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d"),
                  sources_list: Path = Path("/etc/apt/sources.list")) -> str:
    """The Debian mirror this machine already uses (reachable by definition), else deb.debian.org."""
    candidates = sorted(sources_dir.glob("*.sources")) + sorted(sources_dir.glob("*.list")) + [sources_list]
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for word in line.split():
                if word.startswith(("http://", "https://")) and "/debian" in word and "security" not in word:
                    return word.rstrip("/")
    return DEFAULT_MIRROR


def _recipe_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _image_recipe(client: docker.DockerClient, name: str) -> str | None:
    try:
        labels = client.images.get(name).labels or {}
    except ImageNotFound:
        return None
    return labels.get(RECIPE_LABEL)


def ensure_rootfs_image(client: docker.DockerClient, log: Log, mirror: str | None = None) -> str:
    mirror = mirror or debian_mirror()
    recipe = _recipe_hash("debootstrap", "minbase", SUITE, ",".join(ROOTFS_PACKAGES))
    if _image_recipe(client, ROOTFS_IMAGE) == recipe:
        return ROOTFS_IMAGE
    ensure_tools(log, {"debootstrap": "debootstrap"})
    ENGINE_ROOT.mkdir(parents=True, exist_ok=True)
    log(f"making a Debian {SUITE} rootfs with debootstrap from {mirror} (about 30 s)")
    with tempfile.TemporaryDirectory(dir=ENGINE_ROOT, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}", SUITE,
             str(rootfs), mirror],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
            raise LabError(f"debootstrap of {SUITE} from {mirror} failed:\n{tail}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", f"LABEL {RECIPE_LABEL}={recipe} {IMAGE_LABEL}=true", "-",
             ROOTFS_IMAGE],
            stdin=tar.stdout, capture_output=True, text=True, check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise LabError(f"importing the rootfs as {ROOTFS_IMAGE} failed: {imported.stderr.strip()}")
    log(f"made {ROOTFS_IMAGE}")
    return ROOTFS_IMAGE


def ensure_image(client: docker.DockerClient, log: Log, *, context: Path, tag: str, base: str) -> str:
    """Build ``context`` as ``tag`` on top of ``base`` unless an image from the same recipe exists."""
    base_id = client.images.get(base).id or base
    files = sorted(p for p in context.rglob("*") if p.is_file())
    recipe = _recipe_hash(base_id, *(f"{p.relative_to(context)}:{p.read_text()}" for p in files))
    if _image_recipe(client, tag) == recipe:
        return tag
    log(f"building {tag} from {context.relative_to(project_root())}")
    try:
        client.images.build(path=str(context), tag=tag, buildargs={"BASE": base}, network_mode="host",
                            labels={RECIPE_LABEL: recipe, IMAGE_LABEL: "true"}, rm=True, forcerm=True)
    except BuildError as exc:
        lines = [str(chunk.get("stream", chunk.get("error", ""))).rstrip() for chunk in exc.build_log]
        tail = "\n".join(line for line in lines if line)[-2000:]
        raise LabError(f"building {tag} failed: {exc.msg}\n{tail}") from None
    return tag


def ensure_host_image(client: docker.DockerClient, log: Log) -> str:
    base = ensure_rootfs_image(client, log)
    return ensure_image(client, log, context=project_root() / "images" / "lab-host", tag=HOST_IMAGE, base=base)

