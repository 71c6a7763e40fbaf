"""Every deploy, in order: `pyinfra inventories/lab.py deploys/site.py` (or `invoke provision`).

storage first: it refuses a degraded RAID before anything else changes the host. Then the base system
(and the deploy user), SSH, the firewall, Docker (on its volume, behind the firewall), the pnpm store.
"""

from pyinfra import local

DEPLOYS = ("storage", "base", "ssh", "firewall", "docker", "cache")

for concern in DEPLOYS:
    local.include(f"deploys/{concern}.py")
