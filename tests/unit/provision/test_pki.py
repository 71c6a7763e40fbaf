from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from drape_fleet.pki.authority import PkiError, init_ca, issue_client, issue_host, load_ca, migrate_layout
from drape_fleet.pki.expiry import certificates, days_left, days_left_each
from drape_fleet.pki.paths import ca_files, client_tls_files, host_tls_files, pki_dir, trust_bundle
from drape_fleet.pki.rotation import finish_rotation, promote_next_ca, start_new_ca, trusted_count


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_and_certificates_with_tight_modes(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    cert_path, created = init_ca(directory)
    assert created and init_ca(directory) == (cert_path, False)
    _, key_path = ca_files(directory)
    assert (_mode(directory), _mode(key_path), _mode(cert_path)) == (0o700, 0o600, 0o644)

    issued = issue_host(directory, "ax1", ["10.0.0.11", "203.0.113.11"])
    assert issued.created and issued.reason == "missing"
    assert (issued.cert, issued.key) == host_tls_files(directory, "ax1")
    assert _mode(issued.key) == 0o600 and _mode(issued.key.parent) == _mode(issued.key.parent.parent) == 0o700
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("10.0.0.11"), ip_address("203.0.113.11")]
    assert san.get_values_for_type(x509.DNSName) == ["ax1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cert.issuer == load_ca(directory)[0].subject

    assert not issue_host(directory, "ax1", ["10.0.0.11", "203.0.113.11"]).created
    moved = issue_host(directory, "ax1", ["10.0.0.21", "203.0.113.11"])
    assert moved.created and moved.reason == "addresses changed"

    client = issue_client(directory)
    ca, cert_file, key_file = client_tls_files(directory)
    assert (client.cert, client.key) == (cert_file, key_file)
    assert ca.read_bytes() == cert_path.read_bytes() == trust_bundle(directory).read_bytes()
    # What the backend reads holds no CA key: the CA's key lives only in ca/.
    assert sorted(p.name for p in ca.parent.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    ca_key = ca_files(directory)[1].read_bytes()
    assert [p for p in directory.rglob("*.pem") if p.read_bytes() == ca_key] == [directory / "ca" / "ca-key.pem"]
    usage = x509.load_pem_x509_certificate(cert_file.read_bytes()).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_certificates_are_renewed_before_they_expire(tmp_path: Path) -> None:
    """With the clock passed in: a certificate 800 days old (825-day life) is renewed, a fresh one kept."""
    issued_at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    init_ca(tmp_path, now=issued_at)
    issue_host(tmp_path, "ax1", ["10.0.0.11"], now=issued_at)
    assert not issue_host(tmp_path, "ax1", ["10.0.0.11"], now=issued_at + dt.timedelta(days=700)).created
    renewed = issue_host(tmp_path, "ax1", ["10.0.0.11"], now=issued_at + dt.timedelta(days=800))
    assert renewed.created and renewed.reason.startswith("expires 2027-04-")
    cert = x509.load_pem_x509_certificate(renewed.cert.read_bytes())
    assert cert.not_valid_before_utc == issued_at + dt.timedelta(days=800, minutes=-5)


def test_missing_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"no TLS CA in .*missing ca.pem.*run `invoke pki.init`"):
        issue_host(tmp_path, "ax1", ["10.0.0.11"])


def test_refuses_to_keep_keys_inside_the_repository() -> None:
    from drape_fleet.paths import project_root

    with pytest.raises(PkiError, match=r"inside the repository"):
        init_ca(project_root() / "pki-here")
    assert not (project_root() / "pki-here").exists()


def test_pki_dir_per_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from drape_fleet.paths import project_root

    monkeypatch.delenv("DRAPE_PKI_DIR", raising=False)
    monkeypatch.setenv("DRAPE_LAB_PREFIX", "drape-labx")
    assert pki_dir("lab") == project_root() / ".lab-drape-labx" / "pki"
    monkeypatch.delenv("DRAPE_LAB_PREFIX")
    assert pki_dir("lab") == project_root() / ".lab" / "pki"
    assert pki_dir("production") == Path("~/.config/drape-fleet/pki").expanduser()
    assert pki_dir("staging") == Path("~/.config/drape-fleet/staging/pki").expanduser()
    monkeypatch.setenv("DRAPE_PKI_DIR", str(tmp_path))
    assert pki_dir("production") == pki_dir("lab") == tmp_path


def test_paths_import_with_the_standard_library_only() -> None:
    code = ("import sys; import drape_fleet.pki.paths; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'cryptography', 'pyinfra', 'docker', 'rich', 'invoke')); print(bad); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_first_layout_directory_is_migrated_by_renames(tmp_path: Path) -> None:
    """The first layout kept ca.pem and ca-key.pem at the top, next to what the backend read: they move to ca/
    (renamed, not rewritten), the trust bundle appears, and certificates issued before keep verifying."""
    directory = tmp_path / "pki"
    init_ca(directory)
    issued = issue_host(directory, "ax1", ["10.0.0.11"])
    cert_path, key_path = ca_files(directory)
    key_bytes = key_path.read_bytes()
    cert_path.rename(directory / "ca.pem")
    key_path.rename(directory / "ca-key.pem")
    trust_bundle(directory).unlink()
    assert migrate_layout(directory) == ["moved ca-key.pem to ca/ca-key.pem", "moved ca.pem to ca/ca.pem",
                                         "wrote the trust bundle (trust.pem, clients/backend/ca.pem)"]
    assert key_path.read_bytes() == key_bytes and _mode(key_path) == 0o600
    assert not (directory / "ca.pem").exists() and not (directory / "ca-key.pem").exists()
    assert migrate_layout(directory) == []
    assert not issue_host(directory, "ax1", ["10.0.0.11"]).created  # still signed by the same CA
    assert issued.cert.exists()


def test_a_half_migrated_directory_is_refused(tmp_path: Path) -> None:
    init_ca(tmp_path)
    (tmp_path / "ca.pem").write_text("another CA\n")
    with pytest.raises(PkiError, match=r"both exist and differ: the PKI is half migrated"):
        migrate_layout(tmp_path)


def test_new_ca_rotation_keeps_old_and_new_trusted_until_finished(tmp_path: Path) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    init_ca(tmp_path, now=start)
    old_ca = ca_files(tmp_path)[0].read_bytes()
    issue_host(tmp_path, "ax1", ["10.0.0.11"], now=start)
    old_client = issue_client(tmp_path, now=start)
    old_client_pem = old_client.cert.read_bytes()

    start_new_ca(tmp_path, now=start + dt.timedelta(days=1))
    assert trusted_count(tmp_path) == 2
    assert not issue_host(tmp_path, "ax1", ["10.0.0.11"], now=start).created  # the old CA still signs
    retired = promote_next_ca(tmp_path, now=start + dt.timedelta(days=1))
    assert (retired / "ca.pem").read_bytes() == old_ca and _mode(retired / "ca-key.pem") == 0o600
    renewed = issue_host(tmp_path, "ax1", ["10.0.0.11"], now=start + dt.timedelta(days=1))
    assert renewed.created and renewed.reason == "issued by another CA"
    # Both CAs in what hosts and the backend trust: the old client certificate and the new one both verify.
    bundle = certificates(trust_bundle(tmp_path).read_bytes())
    new_client = issue_client(tmp_path, renew=True, now=start + dt.timedelta(days=1)).cert.read_bytes()
    for pem in (old_client_pem, new_client):
        leaf = x509.load_pem_x509_certificate(pem)
        assert sum(_verifies(leaf, ca) for ca in bundle) == 1

    finish_rotation(tmp_path)
    assert trusted_count(tmp_path) == 1
    [only] = certificates(client_tls_files(tmp_path)[0].read_bytes())
    assert _verifies(x509.load_pem_x509_certificate(new_client), only)
    assert not _verifies(x509.load_pem_x509_certificate(old_client_pem), only)


def _verifies(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def test_days_left_is_read_from_the_certificate(tmp_path: Path) -> None:
    issued_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    init_ca(tmp_path, now=issued_at)
    cert = issue_host(tmp_path, "ax1", ["10.0.0.11"], now=issued_at).cert.read_bytes()
    assert days_left(cert, now=issued_at) == pytest.approx(825, abs=0.01)
    assert days_left(cert, now=issued_at + dt.timedelta(days=830)) == pytest.approx(-5, abs=0.01)
    bundle = trust_bundle(tmp_path).read_bytes() + cert
    assert [round(d) for d in days_left_each(bundle, now=issued_at)] == [3650, 825]
