"""Signed preview links and sessions: what the backend hands a user, and what each host's gate checks.

Standard library only: the backend imports it (``preview_link``), and the deploy ships it to every host with the
gate (``drape_fleet.ingress.gate``), which runs on the host's own Python.

A preview's URL is ``https://<label>.<host>.<domain>/`` (``preview_url``): ``label`` is the workspace as a DNS label
(``host_label``), ``host`` the host it runs on. The backend sends the user to a **link**: the URL's
``/__drape/login?t=<token>&next=<path>``. The token is ``v1.<payload>.<signature>``: the payload (base64url JSON)
names the workspace, the user, the host, the kind (``link`` or ``session``), an expiry and a nonce; the signature is
HMAC-SHA256 over ``v1.<payload>`` with the key from the secrets store (``preview_url_key``). A link lives for
seconds (``link_ttl_s``) and opens once; the gate answers it with a **session** cookie for that preview's name only
(host-only, ``Secure``, ``HttpOnly``, ``SameSite=Lax``), valid for hours (``session_hours``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass

VERSION = "v1"
COOKIE = "drape_preview"
LOGIN_PATH = "/__drape/login"
MIN_KEY_BYTES = 32
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_KINDS = ("link", "session")


class BadToken(ValueError):
    """A token that does not open this preview; the message says why in words a user understands."""


def host_label(workspace: str) -> str:
    """The workspace as one DNS label: itself when it already is one (lower case, digits, '-'), otherwise a
    readable part and a hash of the whole (so ``Ws_1`` and ``ws-1`` never share a name)."""
    if _DNS_LABEL.fullmatch(workspace):
        return workspace
    readable = re.sub(r"[^a-z0-9-]+", "-", workspace.lower()).strip("-")[:40].strip("-") or "w"
    return f"{readable}-{hashlib.sha256(workspace.encode()).hexdigest()[:10]}"


def preview_url(workspace: str, host_domain: str, https_port: int = 443) -> str:
    """``https://<label>.<host>.<domain>`` (``host_domain``: ``IngressSettings.host_domain(host)``)."""
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{host_label(workspace)}.{host_domain}{port}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the preview link key has {len(key)} bytes; it needs at least {MIN_KEY_BYTES} "
                         "(make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    return key


def sign(key: bytes, *, workspace: str, user: str, host: str, kind: str, ttl_s: float,
         now: float | None = None) -> str:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}")
    payload = {"w": workspace, "u": user, "h": host, "k": kind,
               "exp": int((now if now is not None else time.time()) + ttl_s), "n": secrets.token_urlsafe(12)}
    body = f"{VERSION}.{_b64(json.dumps(payload, separators=(',', ':'), sort_keys=True).encode())}"
    signature = hmac.new(_check_key(key), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


@dataclass(frozen=True)
class Claims:
    workspace: str
    user: str
    host: str
    kind: str
    expires: int
    nonce: str


def verify(key: bytes, token: str, *, kind: str, host: str, label: str, now: float | None = None) -> Claims:
    """The claims of ``token`` when it is a valid ``kind`` token for the preview ``label`` on ``host``; else
    ``BadToken`` (the signature is checked before anything in the payload is believed)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise BadToken("this is not a preview link")
    expected = hmac.new(_check_key(key), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise BadToken("this is not a preview link") from None
    if not hmac.compare_digest(expected, given) or not isinstance(claims, dict):
        raise BadToken("this preview link was not made by Drape")
    try:
        found = Claims(str(claims["w"]), str(claims["u"]), str(claims["h"]), str(claims["k"]), int(claims["exp"]),
                       str(claims["n"]))
    except (KeyError, TypeError, ValueError):
        raise BadToken("this is not a preview link") from None
    if found.kind != kind:
        raise BadToken("this preview link is of the wrong kind")
    if found.expires <= (now if now is not None else time.time()):
        raise BadToken("this preview link has expired: open the preview again from Drape")
    if found.host != host or host_label(found.workspace) != label:
        raise BadToken("this preview link is for another preview: open the preview again from Drape")
    return found


def preview_link(key: bytes, *, workspace: str, user: str, host: str, host_domain: str, ttl_s: float = 120,
                 next_path: str = "/", https_port: int = 443) -> str:
    """What the backend sends the user to (the iframe's ``src``): a one-time login that sets the session."""
    token = sign(key, workspace=workspace, user=user, host=host, kind="link", ttl_s=ttl_s)
    query = urllib.parse.urlencode({"t": token, "next": next_path})
    return f"{preview_url(workspace, host_domain, https_port)}{LOGIN_PATH}?{query}"


def safe_next(path: str) -> str:
    """Where a login may send the browser: a path on the same preview, never another site."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or any(ord(c) < 32 for c in path):
        return "/"
    return path
