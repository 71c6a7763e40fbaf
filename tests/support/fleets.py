"""A production-shaped fleet for the Robot, installimage and reinstall tests, and SSH public keys to go with it
(public halves only, made with ssh-keygen for these tests)."""

from __future__ import annotations

from typing import Any

from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet

OPS_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1JXgNIpbKYtgqEGJi08hs4Ssh73xMdMsNnivqDL38F ops@example"
OPS_KEY_MD5 = "c8:26:8d:f1:f8:38:f4:f9:04:de:f5:f6:69:12:8f:45"
RESCUE_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILQ29Cb/xnLBchvaoUetnBW/L7ykhhMuQmMcuMJhS+DE rescue"
RESCUE_HOST_KEY_MD5 = "d0:b1:18:7f:2d:33:2b:79:33:b7:fd:6f:79:8a:e3:f3"
NEW_OS_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICmxAaLZ4bQqoaeyLQuU2v+8dXnATb47ya/MotXNAP7n root@ax1"

XFS_VOLUMES = [
    {"name": "docker", "mount": "/var/lib/docker", "size": "1200G", "filesystem": "xfs"},
    {"name": "drape", "mount": "/srv/drape", "size": "300G", "filesystem": "xfs"},
]


def fleet_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "environment": {"name": "production"},
        "network": {"admin_allowlist": ["203.0.113.7/32"], "backend_addresses": ["10.0.0.2/32"]},
        "provisioning": {"storage": {"volumes": XFS_VOLUMES}},
        "reinstall": {"rescue_keys": [OPS_KEY_MD5]},
        "hosts": [
            {"name": "ax1", "public_address": "203.0.113.11", "private_address": "10.0.0.11",
             "robot_server_number": 2100001, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}},
            {"name": "ax2", "public_address": "203.0.113.12", "private_address": "10.0.0.12",
             "robot_server_number": 2100002, "capacity": {"cpus": 16, "memory_gib": 120, "disk_gib": 800}},
        ],
    }
    data.update(overrides)
    if data["environment"].get("name") != "lab":  # ops-written fleets name their vSwitch range (the fence)
        data["provisioning"] = {"firewall": {"private_network": ["10.0.0.0/24"]}, **data["provisioning"]}
    return data


def make_fleet(**overrides: Any) -> FleetConfig:
    return validate_fleet(fleet_data(**overrides), source="(test)")
