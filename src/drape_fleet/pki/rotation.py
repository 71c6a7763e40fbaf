"""Replacing the Docker API's certificates without taking the fleet down.

Leaves only (`invoke pki.rotate`): every host certificate and the backend's client certificate are issued
again by the same CA; hosts get theirs one at a time (dockerd restarts with live-restore: previews keep
running), and the backend's old certificate stays valid (same CA) until its processes pick up the new one.

A new CA (`invoke pki.rotate --new-ca`, then `--finish`), in steps that each keep every connection working:

1. ``start_new_ca``: the next CA is made in ``ca/next/``; the trust bundle holds both CAs; hosts and the
   backend get the bundle (hosts one at a time).
2. ``promote_next_ca``: the next CA becomes the signing one (the old one moves to ``ca/retired-<time>/``);
   every leaf is issued again by it and rolled out. Old client certificates still work: hosts trust both.
3. ``finish_rotation`` (once every backend process runs with the new client certificate): the bundle holds
   only the new CA, rolled out again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from drape_fleet.pki.authority import PkiError, migrate_layout, utc, write_ca, write_trust
from drape_fleet.pki.expiry import certificates
from drape_fleet.pki.paths import ca_files, next_ca_files, trust_bundle


def trusted_count(directory: Path) -> int:
    bundle = trust_bundle(directory)
    return len(certificates(bundle.read_bytes())) if bundle.exists() else 0


def start_new_ca(directory: Path, *, now: dt.datetime | None = None) -> Path:
    """Make the next CA (unless a rotation already made it) and trust both. Returns the next CA's certificate."""
    migrate_layout(directory)
    current, _ = ca_files(directory)
    if not current.exists():
        raise PkiError(f"no CA in {directory} to rotate from. Fix: `invoke pki.init`")
    cert_path, key_path = next_ca_files(directory)
    if not cert_path.exists():
        write_ca(cert_path, key_path, utc(now))
    write_trust(directory, [current.read_bytes(), cert_path.read_bytes()])
    return cert_path


def promote_next_ca(directory: Path, *, now: dt.datetime | None = None) -> Path:
    """The next CA signs from now on; the old one is kept in ``ca/retired-<time>/``. The trust bundle still
    holds both. Returns where the old CA went."""
    next_cert, next_key = next_ca_files(directory)
    if not next_cert.exists() or not next_key.exists():
        raise PkiError(f"no next CA in {next_cert.parent}: a CA rotation starts with `invoke pki.rotate --new-ca`")
    cert_path, key_path = ca_files(directory)
    retired = cert_path.parent / f"retired-{utc(now):%Y%m%dT%H%M%S}"
    retired.mkdir(mode=0o700)
    cert_path.rename(retired / cert_path.name)
    key_path.rename(retired / key_path.name)
    next_cert.rename(cert_path)
    next_key.rename(key_path)
    next_cert.parent.rmdir()
    return retired


def finish_rotation(directory: Path) -> None:
    """Trust only the signing CA again."""
    if next_ca_files(directory)[0].exists():
        raise PkiError("the next CA is not signing yet: run `invoke pki.rotate --new-ca` to the end first")
    write_trust(directory, [ca_files(directory)[0].read_bytes()])
