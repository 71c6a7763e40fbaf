"""The lab fleet (made by `invoke lab.up`): `pyinfra inventories/lab.py deploys/site.py`."""

from drape_fleet.provision.inventory import environment_groups

_groups = environment_groups("lab")
preview = _groups.get("preview", [])
canary = _groups.get("canary", [])
