"""The preview templates' images (drape-nextjs, drape-react, drape-vue): build contexts and building them.

Ops side, outside the runtime: the backend installs only ``drape_fleet.runtime``, which knows the images by
name (``runtime.frameworks.<name>.image``) and never reads the checkout. Used by ``invoke fleet.images``, the
lab (``lab.previews``) and the tests.

A template's build context is ``images/preview/common`` (Dockerfile, entrypoint) plus the framework's
``images/preview/<framework>/starter`` project, assembled in memory (pure). Building goes through an engine's
own API, so production builds each template on each host (pulling ``node:22-bookworm-slim`` there) and the lab
builds on this machine's engine from a locally made Node base. Each image is labelled with the hash of its
recipe (context + base), and a build whose recipe is already there is skipped.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from docker.errors import NotFound

from drape_fleet.paths import project_root
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError

PRODUCTION_BASE = "node:22-bookworm-slim"
RECIPE_LABEL = "drape.template.recipe"
TEMPLATES = ("nextjs", "react", "vue")


def images_dir() -> Path:
    return project_root() / "images" / "preview"


def context_files(framework: str, root: Path | None = None) -> dict[str, bytes]:
    root = root or images_dir()
    starter = root / framework / "starter"
    if framework not in TEMPLATES or not starter.is_dir():
        raise KeyError(f"no template for {framework!r} (templates: {', '.join(TEMPLATES)})")
    files = {p.name: p.read_bytes() for p in sorted((root / "common").iterdir()) if p.is_file()}
    for path in sorted(starter.rglob("*")):
        if path.is_file() and "node_modules" not in path.parts:
            files[f"starter/{path.relative_to(starter)}"] = path.read_bytes()
    return files


def context_tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def recipe(files: Mapping[str, bytes], base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()[:16]


def build_log_errors(chunks: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    errors: list[str] = []
    for chunk in chunks:
        if "error" in chunk:
            errors.append(str(chunk["error"]).strip())
        elif "stream" in chunk:
            lines.append(str(chunk["stream"]).rstrip())
    return lines, errors


def build_image(api: Any, files: Mapping[str, bytes], tag: str, *, base: str, recipe_base: str | None = None,
                network_mode: str | None = None, labels: Mapping[str, str] | None = None) -> str:
    """Build ``files`` as ``tag`` with ``BASE=base`` through a docker-py ``APIClient`` (any engine); skipped when
    the image there has the same recipe (the files and ``recipe_base``, by default the base's name)."""
    wanted = recipe(files, recipe_base or base)
    try:
        existing = api.inspect_image(tag)
        if (existing.get("Config", {}).get("Labels") or {}).get(RECIPE_LABEL) == wanted:
            return tag
    except NotFound:
        pass  # not there yet: build it
    chunks = api.build(fileobj=io.BytesIO(context_tar(files)), custom_context=True, tag=tag,
                       buildargs={"BASE": base}, labels={**(labels or {}), RECIPE_LABEL: wanted}, rm=True, forcerm=True,
                       decode=True, network_mode=network_mode)
    lines, errors = build_log_errors(chunks)
    if errors:
        tail = "\n".join(lines[-15:])
        raise RuntimeError(f"building {tag} failed: {'; '.join(errors)}\n{tail}")
    return tag


def build_template(api: Any, framework: str, tag: str, *, base: str, network_mode: str | None = None,
                   labels: Mapping[str, str] | None = None) -> str:
    """Build the ``framework`` template as ``tag``."""
    return build_image(api, context_files(framework), tag, base=base, network_mode=network_mode, labels=labels)


def build_on_engine(engine: Engine, framework: str, tag: str, *, base: str = PRODUCTION_BASE) -> str:
    """Build a template on a host's engine, through the runtime's seam (its own long-timeout client)."""
    try:
        return engine.call(lambda api: build_template(api, framework, tag, base=base), f"build {tag}", timeout=3600)
    except RuntimeError as exc:
        raise EngineError(engine.name, None, str(exc)) from exc
