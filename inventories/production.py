"""The production fleet (config/production.toml): `pyinfra inventories/production.py deploys/site.py`.

SSH as $DRAPE_SSH_USER (default: the deploy user; `root` for the very first provisioning of a
fresh installimage host), keys from your ssh-agent, host keys pinned in inventories/known_hosts.
"""

from drape_fleet.inventory import groups
from drape_fleet.production import load_production_fleet, production_connection

_fleet, _fleet_file = load_production_fleet()
_groups = groups(_fleet, fleet_file=_fleet_file, **production_connection(_fleet))

preview = _groups.get("preview", [])
canary = _groups.get("canary", [])
