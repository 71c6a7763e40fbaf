"""Lab-only wiring for the runtime: reach the lab hosts' engines, ship preview images, fill the pnpm store.

LAB ONLY, and temporary: until the provisioning branch (``drape_fleet.pki`` and its Docker deploy) is merged,
this module stands in for it on the lab hosts so that the runtime is exercised over the *production* path,
mutual TLS on ``tcp://<private_address>:2376``, with the PKI directory in the contract's layout
(``<lab state dir>/pki/ca.pem``, ``clients/backend/{cert,key}.pem``). It makes a throwaway lab CA, one server
certificate per lab host, a backend client certificate, and a systemd drop-in on each lab host that adds the
TLS listener. Nothing here is imported by ``drape_fleet.runtime``; production never runs it.
``remove_engine_tls`` undoes it (run it before applying the provisioning deploy to the same lab).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shlex
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from docker.errors import NotFound

from drape_fleet.config import FleetConfig, Host
from drape_fleet.lab.settings import LabSettings
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.paths import project_root
from drape_fleet.runtime.engines import Engine, TlsFiles
from drape_fleet.ssh import SshTarget, ssh_run

Log = Callable[[str], None]

REMOTE_TLS_DIR = "/etc/docker/drape-lab-tls"
DROPIN = "/etc/systemd/system/docker.service.d/zz-drape-lab-tls.conf"
PNPM_STORE = "/srv/drape/pnpm-store"
TINY_IMAGE = "drape-lab/preview-tiny:1"
NODE_BASE = "drape-lab/node:bookworm"
ROOTFS = "drape-lab/rootfs:bookworm"


def lab_settings() -> LabSettings:
    from drape_fleet.lab import fleet as lab

    settings = lab_state_settings()
    return lab.saved_settings(settings.state_dir) or settings


def pki_dir(settings: LabSettings) -> Path:
    return settings.state_dir.resolve() / "pki"


# ---------------------------------------------------------------------------------------------------
# A throwaway lab PKI in the contract's layout
# ---------------------------------------------------------------------------------------------------

def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_bytes(data)
    path.chmod(mode)


def ensure_pki(settings: LabSettings, fleet: FleetConfig, log: Log) -> TlsFiles:
    root = pki_dir(settings)
    files = TlsFiles.from_pki_dir(root)
    ca_key_path = root / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)
    if not files.ca.exists() or not ca_key_path.exists():
        log(f"making a lab CA in {root}")
        ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"drape lab CA ({settings.prefix})")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=365))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, encipher_only=False,
                                           decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        _write(ca_key_path, _pem_key(ca_key), 0o600)
        _write(files.ca, ca.public_bytes(serialization.Encoding.PEM))
        for stale in root.glob("hosts/*/*.pem"):
            stale.unlink()
        for stale in (files.cert, files.key):
            stale.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_key_path} is not the lab CA's EC key")
    ca_key = loaded
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())

    def issue(cert_path: Path, key_path: Path, common_name: str, usage: x509.ObjectIdentifier,
              addresses: Iterable[str] = ()) -> None:
        if cert_path.exists() and key_path.exists():
            return
        key = _key()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=180))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        sans = [x509.IPAddress(ip_address(a)) for a in addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(key_path, _pem_key(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))

    issue(files.cert, files.key, "backend", ExtendedKeyUsageOID.CLIENT_AUTH)
    for host in fleet.hosts:
        issue(root / "hosts" / host.name / "cert.pem", root / "hosts" / host.name / "key.pem", host.name,
              ExtendedKeyUsageOID.SERVER_AUTH, [str(host.private_address), "127.0.0.1"])
    return files


# ---------------------------------------------------------------------------------------------------
# The lab hosts' engines listen with mutual TLS on the private address
# ---------------------------------------------------------------------------------------------------

def _target(settings: LabSettings, host: Host) -> SshTarget:
    return SshTarget(hostname=str(host.public_address), user="deploy", key=settings.ssh_key.resolve(),
                     known_hosts=settings.known_hosts.resolve())


def dropin_text(host: Host, port: int) -> str:
    return (
        "# LAB ONLY stand-in (drape_fleet.tasks.runtime_lab) until the provisioning deploy owns this.\n"
        "[Service]\nExecStart=\n"
        f"ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock "
        f"-H tcp://{host.private_address}:{port} --tlsverify --tlscacert={REMOTE_TLS_DIR}/ca.pem "
        f"--tlscert={REMOTE_TLS_DIR}/cert.pem --tlskey={REMOTE_TLS_DIR}/key.pem $DOCKER_OPTS\n"
    )


def ensure_engine_tls(settings: LabSettings, fleet: FleetConfig, log: Log) -> TlsFiles:
    files = ensure_pki(settings, fleet, log)
    root = pki_dir(settings)
    port = fleet.network.docker_api_port

    def one(host: Host) -> None:
        target = _target(settings, host)
        wanted = {
            f"{REMOTE_TLS_DIR}/ca.pem": files.ca.read_bytes(),
            f"{REMOTE_TLS_DIR}/cert.pem": (root / "hosts" / host.name / "cert.pem").read_bytes(),
            f"{REMOTE_TLS_DIR}/key.pem": (root / "hosts" / host.name / "key.pem").read_bytes(),
            DROPIN: dropin_text(host, port).encode(),
        }
        digest = hashlib.sha256(b"".join(wanted.values())).hexdigest()
        check = ssh_run(target, f"sudo cat {REMOTE_TLS_DIR}/.digest 2>/dev/null; "
                                f"sudo ss -ltn 'sport = :{port}' | grep -c LISTEN || true", check=False)
        lines = check.stdout.split()
        if lines[:1] == [digest] and lines[-1:] != ["0"]:
            return
        log(f"{host.name}: engine API over mutual TLS on {host.private_address}:{port} (lab stand-in)")
        script = [f"sudo install -d -m 0700 {REMOTE_TLS_DIR}", "sudo install -d /etc/systemd/system/docker.service.d"]
        for path, data in wanted.items():
            mode = "0600" if path.endswith("key.pem") else "0644"
            script.append(f"echo {shlex.quote(data.decode())} | sudo install -m {mode} /dev/stdin {path}")
        script += [f"echo {digest} | sudo tee {REMOTE_TLS_DIR}/.digest >/dev/null",
                   "sudo systemctl daemon-reload", "sudo systemctl restart docker",
                   f"for i in $(seq 50); do sudo ss -ltn 'sport = :{port}' | grep -q LISTEN && exit 0; sleep 0.2; done;"
                   " exit 1"]
        ssh_run(target, " && ".join(script[:-1]) + " && " + script[-1], timeout=120)

    with ThreadPoolExecutor(max_workers=len(fleet.hosts)) as pool:
        list(pool.map(one, fleet.hosts))
    return files


def remove_engine_tls(settings: LabSettings, fleet: FleetConfig) -> None:
    for host in fleet.hosts:
        ssh_run(_target(settings, host), f"sudo rm -rf {DROPIN} {REMOTE_TLS_DIR} && sudo systemctl daemon-reload "
                                         "&& sudo systemctl restart docker", timeout=120)


def preview_firewall(private_subnet: str, backend_addresses: Iterable[str]) -> str:
    """The host firewall previews need, as an nftables script (a table of its own; Docker's rules untouched).

    CONTRACT for the provisioning work (LAB stand-in here): Docker's bridge isolation does not cover published
    ports. Its ``nat DOCKER`` chain RETURNs for traffic from any Docker bridge, so a preview connecting to
    ``<host private address>:<another preview's published port>`` reaches the userland proxy through INPUT
    and the proxy connects it to the other preview; a preview can also reach other hosts' published ports (and
    their Docker API and the backend) over the private network through NAT. Preview bridges are all named
    ``drp*`` (``drape_fleet.runtime.labels.BRIDGE_PREFIX``), so three rules close it:

    * input: no new connection from a preview to the host itself;
    * forward: no preview to preview, no preview to the private network (replies excepted);
    * forward: new connections into a preview only from the backend's addresses.
    """
    backends = ", ".join(backend_addresses)
    return (
        "table inet drape_previews {}\n"
        "delete table inet drape_previews\n"
        "table inet drape_previews {\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        '    iifname "drp*" ct state new drop\n'
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    ct state established,related accept\n"
        '    iifname "drp*" oifname "drp*" drop\n'
        f'    iifname "drp*" ip daddr {private_subnet} drop\n'
        f'    oifname "drp*" ct state new ip saddr != {{ {backends} }} drop\n'
        "  }\n"
        "}\n"
    )


def ensure_preview_firewall(settings: LabSettings, fleet: FleetConfig) -> None:
    script = preview_firewall(str(settings.private_subnet),
                              [str(n.network_address) if n.num_addresses == 1 else str(n)
                               for n in fleet.network.backend_addresses])
    for host in fleet.hosts:
        ssh_run(_target(settings, host), "sudo nft -f -", input=script)


def ensure_pnpm_store(settings: LabSettings, fleet: FleetConfig) -> None:
    """The shared store the preview mounts read-only (production: the provisioning deploy fills it)."""
    for host in fleet.hosts:
        ssh_run(_target(settings, host), f"sudo install -d -m 0755 -o root -g root {PNPM_STORE} && "
                                         f"echo trusted | sudo tee {PNPM_STORE}/.drape-store >/dev/null")


def host_ssh(settings: LabSettings, host: Host, command: str, *, timeout: float = 60, check: bool = True,
             input: str | None = None) -> str:
    """Run a command on a lab host (tests use it as an independent observer of the runtime's work)."""
    return ssh_run(_target(settings, host), command, timeout=timeout, check=check, input=input).stdout


# ---------------------------------------------------------------------------------------------------
# Preview images, built on the outer engine from the lab's debootstrap rootfs (no registry here)
# ---------------------------------------------------------------------------------------------------

def images_dir() -> Path:
    return project_root() / "images" / "preview"


def build_local(tag: str, context: Path, base: str, log: Log) -> str:
    """Build ``context`` on this machine's engine with ``BASE`` substituted (the lab's own base images)."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_image, ensure_rootfs_image

    client = ensure_engine(log)
    if base == ROOTFS:
        ensure_rootfs_image(client, log)
    return ensure_image(client, log, context=context, tag=tag, base=base)


def ensure_tiny_image(log: Log) -> str:
    return build_local(TINY_IMAGE, images_dir() / "tiny", ROOTFS, log)


MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def ensure_node_base(log: Log) -> str:
    """The lab's Node base: built from a context with this machine's CA bundle next to the Dockerfile."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_rootfs_image
    from drape_fleet.runtime import templates

    client = ensure_engine(log)
    ensure_rootfs_image(client, log)
    files = {"Dockerfile": (images_dir() / "lab-node-base" / "Dockerfile").read_bytes(),
             "machine-ca.crt": MACHINE_CA.read_bytes() if MACHINE_CA.exists() else b""}
    base_id = client.images.get(ROOTFS).id or ROOTFS
    wanted = templates.recipe(files, base_id)
    try:
        if (client.images.get(NODE_BASE).labels or {}).get(templates.RECIPE_LABEL) == wanted:
            return NODE_BASE
    except NotFound:
        pass
    log(f"building {NODE_BASE} (Debian's nodejs on the lab rootfs; about 2 minutes)")
    chunks = client.api.build(fileobj=io.BytesIO(templates.context_tar(files)), custom_context=True, tag=NODE_BASE,
                              buildargs={"BASE": ROOTFS}, labels={templates.RECIPE_LABEL: wanted}, rm=True,
                              forcerm=True, decode=True, network_mode="host")
    lines, errors = templates.build_log_errors(chunks)
    if errors:
        raise RuntimeError(f"building {NODE_BASE} failed: {'; '.join(errors)}\n" + "\n".join(lines[-15:]))
    return NODE_BASE


def ensure_lab_template(framework: str, fleet: FleetConfig, log: Log) -> str:
    """Build a framework template on this machine's engine from the lab's Node base (tagged as the lab fleet
    names it), with the host network for npm."""
    from drape_fleet.lab.engine import engine_client
    from drape_fleet.runtime import templates

    base = ensure_node_base(log)
    tag = fleet.runtime.frameworks[framework].image
    log(f"building {tag} (template {framework}) on {base}")
    client = engine_client(timeout=1800)
    try:
        return templates.build_with(client.api, framework, tag, base=base, network_mode="host")
    finally:
        client.close()


def image_id(tag: str) -> str:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip()


def ship_image(engines: Iterable[Engine], tag: str, log: Log) -> list[str]:
    """Load ``tag`` from this machine's engine into every host engine that lacks it, through the runtime's own
    TLS seam (``POST /images/load``). Returns the hosts it was loaded on."""
    wanted = image_id(tag)
    if not wanted:
        raise RuntimeError(f"{tag} is not built on this machine")
    need: list[Engine] = []
    for engine in engines:
        try:
            have = engine.call(lambda api: cast(dict[str, Any], api.inspect_image(tag)),  # type: ignore[no-untyped-call]
                               "inspect image").get("Id")
        except NotFound:
            have = None
        if have != wanted:
            need.append(engine)
    if not need:
        return []
    log(f"shipping {tag} to {', '.join(e.name for e in need)}")
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout

    def load(engine: Engine) -> None:
        engine.call(lambda api: list(cast(Iterable[Any], api.load_image(saved))),  # type: ignore[no-untyped-call]
                    "load image", timeout=1800)

    with ThreadPoolExecutor(max_workers=len(need)) as pool:
        list(pool.map(load, need))
    return [e.name for e in need]


def tar_context(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
