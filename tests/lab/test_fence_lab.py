"""The previews' fence, proven from inside a preview on the lab, each with a control: the same connection from
a container on an ordinary network gets through. Lab host ax2 stands for the rest of the world: it answers on
addresses from every fenced range (metadata, CGNAT, RFC 1918), which ax1 routes to it, and on mail ports.

Also: Docker is bound to the firewall, so stopping the firewall unit (or a ruleset that fails to load) leaves
no preview reachable or able to reach out, though live-restore keeps it running."""

from __future__ import annotations

import re
import shlex
import socket
from collections.abc import Iterator

import pytest

from drape_fleet.environments import FleetTarget
from tests.lab.lab_helpers import (
    PROBE,
    ensure_perl_image,
    ensure_probe_image,
    networks,
    perl_in_container,
    reachable,
    ssh,
)

pytestmark = pytest.mark.lab

FENCED = ("169.254.169.254", "100.64.0.1", "192.168.77.1", "10.123.0.1")
"""Cloud metadata, carrier-grade NAT, RFC 1918 (two of its ranges): none is ax2's own, all answer there."""
MAIL = (25, 465, 587)
OPEN = 8025
PUBLISHED = 18085
ACCEPTING = 8026
"""ax2 accepts and closes connections here as fast as they come (a perl loop with a deep backlog)."""
ACCEPT_LOOP = ("use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8026, Listen => 4096, ReuseAddr => 1) "
               "or die $!; while (my $c = $s->accept) { close $c }")
ATTEMPTS = 600


@pytest.fixture(scope="module")
def world(provisioned_lab: FleetTarget) -> Iterator[dict[str, str]]:
    """ax2 answers on OPEN and the mail ports at its public address and on FENCED; ax1 routes FENCED to it."""
    fleet = provisioned_lab.fleet
    ax1, ax2 = str(fleet.host("ax1").public_address), str(fleet.host("ax2").public_address)
    device = ssh("ax2", f"ip -o -4 addr show | awk '$4 ~ /^{re.escape(ax2)}\\// {{ print $2 }}'")
    ports = ", ".join(str(p) for p in (OPEN, ACCEPTING, *MAIL))
    ssh("ax2", " && ".join([*(f"sudo ip addr add {a}/32 dev {device}" for a in FENCED),
                            f"sudo nft insert rule inet drape_filter input ip saddr {ax1} tcp dport {{ {ports} }} "
                            "accept comment drape-test"]))
    pids = [ssh("ax2", f"sudo sh -c 'busybox nc -ll -p {port} -e echo hi >/dev/null 2>&1 & echo $!'")
            for port in (OPEN, *MAIL)]
    pids.append(ssh("ax2", f"sh -c {shlex.quote(f'perl -e {shlex.quote(ACCEPT_LOOP)} >/dev/null 2>&1 & echo $!')}"))
    ssh("ax1", " && ".join(f"sudo ip route replace {a}/32 via {ax2}" for a in FENCED))
    ensure_probe_image("ax1")
    ensure_perl_image("ax1")
    try:
        yield {"ax1": ax1, "ax2": ax2, "ax1_private": str(fleet.host("ax1").private_address)}
    finally:
        ssh("ax1", "; ".join(f"sudo ip route del {a}/32" for a in FENCED), check=False)
        ssh("ax2", f"sudo kill {' '.join(pids)}; " + "; ".join(f"sudo ip addr del {a}/32 dev {device}"
                                                                 for a in FENCED)
            + "; sudo systemctl reload drape-firewall", check=False)


def test_previews_reach_the_internet_but_no_fenced_range_and_no_mail_port(world: dict[str, str]) -> None:
    targets = [(world["ax2"], OPEN), *((address, OPEN) for address in FENCED), *((world["ax2"], p) for p in MAIL)]
    with networks("ax1", "drptest1") as (preview, plain):
        control, fenced = reachable("ax1", plain, targets), reachable("ax1", preview, targets)
    assert all(control.values()), f"control: every target answers a plain network: {control}"
    # The lab's public subnet stands for the internet: only its ordinary port is reachable from a preview.
    assert fenced == {target: target == (world["ax2"], OPEN) for target in targets}


BURST = """
use IO::Socket::INET; use Errno;
my ($through, $refused, $other, $t0) = (0, 0, 0, time);
for (1 .. ATTEMPTS) {
    my $socket = IO::Socket::INET->new(PeerAddr => "ADDRESS", PeerPort => PORT, Proto => "tcp", Timeout => 2);
    if ($socket) { close $socket; $through++ }
    elsif ($!{ECONNREFUSED}) { $refused++ }      # the firewall's TCP reset
    else { $other++ }
}
print "$through $refused $other ", time - $t0, "\n";
"""


