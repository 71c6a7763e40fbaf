"""How long certificates have left: pure functions over PEM text (for `invoke verify`'s thresholds,
`invoke pki.rotate` and `fleet.status`). Needs ``cryptography`` (the ops extra)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509


def certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a bundle holds several)."""
    return x509.load_pem_x509_certificates(pem)


def days_left(pem: bytes, now: dt.datetime | None = None) -> float:
    """Days until the first certificate in ``pem`` expires (negative once it has): the pure function for
    ``fleet.status``."""
    return min(days_left_each(pem, now)[:1] or [float("-inf")])


def days_left_each(pem: bytes, now: dt.datetime | None = None) -> list[float]:
    """Days left for every certificate in ``pem``, in file order."""
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    return [(cert.not_valid_after_utc - moment).total_seconds() / 86400 for cert in certificates(pem)]
