"""The preview URL on a provisioned lab host, as the ingress deploy left it (Caddy, the previews' site, the gate
as a systemd unit): a preview the runtime started is reachable over HTTPS at https://<workspace>.<host>.<domain>
through a signed link only, with the lab's previews CA, and goes with its container."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse

import pytest
from preview_support import FleetLab

from drape_fleet.ingress.links import preview_link

pytestmark = pytest.mark.lab


def get(lab: FleetLab, name: str, path: str, cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    settings = lab.fleet.previews.ingress
    context = ssl.create_default_context(cafile=str(lab.ca))
    address = str(lab.fleet.host(lab.engine.name).public_address)
    connection = http.client.HTTPSConnection(name, settings.https_port, context=context, timeout=20)
    connection.sock = context.wrap_socket(socket.create_connection((address, settings.https_port), timeout=20),
                                          server_hostname=name)
    connection.request("GET", path, headers={"Host": name, **({"Cookie": cookie} if cookie else {})})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_a_ready_preview_is_served_over_https_to_its_user_only_and_goes_with_its_container(
        fleet_lab: FleetLab) -> None:
    status = fleet_lab.start("ingress", "tiny")
    assert status.phase.value == "ready", status
    settings = fleet_lab.fleet.previews.ingress
    link = preview_link(fleet_lab.key, workspace=status.workspace, user="u-7", host=fleet_lab.engine.name,
                        host_domain=settings.host_domain(fleet_lab.engine.name))
    parts = urllib.parse.urlsplit(link)
    name = parts.hostname or ""
    assert name == f"{status.workspace}.{fleet_lab.engine.name}.preview.lab.test"
    assert get(fleet_lab, name, "/")[0] == 401  # no session: the preview's user only
    code, headers, _ = get(fleet_lab, name, f"{parts.path}?{parts.query}")
    assert code == 303
    cookie = headers["set-cookie"].split(";")[0]
    code, _, body = get(fleet_lab, name, "/", cookie)
    assert code == 200 and body.decode().strip() == f"preview of {status.workspace}"
    fleet_lab.runtime.stop(status.workspace)
    deadline = time.monotonic() + 15
    while get(fleet_lab, name, "/", cookie)[0] != 404 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert get(fleet_lab, name, "/", cookie)[0] == 404
