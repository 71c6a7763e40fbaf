"""Docker engine: Docker CE from Docker's apt repository (signed-by keyring) in production, the distribution's
docker.io where that repository is unreachable (the lab), chosen by data (provisioning.docker.source).
daemon.json hardened per the CIS Docker Benchmark (see drape_fleet.provision.daemon); the API listens with
mutual TLS on the private address only. Docker restarts only when its configuration changed.

Needs the PKI (`invoke pki.init`, `invoke pki.issue --host NAME`; `invoke provision` makes lab ones itself).

Alone: `pyinfra inventories/lab.py deploys/docker.py`.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from drape_fleet.facts.system import FileText
from drape_fleet.pki.paths import host_tls_files, pki_dir, trust_bundle
from drape_fleet.provision import daemon as builders
from drape_fleet.provision.context import deploy_context
from drape_fleet.provision.ops import put_text

KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCE = "/etc/apt/sources.list.d/docker.sources"
DOCKER_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
CANDIDATE = "/etc/docker/daemon.json.drape-candidate"


@deploy("docker")
def docker_engine() -> None:
    ctx = deploy_context(host)
    directory = pki_dir(ctx.environment)
    trusted = trust_bundle(directory)  # every CA trusted now: two while `invoke pki.rotate --new-ca` runs
    cert, key = host_tls_files(directory, ctx.me.name)
    if not trusted.exists():
        raise DeployError(f"missing TLS CA: {trusted} does not exist. Fix: run `invoke pki.init` "
                          "(or set DRAPE_PKI_DIR to the PKI directory), then provision again")
    if not cert.exists() or not key.exists():
        raise DeployError(f"no server certificate for {ctx.me.name} in {directory}. "
                          f"Fix: run `invoke pki.issue --host {ctx.me.name}`")

    engine = builders.engine_packages(ctx.fleet, ctx.profile)
    if ctx.fleet.provisioning.docker.source == "docker-ce":
        files.directory(name="apt keyrings directory", path="/etc/apt/keyrings", mode="755")
        keyring = files.download(name="Docker's signing key",
                                 src=f"{ctx.profile.docker.ce_repository}/gpg", dest=KEYRING, mode="644")
        server.shell(name="Docker's key has the published fingerprint", _if=keyring.did_change, commands=[
            f"gpg --show-keys --with-colons {KEYRING} | grep -q '^fpr:::::::::{DOCKER_KEY_FINGERPRINT}:' "
            f"|| {{ rm -f {KEYRING}; echo 'Docker key fingerprint mismatch' >&2; exit 1; }}",
        ])
        source = put_text("Docker's apt repository (signed-by)", builders.apt_source(ctx.profile, KEYRING), SOURCE)
        apt.update(name="apt reads Docker's repository", _if=any_changed(keyring, source))
    apt.packages(name=f"Docker engine ({ctx.fleet.provisioning.docker.source})", packages=list(engine.packages),
                 update=True, cache_time=3600, no_recommends=True)

    files.directory(name="TLS directory", path=builders.TLS_DIR, user="root", group="root", mode="700")
    tls = [
        files.put(name="TLS CAs trusted for clients (the bundle)", src=str(trusted), dest=builders.TLS_CA, mode="644"),
        files.put(name="TLS server certificate", src=str(cert), dest=builders.TLS_CERT, mode="644"),
        files.put(name="TLS server key", src=str(key), dest=builders.TLS_KEY, mode="600"),
    ]

    # overlay2's size limit needs XFS with project quotas under /var/lib/docker: dockerd refuses to start
    # with it otherwise, so this is checked on the host before daemon.json asks for it.
    if ctx.fleet.provisioning.docker.disk_quotas:
        backing = host.get_fact(Command, command=builders.BACKING_FILESYSTEM_QUERY) or ""
        problem = builders.disk_quota_problem(backing)
        if problem:
            raise DeployError(f"{host.name}: {problem}")

    wanted = builders.daemon_json(ctx.fleet, ctx.me.name)
    put_text("daemon.json candidate", wanted, CANDIDATE, mode="600")
    config_ops = []
    if host.get_fact(FileText, path=builders.DAEMON_JSON) != wanted.rstrip("\n"):
        check = f"{engine.dockerd} --validate --config-file {CANDIDATE} && " if engine.validates_config else ""
        config_ops.append(server.shell(
            name="daemon.json " + ("validated by dockerd, then " if check else "") + "installed",
            commands=[f"{check}install -m 644 {CANDIDATE} {builders.DAEMON_JSON}"],
        ))
    drop_in = put_text("dockerd takes its listen addresses from daemon.json", builders.systemd_drop_in(engine),
                       builders.DROP_IN)
    socket = put_text("docker.socket starts Docker only with the firewall", builders.socket_drop_in(),
                      builders.SOCKET_DROP_IN)
    systemd.daemon_reload(name="systemd reads the docker drop-ins", _if=any_changed(drop_in, socket))
    # A shell restart, not systemd.service(restarted=): that one restarts only what ran when the run was
    # planned, and on a first run the package's postinst starts Docker (with the default config) mid-run.
    server.shell(name="Docker restarted for its new configuration", commands=["systemctl restart docker.service"],
                 _if=any_changed(drop_in, *tls, *config_ops))
    systemd.service(name="Docker running and enabled", service="docker.service", running=True, enabled=True)


docker_engine()
