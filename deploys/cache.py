"""The shared pnpm store that preview containers mount: layout, ownership, size limit
(the contract is in drape_fleet.provision.cache).

Alone: `pyinfra inventories/lab.py deploys/cache.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.provision import cache as builders
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text


@deploy("cache")
def pnpm_store() -> None:
    ctx = deploy_context(host)
    cache = ctx.fleet.provisioning.cache
    server.group(name=f"Group {cache.owner} (gid {cache.uid})", group=cache.owner, gid=cache.uid, system=True)
    server.user(name=f"User {cache.owner} (uid {cache.uid}), no login", user=cache.owner, uid=cache.uid,  # noqa: S604
                group=cache.owner, system=True, shell="/usr/sbin/nologin", home="/nonexistent",
                create_home=False, ensure_home=False)
    parent = cache.store_path.rsplit("/", 1)[0] or "/"
    files.directory(name=f"{parent} (the cache volume)", path=parent, user="root", group="root", mode="755")
    files.directory(name=f"{cache.store_path}: {cache.owner} writes, everyone reads", path=cache.store_path,
                    user=cache.owner, group=cache.owner, mode="755")

    conf = put_text("Store location and limit", builders.store_conf(cache), builders.CONF_FILE)
    script = put_text("Size guard script", builders.guard_script(), builders.GUARD_SCRIPT, mode="755")
    units = "/etc/systemd/system"
    unit = put_text("Size guard service", builders.guard_service(), f"{units}/{builders.GUARD_SERVICE}")
    timer_unit = put_file("Size guard timer (hourly)", builders.TIMER_FILE, f"{units}/{builders.GUARD_TIMER}")
    systemd.daemon_reload(name="systemd reads the guard units", _if=any_changed(unit, timer_unit))
    systemd.service(name="Size guard timer on", service=builders.GUARD_TIMER, running=True, enabled=True)
    server.shell(name="Store measured now", commands=[f"systemctl start {builders.GUARD_SERVICE}"],
                 _if=any_changed(conf, script, unit))


pnpm_store()
