"""The encrypted link on the lab: this machine stands in for the backend on Fly (a network namespace whose only
way to the hosts' private network is a userspace WireGuard interface, configured from the file drape-fleet
generates for the Fly side), two of the lab hosts get their end from `invoke provision --only firewall,link`.

Proven: previews on two hosts answer through the tunnel; the Docker API and SSH do not (the link's firewall);
with a host's end down its previews are unreachable (there is no other path); the link deploy's second run
changes nothing. Afterwards the hosts are provisioned back to the lab's own fleet (no link).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w
from cutover_lab import Ops, ops_fleet_data

from drape_fleet.config import FleetConfig

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
NETNS = "wtlfly"  # short: the veth names derive from it (15 characters at most)
TUNNEL = "wgfly0"
BACKEND_ADDRESS = "10.250.0.2"
LINKED = ("ax1", "ax2")
"""The hosts the test links (two show what one cannot, and the lab's third host is left alone: time)."""
HOSTS = ("--host", "ax1", "--host", "ax2")


def _run(*argv: str, check: bool = True, netns: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
    command = ["ip", "netns", "exec", NETNS, *argv] if netns else list(argv)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check, **kwargs)  # type: ignore[call-overload]


@dataclass
class FlySide:
    endpoint: str
    public_key: str
    key_file: Path
    config: Path


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))  # noqa: S104 - only to learn a free port
        return int(probe.getsockname()[1])


