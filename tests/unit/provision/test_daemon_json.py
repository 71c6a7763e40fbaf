from __future__ import annotations

import json

from drape_fleet.config import FleetConfig
from drape_fleet.provision.daemon import (
    apt_source,
    daemon_json,
    docker_api_url,
    engine_packages,
    systemd_drop_in,
)
from drape_fleet.provision.distro import load_profile


def test_production_daemon_json_says_what_cis_asks(fleet: FleetConfig) -> None:
    """The rendered file parses as JSON and holds exactly these keys (the whole text is a golden file)."""
    assert json.loads(daemon_json(fleet, "ax1")) == {
        "hosts": ["fd://", "tcp://10.0.0.11:2376"],
        "tls": True, "tlsverify": True,
        "storage-opts": ["overlay2.size=20G"],  # every container's writable layer has a size (XFS pquota)
        "tlscacert": "/etc/docker/tls/ca.pem", "tlscert": "/etc/docker/tls/cert.pem",
        "tlskey": "/etc/docker/tls/key.pem",
        "live-restore": True, "icc": False, "userland-proxy": False, "no-new-privileges": True,
        "ip": "10.0.0.11",
        "bip": "10.199.255.1/24",
        "default-address-pools": [{"base": "10.200.0.0/16", "size": 28}],
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1048576, "Hard": 1048576},
                            "nproc": {"Name": "nproc", "Soft": 65536, "Hard": 65536}},
        "log-driver": "local", "log-opts": {"max-size": "20m", "max-file": "5"}, "log-level": "info",
        "storage-driver": "overlay2",
        "userns-remap": "default",
    }
    assert docker_api_url(fleet, "ax2") == "tcp://10.0.0.12:2376"


def test_lab_values_stay_within_what_a_stand_in_can_do(lab_like: FleetConfig) -> None:
    config = json.loads(daemon_json(lab_like, "ax1"))
    assert config["default-ulimits"]["nofile"] == {"Name": "nofile", "Soft": 16384, "Hard": 20000}
    assert "userns-remap" not in config


def test_engine_source_is_data(fleet: FleetConfig, lab_like: FleetConfig) -> None:
    debian = load_profile("debian-12")
    ce = engine_packages(fleet, load_profile("ubuntu-24.04"))
    assert ce.packages == ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin")
    assert (ce.dockerd, ce.validates_config) == ("/usr/bin/dockerd", True)
    distro = engine_packages(lab_like, debian)
    assert (distro.packages, distro.dockerd, distro.validates_config) == (("docker.io",), "/usr/sbin/dockerd", False)
    assert systemd_drop_in(distro).splitlines()[-2:] == [
        "ExecStart=", "ExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock"]


def test_docker_repository_is_signed_by_its_keyring() -> None:
    assert apt_source(load_profile("ubuntu-24.04"), "/etc/apt/keyrings/docker.asc") == (
        "# Managed by drape-fleet (deploys/docker.py).\n"
        "Types: deb\nURIs: https://download.docker.com/linux/ubuntu\nSuites: noble\nComponents: stable\n"
        "Architectures: amd64\nSigned-By: /etc/apt/keyrings/docker.asc\n")
