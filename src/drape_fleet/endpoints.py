"""API base URLs that carry a token: https, or plain http only to a test server on loopback."""

from __future__ import annotations

import ipaddress
import urllib.parse


def require_secure_endpoint(url: str, *, default: str) -> str:
    """``url`` without a trailing slash, or ValueError saying why a token may not travel there."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url.rstrip("/")
    if parsed.scheme == "http" and parsed.hostname:
        try:
            loopback = ipaddress.ip_address(parsed.hostname).is_loopback
        except ValueError:
            loopback = parsed.hostname == "localhost"
        if loopback:
            return url.rstrip("/")
    raise ValueError(f"endpoint {url!r} is not usable: the token may only travel over https (plain http is "
                     f"allowed for a local test server on loopback); the default is {default}")
