"""How the runtime talks to one engine: its address and the backend's TLS credentials, and the docker-py client with
the two streamed reads the runtime needs bounded. ``engines`` owns everything about calls (budgets, health, error
mapping); this module only builds clients.

Production reaches each host's engine over mutual TLS on ``tcp://<private_address>:<docker_api_port>`` (the
provisioning work makes the engines listen there and issues the backend a client certificate). A plain ``tcp://``
endpoint is refused outright; ``unix://`` sockets exist for a local engine (and lab tooling). Clients are built
with an explicit API ``version`` so that constructing one never calls the daemon (a dead host must not fail or
block at construction), and with ``trust_env=False``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import docker
import requests
import requests.adapters
from docker.tls import TLSConfig
from docker.types.daemon import CancellableStream
from docker.utils import convert_filters

from drape_fleet.config.models import FleetConfig


@dataclass(frozen=True)
class TlsFiles:
    """The backend's client credentials for the engines' mutual TLS."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_pki_dir(cls, pki_dir: Path) -> TlsFiles:
        """The provisioning work's layout (``drape_fleet.pki.paths``): ``clients/backend/{ca,cert,key}.pem``."""
        from drape_fleet.pki.paths import client_tls_files

        ca, cert, key = client_tls_files(pki_dir)
        return cls(ca=ca, cert=cert, key=key)

    def missing(self) -> list[Path]:
        return [p for p in (self.ca, self.cert, self.key) if not p.is_file()]


@dataclass(frozen=True)
class Endpoint:
    host: str
    base_url: str
    tls: TlsFiles | None = None

    def __post_init__(self) -> None:
        if self.base_url.startswith(("tcp://", "https://", "http://")) and self.tls is None:
            raise ValueError(f"{self.host}: refusing a plaintext TCP connection to {self.base_url}; "
                             "the engines' API is reached only with mutual TLS")
        if not self.base_url.startswith(("tcp://", "https://", "unix://")):
            raise ValueError(f"{self.host}: unsupported engine address {self.base_url!r}")


def tls_endpoints(fleet: FleetConfig, tls: TlsFiles) -> list[Endpoint]:
    """Production endpoints: every host's private address on the fleet's Docker API port, mutual TLS."""
    missing = tls.missing()
    if missing:
        raise FileNotFoundError("missing TLS files for the Docker API: " + ", ".join(map(str, missing))
                                + " (issued by the provisioning work; see drape_fleet.pki)")
    port = fleet.network.docker_api_port
    endpoints = []
    for host in fleet.hosts:
        address = host.private_address
        literal = f"[{address}]" if address.version == 6 else str(address)
        endpoints.append(Endpoint(host=host.name, base_url=f"tcp://{literal}:{port}", tls=tls))
    return endpoints


# ---------------------------------------------------------------------------------------------------
# The client: docker-py's, plus the two streaming reads the runtime needs bounded
# ---------------------------------------------------------------------------------------------------

class ApiClient(docker.APIClient):
    """docker-py's low-level client with two additions that its public methods do not offer: a streamed GET whose
    response the caller bounds and closes (``open_stream``), and the event stream with a connect timeout (docker-py's
    ``events()`` has none at all, so connecting to a black-holed host would hang)."""

    @contextlib.contextmanager
    def open_stream(self, path: str, *args: str, params: Mapping[str, Any],
                    timeout: float) -> Iterator[requests.Response]:
        this: Any = self  # docker-py's request helpers are not in its type stubs
        # identity: the engine gzips archives for clients that accept it, and a byte cap on a compressed stream
        # would bound nothing (a sparse file compresses to almost nothing)
        response = this._get(this._url(path, *args), params=dict(params), stream=True, timeout=timeout,
                             headers={"Accept-Encoding": "identity"})
        try:
            this._raise_for_status(response)
            yield response
        finally:
            response.close()

    def event_stream(self, filters: Mapping[str, list[str]], *, connect_timeout: float) -> CancellableStream[Any]:
        this: Any = self
        response = this._get(this._url("/events"), params={"filters": convert_filters(dict(filters))}, stream=True,
                             timeout=(connect_timeout, None))
        this._raise_for_status(response)
        return CancellableStream(this._stream_helper(response, decode=True), response)


def read_limited(response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    """At most ``max_bytes`` of a streamed body, stopping at ``deadline`` (monotonic) with what has arrived."""
    chunks: list[bytes] = []
    total = 0
    while total < max_bytes and time.monotonic() < deadline:
        chunk = response.raw.read(min(16384, max_bytes - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def stat_header(response: requests.Response) -> dict[str, Any]:
    """The engine's ``X-Docker-Container-Path-Stat`` header of an archive answer (name, size, mode, mtime)."""
    header = response.headers.get("X-Docker-Container-Path-Stat")
    if not header:
        return {}
    try:
        stat = json.loads(base64.b64decode(header))
    except (ValueError, binascii.Error):
        return {}
    return stat if isinstance(stat, dict) else {}


Connect = Callable[["Endpoint", float, int], ApiClient]
"""Makes the API client for an endpoint, with a request timeout and a pool size."""


def docker_client(endpoint: Endpoint, timeout: float, pool_size: int, *, api_version: str) -> ApiClient:
    tls: TLSConfig | bool = False
    if endpoint.tls is not None:
        files = endpoint.tls
        tls = TLSConfig(client_cert=(str(files.cert), str(files.key)), ca_cert=str(files.ca), verify=True)
    api = ApiClient(base_url=endpoint.base_url, version=api_version, timeout=cast(Any, timeout), tls=tls,
                    max_pool_size=pool_size)  # a float is fine: requests takes it (the stubs say int)
    # requests lets the environment override the session: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would replace
    # our CA with the system bundle (every TLS handshake then fails) and HTTPS_PROXY would send engine
    # traffic through a proxy. The engines are reached directly, with our CA only.
    api.trust_env = False
    if endpoint.tls is not None:
        # docker-py ignores max_pool_size over TLS (its adapter keeps requests' 10): past ten threads every call
        # paid a new TLS handshake. The session keeps the certificates; this adapter only keeps the connections.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        cast(Any, api)._custom_adapter = adapter
        api.mount("https://", adapter)
    return api
