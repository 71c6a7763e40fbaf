"""The runtime service's bearer tokens: the ops secrets store and what goes to the hosts.

The store is ``<environment state dir>/service-tokens.toml`` (production: ``~/.config/drape-fleet/``; the lab:
``.lab*/``), mode 600 and outside the repository, like the other secrets. It holds the tokens themselves, so ops
can hand one to a caller (the Node backend's ``DRAPE_RUNTIME_TOKEN`` Fly secret, Prometheus' credentials file);
hosts only ever receive SHA-256 digests (``digests_text``), which the service compares against.

    [[tokens]]
    caller = "backend"
    token = "drt_..."
    scopes = ["previews"]
    created = "2025-03-01T09:00:00Z"

Rotation without downtime: ``add`` a second token for the caller, deploy (instances re-read the digests within
seconds, no restart), switch the caller to it, ``revoke --keep-newest``, deploy again.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import stat
import tomllib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import Field, StringConstraints, ValidationError

from drape_fleet.config.base import FrozenModel
from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.service import SCOPES, CallerLimits, CallerName, Scope, TokenDigests, TokenEntry
from drape_fleet.environments import state_dir
from drape_fleet.paths import project_root
from drape_fleet.service.auth import token_digest
from drape_fleet.service_deploy.locks import file_lock

STORE_NAME = "service-tokens.toml"
PREFIX = "drt_"

LAB_CALLERS: dict[str, tuple[tuple[Scope, ...], CallerLimits | None]] = {
    "backend": (("previews",), None),
    "ops": (("previews", "fleet", "metrics"), None),
    "monitoring": (("metrics",), None),
    "bench": (("previews", "fleet", "metrics"), CallerLimits(rate_per_s=100_000, burst=100_000)),
    "flood": (("previews",), CallerLimits(rate_per_s=2, burst=5)),
}
"""The lab's callers, made on its first deploy: the Node tests use ``backend``, the benchmark ``bench`` (its
rate is unlimited: it measures the service, not the limiter), the rate-limit test ``flood`` (2/s, burst 5)."""


class StoredToken(FrozenModel):
    caller: CallerName
    token: Annotated[str, StringConstraints(pattern=r"^drt_[A-Za-z0-9_-]{32,}$")]
    scopes: Annotated[tuple[Scope, ...], Field(min_length=1)] = ("previews",)
    limits: CallerLimits | None = None
    created: dt.datetime


class TokenStore(FrozenModel):
    tokens: tuple[StoredToken, ...] = ()

    def digests(self) -> TokenDigests:
        return TokenDigests(tokens=tuple(TokenEntry(caller=t.caller, sha256=token_digest(t.token), scopes=t.scopes,
                                                    limits=t.limits) for t in self.tokens))

    def newest(self, caller: str) -> StoredToken | None:
        own = [t for t in self.tokens if t.caller == caller]
        return max(own, key=lambda t: t.created) if own else None


def store_path(environment: str) -> Path:
    return state_dir(environment) / STORE_NAME


def load_store(path: Path, *, allow_in_repo: bool = False) -> TokenStore:
    """The store, or an empty one when the file does not exist yet. Refuses a file others can read."""
    if not path.exists():
        return TokenStore()
    resolved = path.resolve()
    if not allow_in_repo and resolved.is_relative_to(project_root().resolve()):
        raise ConfigError(str(path), [Problem("(file)", "the token store is inside the repository",
                                              "move it outside, e.g. to ~/.config/drape-fleet/")])
    mode = stat.S_IMODE(resolved.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(str(path), [Problem("(file)", f"the token store is readable by others (mode {mode:o})",
                                              f"chmod 600 {path}")])
    try:
        return TokenStore.model_validate(tomllib.loads(resolved.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Problem("(syntax)", f"not valid TOML: {exc}", "correct the line it names")]) \
            from None
    except ValidationError as exc:
        raise ConfigError(str(path), [Problem(".".join(str(p) for p in e["loc"]), e["msg"], "correct the value")
                                      for e in exc.errors(include_url=False)]) from None


def save_store(path: Path, store: TokenStore) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"tokens": [t.model_dump(mode="json", exclude_none=True) for t in store.tokens]}
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# The runtime service's bearer tokens (invoke service.token / service.revoke). Secret: mode "
                     "600, never committed.\n")
        handle.write(tomli_w.dumps(data))
    temporary.replace(path)


def locked(path: Path) -> AbstractContextManager[None]:
    """One writer at a time (deploys run one process per host)."""
    return file_lock(path.parent / f".{path.name}.lock")


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def add_token(path: Path, caller: str, scopes: Sequence[str], *, limits: CallerLimits | None = None,
              now: dt.datetime | None = None, allow_in_repo: bool = False) -> StoredToken:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {', '.join(unknown) or '(none given)'}: use {', '.join(SCOPES)}")
    with locked(path):
        store = load_store(path, allow_in_repo=allow_in_repo)
        entry = StoredToken(caller=caller, token=new_token(), scopes=tuple(dict.fromkeys(scopes)),
                            limits=limits, created=now or dt.datetime.now(dt.UTC))
        save_store(path, store.model_copy(update={"tokens": (*store.tokens, entry)}))
        return entry


def revoke(path: Path, caller: str, *, keep_newest: bool, allow_in_repo: bool = False) -> list[StoredToken]:
    """Drop the caller's tokens (all, or all but the newest); returns the dropped ones."""
    with locked(path):
        store = load_store(path, allow_in_repo=allow_in_repo)
        newest = store.newest(caller)
        dropped = [t for t in store.tokens if t.caller == caller and not (keep_newest and t is newest)]
        kept = tuple(t for t in store.tokens if t not in dropped)
        if not kept:
            raise ValueError("that would revoke every token: no caller could reach the service. Add another first")
        save_store(path, store.model_copy(update={"tokens": kept}))
        return dropped


def ensure_lab_tokens(path: Path) -> TokenStore:
    """The lab's callers (``LAB_CALLERS``), made once; later runs keep the tokens they have."""
    with locked(path):
        store = load_store(path, allow_in_repo=True)
        missing = [name for name in LAB_CALLERS if store.newest(name) is None]
        if missing:
            now = dt.datetime.now(dt.UTC)
            made = tuple(StoredToken(caller=name, token=new_token(), scopes=LAB_CALLERS[name][0],
                                     limits=LAB_CALLERS[name][1], created=now) for name in missing)
            store = store.model_copy(update={"tokens": (*store.tokens, *made)})
            save_store(path, store)
        return store


def digests_text(store: TokenStore) -> str:
    """The host's tokens file: digests only, never a token."""
    digests = store.digests()
    header = ("# Managed by drape-fleet (deploys/service.py): SHA-256 digests of the runtime service's bearer tokens.\n"
              "# The tokens themselves stay in the ops secrets store. Re-read by the service when it changes.\n")
    return header + tomli_w.dumps({"tokens": [t.model_dump(mode="json", exclude_none=True) for t in digests.tokens]})
