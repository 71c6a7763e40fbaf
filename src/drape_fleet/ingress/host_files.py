"""What the ingress deploy puts on a host (ops side; pure builders over ``files/ingress/``)::

    /etc/caddy/Caddyfile                          global options (admin API on loopback) and `import sites/*.caddy`
    /etc/caddy/sites/drape-previews.caddy         the previews' site: *.<host>.<domain>, forward_auth to the gate
    /etc/caddy/tls/drape-previews{,-key}.pem      its wildcard certificate (key root:caddy 640)
    /usr/local/lib/drape-preview-gate/drape_fleet/...   the gate's modules (standard library only), from this package
    /etc/drape/preview-gate/config.json           the gate's settings (root:drape-gate 640)
    /etc/drape/preview-gate/key                   the link key (root:drape-gate 640; the secret preview_url_key)
    /etc/systemd/system/drape-preview-gate.service
"""

from __future__ import annotations

import json
from pathlib import Path

from drape_fleet.config import FleetConfig, Host
from drape_fleet.config.previews import IngressSettings
from drape_fleet.ingress.gate import CHECK_PATH
from drape_fleet.ingress.links import COOKIE, LOGIN_PATH
from drape_fleet.preview_images import TEMPLATES
from drape_fleet.provision.render import render

CADDY_USER = "caddy"
CADDYFILE = "/etc/caddy/Caddyfile"
SITES = "/etc/caddy/sites"
TLS_DIR = "/etc/caddy/tls"
SITE = f"{SITES}/drape-previews.caddy"
CERT = f"{TLS_DIR}/drape-previews.pem"
KEY = f"{TLS_DIR}/drape-previews-key.pem"
GATE_USER = "drape-gate"
GATE_UNIT = "drape-preview-gate.service"
GATE_LIB = "/usr/local/lib/drape-preview-gate"
GATE_ETC = "/etc/drape/preview-gate"
GATE_CONFIG = f"{GATE_ETC}/config.json"
GATE_KEY = f"{GATE_ETC}/key"
SHIPPED_MODULES = ("__init__.py", "ingress/__init__.py", "ingress/links.py", "ingress/local_engine.py",
                   "ingress/routes.py", "ingress/gate.py")
"""The gate's modules, under ``drape_fleet/``: standard library only (a unit test holds them to that)."""


def package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def shipped_files() -> dict[str, Path]:
    """Host path -> this package's file, for each module the gate runs."""
    return {f"{GATE_LIB}/drape_fleet/{name}": package_dir() / name for name in SHIPPED_MODULES}


def caddyfile(host: Host) -> str:
    return render("ingress/Caddyfile.j2", sites=SITES, default_sni=str(host.public_address))


def gate_address(settings: IngressSettings) -> str:
    return f"127.0.0.1:{settings.gate_port}"


def previews_site(settings: IngressSettings, host: Host, *, cert: str = CERT, key: str = KEY) -> str:
    return render("ingress/previews.caddy.j2", host_domain=settings.host_domain(host.name),
                  https_port=settings.https_port, cert=cert, key=key, gate=gate_address(settings),
                  gate_unit=GATE_UNIT, login_path=LOGIN_PATH, check_path=CHECK_PATH, cookie=COOKIE)


def gate_config(fleet: FleetConfig, settings: IngressSettings, host: Host) -> str:
    data = {
        "host": host.name,
        "host_domain": settings.host_domain(host.name),
        "owner": fleet.runtime.owner,
        "key_file": GATE_KEY,
        "listen_port": settings.gate_port,
        "session_s": int(settings.session_hours * 3600),
        "phase_frameworks": sorted(name for name in fleet.runtime.frameworks if name in TEMPLATES),
    }
    return json.dumps(data, indent=2) + "\n"


def gate_unit() -> str:
    return render("ingress/drape-preview-gate.service.j2", user=GATE_USER, lib=GATE_LIB, config=GATE_CONFIG)
