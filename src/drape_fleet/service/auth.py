"""Who is calling: bearer tokens, checked against the SHA-256 digests in the instance's tokens file.

Several tokens are valid at once (a caller may have two while it rotates: add the new one, switch the caller,
revoke the old one), each names its caller and the scopes it may use. A presented token is hashed and
compared with *every* digest in constant time (``hmac.compare_digest``, no early exit), so neither timing
nor the order of the file tells an attacker anything. The file holds digests only: the tokens live in the ops
secrets store (``drape_fleet.service_deploy.tokens``) and in the callers' own secret stores.

The file is read again when it changes (checked at most every ``RELOAD_EVERY_S``), so a rotation needs no
restart; a changed file that does not validate is refused with an error in the log and the tokens in force
stay (a typo never locks every caller out).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.config.errors import ConfigError
from drape_fleet.config.service import CallerLimits, TokenDigests, load_token_digests

log = logging.getLogger(__name__)

RELOAD_EVERY_S = 2.0
BEARER = "bearer "


def token_digest(token: str) -> str:
    """What the tokens file stores for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]
    limits: CallerLimits


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    caller: Caller


class TokenTable:
    def __init__(self, path: Path, default_limits: CallerLimits, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._default_limits = default_limits
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = clock()
        self._stamp = self._file_stamp()
        self._entries = self._entries_of(load_token_digests(path))  # at startup, a bad file is fatal

    @property
    def callers(self) -> list[str]:
        return sorted({entry.caller.name for entry in self._entries})

    def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller whose token is in ``Authorization: Bearer <token>``; None for no or an unknown token."""
        self._reload_if_changed()
        if not authorization or authorization[: len(BEARER)].lower() != BEARER:
            return None
        presented = hashlib.sha256(authorization[len(BEARER):].strip().encode()).digest()
        found: Caller | None = None
        for entry in self._entries:  # every entry, always: the time taken does not depend on which matched
            if hmac.compare_digest(presented, entry.digest):
                found = entry.caller
        return found

    # -- the file ---------------------------------------------------------------------------------

    def _entries_of(self, digests: TokenDigests) -> tuple[_Entry, ...]:
        return tuple(_Entry(bytes.fromhex(t.sha256),
                            Caller(t.caller, frozenset(t.scopes), t.limits or self._default_limits))
                     for t in digests.tokens)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < RELOAD_EVERY_S:
            return
        with self._lock:
            if now - self._checked_at < RELOAD_EVERY_S:
                return
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                entries = self._entries_of(load_token_digests(self._path))
            except ConfigError as exc:
                log.error("the tokens file changed but is not valid; the tokens in force stay: %s", exc)
                self._stamp = stamp
                return
            self._entries, self._stamp = entries, stamp
            log.info("tokens reloaded from %s: callers %s", self._path, ", ".join(self.callers))
