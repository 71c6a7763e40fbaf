"""Where the project's own files are (deploys, inventories, images, lab state)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def project_root() -> Path:
    """The checkout ops work from: ``$DRAPE_PROJECT_ROOT``, else the one this package was installed from."""
    if env := os.environ.get("DRAPE_PROJECT_ROOT"):
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "deploys").is_dir():
            return parent
    return Path.cwd()
