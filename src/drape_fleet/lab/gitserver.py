"""The lab's git server: users' repositories as GitHub or GitLab serve them, over smart HTTP and TLS.

Debian's ``git http-backend`` behind Debian's Apache (``images/git-server``), a container on the lab's
public network at ``.5``, with a certificate from the lab's own CA (``drape_fleet.pki``). Each preview gets
a token of its own, scoped to one repository and with an expiry: the lab (or a test) creates and revokes
tokens in a SQLite table that Apache reads through ``mod_authn_dbd``; the table holds only ``{SHA}`` hashes
of the secrets. Unknown repositories answer 404, a wrong, revoked or expired token 401, as hosted git does.

Everything lives in ``<lab state dir>/git-server`` (git-ignored)::

    repos/<name>.git          bare repositories (``publish``)
    etc/tls/cert.pem, key.pem the server's certificate and key (key 0600)
    etc/tokens/tokens.db      the token table
    etc/repos.conf            one <Location> per repository, written from repos/ (``repos_conf``)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import sqlite3
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from docker.errors import NotFound
from docker.models.containers import Container

from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LABEL, LabSettings
from drape_fleet.paths import project_root

Log = Callable[[str], None]

GIT_LABEL = "drape.lab.git"
"""The git server's own label (value: the lab prefix), beside ``drape.lab`` (which ``lab.down`` removes by)."""
SPEC_LABEL = "drape.lab.git.spec"
IMAGE = "drape-lab/git-server:bookworm"
ADDRESS_OFFSET = 5
"""The server's address on the public lab network: .5 (.1 is this machine, hosts start at .11)."""
TOKEN_USER_PREFIX = "preview-"  # noqa: S105 - the public half of a token (its user name)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS tokens (username TEXT PRIMARY KEY, repo TEXT NOT NULL, "
           "hash TEXT NOT NULL, expires INTEGER NOT NULL)")


def address(settings: LabSettings) -> IPv4Address:
    return settings.public_subnet.network_address + ADDRESS_OFFSET


def container_name(settings: LabSettings) -> str:
    return f"{settings.prefix}-git"


def root_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "git-server"


def repo_url(settings: LabSettings, name: str) -> str:
    """What a preview clones: ``https://<server>/git/<name>.git``."""
    return f"https://{address(settings)}/git/{name}.git"


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise LabError(f"{name!r} is not a repository name for the lab git server: use a-z, 0-9 and '-' (1-63)")
    return name


# ---------------------------------------------------------------------------------------------------
# Pure builders
# ---------------------------------------------------------------------------------------------------

def repos_conf(names: Iterable[str], public: Iterable[str] = ()) -> str:
    """Apache configuration for the served repositories: each behind a token of its own, or open to anyone
    when ``public`` (as a public GitHub repository); any other path under /git/ is a 404 (what hosted git
    answers for a repository one cannot see)."""
    names = sorted(check_name(n) for n in names)
    open_to_all = set(public)
    lines = ["# Written by drape_fleet.lab.gitserver: one <Location> per repository.", "RewriteEngine on"]
    known = "|".join(names) if names else "(?!)"
    lines += [f'RewriteCond "%{{REQUEST_URI}}" "!^/git/({known})\\.git/"', 'RewriteRule "^/git/" "-" [R=404,L]']
    for name in names:
        if name in open_to_all:
            lines += [f"<Location /git/{name}.git/>", "    Require all granted", "</Location>"]
            continue
        lines += [
            f"<Location /git/{name}.git/>",
            "    AuthType Basic",
            f'    AuthName "drape lab git: {name}"',
            "    AuthBasicProvider dbd",
            # ``name`` passed check_name (a-z, 0-9, '-'): nothing in it can leave the SQL string literal.
            f"    AuthDBDUserPWQuery \"SELECT hash FROM tokens WHERE username = %s AND repo = '{name}' "  # noqa: S608
            "AND expires > unixepoch()\"",
            "    Require valid-user",
            "</Location>",
        ]
    return "\n".join(lines) + "\n"


