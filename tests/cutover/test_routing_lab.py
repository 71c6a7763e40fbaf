"""The routing policy on the lab's real engines: a change reaches two running backend processes within seconds
(no restart), a host that was off the network when it changed holds the new state soon after it returns (the
backends' own reads bring it up to date), and a write without a majority of hosts is refused."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cutover_lab import Backend, lab_volumes, newest_generation

from drape_fleet.config import FleetConfig
from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.store import StateStore, StoreError

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


@pytest.fixture
def store(clean_lab: Path, lab_fleet: FleetConfig) -> Iterator[StateStore]:
    from drape_fleet.runtime.clients import TlsFiles, tls_endpoints
    from drape_fleet.runtime.fleet import Fleet

    engines = Fleet.from_endpoints(tls_endpoints(lab_fleet, TlsFiles.from_pki_dir(clean_lab / "pki")),
                                   lab_fleet.runtime)
    yield StateStore(engines, lab_fleet.runtime.owner)
    engines.close()


def _lab(host: str) -> tuple[str, str, str]:
    """(container, private network, private address) of a lab host."""
    from drape_fleet.lab.previews import lab_settings

    settings = lab_settings()
    index = settings.host_names.index(host) + 1
    return settings.container_name(host), settings.private_network, str(settings.private_address(index))


def _off_the_network(host: str) -> None:
    container, network, _ = _lab(host)
    subprocess.run(["docker", "network", "disconnect", network, container], check=True, timeout=30)


def _back_on_the_network(host: str) -> None:
    container, network, address = _lab(host)
    subprocess.run(["docker", "network", "connect", "--ip", address, network, container], check=True, timeout=30)


def test_a_change_reaches_running_backends_and_a_host_that_was_down_catches_up(
        store: StateStore, clean_lab: Path) -> None:
    store.write(RoutingPolicy(phase=2, internal_users=("u-ops",), salt="s"), {}, expected=0, writer="test")
    backends = [Backend(clean_lab / "fleet.toml", clean_lab / "pki", poll_s=0.5) for _ in range(2)]
    try:
        assert all(b.route("u-ops")["provider"] == "hetzner" and b.route("u-7")["provider"] == "fly"
                   for b in backends)
        changed = time.monotonic()
        store.write(RoutingPolicy(phase=4, salt="s"), {}, expected=1, writer="test")
        for backend in backends:
            backend.wait_for_phase(4, within=5)
        print(f"\nphase 4's policy reached both backend processes within {time.monotonic() - changed:.2f} s")
        assert all(b.route("u-7")["provider"] == "hetzner" for b in backends)

        container, _, _ = _lab("ax3")
        _off_the_network("ax3")
        try:
            store.write(RoutingPolicy(phase=3, percent=25, salt="s"), {}, expected=2, writer="test")
            for backend in backends:
                backend.wait_for_phase(3, within=15)
            assert newest_generation(container) == 2  # it missed generation 3
        finally:
            _back_on_the_network("ax3")
        returned = time.monotonic()
        while newest_generation(container) != 3:
            assert time.monotonic() - returned < 45, "ax3 did not catch up"
            time.sleep(0.5)
        print(f"ax3 held generation 3 {time.monotonic() - returned:.1f} s after it came back")
        assert any(v["Name"] == "drape-cutover-state-000000003" for v in lab_volumes(container))
    finally:
        for backend in backends:
            backend.close()


def test_a_write_without_a_majority_of_hosts_is_refused(store: StateStore) -> None:
    store.write(RoutingPolicy(phase=1), {}, expected=0, writer="test")
    _off_the_network("ax2")
    _off_the_network("ax3")
    try:
        with pytest.raises(StoreError, match="only 1 of 3 hosts answered"):
            store.write(RoutingPolicy(phase=2), {}, expected=1, writer="test")
    finally:
        _back_on_the_network("ax2")
        _back_on_the_network("ax3")
    assert newest_generation(_lab("ax1")[0]) == 1


def test_what_a_backup_reads_on_one_host_restores_the_state_everywhere(store: StateStore) -> None:
    import json

    from drape_fleet.routing.store import EXPORT_ARGV

    store.write(RoutingPolicy(phase=3, percent=12.5, salt="s"), {"phase": 3}, expected=0, writer="test")
    container, _, _ = _lab("ax2")
    listing = subprocess.run(["docker", "exec", container, *EXPORT_ARGV], capture_output=True, text=True,
                             check=True, timeout=30).stdout  # what the backup job stores: the docker CLI alone
    store.wipe()  # every host lost
    restored = store.restore(json.loads(listing), writer="backup")
    assert (restored.policy.percent, restored.progress) == (12.5, {"phase": 3})
    assert {newest_generation(_lab(h)[0]) for h in ("ax1", "ax2", "ax3")} == {1}
