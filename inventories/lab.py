"""The lab fleet (made by `invoke lab.up`): `pyinfra inventories/lab.py deploys/site.py`."""

from drape_fleet.inventory import groups
from drape_fleet.lab.state import lab_connection, load_lab_fleet

_fleet, _fleet_file = load_lab_fleet()
_groups = groups(_fleet, fleet_file=_fleet_file, **lab_connection())

preview = _groups.get("preview", [])
canary = _groups.get("canary", [])
