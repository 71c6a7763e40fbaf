"""Where the PKI lives. Standard library only: the runtime imports this without the ops extra.

Layout of one PKI directory::

    ca.pem                       the CA certificate (public)
    ca-key.pem                   the CA key (0600)
    hosts/<host>/cert.pem        a host's server certificate (SAN: private address, public address, name)
    hosts/<host>/key.pem         its key (0600)
    clients/backend/cert.pem     the client certificate the backend/runtime presents
    clients/backend/key.pem      its key (0600)

The directory is the environment's (``drape_fleet.environments.pki_dir``): ``$DRAPE_PKI_DIR`` if set; else
``<state dir>/pki``: ``.lab/pki`` (``.lab-<prefix>/pki``) for the lab, ``~/.config/drape-fleet/pki`` for
production (outside the repository), ``~/.config/drape-fleet/<name>/pki`` for another environment.
"""

from __future__ import annotations

from pathlib import Path

from drape_fleet.environments import pki_dir

BACKEND_CLIENT = "backend"

__all__ = ["BACKEND_CLIENT", "ca_files", "client_tls_files", "host_tls_files", "pki_dir"]


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
