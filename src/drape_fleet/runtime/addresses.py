"""Is a repository's host on the public internet? Its name resolved, within a deadline, before a preview is placed.

A preview clones its repository from inside the host's network, so a repository "on" a private, loopback,
link-local or metadata address would make the template reach into the fleet's own networks. ``spec.check_repo``
refuses such addresses when they are written out; this module resolves host names (placement only, never on
a hot start) and refuses names that resolve to them. A name that resolves to something else later (DNS
rebinding) is stopped by the previews' firewall fence, which denies those ranges whatever the name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from drape_fleet.runtime.errors import BadRequest

RESOLVE_TIMEOUT_S = 2.0

Resolve = Callable[[str], list[str]]
"""A host name to its addresses (raises ``OSError`` when it has none)."""

_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drape-resolve")
"""``getaddrinfo`` has no timeout of its own: it runs here, and the caller waits at most ``RESOLVE_TIMEOUT_S``."""


def system_resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def check_public_host(host: str, *, resolve: Resolve = system_resolve, timeout: float = RESOLVE_TIMEOUT_S,
                      allowed: Sequence[IPv4Network | IPv6Network] = ()) -> None:
    """Raise ``BadRequest`` (field ``repo``) unless ``host`` resolves, within ``timeout``, only to global
    addresses (or addresses in ``allowed``). An address written out is checked by ``spec.check_repo``."""
    if _parse(host) is not None:
        return
    future = _RESOLVER.submit(resolve, host)
    try:
        addresses = future.result(timeout=timeout)
    except FutureTimeout:
        raise BadRequest("repo", f"{host} did not resolve within {timeout:g} s; try again") from None
    except OSError as exc:
        raise BadRequest("repo", f"{host} does not resolve ({exc.strerror or exc})") from None
    if not addresses:
        raise BadRequest("repo", f"{host} does not resolve to any address")
    for text in addresses:
        address = _parse(text)
        if address is None or (not address.is_global and not any(address in n for n in allowed)):
            raise BadRequest("repo", f"{host} resolves to {text}, a private, loopback, link-local or reserved "
                             "address: repositories must be on a public host")


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
