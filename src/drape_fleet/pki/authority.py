"""Make the CA and the certificates (``invoke pki.init`` / ``invoke pki.issue``).

ECDSA P-256 keys (Go's TLS in dockerd and Python's ssl both take them), written with mode 0600 in
directories with mode 0700. Private keys are never printed or logged; the directory must not be inside the
repository (``*.pem`` is git-ignored as a second line of defence).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drape_fleet.paths import project_root
from drape_fleet.pki.paths import BACKEND_CLIENT, ca_files, client_tls_files, host_tls_files, trust_bundle

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE_DAYS = 60
ORGANISATION = "drape-fleet"


class PkiError(RuntimeError):
    """The PKI cannot do what was asked; the message names the file and the fix."""


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    created: bool
    reason: str


def _private_dirs(directory: Path) -> None:
    """Every directory from the filesystem root's last existing one down to ``directory``: 0700 when we make it."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        path.chmod(0o700)


def _write_private(path: Path, data: bytes) -> None:
    _private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _write_public(path: Path, data: bytes) -> None:
    _private_dirs(path.parent)
    path.write_bytes(data)
    path.chmod(0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _refuse_repository(directory: Path, allow_in_repo: bool) -> None:
    if allow_in_repo:
        return
    if directory.resolve().is_relative_to(project_root().resolve()):
        raise PkiError(f"{directory} is inside the repository, where keys could be committed. Fix: use the "
                       "default (~/.config/drape-fleet/pki) or set DRAPE_PKI_DIR to a directory outside it")


def utc(now: dt.datetime | None) -> dt.datetime:
    """The clock: the caller's (tests pass one), else the real one."""
    return now if now is not None else dt.datetime.now(dt.UTC)


def make_ca(now: dt.datetime) -> tuple[bytes, bytes]:
    """A new CA: (certificate PEM, key PEM). Its name carries the day it was made, so two CAs of one fleet
    (during a rotation) are told apart by name as well as by key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{ORGANISATION} Docker API CA {now:%Y-%m-%d %H%M}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def write_ca(cert_path: Path, key_path: Path, now: dt.datetime) -> None:
    cert, key = make_ca(now)
    _write_private(key_path, key)
    _write_public(cert_path, cert)


def write_trust(directory: Path, ca_certificates: Sequence[bytes]) -> None:
    """The trust bundle, for hosts (trust.pem) and for the backend (clients/backend/ca.pem)."""
    bundle = b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in ca_certificates)
    _write_public(trust_bundle(directory), bundle)
    _write_public(client_tls_files(directory)[0], bundle)


def init_ca(directory: Path, *, allow_in_repo: bool = False, now: dt.datetime | None = None) -> tuple[Path, bool]:
    """Create the CA unless one exists; return (ca/ca.pem, created)."""
    _refuse_repository(directory, allow_in_repo)
    migrate_layout(directory)
    cert_path, key_path = ca_files(directory)
    if cert_path.exists() and key_path.exists():
        return cert_path, False
    if cert_path.exists() != key_path.exists():
        present = cert_path if cert_path.exists() else key_path
        raise PkiError(f"{present} exists without its pair: restore the missing file, or move {directory} away "
                       "and run `invoke pki.init` again (every certificate must then be reissued)")
    _private_dirs(directory)
    directory.chmod(0o700)
    write_ca(cert_path, key_path, utc(now))
    write_trust(directory, [cert_path.read_bytes()])
    return cert_path, True


def migrate_layout(directory: Path) -> list[str]:
    """Move a directory in the first layout (ca.pem and ca-key.pem at the top, where the backend also read its
    CA) to the split one (drape_fleet.pki.paths), by renames within the directory: nothing is rewritten or
    deleted. Idempotent; says what it moved."""
    notes: list[str] = []
    cert_path, key_path = ca_files(directory)
    for old, new in ((directory / "ca-key.pem", key_path), (directory / "ca.pem", cert_path)):
        if not old.exists():
            continue
        if new.exists():
            if new.read_bytes() != old.read_bytes():
                raise PkiError(f"{old} and {new} both exist and differ: the PKI is half migrated. Fix: keep the "
                               f"one that signed hosts/*/cert.pem and move the other out of {directory}")
            old.unlink()  # the same bytes are already in their new place
            continue
        _private_dirs(new.parent)
        old.rename(new)
        notes.append(f"moved {old.name} to {new.relative_to(directory)}")
    if cert_path.exists() and not trust_bundle(directory).exists():
        write_trust(directory, [cert_path.read_bytes()])
        notes.append(f"wrote the trust bundle ({trust_bundle(directory).name}, clients/{BACKEND_CLIENT}/ca.pem)")
    return notes


def load_ca(directory: Path, files: tuple[Path, Path] | None = None) -> tuple[x509.Certificate,
                                                                           ec.EllipticCurvePrivateKey]:
    migrate_layout(directory)
    cert_path, key_path = files or ca_files(directory)
    if not cert_path.exists() or not key_path.exists():
        missing = cert_path.name if not cert_path.exists() else key_path.name
        raise PkiError(f"no TLS CA in {directory} (missing {missing}). Fix: run `invoke pki.init` "
                       "(or set DRAPE_PKI_DIR to the directory that holds it)")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path} is not an EC key made by `invoke pki.init`")
    return cert, key


def _leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str,
          sans: Sequence[x509.GeneralName], usage: x509.ObjectIdentifier, now: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
                                 x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_agreement=True,
                                     content_commitment=False, data_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def host_sans(name: str, addresses: Sequence[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = []
    for address in addresses:
        parsed: IPv4Address | IPv6Address = ip_address(address)
        sans.append(x509.IPAddress(parsed))
    sans.append(x509.DNSName(name))
    return sans


def _needs_new(cert_path: Path, key_path: Path, ca_cert: x509.Certificate,
               sans: Sequence[x509.GeneralName] | None, now: dt.datetime) -> str:
    if not cert_path.exists() or not key_path.exists():
        return "missing"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "issued by another CA"
    if cert.not_valid_after_utc - now < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    if sans is not None:
        try:
            current = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return "no subject alternative names"
        if set(current) != set(sans):
            return "addresses changed"
    return ""


def issue_host(directory: Path, host: str, addresses: Sequence[str], *, renew: bool = False,
               now: dt.datetime | None = None) -> Issued:
    """The server certificate of ``host`` (SAN: its addresses and name); reissued when missing, expiring,
    from another CA, for other addresses, or when ``renew``."""
    ca_cert, ca_key = load_ca(directory)
    cert_path, key_path = host_tls_files(directory, host)
    sans = host_sans(host, addresses)
    now = utc(now)
    reason = "renewal asked" if renew else _needs_new(cert_path, key_path, ca_cert, sans, now)
    if not reason:
        return Issued(cert_path, key_path, False, "up to date")
    cert, key = _leaf(ca_cert, ca_key, host, sans, ExtendedKeyUsageOID.SERVER_AUTH, now)
    _write_private(key_path, key)
    _write_public(cert_path, cert)
    return Issued(cert_path, key_path, True, reason)


def issue_names(directory: Path, name: str, dns_names: Sequence[str], *, renew: bool = False,
                now: dt.datetime | None = None) -> Issued:
    """A server certificate for DNS names only (wildcards allowed: a preview ingress's ``*.<host>.<domain>``),
    kept as ``hosts/<name>/``; reissued on the same conditions as ``issue_host``."""
    ca_cert, ca_key = load_ca(directory)
    cert_path, key_path = host_tls_files(directory, name)
    sans: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
    now = utc(now)
    reason = "renewal asked" if renew else _needs_new(cert_path, key_path, ca_cert, sans, now)
    if not reason:
        return Issued(cert_path, key_path, False, "up to date")
    cert, key = _leaf(ca_cert, ca_key, dns_names[0], sans, ExtendedKeyUsageOID.SERVER_AUTH, now)
    _write_private(key_path, key)
    _write_public(cert_path, cert)
    return Issued(cert_path, key_path, True, reason)


def issue_client(directory: Path, client: str = BACKEND_CLIENT, *, renew: bool = False,
                 now: dt.datetime | None = None) -> Issued:
    """The client certificate the backend presents to every host's Docker API."""
    ca_cert, ca_key = load_ca(directory)
    _, cert_path, key_path = client_tls_files(directory, client)
    now = utc(now)
    reason = "renewal asked" if renew else _needs_new(cert_path, key_path, ca_cert, None, now)
    if not reason:
        return Issued(cert_path, key_path, False, "up to date")
    cert, key = _leaf(ca_cert, ca_key, client, [], ExtendedKeyUsageOID.CLIENT_AUTH, now)
    _write_private(key_path, key)
    _write_public(cert_path, cert)
    return Issued(cert_path, key_path, True, reason)
