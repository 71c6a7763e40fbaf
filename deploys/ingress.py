"""The host's HTTPS ingress: Debian's/Ubuntu's Caddy, with a Caddyfile that imports one site file per service from
/etc/caddy/sites/ (the runtime service's is deploys/service.py's; the previews' ingress adds its own). The admin
API stays on loopback. A new Caddyfile is installed only once `caddy validate` accepts it, then Caddy reloads.

Alone: `pyinfra inventories/lab.py deploys/ingress.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

from drape_fleet.facts.system import FileText
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_text
from drape_fleet.service_deploy import host as layout

CANDIDATE = f"{layout.CADDYFILE}.drape-candidate"


@deploy("ingress")
def ingress() -> None:
    ctx = deploy_context(host)
    apt.packages(name="Caddy (the HTTPS ingress)", packages=["caddy"], update=True, cache_time=3600,
                 no_recommends=True)
    for path in (layout.CADDY_SITES, layout.CADDY_TLS):
        files.directory(name=f"{path}: root writes, caddy reads", path=path, user="root", group=layout.CADDY_USER,
                        mode="750")
    systemd.service(name="Caddy running and enabled", service="caddy.service", running=True, enabled=True)
    wanted = layout.caddyfile(ctx.me)
    put_text("Caddyfile candidate", wanted, CANDIDATE, mode="640", group=layout.CADDY_USER)
    if host.get_fact(FileText, path=layout.CADDYFILE) != wanted.rstrip("\n"):
        server.shell(name="Caddyfile validated by caddy, installed, Caddy reloaded", commands=[
            f"caddy validate --adapter caddyfile --config {CANDIDATE}",
            f"install -m 644 {CANDIDATE} {layout.CADDYFILE}",
            "systemctl reload caddy.service",
        ])


ingress()
