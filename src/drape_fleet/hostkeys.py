"""Pinned host keys: the known_hosts files the project writes, read and changed as data (pure).

A line is ``names keytype base64-key``; names are the host's fleet name and the address ops connect to
(``[address]:port`` when the port is not 22, as OpenSSH writes it). Fingerprints are OpenSSH's
``SHA256:<unpadded base64 of the key blob's SHA-256>``, the form ``ssh-keygen -l`` and Hetzner show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class BadHostKey(ValueError):
    """A key line or fingerprint that cannot be what it claims."""


@dataclass(frozen=True)
class HostKey:
    names: tuple[str, ...]
    key_type: str
    key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def line(self) -> str:
        return f"{','.join(self.names)} {self.key_type} {self.key}"


def fingerprint(key: str) -> str:
    try:
        blob = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise BadHostKey(f"not a base64 public key: {key[:40]!r}") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def normalise_fingerprint(text: str) -> str:
    """``SHA256:abc=`` or ``abc`` -> ``SHA256:abc`` (the padding some tools print is dropped)."""
    value = text.strip()
    value = value.split(":", 1)[1] if value.upper().startswith("SHA256:") else value
    if not value or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" for c in value):
        raise BadHostKey(f"{text!r} is not a SHA256 fingerprint: write it as ssh-keygen -l shows it, "
                         "e.g. SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s")
    return "SHA256:" + value.rstrip("=")


def lookup_name(hostname: str, port: int) -> str:
    """The name OpenSSH looks a host up by: the address, with the port when it is not 22."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def host_names(alias: str, hostname: str, port: int) -> tuple[str, ...]:
    """The names a host's line carries: how OpenSSH looks it up, and its fleet name for people reading it."""
    address = lookup_name(hostname, port)
    return (address, alias) if alias != hostname else (address,)


def parse_line(line: str) -> HostKey | None:
    """One known_hosts line, or None for blanks, comments and markers (@cert-authority, @revoked)."""
    parts = line.split()
    if len(parts) < 3 or parts[0].startswith(("#", "@")):
        return None
    return HostKey(tuple(parts[0].split(",")), parts[1], parts[2])


def parse(text: str) -> list[HostKey]:
    return [key for key in (parse_line(line) for line in text.splitlines()) if key is not None]


def read(path: Path) -> list[HostKey]:
    return parse(path.read_text()) if path.exists() else []


def pinned(keys: Iterable[HostKey], name: str) -> list[HostKey]:
    """The keys pinned for ``name`` (an address as OpenSSH looks it up, or a fleet name)."""
    return [key for key in keys if name in key.names]


def with_key(text: str, new: HostKey) -> str:
    """``text`` with every line naming one of ``new``'s names (for its key type) replaced by ``new``."""
    kept = []
    for line in text.splitlines():
        key = parse_line(line)
        if key is not None and key.key_type == new.key_type and set(key.names) & set(new.names):
            continue
        kept.append(line)
    return "\n".join([*kept, new.line()]) + "\n"


def with_host_keys(text: str, names: tuple[str, ...], keys: Sequence[HostKey]) -> str:
    """``text`` with every line naming one of ``names`` dropped, whatever its key type, then ``keys``: a
    reinstalled server has new keys of every type, and none of its old ones may stay trusted."""
    kept = []
    for line in text.splitlines():
        key = parse_line(line)
        if key is not None and set(key.names) & set(names):
            continue
        kept.append(line)
    return "\n".join([*kept, *(key.line() for key in keys)]) + "\n"


def from_scan(lines: Sequence[str], names: tuple[str, ...]) -> list[HostKey]:
    """``ssh-keyscan`` output -> keys under the names we pin them as."""
    keys = []
    for line in lines:
        scanned = parse_line(line)
        if scanned is not None:
            fingerprint(scanned.key)  # refuse garbage before it is written anywhere
            keys.append(HostKey(names, scanned.key_type, scanned.key))
    return keys