def password_hash(secret: str) -> str:
    """Apache's ``{SHA}`` format. A fast hash is enough: secrets are 256 random bits, never guessable."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(secret.encode()).digest()).decode()  # noqa: S324


@dataclass(frozen=True)
class GitToken:
    username: str
    secret: str
    repo: str
    expires: int

    def repo_token(self) -> str:
        """What the backend passes as ``repo_token`` and the runtime hands to the preview as a file: ``user:secret``
        (a bare token would go as GitHub's ``x-access-token``; this server checks the user too)."""
        return f"{self.username}:{self.secret}"

    def __repr__(self) -> str:  # never print the secret
        return f"GitToken(username={self.username!r}, repo={self.repo!r}, expires={self.expires})"


# ---------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------

class Tokens:
    """Per-preview tokens in the table Apache reads (a row per token; deleting it revokes)."""

    def __init__(self, settings: LabSettings) -> None:
        self.path = root_dir(settings) / "etc" / "tokens" / "tokens.db"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute(_SCHEMA)
        self.path.chmod(0o644)  # www-data reads it; it holds hashes only
        return db

    def create(self, repo: str, ttl_s: float = 3600) -> GitToken:
        token = GitToken(username=TOKEN_USER_PREFIX + secrets.token_hex(8), secret=secrets.token_urlsafe(32),
                         repo=check_name(repo), expires=int(time.time() + ttl_s))
        with self._connect() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)",
                       (token.username, token.repo, password_hash(token.secret), token.expires))
        return token

    def revoke(self, token: GitToken) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM tokens WHERE username = ?", (token.username,))

    def purge_expired(self) -> int:
        with self._connect() as db:
            return db.execute("DELETE FROM tokens WHERE expires <= unixepoch()").rowcount


# ---------------------------------------------------------------------------------------------------
# Repositories
# ---------------------------------------------------------------------------------------------------

PUBLIC_MARKER = "drape-public"


def publish(settings: LabSettings, name: str, source: Path, *, public: bool = False) -> str:
    """Serve the git repository at ``source`` (a work tree or a bare repository, every branch and tag) as
    ``name``, behind per-preview tokens or, when ``public``, to anyone; returns its URL. Replaces what was
    served under that name (``ensure`` then reloads the server); nothing when it already serves the same refs."""
    target = root_dir(settings) / "repos" / f"{check_name(name)}.git"
    if target.is_dir() and _refs(target) == _refs(source) and (target / PUBLIC_MARKER).exists() == public:
        return repo_url(settings, name)
    staging = target.with_suffix(".staging")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", "--mirror", "--no-local", str(source), str(staging)],
                   check=True, capture_output=True, timeout=300)
    subprocess.run(["git", "-C", str(staging), "remote", "remove", "origin"], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(staging), "gc", "--quiet", "--aggressive", "--prune=now"], check=True,
                   capture_output=True, timeout=600)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    if public:
        (target / PUBLIC_MARKER).write_text("served without a token\n")
    _chmod_readable(target)
    return repo_url(settings, name)


def _refs(repository: Path) -> str:
    """Every branch and tag with its commit: what a clone of the repository can see."""
    return subprocess.run(["git", "-C", str(repository), "for-each-ref", "--format=%(objectname) %(refname)",
                           "refs/heads", "refs/tags"], capture_output=True, text=True, check=True, timeout=60).stdout


def served(settings: LabSettings) -> tuple[list[str], list[str]]:
    """(every repository, the public ones) as they are on disk."""
    repos = root_dir(settings) / "repos"
    found = sorted(repos.glob("*.git")) if repos.is_dir() else []
    return ([p.name.removesuffix(".git") for p in found],
            [p.name.removesuffix(".git") for p in found if (p / PUBLIC_MARKER).exists()])


