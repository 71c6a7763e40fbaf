"""What a host installs to run the service: one tar of wheels, built on the ops machine.

The project's own wheel plus every dependency of ``drape-fleet[service]`` as binary wheels for the host's Python
(``pip download --python-version``), pinned to the versions installed where this runs (the versions the tests
passed with). The host installs from the tar alone (``pip install --no-index``): it needs no package index,
and what runs in production is what was tested, not whatever the index serves that day.

Built once per content (``digest``: the project's source, the pins, the target Python) and cached under
``$XDG_CACHE_HOME/drape-fleet/service-bundles``; the tar is byte-for-byte reproducible, so the deploy uploads
it only when the content changed. Only the host's *name* for its Python is needed (``PYTHON_BY_DISTRO``).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from drape_fleet.paths import project_root
from drape_fleet.service_deploy.locks import file_lock

PROJECT = "drape-fleet"
EXTRA = "service"
PYTHON_BY_DISTRO = {"debian-12": "3.11", "ubuntu-22.04": "3.10", "ubuntu-24.04": "3.12"}
"""The distribution's ``python3`` (the venv is made with it)."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "linux_x86_64")
"""x86_64 glibc (AX102); every distribution above has glibc 2.31 or newer."""


class BundleError(RuntimeError):
    """The bundle cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    digest: str
    python: str
    wheels: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"drape-runtime-{self.digest[:16]}.tar"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "drape-fleet" / "service-bundles"


def requirements() -> list[str]:
    """The project's requirements for the service (its base ones and the ``service`` extra), from its metadata."""
    found = []
    for requirement in metadata.requires(PROJECT) or []:
        spec, _, marker = requirement.partition(";")
        if not marker.strip() or marker.replace(" ", "").replace("'", '"') == f'extra=="{EXTRA}"':
            found.append(spec.strip())
    return found


def pins() -> list[str]:
    """Every distribution installed here as ``name==version``: the constraints of the download."""
    seen = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name and name.lower() != PROJECT:
            seen[name.lower()] = f"{name}=={distribution.version}"
    return sorted(seen.values())


def source_digest(root: Path) -> str:
    """The project's content: the package sources and its metadata."""
    digest = hashlib.sha256()
    files = sorted(p for p in (root / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [root / "pyproject.toml", *files]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def bundle_digest(python: str, root: Path | None = None) -> str:
    digest = hashlib.sha256()
    for part in (python, *PLATFORMS, *requirements(), *pins(), source_digest(root or project_root())):
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()


def ensure_bundle(distro: str) -> Bundle:
    """The bundle for a host of ``distro`` (``debian-12``...), built unless cached. Raises ``BundleError``."""
    python = PYTHON_BY_DISTRO.get(distro)
    if python is None:
        raise BundleError(f"no Python version known for {distro}: add it to PYTHON_BY_DISTRO "
                          f"(known: {', '.join(PYTHON_BY_DISTRO)})")
    return bundle_for(python)


def bundle_for(python: str) -> Bundle:
    """The bundle for Python ``python`` (``3.11``), built unless cached."""
    digest = bundle_digest(python)
    directory = cache_dir() / digest[:32]
    bundle_path = directory / f"drape-runtime-{digest[:16]}.tar"
    with file_lock(cache_dir() / ".build.lock"):
        if not bundle_path.exists():
            _build(directory, bundle_path, python)
    with tarfile.open(bundle_path) as tar:
        wheels = tuple(sorted(tar.getnames()))
    return Bundle(bundle_path, digest, python, wheels)


def _build(directory: Path, bundle_path: Path, python: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    wheels = directory / "wheels"
    wheels.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="drape-bundle-") as scratch:
        source = Path(scratch) / "source"
        root = project_root()
        shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, source / name)
        _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)], "build the project's wheel")
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("\n".join(pins()) + "\n")
        platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
        _pip(["download", "--dest", str(wheels), "--only-binary=:all:", "--python-version", python,
              "--implementation", "cp", *platforms, "--constraint", str(constraints), *requirements()],
             f"download the service's dependencies for Python {python}")
    _reproducible_tar(sorted(wheels.iterdir()), bundle_path)
    shutil.rmtree(wheels)


def _pip(args: list[str], what: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                            capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise BundleError(f"could not {what}: {(result.stderr or result.stdout).strip()[-1500:]}")


def _reproducible_tar(files: list[Path], destination: Path) -> None:
    """The same files make the same bytes: sorted, no times, no owners."""
    temporary = destination.with_suffix(".partial")
    with tarfile.open(temporary, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files, key=lambda f: f.name):
            info = tarfile.TarInfo(path.name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    temporary.replace(destination)
