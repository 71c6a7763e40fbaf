"""The fleet of $DRAPE_ENV (production when unset; lab; or any config/<name>.toml): what `invoke provision`
runs pyinfra with. `DRAPE_ENV=staging pyinfra inventories/fleet.py deploys/site.py`."""

from drape_fleet.provision.inventory import environment_groups

_groups = environment_groups()
preview = _groups.get("preview", [])
canary = _groups.get("canary", [])
