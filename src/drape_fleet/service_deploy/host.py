"""What the service deploy puts on a host, computed from the fleet file (pure): the paths, and the values that
``files/service/*`` and ``files/ingress/*`` shape into text (rendered by ``drape_fleet.provision.render``).

On a host::

    /opt/drape-runtime/bundles/<name>.tar      the wheels (``bundle``), uploaded when they changed
    /opt/drape-runtime/releases/<digest>/       one virtual environment per bundle; ``current`` -> the running one
    /etc/drape-runtime/service.toml             the instance's config (``InstanceConfig``)
    /etc/drape-runtime/fleet.toml               the fleet file, as ops have it
    /etc/drape-runtime/tokens.toml              SHA-256 digests of the bearer tokens (root:drape-runtime 640)
    /etc/drape-runtime/tls/{ca,client-cert}.pem the Docker API CA and this instance's client certificate
    /etc/drape-runtime/tls/client-key.pem       its key: root 600; the unit copies it to /run/drape-runtime
    /etc/systemd/system/drape-runtime.service   the unit: user drape-runtime, hardened
    /etc/caddy/sites/drape-runtime.caddy        the ingress' site for the service (HTTPS on the host's addresses)
    /etc/caddy/tls/drape-runtime{,-key}.pem     its certificate, from the ingress CA
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from drape_fleet.config import FleetConfig, Host
from drape_fleet.config.service import ServiceSettings
from drape_fleet.provision.render import render

USER = "drape-runtime"
UNIT = "drape-runtime.service"
OPT = "/opt/drape-runtime"
ETC = "/etc/drape-runtime"
LISTEN = "127.0.0.1"
RUNTIME_DIR_NAME = "drape-runtime"
RUNTIME_DIR = f"/run/{RUNTIME_DIR_NAME}"
"""The service's private tmpfs (``RuntimeDirectory=``): its copy of the Docker API client key."""
INSTALLER = f"{OPT}/bin/install-release"
WAIT_HEALTHY = f"{OPT}/bin/wait-healthy"
CURRENT_MARK = f"{OPT}/current/.bundle"
CADDY_ETC = "/etc/caddy"
CADDYFILE = f"{CADDY_ETC}/Caddyfile"
CADDY_SITES = f"{CADDY_ETC}/sites"
CADDY_TLS = f"{CADDY_ETC}/tls"
CADDY_USER = "caddy"
SITE = f"{CADDY_SITES}/drape-runtime.caddy"
SITE_CERT = f"{CADDY_TLS}/drape-runtime.pem"
SITE_KEY = f"{CADDY_TLS}/drape-runtime-key.pem"


def settings(fleet: FleetConfig) -> ServiceSettings | None:
    return fleet.service


def runs_here(fleet: FleetConfig, host: str) -> bool:
    return fleet.service is not None and host in fleet.service.runs_on(fleet.host_names)


def _literal(address: IPv4Address | IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def base_urls(fleet: FleetConfig) -> list[str]:
    """Where callers reach the instances: ``https://<public address>[:port]`` of every host that runs one."""
    if fleet.service is None:
        return []
    port = fleet.service.ingress_port
    suffix = "" if port == 443 else f":{port}"
    return [f"https://{_literal(fleet.host(name).public_address)}{suffix}"
            for name in fleet.service.runs_on(fleet.host_names)]


def unit_file(fleet: FleetConfig) -> str:
    service = fleet.service or ServiceSettings()
    return render("service/drape-runtime.service.j2", user=USER, unit=UNIT, opt=OPT, etc=ETC, listen=LISTEN,
                  port=service.port, nofile=fleet.provisioning.docker.nofile_hard, runtime_dir=RUNTIME_DIR,
                  runtime_dir_name=RUNTIME_DIR_NAME)


def instance_config(fleet: FleetConfig, host: Host) -> str:
    service = fleet.service or ServiceSettings()
    return render("service/service.toml.j2", etc=ETC, instance=host.name, listen=LISTEN, port=service.port,
                  runtime_dir=RUNTIME_DIR)


def caddy_site(fleet: FleetConfig, host: Host) -> str:
    service = fleet.service or ServiceSettings()
    return render("service/drape-runtime.caddy.j2", ingress_port=service.ingress_port, listen=LISTEN,
                  port=service.port, cert=SITE_CERT, key=SITE_KEY,
                  addresses=[_literal(host.public_address), _literal(host.private_address)])


def caddyfile(host: Host) -> str:
    return render("ingress/Caddyfile.j2", sites=CADDY_SITES, default_sni=str(host.public_address))


def wait_healthy_command(fleet: FleetConfig, seconds: int = 120) -> str:
    return f"{WAIT_HEALTHY} {(fleet.service or ServiceSettings()).port} {seconds}"


def install_command(digest: str, bundle_path: str) -> str:
    return f"{INSTALLER} {digest} {bundle_path}"
