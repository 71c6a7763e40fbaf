"""The backend installs only the runtime's dependencies (docker, pydantic): prove the runtime imports
with those alone, in a clean virtual environment where no ops library exists."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from drape_fleet.paths import project_root

# Every module of the runtime package (found on disk, so a new one is covered without editing this list),
# plus what it builds on.
_RUNTIME_FILES = (project_root() / "src" / "drape_fleet" / "runtime").glob("*.py")
_ROUTING_FILES = (project_root() / "src" / "drape_fleet" / "routing").glob("*.py")  # the cutover's, for the backend
RUNTIME_MODULES = [
    "drape_fleet", "drape_fleet.config", "drape_fleet.pki.paths", "drape_fleet.runtime", "drape_fleet.routing",
    *sorted(f"drape_fleet.runtime.{path.stem}" for path in _RUNTIME_FILES if path.stem != "__init__"),
    *sorted(f"drape_fleet.routing.{path.stem}" for path in _ROUTING_FILES if path.stem != "__init__"),
]
OPS_ONLY = ["pyinfra", "invoke", "hcloud", "testinfra", "jinja2", "rich", "tomli_w", "cryptography", "paramiko"]


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("core-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "docker>=7.1,<8", "pydantic>=2.7,<3"],
                   check=True, timeout=600)
    return python


def run_in(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(project_root() / "src"), "PATH": "/usr/bin:/bin"}, check=False)


def test_ops_libraries_are_absent_from_the_core_venv(core_venv: Path) -> None:
    for module in OPS_ONLY:
        result = run_in(core_venv, f"import {module}")
        assert result.returncode != 0, f"{module} is importable: the venv is not clean"
        assert "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_modules_import_with_docker_and_pydantic_only(core_venv: Path, module: str) -> None:
    result = run_in(core_venv, f"import {module}, sys; print(sorted(m for m in sys.modules if m.split('.')[0] "
                               f"in {OPS_ONLY!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


