"""SSH public keys as data: fingerprints in Robot's (MD5) and OpenSSH's (SHA256) forms, pinning scanned host keys
against the ones Robot announced, and known_hosts files that hold exactly the pinned keys.

Pinning, not trusting on first use: a host key is written to a known_hosts file only when its fingerprint is one
the system of record gave us (Robot's rescue activation, or the installed system's own files read over an
already-pinned connection). Everything after that connects with ``StrictHostKeyChecking=yes``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from drape_fleet import hostkeys

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512", "rsa-sha2-256")


class NotAKey(ValueError):
    """A line that is not an SSH public key."""


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: str
    """The base64 key data, as in authorized_keys and known_hosts."""

    @classmethod
    def parse(cls, line: str) -> PublicKey:
        """``type base64 [comment]`` (authorized_keys, .pub) or ``host type base64`` (known_hosts, ssh-keyscan)."""
        fields = line.split()
        for index, value in enumerate(fields[:2]):
            if value in KEY_TYPES and index + 1 < len(fields):
                key = cls(value, fields[index + 1])
                key.raw()
                return key
        raise NotAKey(f"not an SSH public key: {line[:60]!r}")

    def raw(self) -> bytes:
        try:
            return base64.b64decode(self.blob, validate=True)
        except (binascii.Error, ValueError):
            raise NotAKey(f"{self.type} key data is not base64") from None

    @property
    def md5(self) -> str:
        digest = hashlib.md5(self.raw(), usedforsecurity=False).hexdigest()
        return ":".join(digest[i:i + 2] for i in range(0, 32, 2))

    @property
    def sha256(self) -> str:
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.raw()).digest()).decode().rstrip("=")

    def matches(self, fingerprint: str) -> bool:
        """True when ``fingerprint`` (MD5 ``aa:bb:..``, ``MD5:aa:..`` or ``SHA256:...``) names this key."""
        value = fingerprint.strip()
        if value.startswith("SHA256:"):
            return value == self.sha256
        return value.removeprefix("MD5:").lower() == self.md5

    def line(self) -> str:
        return f"{self.type} {self.blob}"


def parse_keys(text: str) -> list[PublicKey]:
    """Every key in ssh-keyscan output or a .pub/authorized_keys/known_hosts text (comments and noise skipped)."""
    keys = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                keys.append(PublicKey.parse(line))
            except NotAKey:
                continue
    return keys


@dataclass(frozen=True)
class PinResult:
    pinned: tuple[PublicKey, ...]
    unannounced: tuple[PublicKey, ...]

    def describe(self, announced: Iterable[str]) -> str:
        shown = ", ".join(f"{k.type} {k.sha256} (MD5 {k.md5})" for k in self.unannounced) or "none"
        return f"the server presented {shown}; Robot announced {', '.join(announced) or 'none'}"


def pin(scanned: Iterable[PublicKey], announced: Iterable[str]) -> PinResult:
    fingerprints = list(announced)
    pinned: list[PublicKey] = []
    other: list[PublicKey] = []
    for key in scanned:
        (pinned if any(key.matches(f) for f in fingerprints) else other).append(key)
    return PinResult(tuple(pinned), tuple(other))


def as_host_keys(keys: Iterable[PublicKey], names: tuple[str, ...]) -> list[hostkeys.HostKey]:
    return [hostkeys.HostKey(names, key.type, key.blob) for key in keys]


def known_hosts_lines(address: str, port: int, keys: Iterable[PublicKey]) -> list[str]:
    """known_hosts lines for ``keys`` under the name OpenSSH looks ``address`` up by."""
    return [key.line() for key in as_host_keys(keys, (hostkeys.lookup_name(address, port),))]


def replace_known_hosts(path: Path, host: str, address: str, port: int, keys: Iterable[PublicKey]) -> None:
    """Make ``path`` (the environment's known_hosts) pin exactly ``keys`` for this host, under its address and
    fleet name as `invoke hosts.trust` writes them; other hosts' lines are kept. Written atomically."""
    names = hostkeys.host_names(host, address, port)
    text = hostkeys.with_host_keys(path.read_text() if path.exists() else "", names, as_host_keys(keys, names))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    Path(temporary).chmod(0o644)
    Path(temporary).replace(path)


def rescue_fingerprints(rescue_keys: Iterable[str], authorized_keys: Iterable[str]) -> tuple[str, ...]:
    """The Robot fingerprints to put in the rescue system: the configured ones, then the MD5 fingerprints of the
    deploy user's public keys (Robot names stored keys by MD5), each once."""
    ordered: list[str] = []
    for fingerprint in [*rescue_keys, *(PublicKey.parse(line).md5 for line in authorized_keys)]:
        if fingerprint not in ordered:
            ordered.append(fingerprint)
    return tuple(ordered)
