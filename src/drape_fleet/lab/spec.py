"""Pure builders: what the lab asks the Docker engine for. No I/O; tested exactly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from drape_fleet.lab.disks import disk
from drape_fleet.lab.settings import LABEL, LabSettings

HOST_LABEL = f"{LABEL}.host"
SPEC_LABEL = f"{LABEL}.spec"

# The recipe that runs systemd as PID 1 on this machine kind (see MACHINE.md): --privileged is refused
# here, so every capability but SYS_RESOURCE; /proc/sys left unmasked and writable (the CLI's
# systempaths=unconfined) so sysctl and a nested dockerd with userland-proxy off work.
SECURITY_OPT = ("seccomp=unconfined", "apparmor=unconfined")


def network_spec(settings: LabSettings, which: str) -> dict[str, Any]:
    subnet = settings.public_subnet if which == "public" else settings.private_subnet
    gateway = settings.public_gateway if which == "public" else settings.private_gateway
    return {
        "name": settings.public_network if which == "public" else settings.private_network,
        "driver": "bridge",
        "ipam": {"Driver": "default", "Config": [{"Subnet": str(subnet), "Gateway": str(gateway)}]},
        "labels": {LABEL: settings.prefix, f"{LABEL}.network": which},
    }


def data_binds(settings: LabSettings, host: str) -> list[str]:
    """The host's /var/lib/docker and /srv/drape: two directories of its XFS data disk (``drape_fleet.lab.disks``),
    one filesystem as on a production host. /var/lib/docker must not be overlayfs for a nested overlay2 engine."""
    return [f"{source}:{target}:rw" for source, target in disk(settings, host).binds().items()]


def host_container_spec(settings: LabSettings, index: int, image: str) -> dict[str, Any]:
    """The Engine API body (``POST /containers/create``) for lab host number ``index`` (1-based).

    Built as raw API JSON because ``systempaths=unconfined`` is a CLI spelling: the API wants empty
    ``MaskedPaths`` and ``ReadonlyPaths``, which docker-py's HostConfig cannot express.
    """
    host = settings.host_name(index)
    binds = [*data_binds(settings, host), "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    body: dict[str, Any] = {
        "Image": image,
        "Cmd": ["/sbin/init"],
        "Hostname": host,
        "Env": ["container=docker"],
        "StopSignal": "SIGRTMIN+3",
        "HostConfig": {
            "Binds": binds,
            "CapAdd": ["ALL"],
            "CapDrop": ["SYS_RESOURCE"],
            "SecurityOpt": list(SECURITY_OPT),
            "MaskedPaths": [],
            "ReadonlyPaths": [],
            "CgroupnsMode": "host",
            "Tmpfs": {"/run": "rw", "/run/lock": "rw"},
            "NetworkMode": settings.public_network,
        },
        "NetworkingConfig": {"EndpointsConfig": {settings.public_network: {
            "IPAMConfig": {"IPv4Address": str(settings.public_address(index))}}}},
    }
    body["Labels"] = {LABEL: settings.prefix, HOST_LABEL: host, SPEC_LABEL: spec_digest(body)}
    return body


def spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