@pytest.fixture
def fly_side(clean_lab: Path, tmp_path: Path) -> Iterator[FlySide]:
    """A namespace on the lab's public bridge (an address of its own there), nothing else: the backend's view."""
    from drape_fleet.lab.previews import lab_settings

    settings = lab_settings()
    bridge = "br-" + _run("docker", "network", "inspect", settings.public_network, "-f", "{{.Id}}").stdout[:12]
    address = str(settings.public_subnet.network_address + 200)
    _run("ip", "netns", "add", NETNS)
    try:
        _run("ip", "link", "add", f"{NETNS}-u", "type", "veth", "peer", "name", f"{NETNS}-n")
        _run("ip", "link", "set", f"{NETNS}-u", "master", bridge, "up")
        _run("ip", "link", "set", f"{NETNS}-n", "netns", NETNS)
        _run("ip", "addr", "add", f"{address}/{settings.public_subnet.prefixlen}", "dev", f"{NETNS}-n", netns=True)
        _run("ip", "link", "set", f"{NETNS}-n", "up", netns=True)
        _run("ip", "link", "set", "lo", "up", netns=True)
        key = tmp_path / "backend.key"
        key.write_text(_run("wg", "genkey").stdout)
        key.chmod(0o600)
        public = _run("wg", "pubkey", input=key.read_text()).stdout.strip()
        yield FlySide(f"{address}:{_free_udp_port()}", public, key, tmp_path / f"{TUNNEL}.conf")
    finally:
        _run("wg-quick", "down", str(tmp_path / f"{TUNNEL}.conf"), check=False, netns=True,
             env={**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"})
        _run("ip", "netns", "del", NETNS, check=False)
        _run("ip", "link", "del", f"{NETNS}-u", check=False)


def _link_fleet(lab_state: Path, tmp: Path, fly: FlySide) -> Path:
    data = ops_fleet_data(lab_state)
    data["network"]["backend_addresses"].append(f"{BACKEND_ADDRESS}/32")
    data["provisioning"]["firewall"]["private_network"].append("10.250.0.0/24")  # previews fenced from the tunnel
    data["cutover"] = {"link": {
        "backend_public_key": fly.public_key, "backend_endpoint": fly.endpoint,
        "backend_address": f"{BACKEND_ADDRESS}/32", "userspace": True,
        "host_addresses": {h: f"10.250.0.{10 + n}/32" for n, h in enumerate(LINKED, start=1)}}}
    fleet = tmp / "fleet.toml"
    fleet.write_text(tomli_w.dumps(data))
    (tmp / "fleet.known_hosts").write_text((lab_state / "ssh" / "known_hosts").read_text())
    return fleet


def _changes(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^(ax\d): ok, (\d+) change\(s\)", output, re.MULTILINE)}


def _http(url: str) -> str:
    code = (f"import urllib.request,sys\ntry:\n print(urllib.request.urlopen({url!r}, timeout=4).status)\n"
            "except Exception as e:\n print(type(e).__name__)")
    return _run("python3", "-c", code, netns=True).stdout.strip()


def _tcp(host: str, port: int) -> str:
    code = (f"import socket\ns=socket.socket();s.settimeout(3)\ntry:\n s.connect(({host!r},{port}));print('open')\n"
            "except Exception as e:\n print(type(e).__name__)")
    return _run("python3", "-c", code, netns=True).stdout.strip()


def test_the_backend_on_fly_reaches_previews_through_the_link_and_nothing_else(
        fly_side: FlySide, clean_lab: Path, lab_fleet: FleetConfig, tmp_path: Path) -> None:
    from drape_fleet.config import load_fleet
    from drape_fleet.cutover.link import backend_config
    from drape_fleet.lab.previews import lab_settings
    from drape_fleet.runtime.service import PreviewRuntime

    fleet_file = _link_fleet(clean_lab, tmp_path, fly_side)
    ops = Ops(fleet_file, clean_lab)
    settings = lab_settings()
    try:
        # hardening too: it renews the file-integrity baseline after the link's files (verify checks it)
        first = ops("provision", *HOSTS, "--only", "firewall,link,hardening", timeout=900)
        assert set(_changes(first.stdout)) == set(LINKED), first.stdout[-3000:]
        again = ops("provision", *HOSTS, "--only", "link", timeout=600)
        assert _changes(again.stdout) == dict.fromkeys(LINKED, 0), again.stdout[-3000:]

        keys = {h: _run("docker", "exec", settings.container_name(h), "wg", "show", "wg-drape",
                        "public-key").stdout.strip() for h in LINKED}
        backend = backend_config(load_fleet(fleet_file), keys, private_key_file=str(fly_side.key_file))
        fly_side.config.write_text(backend)
        _run("wg-quick", "up", str(fly_side.config), netns=True,
             env={**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"})

        assert _link_checks(fleet_file, clean_lab) == dict.fromkeys(LINKED, True)
        runtime = PreviewRuntime.connect(lab_fleet, pki_dir=clean_lab / "pki", background=False, reaper=False)
        try:
            urls = {}
            for host in ("ax1", "ax2"):
                single = lab_fleet.model_copy(update={"hosts": (lab_fleet.host(host),)})
                one = PreviewRuntime.from_endpoints(single, [e for e in _endpoints(lab_fleet, clean_lab)
                                                             if e.host == host], background=False, reaper=False)
                status = one.start(f"ws-link-{host}", "u-link", "tiny", wait=60)
                one.close()
                assert status.ready and status.url, status
                urls[host] = status.url
            transfer_before = _transfer()
            assert {h: _http(u) for h, u in urls.items()} == {"ax1": "200", "ax2": "200"}
            assert _transfer() > transfer_before, "the previews answered, but not through the tunnel"
            private = str(lab_fleet.host("ax1").private_address)
            assert _tcp(private, lab_fleet.network.docker_api_port) in ("TimeoutError", "timeout")
            assert _tcp(private, 22) in ("TimeoutError", "timeout")
            assert _tcp(str(lab_fleet.host("ax2").private_address), 2376) in ("TimeoutError", "timeout")

            _run("docker", "exec", settings.container_name("ax1"), "systemctl", "stop", "wg-quick@wg-drape")
            assert _http(urls["ax1"]) in ("URLError", "TimeoutError", "timeout")  # no other way in
            assert _http(urls["ax2"]) == "200"
            _run("docker", "exec", settings.container_name("ax1"), "systemctl", "start", "wg-quick@wg-drape")
        finally:
            for host in ("ax1", "ax2"):
                runtime.stop(f"ws-link-{host}")
            runtime.close()
    finally:
        restored = ops("provision", *HOSTS, "--only", "firewall,link,hardening", "--env", "lab", timeout=900)
        assert "wg-drape" not in _run("docker", "exec", settings.container_name("ax1"), "ip", "link").stdout
        assert set(_changes(restored.stdout)) == set(LINKED), restored.stdout[-3000:]


def _link_checks(fleet_file: Path, lab_state: Path) -> dict[str, bool]:
    """What phase 2's gate says of each host's link (SSH to the host, `wg show`), as ops' tasks see it."""
    from drape_fleet.config import Secrets, load_fleet
    from drape_fleet.cutover.context import CutoverContext
    from drape_fleet.cutover.fleet_checks import link_checks
    from drape_fleet.environments import Environment, FleetTarget

    env = Environment(name="production", fleet_file=fleet_file, state_dir=fleet_file.parent, pki_dir=lab_state / "pki",
                      known_hosts=fleet_file.with_suffix(".known_hosts"), ssh_key=lab_state / "ssh" / "id_ed25519",
                      ssh_user="deploy")
    ctx = CutoverContext(FleetTarget(env, load_fleet(fleet_file)), Secrets(), print)
    deadline = time.monotonic() + 60
    while True:
        checks = link_checks(ctx)
        if all(check.ok for check in checks) or time.monotonic() > deadline:
            return {check.name.split(":")[0]: check.ok for check in checks}
        time.sleep(2)


def _endpoints(fleet: FleetConfig, lab_state: Path) -> list[object]:
    from drape_fleet.runtime.clients import TlsFiles, tls_endpoints

    return list(tls_endpoints(fleet, TlsFiles.from_pki_dir(lab_state / "pki")))


def _transfer() -> int:
    tokens = _run("wg", "show", TUNNEL, "transfer", netns=True).stdout.split()
    return sum(int(token) for token in tokens if token.isdigit())
