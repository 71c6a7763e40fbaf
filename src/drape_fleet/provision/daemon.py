"""Docker's daemon.json and its systemd drop-in, hardened per the CIS Docker Benchmark's daemon section.

CIS items covered (Docker Benchmark v1.6, section 2): 2.2 icc off on the default bridge, 2.8 userns-remap
(production only: nested `docker run` fails with it in the lab), 2.6 TLS for the TCP socket, 2.7 default
ulimits, 2.12 centralised and rotated logs (``local`` driver with size and file limits), 2.14 live-restore,
2.15 userland-proxy off, 2.18 no-new-privileges by default. Published ports bind to the private address by
default (``ip``), so a container published without an address is not on the public interface at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.provisioning import DistroProfile
from drape_fleet.provision.firewall import UNIT_NAME as FIREWALL_UNIT
from drape_fleet.provision.render import render

DAEMON_JSON = "/etc/docker/daemon.json"
TLS_DIR = "/etc/docker/tls"
TLS_CA = f"{TLS_DIR}/ca.pem"
TLS_CERT = f"{TLS_DIR}/cert.pem"
TLS_KEY = f"{TLS_DIR}/key.pem"
DROP_IN = "/etc/systemd/system/docker.service.d/10-drape.conf"
SOCKET_DROP_IN = "/etc/systemd/system/docker.socket.d/10-drape.conf"


def docker_api_url(fleet: FleetConfig, host_name: str) -> str:
    """Where the backend reaches this host's Docker API (mutual TLS)."""
    return f"tcp://{fleet.host(host_name).private_address}:{fleet.network.docker_api_port}"


@dataclass(frozen=True)
class TlsPaths:
    ca: str = TLS_CA
    cert: str = TLS_CERT
    key: str = TLS_KEY


def daemon_json(fleet: FleetConfig, host_name: str) -> str:
    """/etc/docker/daemon.json for one host (files/docker/daemon.json.j2). ``hosts``: fd:// keeps systemd's
    docker.socket for the local CLI; the TCP socket is for the backend only."""
    return render("docker/daemon.json.j2", docker=fleet.provisioning.docker, tls=TlsPaths(),
                  api_url=docker_api_url(fleet, host_name), listen_address=str(fleet.host(host_name).private_address))


@dataclass(frozen=True)
class EnginePackages:
    packages: tuple[str, ...]
    dockerd: str
    validates_config: bool


def engine_packages(fleet: FleetConfig, profile: DistroProfile) -> EnginePackages:
    if fleet.provisioning.docker.source == "docker-ce":
        return EnginePackages(profile.docker.ce_packages, profile.docker.ce_dockerd, validates_config=True)
    return EnginePackages(profile.docker.distro_packages, profile.docker.distro_dockerd,
                          validates_config=profile.docker.distro_validates_config)


def systemd_drop_in(engine: EnginePackages) -> str:
    """The packaged unit passes ``-H fd://``; with ``hosts`` in daemon.json dockerd refuses a flag that is
    also in the file, so the drop-in restarts ExecStart without it."""
    return render("docker/10-drape.conf.j2", dockerd=engine.dockerd, firewall_unit=FIREWALL_UNIT)


def socket_drop_in() -> str:
    """docker.socket bound to the firewall as docker.service is: no activation without it."""
    return render("docker/10-drape-socket.conf.j2", firewall_unit=FIREWALL_UNIT)


def apt_source(profile: DistroProfile, keyring: str, architecture: str = "amd64") -> str:
    """Docker's repository in deb822 form, trusted only with its own keyring (signed-by)."""
    return render("docker/docker.sources.j2", docker=profile.docker, keyring=keyring, architecture=architecture)


BACKING_FILESYSTEM_QUERY = "findmnt -no FSTYPE,OPTIONS --target /var/lib/docker"


def disk_quota_problem(findmnt: str) -> str:
    """Why overlay2 could not enforce container sizes on this host (``findmnt`` of /var/lib/docker), or ""."""
    fstype, _, options = findmnt.strip().partition(" ")
    wanted = {"prjquota", "pquota"}
    if fstype == "xfs" and wanted & set(options.strip().split(",")):
        return ""
    return (f"/var/lib/docker is {fstype or 'not mounted'} ({options.strip() or 'no options'}), but per-container "
            "disk limits (provisioning.docker.disk_quotas) need XFS mounted with prjquota. Fix: run the storage "
            "deploy (it mounts the XFS volume with prjquota; XFS turns quotas on only at mount time, so reboot "
            "or remount it), or set provisioning.docker.disk_quotas = false and accept unlimited previews")
