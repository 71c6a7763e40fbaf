"""What the lab tests of the host side share: a shell on a lab host (the one SshTarget), the probe image, and
throwaway networks and containers that are removed afterwards."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from drape_fleet.environments import LAB, FleetTarget, load
from drape_fleet.ssh import ssh_run

PROBE = "drape-verify/probe:busybox"
PERL = "drape-verify/perl:host"
"""The lab host's own perl (perl-base, which every Debian has) and busybox, with their libraries: system calls
and sockets from inside a container, with no registry."""


def lab() -> FleetTarget:
    return load(LAB)


def ssh(name: str, command: str, *, user: str = "deploy", check: bool = True, timeout: float = 90) -> str:
    target = lab()
    result = ssh_run(target.ssh_target(target.fleet.host(name), user=user), command, timeout=timeout, check=check)
    return result.stdout.strip() if result.ok else f"__failed__ {result.returncode} {result.stderr.strip()}"


def can_log_in(name: str, user: str = "deploy") -> bool:
    """A NEW login (the one SshTarget, nothing multiplexed) as ops make it."""
    target = lab()
    return ssh_run(target.ssh_target(target.fleet.host(name), user=user), "true", timeout=30, check=False).ok


def ensure_probe_image(name: str) -> str:
    ssh(name, f"sudo docker image inspect {PROBE} >/dev/null 2>&1 || {{ d=$(mktemp -d); mkdir $d/bin; "
              f"cp /bin/busybox $d/bin/; for a in sh nc echo; do ln -s busybox $d/bin/$a; done; "
              f"tar -C $d -c . | sudo docker import - {PROBE} >/dev/null; rm -rf $d; }}")
    return PROBE


@contextmanager
def networks(name: str, bridge: str) -> Iterator[tuple[str, str]]:
    """(a preview network whose bridge is ``bridge`` (drp*, as the runtime names them), a plain network)."""
    preview, plain = f"drape-test-{bridge}", f"drape-test-plain-{bridge}"
    ssh(name, f"sudo docker network create -o com.docker.network.bridge.name={bridge} {preview} >/dev/null; "
              f"sudo docker network create {plain} >/dev/null")
    try:
        yield preview, plain
    finally:
        ssh(name, f"sudo docker ps -aq --filter network={preview} --filter network={plain} | "
                  f"xargs -r sudo docker rm -f >/dev/null; sudo docker network rm {preview} {plain}", check=False)


def in_container(name: str, network: str, script: str, *, options: str = "") -> str:
    """Run ``script`` (busybox sh) in a throwaway container on ``network`` of lab host ``name``."""
    return ssh(name, f"sudo docker run --rm --network {network} {options} {PROBE} sh -c {shlex.quote(script)}",
               check=False)


def connects(name: str, network: str, address: str, port: int) -> bool:
    return in_container(name, network, f"echo | nc -w 2 {address} {port} >/dev/null && echo yes || echo no") == "yes"


def reachable(name: str, network: str, targets: list[tuple[str, int]]) -> dict[tuple[str, int], bool]:
    """Which of ``targets`` one container on ``network`` opens a TCP connection to (one container for all)."""
    script = "; ".join(f"echo | nc -w 2 {address} {port} >/dev/null 2>&1 && echo {address}:{port}=yes || "
                       f"echo {address}:{port}=no" for address, port in targets)
    lines = dict(line.split("=") for line in in_container(name, network, script).splitlines() if "=" in line)
    return {(address, port): lines.get(f"{address}:{port}") == "yes" for address, port in targets}


def ensure_perl_image(name: str) -> str:
    files = "usr/bin/perl $(ldd /usr/bin/perl | awk '$3 ~ /^\\// { print substr($3, 2) } $1 ~ /^\\// " \
            "{ print substr($1, 2) }') usr/lib/x86_64-linux-gnu/perl-base bin/busybox"
    ssh(name, f"sudo docker image inspect {PERL} >/dev/null 2>&1 || tar -C / -ch {files} 2>/dev/null | "
              f"sudo docker import -c 'ENV PATH=/usr/bin:/bin' - {PERL} >/dev/null")
    return PERL


def perl_in_container(name: str, network: str, code: str, *, options: str = "") -> str:
    return ssh(name, f"sudo docker run --rm --network {network} {options} {PERL} perl -e {shlex.quote(code)}",
               check=False)
