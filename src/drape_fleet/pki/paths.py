"""Where the PKI lives. Standard library only: the runtime imports this without the ops extra.

Layout of one PKI directory::

    ca/ca.pem                    the CA certificate that signs (public)
    ca/ca-key.pem                its key (0600): only ever in ca/, never where a host or the backend reads
    ca/next/                     during `invoke pki.rotate --new-ca`: the CA that takes over
    ca/retired-<time>/           CAs that were replaced (kept, never deleted)
    trust.pem                    the trust bundle: every CA certificate trusted now (two during a rotation)
    hosts/<host>/cert.pem        a host's server certificate (SAN: private address, public address, name)
    hosts/<host>/key.pem         its key (0600)
    clients/backend/ca.pem       the trust bundle, as the backend reads it
    clients/backend/cert.pem     the client certificate the backend/runtime presents
    clients/backend/key.pem      its key (0600)

``clients/backend/`` is all a backend needs (copy that directory to it); the CA key is not in it. Hosts get
``trust.pem`` as their ``tlscacert``. A directory in the first layout (``ca.pem`` and ``ca-key.pem`` at the
top) is moved to this one by ``drape_fleet.pki.authority.migrate_layout`` (every pki task and provision run it).

The directory is the environment's (``drape_fleet.environments.pki_dir``): ``$DRAPE_PKI_DIR`` if set; else
``<state dir>/pki``: ``.lab/pki`` (``.lab-<prefix>/pki``) for the lab, ``~/.config/drape-fleet/pki`` for
production (outside the repository), ``~/.config/drape-fleet/<name>/pki`` for another environment.
"""

from __future__ import annotations

from pathlib import Path

from drape_fleet.environments import pki_dir

BACKEND_CLIENT = "backend"

__all__ = ["BACKEND_CLIENT", "ca_files", "client_tls_files", "host_tls_files", "next_ca_files", "pki_dir",
           "trust_bundle"]


def ca_files(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) of the CA that signs."""
    return directory / "ca" / "ca.pem", directory / "ca" / "ca-key.pem"


def next_ca_files(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) of the CA a rotation is moving to."""
    return directory / "ca" / "next" / "ca.pem", directory / "ca" / "next" / "ca-key.pem"


def trust_bundle(directory: Path) -> Path:
    """Every CA certificate trusted now: hosts' ``tlscacert``."""
    return directory / "trust.pem"


def host_tls_files(directory: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) a host's Docker engine serves."""
    return directory / "hosts" / host / "cert.pem", directory / "hosts" / host / "key.pem"


def client_tls_files(directory: Path, client: str = BACKEND_CLIENT) -> tuple[Path, Path, Path]:
    """(ca, cert, key) the backend hands to docker-py's ``TLSConfig(ca_cert=, client_cert=(cert, key))``."""
    client_dir = directory / "clients" / client
    return client_dir / "ca.pem", client_dir / "cert.pem", client_dir / "key.pem"
