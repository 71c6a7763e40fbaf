"""The runtime service on this host (docs/service.md): the package installed from a bundle of wheels built on
the ops machine (no package index on the host), the instance's config and the fleet file, the token digests
(re-read live: a rotation needs no restart), the Docker API client certificate with its key root-only (the unit
hands the service a private copy at start), a hardened systemd unit running as the unprivileged user
drape-runtime, and the ingress' HTTPS site in front. Restarts only when the release, the unit, the config or the
certificate changed. Hosts the fleet file's [service] section leaves out get nothing.

Needs the ingress deploy first (Caddy). Alone: `pyinfra inventories/lab.py deploys/ingress.py deploys/service.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.config import ConfigError
from drape_fleet.facts.system import FileText
from drape_fleet.pki.authority import PkiError
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_file, put_text
from drape_fleet.service_deploy import host as layout
from drape_fleet.service_deploy.bundle import BundleError, ensure_bundle
from drape_fleet.service_deploy.certificates import ensure_instance
from drape_fleet.service_deploy.tokens import digests_text, ensure_lab_tokens, load_store, store_path

SECRET = {"user": "root", "group": "root", "mode": "600"}


@deploy("service")
def runtime_service() -> None:
    ctx = deploy_context(host)
    if not layout.runs_here(ctx.fleet, ctx.me.name):
        host.noop(f"the runtime service does not run on {ctx.me.name} (fleet file: [service])")
        return
    lab = ctx.environment == "lab"
    try:
        bundle = ensure_bundle(ctx.profile.id)
        certificates = ensure_instance(ctx.fleet, ctx.me, lab=lab)
        path = store_path(ctx.environment)
        store = ensure_lab_tokens(path) if lab else load_store(path)
    except (BundleError, PkiError, ConfigError) as exc:
        raise DeployError(str(exc)) from None
    if not store.tokens:
        raise DeployError(f"no bearer tokens in {path}: nobody could call the service. Fix: run "
                          "`invoke service.token --caller backend`, then deploy again")

    apt.packages(name="Python for the service's virtual environment", packages=["python3", "python3-venv"],
                 update=True, cache_time=3600, no_recommends=True)
    server.group(name=f"Group {layout.USER}", group=layout.USER, system=True)
    server.user(name=f"User {layout.USER}: no login, no home", user=layout.USER, group=layout.USER,  # noqa: S604
                system=True, shell="/usr/sbin/nologin", home="/nonexistent", create_home=False, ensure_home=False)
    for path_, group, mode in ((layout.OPT, "root", "755"), (f"{layout.OPT}/bundles", "root", "755"),
                               (f"{layout.OPT}/releases", "root", "755"), (f"{layout.OPT}/bin", "root", "755"),
                               (layout.ETC, layout.USER, "750"), (f"{layout.ETC}/tls", layout.USER, "750")):
        files.directory(name=f"{path_}", path=path_, user="root", group=group, mode=mode)

    put_file("Release installer", "service/install-release", layout.INSTALLER, mode="755")
    put_file("Health wait", "service/wait-healthy", layout.WAIT_HEALTHY, mode="755")
    bundle_dest = f"{layout.OPT}/bundles/{bundle.name}"
    files.put(name=f"Bundle of {len(bundle.wheels)} wheels for Python {bundle.python}", src=str(bundle.path),
              dest=bundle_dest, user="root", group="root", mode="644")
    release = []
    if host.get_fact(FileText, path=layout.CURRENT_MARK) != bundle.digest:
        release.append(server.shell(name=f"Release {bundle.digest[:12]} installed (a new venv), made current",
                                    commands=[layout.install_command(bundle.digest, bundle_dest)]))
    server.shell(name="Bundles other than the current one removed",
                 commands=[f"find {layout.OPT}/bundles -type f ! -name {bundle.name} -delete"],
                 _if=any_changed(*release))

    readable = {"user": "root", "group": layout.USER, "mode": "640"}
    config = [
        put_text("Instance config", layout.instance_config(ctx.fleet, ctx.me), f"{layout.ETC}/service.toml",
                 **readable),
        put_text("Fleet file", ctx.fleet_file.read_text(encoding="utf-8"), f"{layout.ETC}/fleet.toml", **readable),
        files.put(name="Docker API CA", src=str(certificates.engine_ca), dest=f"{layout.ETC}/tls/ca.pem", **readable),
        files.put(name="Docker API client certificate", src=str(certificates.client_cert),
                  dest=f"{layout.ETC}/tls/client-cert.pem", **readable),
        files.put(name="Docker API client key (root only; the unit hands the service a copy)",
                  src=str(certificates.client_key), dest=f"{layout.ETC}/tls/client-key.pem", **SECRET),
    ]
    put_text("Token digests (re-read by the service when they change)", digests_text(store),
             f"{layout.ETC}/tokens.toml", **readable)
    unit = put_text("systemd unit", layout.unit_file(ctx.fleet), f"/etc/systemd/system/{layout.UNIT}")
    systemd.daemon_reload(name="systemd reads the unit", _if=unit.did_change)
    systemd.service(name="Service enabled and running", service=layout.UNIT, running=True, enabled=True)
    server.shell(name="Service restarted for its new release or configuration, and answering",
                 commands=[f"systemctl restart {layout.UNIT}", layout.wait_healthy_command(ctx.fleet)],
                 _if=any_changed(unit, *release, *config))

    site = [
        files.put(name="Ingress certificate", src=str(certificates.ingress_cert), dest=layout.SITE_CERT,
                  user="root", group=layout.CADDY_USER, mode="644"),
        files.put(name="Ingress key", src=str(certificates.ingress_key), dest=layout.SITE_KEY, user="root",
                  group=layout.CADDY_USER, mode="640"),
        put_text("Ingress site: HTTPS to the service", layout.caddy_site(ctx.fleet, ctx.me), layout.SITE),
    ]
    server.shell(name="Ingress validated and reloaded for the service's site", _if=any_changed(*site), commands=[
        f"caddy validate --adapter caddyfile --config {layout.CADDYFILE}", "systemctl reload caddy.service"])


runtime_service()
