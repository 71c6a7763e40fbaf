"""Docker's daemon.json and its systemd drop-in, hardened per the CIS Docker Benchmark's daemon section.

CIS items covered (Docker Benchmark v1.6, section 2): 2.2 icc off on the default bridge, 2.8 userns-remap
(production only: nested `docker run` fails with it in the lab), 2.6 TLS for the TCP socket, 2.7 default
ulimits, 2.12 centralised and rotated logs (``local`` driver with size and file limits), 2.14 live-restore,
2.15 userland-proxy off, 2.18 no-new-privileges by default. Published ports bind to the private address by
default (``ip``), so a container published without an address is not on the public interface at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.provisioning import DistroProfile

DAEMON_JSON = "/etc/docker/daemon.json"
TLS_DIR = "/etc/docker/tls"
TLS_CA = f"{TLS_DIR}/ca.pem"
TLS_CERT = f"{TLS_DIR}/cert.pem"
TLS_KEY = f"{TLS_DIR}/key.pem"
DROP_IN = "/etc/systemd/system/docker.service.d/10-drape.conf"


def docker_api_url(fleet: FleetConfig, host_name: str) -> str:
    """Where the backend reaches this host's Docker API (mutual TLS)."""
    return f"tcp://{fleet.host(host_name).private_address}:{fleet.network.docker_api_port}"


def daemon_config(fleet: FleetConfig, host_name: str) -> dict[str, Any]:
    host = fleet.host(host_name)
    docker = fleet.provisioning.docker
    config: dict[str, Any] = {
        # fd:// keeps systemd's docker.socket for the local CLI; the TCP socket is for the backend only.
        "hosts": ["fd://", docker_api_url(fleet, host_name)],
        "tls": True,
        "tlsverify": True,
        "tlscacert": TLS_CA,
        "tlscert": TLS_CERT,
        "tlskey": TLS_KEY,
        "live-restore": True,
        "icc": False,
        "userland-proxy": False,
        "no-new-privileges": True,
        "ip": str(host.private_address),
        "bip": str(docker.bridge_address),
        "default-address-pools": [{"base": str(docker.address_pool), "size": docker.address_pool_size}],
        "default-ulimits": {
            "nofile": {"Name": "nofile", "Soft": docker.nofile_soft, "Hard": docker.nofile_hard},
            "nproc": {"Name": "nproc", "Soft": docker.nproc, "Hard": docker.nproc},
        },
        "log-driver": "local",
        "log-opts": {"max-size": docker.log_max_size, "max-file": str(docker.log_max_files)},
        "log-level": "info",
        "storage-driver": "overlay2",
    }
    if docker.userns_remap:
        config["userns-remap"] = "default"
    return config


def daemon_json(fleet: FleetConfig, host_name: str) -> str:
    return json.dumps(daemon_config(fleet, host_name), indent=2, sort_keys=True) + "\n"


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
    return "\n".join([
        "# Managed by drape-fleet (deploys/docker.py): listen addresses come from /etc/docker/daemon.json.",
        "[Unit]",
        "After=network-online.target drape-firewall.service",
        "Wants=network-online.target",
        "",
        "[Service]",
        "ExecStart=",
        f"ExecStart={engine.dockerd} --containerd=/run/containerd/containerd.sock",
        "",
    ])


def apt_source(profile: DistroProfile, keyring: str, architecture: str = "amd64") -> str:
    """Docker's repository in deb822 form, trusted only with its own keyring (signed-by)."""
    return "\n".join([
        "# Managed by drape-fleet (deploys/docker.py).",
        "Types: deb",
        f"URIs: {profile.docker.ce_repository}",
        f"Suites: {profile.docker.ce_suite}",
        "Components: stable",
        f"Architectures: {architecture}",
        f"Signed-By: {keyring}",
        "",
    ])
