"""Each host's HTTPS ingress: Debian's/Ubuntu's Caddy, with a Caddyfile that imports one site file per service
from /etc/caddy/sites/ (the admin API stays on loopback). The runtime service's site is deploys/service.py's; the
previews' site (*.<host>.<domain>, a wildcard certificate, docs/previews.md "Preview URL") and the preview gate
Caddy asks before each request (drape_fleet.ingress.gate, a hardened unit on 127.0.0.1) are this deploy's, for a
fleet with [previews.ingress]. A new Caddyfile is installed only once `caddy validate` accepts it; every site
change is validated before Caddy reloads; the gate restarts only when its code, settings, key or unit changed.

The link key and the certificates are found on this machine first (drape_fleet.ingress.credentials): a missing
one stops the deploy before the host is touched.

Alone: `pyinfra inventories/lab.py deploys/ingress.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.config import ConfigError
from drape_fleet.environments import FleetTarget, environment
from drape_fleet.facts.system import FileText
from drape_fleet.ingress import host_files as layout
from drape_fleet.ingress.credentials import IngressRefused, certificate, link_key
from drape_fleet.pki.authority import PkiError
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_text

CANDIDATE = f"{layout.CADDYFILE}.drape-candidate"
CADDY_READS = {"user": "root", "group": layout.CADDY_USER}
GATE_READS = {"user": "root", "group": layout.GATE_USER, "mode": "640"}


@deploy("ingress")
def ingress() -> None:
    ctx = deploy_context(host)
    settings = ctx.fleet.previews.ingress
    if settings is not None:  # everything the previews' site needs from this machine, before the host is touched
        target = FleetTarget(environment(ctx.environment), ctx.fleet)
        try:
            cert, key = certificate(target, settings, ctx.me)
            secret = link_key(target)
        except (IngressRefused, PkiError, ConfigError) as exc:
            raise DeployError(str(exc)) from None

    apt.packages(name="Caddy (the HTTPS ingress) and Python for the gate", packages=["caddy", "python3"],
                 update=True, cache_time=3600, no_recommends=True)
    for path in (layout.SITES, layout.TLS_DIR):
        files.directory(name=f"{path}: root writes, caddy reads", path=path, mode="750", **CADDY_READS)
    systemd.service(name="Caddy running and enabled", service="caddy.service", running=True, enabled=True)
    wanted = layout.caddyfile(ctx.me)
    put_text("Caddyfile candidate", wanted, CANDIDATE, mode="640", group=layout.CADDY_USER)
    if host.get_fact(FileText, path=layout.CADDYFILE) != wanted.rstrip("\n"):
        server.shell(name="Caddyfile validated by caddy, installed, Caddy reloaded", commands=[
            f"caddy validate --adapter caddyfile --config {CANDIDATE}",
            f"install -m 644 {CANDIDATE} {layout.CADDYFILE}",
            "systemctl reload caddy.service",
        ])
    if settings is None:
        host.noop("previews have no HTTPS ingress in this fleet ([previews.ingress] is not set)")
        return

    site = [
        files.put(name="Previews' certificate", src=str(cert), dest=layout.CERT, mode="644", **CADDY_READS),
        files.put(name="Previews' certificate key", src=str(key), dest=layout.KEY, mode="640", **CADDY_READS),
        put_text("Previews' site", layout.previews_site(settings, ctx.me), layout.SITE, mode="640",
                 **CADDY_READS),
    ]
    server.shell(name="Caddy's configuration validated, Caddy reloaded", _if=any_changed(*site), commands=[
        f"caddy validate --adapter caddyfile --config {layout.CADDYFILE}", "systemctl reload caddy.service"])

    server.group(name=f"Group {layout.GATE_USER}", group=layout.GATE_USER, system=True)
    server.user(name=f"User {layout.GATE_USER}: no login, no home", user=layout.GATE_USER,  # noqa: S604
                group=layout.GATE_USER, system=True, shell="/usr/sbin/nologin", home="/nonexistent",
                create_home=False, ensure_home=False)
    for directory in (layout.GATE_LIB, f"{layout.GATE_LIB}/drape_fleet", f"{layout.GATE_LIB}/drape_fleet/ingress"):
        files.directory(name=directory, path=directory, user="root", group="root", mode="755")
    files.directory(name=layout.GATE_ETC, path=layout.GATE_ETC, user="root", group=layout.GATE_USER, mode="750")
    gate = [files.put(name=f"Gate module {dest.removeprefix(layout.GATE_LIB + '/')}", src=str(src), dest=dest,
                      user="root", group="root", mode="644") for dest, src in layout.shipped_files().items()]
    gate += [
        put_text("Gate settings", layout.gate_config(ctx.fleet, settings, ctx.me), layout.GATE_CONFIG, **GATE_READS),
        put_text("Preview link key", secret.decode() + "\n", layout.GATE_KEY, **GATE_READS),
    ]
    unit = put_text("Gate unit", layout.gate_unit(), f"/etc/systemd/system/{layout.GATE_UNIT}")
    systemd.daemon_reload(name="systemd reads the gate unit", _if=unit.did_change)
    systemd.service(name="Gate enabled and running", service=layout.GATE_UNIT, running=True, enabled=True)
    server.shell(name="Gate restarted for its new code, settings or key", _if=any_changed(unit, *gate),
                 commands=[f"systemctl restart {layout.GATE_UNIT}"])


ingress()