def _burst(network: str, address: str) -> tuple[int, int, int, int]:
    """ATTEMPTS new connections from one container, as fast as they go: (through, refused, other, seconds)."""
    code = BURST.replace("ATTEMPTS", str(ATTEMPTS)).replace("ADDRESS", address).replace("PORT", str(ACCEPTING))
    through, refused, other, seconds = (int(v) for v in perl_in_container("ax1", network, code).split())
    return through, refused, other, seconds


def test_new_connections_per_preview_are_rate_limited(world: dict[str, str], provisioned_lab: FleetTarget) -> None:
    firewall = provisioned_lab.fleet.provisioning.firewall
    rate, burst = firewall.preview_new_connections_per_second, firewall.preview_new_connections_burst
    with networks("ax1", "drptest3") as (preview, plain):
        assert _burst(plain, world["ax2"])[:3] == (ATTEMPTS, 0, 0), "control: a plain network is not limited"
        through, refused, other, seconds = _burst(preview, world["ax2"])
    assert other == 0 and refused > 0, (through, refused, other, seconds)
    assert through <= burst + rate * (seconds + 1), (through, seconds)


def _reaches(pid: str, address: str, port: int) -> bool:
    """From inside a running preview's network namespace, entered from the host (Docker may be stopped)."""
    out = ssh("ax1", f"sudo nsenter -t {pid} -n busybox sh -c 'echo | busybox nc -w 2 {address} {port} >/dev/null "
                     "&& echo yes || echo no'", check=False)
    return out == "yes"


def served(world: dict[str, str]) -> bool:
    """The backend (this machine, the only one let into previews) reads the preview's answer on its published
    port."""
    try:
        with socket.create_connection((world["ax1_private"], PUBLISHED), timeout=3) as conn:
            conn.settimeout(3)
            return conn.recv(5) == b"hello"
    except OSError:
        return False


def _states() -> list[str]:
    """systemctl is-active of (docker, drape-firewall) on ax1."""
    return ssh("ax1", "systemctl is-active docker drape-firewall || true").split()


def _socket() -> str:
    return ssh("ax1", "systemctl is-active docker.socket || true")


def test_no_preview_runs_unfenced_without_the_firewall(world: dict[str, str]) -> None:
    with networks("ax1", "drptest4") as (preview, _):
        cid = ssh("ax1", f"sudo docker run -d --network {preview} -p {world['ax1_private']}:{PUBLISHED}:8080 {PROBE} "
                         "nc -ll -p 8080 -e echo hello")
        pid = ssh("ax1", f"sudo docker inspect -f '{{{{.State.Pid}}}}' {cid}")
        try:
            assert served(world) and _reaches(pid, world["ax2"], OPEN)  # the control

            ssh("ax1", "sudo systemctl stop drape-firewall")
            assert _states() == ["inactive", "inactive"]
            assert _socket() == "inactive"  # nothing that talks to Docker can start it again
            assert ssh("ax1", f"sudo kill -0 {pid} && echo running") == "running"  # live-restore kept it
            assert not served(world), "a preview is reachable with the firewall stopped"
            assert not _reaches(pid, world["ax2"], OPEN), "a preview reaches out with the firewall stopped"

            # While it is stopped, a ruleset that no longer loads (as at a boot with a broken file): Docker
            # will not start, and previews stay cut off.
            ssh("ax1", "sudo cp -a /etc/drape/firewall.nft /etc/drape/firewall.nft.test-saved && "
                       "echo 'this is not nftables' | sudo tee /etc/drape/firewall.nft >/dev/null")
            try:
                assert ssh("ax1", "sudo systemctl start docker", check=False).startswith("__failed__")
                assert _states() == ["inactive", "failed"]
                assert not served(world) and not _reaches(pid, world["ax2"], OPEN)
            finally:
                ssh("ax1", "sudo mv /etc/drape/firewall.nft.test-saved /etc/drape/firewall.nft && "
                           "sudo systemctl reset-failed drape-firewall")
            ssh("ax1", "sudo systemctl start docker")  # pulls the firewall in first
            assert _states() == ["active", "active"]
            assert served(world) and _reaches(pid, world["ax2"], OPEN)
        finally:
            ssh("ax1", f"sudo docker rm -f {cid}", check=False)
