"""Every deploy, in order: `pyinfra inventories/lab.py deploys/site.py` (or `invoke provision`).

storage first: it refuses a degraded RAID before anything else changes the host. Then the base system
(and the deploy user), SSH, the firewall, Docker (on its volume, behind the firewall), the pnpm store.
The order is ``DEPLOY_ORDER``, which `invoke provision --only` keeps too.
"""

from pyinfra import local

from drape_fleet.provision.runner import DEPLOY_ORDER

for concern in DEPLOY_ORDER:
    local.include(f"deploys/{concern}.py")
