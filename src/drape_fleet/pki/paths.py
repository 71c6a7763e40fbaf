"""Where the PKI lives. Standard library only: the runtime imports this without the ops extra.

Layout of one PKI directory::

    ca.pem                       the CA certificate (public)
    ca-key.pem                   the CA key (0600)
    hosts/<host>/cert.pem        a host's server certificate (SAN: private address, public address, name)
    hosts/<host>/key.pem         its key (0600)
    clients/backend/cert.pem     the client certificate the backend/runtime presents
    clients/backend/key.pem      its key (0600)

The directory: ``$DRAPE_PKI_DIR`` if set; else for the lab ``<lab state dir>/pki`` (``.lab/pki``, or
``.lab-<prefix>/pki`` with ``$DRAPE_LAB_PREFIX``); else for production ``~/.config/drape-fleet/pki``,
outside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from drape_fleet.paths import lab_state_dir

ENV_VAR = "DRAPE_PKI_DIR"
PRODUCTION_DIR = Path("~/.config/drape-fleet/pki")
BACKEND_CLIENT = "backend"


def pki_dir(environment_name: str) -> Path:
    """The PKI directory for ``production`` or ``lab`` (``$DRAPE_PKI_DIR`` wins for both)."""
    if env := os.environ.get(ENV_VAR):
        return Path(env).expanduser()
    if environment_name == "lab":
        return lab_state_dir() / "pki"
    if environment_name == "production":
        return PRODUCTION_DIR.expanduser()
    raise ValueError(f"unknown environment {environment_name!r}: use 'production' or 'lab'")


def ca_files(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) of the CA."""
    return directory / "ca.pem", directory / "ca-key.pem"


def host_tls_files(directory: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) a host's Docker engine serves."""
    return directory / "hosts" / host / "cert.pem", directory / "hosts" / host / "key.pem"


def client_tls_files(directory: Path, client: str = BACKEND_CLIENT) -> tuple[Path, Path, Path]:
    """(ca, cert, key) the backend hands to docker-py's ``TLSConfig(ca_cert=, client_cert=(cert, key))``."""
    return (directory / "ca.pem", directory / "clients" / client / "cert.pem",
            directory / "clients" / client / "key.pem")
