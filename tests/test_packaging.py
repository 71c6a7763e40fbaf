"""The backend installs only the runtime's dependencies (docker, pydantic): prove the runtime imports
with those alone, in a clean virtual environment where no ops library exists. The service (``[service]``: FastAPI,
uvicorn, prometheus-client) imports with those added, still without any ops library."""

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
WEB_ONLY = ["fastapi", "starlette", "uvicorn", "prometheus_client"]
_SERVICE_FILES = (project_root() / "src" / "drape_fleet" / "service").glob("*.py")
SERVICE_MODULES = sorted(f"drape_fleet.service.{path.stem}" for path in _SERVICE_FILES if path.stem != "__init__")


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


@pytest.fixture(scope="module")
def service_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a host installs: the service deploy's bundle of wheels (for this Python), and nothing else."""
    import sys
    import tarfile

    from drape_fleet.service_deploy.bundle import bundle_for

    bundle = bundle_for(f"{sys.version_info.major}.{sys.version_info.minor}")
    wheels = tmp_path_factory.mktemp("bundle")
    with tarfile.open(bundle.path) as tar:
        tar.extractall(wheels, filter="data")
    path = tmp_path_factory.mktemp("service-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
                    "drape-fleet[service]"], check=True, timeout=600)
    return python


def test_ops_libraries_are_absent_from_the_core_venv(core_venv: Path) -> None:
    for module in [*OPS_ONLY, *WEB_ONLY]:
        result = run_in(core_venv, f"import {module}")
        assert result.returncode != 0, f"{module} is importable: the venv is not clean"
        assert "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_modules_import_with_docker_and_pydantic_only(core_venv: Path, module: str) -> None:
    result = run_in(core_venv, f"import {module}, sys; print(sorted(m for m in sys.modules if m.split('.')[0] "
                               f"in {[*OPS_ONLY, *WEB_ONLY]!r}))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_bundle_a_host_installs_runs_the_service_without_any_ops_library(service_venv: Path) -> None:
    """Installed from the deploy's wheels alone (no index, not the checkout): every service module imports, no ops
    library is there, and the console script answers."""
    modules = ", ".join(SERVICE_MODULES)
    result = subprocess.run([str(service_venv), "-c", f"import {modules}, sys, drape_fleet; print(sorted(m for m in "
                             f"sys.modules if m.split('.')[0] in {OPS_ONLY!r}), drape_fleet.__file__)"],
                            capture_output=True, text=True, timeout=120, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    loaded, location = result.stdout.split()
    assert loaded == "[]" and "site-packages" in location
    for module in OPS_ONLY:
        assert subprocess.run([str(service_venv), "-c", f"import {module}"], capture_output=True,
                              check=False).returncode != 0, module
    cli = subprocess.run([str(service_venv.parent / "drape-runtime"), "--help"], capture_output=True, text=True,
                         check=False)
    assert cli.returncode == 0 and "serve" in cli.stdout and "check" in cli.stdout


