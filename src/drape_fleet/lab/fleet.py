"""The fleet the lab stands for (pure): the same shape ops write for production, with the values a stand-in
host can live with. `invoke lab.up` writes it as the lab's fleet file."""

from __future__ import annotations

from typing import Any

from drape_fleet.backup.lab import lab_backup_data
from drape_fleet.config import FleetConfig
from drape_fleet.config.loader import validate_fleet
from drape_fleet.config.runtime import NEXT_PROBE_PATH
from drape_fleet.lab.node_images import template_tag
from drape_fleet.lab.settings import LabSettings

LAB_PROVISIONING: dict[str, Any] = {
    # What a stand-in host cannot do that a server does (see drape_fleet.config.provisioning):
    # a lab host shares this machine's kernel, has no md driver, disks or LVM, cannot raise open files above
    # 20000, cannot run nested containers under userns-remap, and cannot reach Docker's apt repository.
    "rollback_after_s": 15,  # lock-out tests wait for it
    "base": {"owns_kernel": False},
    # This machine's kernel has no XFS quota support (prjquota mounts fail): no per-container disk limits.
    "docker": {"source": "distro", "nofile_soft": 16384, "nofile_hard": 20000, "userns_remap": False,
               "disk_quotas": False},
    "storage": {"expect_raid": False, "manage_volumes": False, "disk_monitoring": False},
    "cache": {"max_size_gib": 20},
}


def lab_fleet_data(settings: LabSettings) -> dict[str, Any]:
    """The lab's fleet file, as data: the same shape ops write for production."""
    return {
        "environment": {"name": "lab", "deploy_user": "deploy"},
        "network": {
            "admin_allowlist": [f"{settings.public_gateway}/32"],
            # This machine (the backend's stand-in) and every host: each runs the runtime service (docs/service.md).
            "backend_addresses": [f"{settings.private_gateway}/32",
                                  *(f"{settings.private_address(i)}/32" for i in range(1, settings.hosts + 1))],
        },
        # The public subnet stands for the internet: previews may reach it, as they reach public addresses.
        "provisioning": {**LAB_PROVISIONING, "firewall": {"private_network": [str(settings.private_subnet)],
                                                          "preview_allowed_destinations": [
                                                              str(settings.public_subnet)]}},
        "hosts": [
            {
                "name": settings.host_name(i),
                "public_address": str(settings.public_address(i)),
                "private_address": str(settings.private_address(i)),
                "roles": ["preview", "canary"] if i == 1 else ["preview"],
                "capacity": {"cpus": settings.host_cpus, "memory_gib": settings.host_memory_gib,
                             "disk_gib": settings.host_disk_gib},
            }
            for i in range(1, settings.hosts + 1)
        ],
        "runtime": lab_runtime_data(settings),
        "service": {},
        "previews": {"ingress": {"domain": LAB_PREVIEW_DOMAIN, "certificates": "lab-ca"}},
        "monitoring": lab_monitoring_data(settings),
        "backup": lab_backup_data(settings),
    }


LAB_ALERT_RECEIVER_PORT = 9790
"""Where the lab's "outside" alert receivers listen: this machine on the private network (the tests' webhook
server, `invoke monitoring.receiver --env lab`)."""


def lab_monitoring_data(settings: LabSettings) -> dict[str, Any]:
    """Monitoring on ax1, with intervals and ``for:`` windows of seconds so alerts fire and resolve within a
    test; the receivers are webhooks on this machine (no secrets: the lab's own server on its private network)."""
    base = f"http://{settings.private_gateway}:{LAB_ALERT_RECEIVER_PORT}"
    return {
        "server": settings.host_name(1),
        "scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s", "resend_delay": "2s",
        "exporters": {"procfs_view": True},
        "collectors": {"docker_interval": "2s", "updates_interval": "10m", "tls_interval": "1m"},
        "alerts": {"host_down_for": "4s", "raid_for": "4s", "disk_for": "4s", "docker_down_for": "4s",
                   "service_down_for": "10s", "memory_for": "1m", "clock_for": "1m", "collector_for": "1m",
                   "preview_start_for": "1m", "queue_for": "20s"},
        "alertmanager": {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
                         "resolve_timeout": "1m"},
        "receivers": [{"name": name, "kind": "webhook", "url": f"{base}/{name.removeprefix('lab-')}"}
                      for name in ("lab-alerts", "lab-pager", "lab-heartbeat")],
        "default_receiver": "lab-alerts",
        "routes": [{"receiver": "lab-pager", "severity": ["critical"]}],
        "watchdog": {"receiver": "lab-heartbeat", "interval": "3s"},
        "retention": {"days": 1, "disk_budget_gib": 3},
    }


LAB_PREVIEW_DOMAIN = "preview.lab.test"
"""Previews of lab host ax1 are https://<workspace>.ax1.preview.lab.test (.test never resolves on the internet:
clients connect to the host's address and send the name, as `curl --resolve` does)."""

LAB_PREVIEW_MIB = 256
"""Lab previews are small so a 4 GiB stand-in host holds 16 of them: capacity and queueing are exercised."""


def lab_runtime_data(settings: LabSettings) -> dict[str, Any]:
    """The runtime section of the lab fleet: small previews, lab-built template images, short timeouts; users'
    repositories on the lab's git server (its public network, its CA)."""
    from drape_fleet.lab.gitserver import ca_file
    frameworks: dict[str, Any] = {
        "tiny": {"image": "drape-lab/preview-tiny:1", "port": 3000, "ready_timeout_s": 60},
    }
    # A Next.js compile is killed by the OOM killer at 256 MiB (seen); Vite servers fit in 512 MiB.
    for name, memory_mib in (("nextjs", 1024), ("react", 512), ("vue", 512)):
        frameworks[name] = {"image": template_tag(name), "port": 3000, "ready_timeout_s": 600,
                            "ready_when": "page-compiled", "keep_workspace": True,
                            "ready_path": NEXT_PROBE_PATH if name == "nextjs" else "/",
                            "resources": {"cpus": 1, "memory_mib": memory_mib, "pids_limit": 1024, "disk_gib": 2,
                                          "tmp_mib": 64}}
    return {
        "preview": {"cpus": 0.5, "memory_mib": LAB_PREVIEW_MIB, "pids_limit": 512, "disk_gib": 2, "tmp_mib": 64},
        "max_preview": {"cpus": 2, "memory_mib": 2048, "pids_limit": 2048, "disk_gib": 10, "tmp_mib": 256},
        "cpu_overcommit": 5,
        # The stand-ins' engines run overlay2 on the outer engine's filesystem, without XFS project quotas: they
        # cannot limit a preview's disk. Said here, explicitly; production's default is "required".
        "disk_limit": "where-supported",
        "frameworks": frameworks,
        "request_timeout_s": 8,
        "snapshot_timeout_s": 3,
        "queue_timeout_s": 120,
        "claim_timeout_s": 60,
        "private_repo_networks": [str(settings.public_subnet)],
        "repo_ca_file": str(ca_file(settings)),
    }


def lab_fleet(settings: LabSettings) -> FleetConfig:
    return validate_fleet(lab_fleet_data(settings), source="(lab)")
