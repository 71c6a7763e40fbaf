"""The production fleet (config/production.toml): `pyinfra inventories/production.py deploys/site.py`.

SSH as $DRAPE_SSH_USER (default: the deploy user; `root` for the very first provisioning of a fresh
installimage host) with the one key $DRAPE_SSH_KEY (default ~/.ssh/id_ed25519); host keys pinned in
config/production.known_hosts by `invoke hosts.trust`.
"""

from drape_fleet.provision.inventory import environment_groups

_groups = environment_groups("production")
preview = _groups.get("preview", [])
canary = _groups.get("canary", [])