def _chmod_readable(path: Path) -> None:
    for item in [path, *path.rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------

def _pki(settings: LabSettings) -> Path:
    """The lab's own PKI (its state directory's; the same as ``pki_dir("lab")`` for the lab ``$DRAPE_LAB_PREFIX``
    names, and the right one for a throwaway lab beside it)."""
    return settings.state_dir / "pki"


def _issue_certificate(settings: LabSettings) -> None:
    from drape_fleet.pki.authority import init_ca, issue_host

    pki = _pki(settings)
    init_ca(pki, allow_in_repo=True)  # the lab's CA lives in the git-ignored lab state dir
    issued = issue_host(pki, "git-server", [str(address(settings))])
    tls = root_dir(settings) / "etc" / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(issued.cert, tls / "cert.pem")
    shutil.copyfile(issued.key, tls / "key.pem")
    (tls / "key.pem").chmod(0o600)


def ca_file(settings: LabSettings) -> Path:
    """The CA a client must trust to reach the server (the lab's own)."""
    from drape_fleet.pki.paths import ca_files

    return ca_files(_pki(settings))[0]


def container_spec(settings: LabSettings, image_id: str) -> dict[str, Any]:
    """The Engine API body for the server's container (pure)."""
    root = root_dir(settings).resolve()
    body: dict[str, Any] = {
        "Image": image_id,
        "Hostname": "git",
        "HostConfig": {
            "Binds": [f"{root / 'repos'}:/srv/git:ro", f"{root / 'etc'}:/etc/drape-git:ro"],
            "NetworkMode": settings.public_network,
            "RestartPolicy": {"Name": "unless-stopped"},
            "Memory": 512 * 1024 * 1024,
        },
        "NetworkingConfig": {"EndpointsConfig": {settings.public_network: {
            "IPAMConfig": {"IPv4Address": str(address(settings))}}}},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["Labels"] = {LABEL: settings.prefix, GIT_LABEL: settings.prefix, SPEC_LABEL: digest}
    return body


def ensure(settings: LabSettings, log: Log) -> str:
    """Build the image, issue the certificate, write the configuration, and run the server (recreated when
    its recipe changed, reloaded otherwise); returns its base URL once it answers over TLS."""
    from drape_fleet.lab.engine import ensure_engine
    from drape_fleet.lab.images import ensure_image, ensure_rootfs_image

    client = ensure_engine(log)
    image = ensure_image(client, log, context=project_root() / "images" / "git-server", tag=IMAGE,
                         base=ensure_rootfs_image(client, log))
    root = root_dir(settings)
    (root / "repos").mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    _issue_certificate(settings)
    Tokens(settings).purge_expired()
    (root / "etc" / "repos.conf").write_text(repos_conf(*served(settings)))
    spec = container_spec(settings, client.images.get(image).id or image)
    name = container_name(settings)
    container: Container | None
    try:
        container = client.containers.get(name)
        if container.labels.get(SPEC_LABEL) != spec["Labels"][SPEC_LABEL]:
            log(f"{name}: made from an older recipe: replacing it")
            container.remove(force=True)
            container = None
    except NotFound:
        container = None
    if container is None:
        log(f"starting the lab git server {name} at {address(settings)}")
        created = client.api.create_container_from_config(spec, name)  # type: ignore[no-untyped-call]
        container = client.containers.get(created["Id"])
        container.start()
    else:
        container.reload()
        if container.status != "running":
            container.start()
        else:
            code, out = container.exec_run(["apache2ctl", "graceful"])
            if code != 0:
                text = out.decode(errors="replace") if isinstance(out, bytes) else ""
                raise LabError(f"{name}: reloading Apache failed: {text[-500:]}")
    base = f"https://{address(settings)}"
    _wait_answers(base, ca_file(settings), name)
    return base


def _answers(base: str, ca: Path) -> str:
    """"" when the server answers over TLS (verified with the lab's CA) and refuses unknown paths; else why not."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        urllib.request.urlopen(f"{base}/git/", timeout=2, context=context)  # noqa: S310 - the lab's address
    except urllib.error.HTTPError as exc:
        return "" if exc.code == 404 else f"HTTP {exc.code}"
    except OSError as exc:
        return str(getattr(exc, "reason", exc))
    return "HTTP 200 for an unknown repository"


def _wait_answers(base: str, ca: Path, name: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        last = _answers(base, ca)
        if not last:
            return
        time.sleep(0.3)
    raise LabError(f"the lab git server {name} did not answer at {base} within {timeout_s:.0f} s ({last}); "
                   f"see `docker logs {name}`")


@dataclass(frozen=True)
class ServerStatus:
    name: str
    url: str
    container: str
    https: str
    repositories: int

    @property
    def healthy(self) -> bool:
        return self.container == "running" and self.https.startswith("ok")


def server_status(settings: LabSettings) -> ServerStatus:
    """The git server as `lab.status` shows it: its container, whether HTTPS answers with a certificate the lab's
    CA vouches for, how many repositories it serves."""
    from drape_fleet.lab.engine import engine_client

    name, base = container_name(settings), f"https://{address(settings)}"
    try:
        state = engine_client(timeout=10).containers.get(name).status
    except NotFound:
        state = "missing"
    https = "-"
    if state == "running":
        why = _answers(base, ca_file(settings)) if ca_file(settings).exists() else "no lab CA"
        https = "ok (TLS verified by the lab CA)" if not why else f"no: {why[:60]}"
    return ServerStatus(name, f"{base}/git/", state, https, len(served(settings)[0]))


def remove(settings: LabSettings) -> bool:
    """Remove the server's container (the repositories and tokens stay in the state dir)."""
    from drape_fleet.lab.engine import engine_client

    client = engine_client()
    try:
        client.containers.get(container_name(settings)).remove(force=True)
    except NotFound:
        return False
    return True
