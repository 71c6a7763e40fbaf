"""Where the backend's client certificate for the engines' mutual TLS is (the provisioning work's layout).

Stand-in until the provisioning branch's ``drape_fleet.pki.paths`` is merged; same contract:
``$DRAPE_PKI_DIR`` if set; the lab's ``<lab state dir>/pki``; production ``~/.config/drape-fleet/pki``.
Stdlib only (the backend imports this).
"""

from __future__ import annotations

import os
from pathlib import Path

PRODUCTION_PKI_DIR = Path("~/.config/drape-fleet/pki")


def pki_dir(environment_name: str) -> Path:
    if env := os.environ.get("DRAPE_PKI_DIR"):
        return Path(env).expanduser()
    if environment_name == "lab":
        from drape_fleet.paths import project_root

        prefix = os.environ.get("DRAPE_LAB_PREFIX", "drape-lab")
        state = ".lab" if prefix == "drape-lab" else f".lab-{prefix}"
        return project_root() / state / "pki"
    return PRODUCTION_PKI_DIR.expanduser()
