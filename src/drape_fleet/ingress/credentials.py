"""The ingress's two secrets, found (or, in the lab, made) on the ops machine before any host is touched:

* the **link key** that signs preview links (the backend) and checks them (each host's gate): the secret
  ``preview_url_key`` (``DRAPE_PREVIEW_URL_KEY`` or the secrets file), at least 32 bytes. The lab makes its own
  in its state directory (``preview-url.key``, 0600) when the secret is not set.
* each host's **certificate** for ``*.<host>.<domain>``: ``certificates = "files"`` reads
  ``<certificate_dir>/<host>/{cert,key}.pem`` (a wildcard ops obtain with a DNS-01 challenge, the only way to a
  wildcard from a public CA); ``"lab-ca"`` issues one from the lab's own previews CA (``<lab pki>/previews``),
  which a lab client trusts instead of a public one.
"""

from __future__ import annotations

import fcntl
import secrets
from pathlib import Path

from drape_fleet.config import ConfigError, Host
from drape_fleet.config.errors import Problem
from drape_fleet.config.previews import IngressSettings
from drape_fleet.config.secrets import load_secrets
from drape_fleet.environments import FleetTarget
from drape_fleet.ingress.links import MIN_KEY_BYTES
from drape_fleet.paths import project_root

LAB_KEY_FILE = "preview-url.key"
LAB_CA_DIR = "previews"


class IngressRefused(RuntimeError):
    """Something the ingress needs is missing; the message says what and how to provide it."""


def ingress_settings(target: FleetTarget) -> IngressSettings:
    settings = target.fleet.previews.ingress
    if settings is None:
        raise ConfigError(str(target.env.fleet_file), [Problem(
            "previews.ingress", "this section is missing: previews have no HTTPS URL",
            'add [previews.ingress] with domain = "preview.your-domain.example"')])
    return settings


def link_key(target: FleetTarget) -> bytes:
    secret = load_secrets(repo_root=project_root()).preview_url_key
    if secret is not None:
        key = secret.get_secret_value().encode()
    elif target.env.is_lab:
        path = target.env.state_dir / LAB_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48) + "\n")
        path.chmod(0o600)
        key = path.read_bytes().strip()
    else:
        raise IngressRefused("the preview link key is not set: make one (`python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(48))'`) and set DRAPE_PREVIEW_URL_KEY, or preview_url_key "
                             "in ~/.config/drape-fleet/secrets.toml; the backend signs links with the same key")
    if len(key) < MIN_KEY_BYTES:
        raise IngressRefused(f"the preview link key has {len(key)} bytes: it needs at least {MIN_KEY_BYTES}")
    return key


def lab_ca(target: FleetTarget) -> Path:
    """The lab previews CA's certificate (what a lab client trusts for preview URLs)."""
    from drape_fleet.pki.paths import ca_files

    return ca_files(target.env.pki_dir / LAB_CA_DIR)[0]


def certificate(target: FleetTarget, settings: IngressSettings, host: Host) -> tuple[Path, Path]:
    """(certificate, key) of ``*.<host>.<domain>`` for ``host``."""
    name = f"*.{settings.host_domain(host.name)}"
    if settings.certificates == "lab-ca":
        if not target.env.is_lab:
            raise IngressRefused(f"{target.environment}: certificates = \"lab-ca\" is for the lab only; use "
                                 "\"files\" with a certificate from a public CA")
        from drape_fleet.pki.authority import init_ca, issue_names

        directory = target.env.pki_dir / LAB_CA_DIR
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (directory / ".lock").open("w") as lock:  # deploys run one process per host, in parallel
            fcntl.flock(lock, fcntl.LOCK_EX)
            init_ca(directory, allow_in_repo=True)  # the lab's state directory is git-ignored
            issued = issue_names(directory, host.name, [name])
        return issued.cert, issued.key
    directory = Path(settings.certificate_dir).expanduser() / host.name
    cert, key = directory / "cert.pem", directory / "key.pem"
    missing = [str(p) for p in (cert, key) if not p.is_file()]
    if missing:
        raise IngressRefused(f"{host.name}: no certificate for {name} ({', '.join(missing)} missing): obtain a "
                             f"wildcard certificate for {name} (DNS-01 in the zone `invoke ingress.dns` manages) and "
                             f"put the chain in {cert} and its key in {key}")
    return cert, key
