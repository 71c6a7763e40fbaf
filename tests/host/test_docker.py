"""Docker: hardened daemon settings as the engine reports them (`docker info`, network inspect) and as
containers experience them (probe containers), and the API behind mutual TLS on the private address."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from ipaddress import ip_interface, ip_network
from typing import Any

from drape_fleet.config import FleetConfig, Host


def test_engine_running(host: Any, fleet: FleetConfig) -> None:
    assert host.service("docker").is_enabled and host.service("docker").is_running
    package = "docker-ce" if fleet.provisioning.docker.source == "docker-ce" else "docker.io"
    assert host.package(package).is_installed


def test_daemon_settings_docker_info_reports(docker_info: dict[str, Any], fleet: FleetConfig) -> None:
    assert docker_info["LiveRestoreEnabled"] is True
    assert docker_info["LoggingDriver"] == "local"
    assert docker_info["Driver"] == "overlay2"
    userns = any("name=userns" in option for option in docker_info["SecurityOptions"])
    assert userns == fleet.provisioning.docker.userns_remap


def test_default_bridge_has_icc_off(host: Any, fleet: FleetConfig) -> None:
    bridge = json.loads(host.check_output("docker network inspect bridge"))[0]
    assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    subnet = ip_network(bridge["IPAM"]["Config"][0]["Subnet"])
    assert subnet == ip_interface(str(fleet.provisioning.docker.bridge_address)).network


def test_new_networks_come_from_the_pool(host: Any, fleet: FleetConfig) -> None:
    name = "drape-verify-pool"
    host.run(f"docker network rm {name}")
    host.check_output(f"docker network create --label drape.verify=probe {name}")
    try:
        network = json.loads(host.check_output(f"docker network inspect {name}"))[0]
        subnet = ip_network(network["IPAM"]["Config"][0]["Subnet"])
    finally:
        host.run(f"docker network rm {name}")
    assert subnet.subnet_of(fleet.provisioning.docker.address_pool)  # type: ignore[arg-type]
    assert subnet.prefixlen == fleet.provisioning.docker.address_pool_size


def test_containers_get_no_new_privileges_and_default_ulimits(host: Any, probe_image: str, fleet: FleetConfig) -> None:
    out = host.check_output(f"docker run --rm {probe_image} sh -c "
                            "'grep NoNewPrivs /proc/self/status; ulimit -Sn; ulimit -Hn; ulimit -u'").split("\n")
    docker = fleet.provisioning.docker
    assert out[0].split() == ["NoNewPrivs:", "1"]
    assert [int(v) for v in out[1:4]] == [docker.nofile_soft, docker.nofile_hard, docker.nproc]


def test_published_ports_bind_the_private_address_without_userland_proxy(host: Any, container: Any,
                                                                          me: Host) -> None:
    cid = container("-p 18090:8080", "nc -ll -p 8080 -e echo hello")
    assert host.check_output(f"docker port {cid} 8080").split(":")[0] == str(me.private_address)
    assert host.run("pgrep -x docker-proxy").rc == 1, "userland-proxy is on: docker-proxy runs"


def test_logs_rotate(host: Any, container: Any, fleet: FleetConfig) -> None:
    cid = container("", "sh -c 'echo hi; sleep 60'")
    config = json.loads(host.check_output(f"docker inspect {cid}"))[0]["HostConfig"]["LogConfig"]
    assert config["Type"] == "local"
    assert config["Config"] == {"max-size": fleet.provisioning.docker.log_max_size,
                                "max-file": str(fleet.provisioning.docker.log_max_files)}


def test_api_listens_on_the_private_address_only_with_mutual_tls(host: Any, me: Host, fleet: FleetConfig) -> None:
    port = fleet.network.docker_api_port
    listening = host.check_output(f"ss -Hltn 'sport = :{port}'").split("\n")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening if line.strip()}
    assert addresses == {str(me.private_address)}
    assert host.file("/etc/docker/tls/key.pem").mode == 0o600
    # The server certificate is valid for the private address (curl verifies it against our CA), and the
    # server demands a client certificate: without one the handshake ends in "certificate required".
    result = host.run(f"curl -sS --max-time 5 --cacert /etc/docker/tls/ca.pem https://{me.private_address}:{port}/version")
    assert result.rc != 0
    assert "certificate" in result.stderr.lower() and "verify" not in result.stderr.lower(), result.stderr


def _days_left(host: Any, path: str) -> list[float]:
    """Days left for every certificate in a PEM file on the host (openssl there reads it)."""
    script = (f"awk '/BEGIN CERT/{{n++}} {{print > (\"/tmp/drape-verify-cert.\" n)}}' {path} && "
              "for f in /tmp/drape-verify-cert.*; do openssl x509 -enddate -noout -in $f; rm -f $f; done")
    now = datetime.now(UTC)
    ends = [line.split("=", 1)[1] for line in host.check_output(f"sh -c {shlex.quote(script)}").splitlines()]
    return [(datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC) - now).total_seconds() / 86400
            for end in ends]


def test_api_certificates_are_not_about_to_expire(host: Any, fleet: FleetConfig) -> None:
    """The server certificate and every CA the engine trusts for clients: fails under the fleet's threshold,
    in time for `invoke pki.rotate`."""
    threshold = fleet.provisioning.docker.tls_min_days_left
    for path in ("/etc/docker/tls/cert.pem", "/etc/docker/tls/ca.pem"):
        days = _days_left(host, path)
        assert days, f"no certificate in {path}"
        assert min(days) >= threshold, (f"{path}: a certificate expires in {min(days):.0f} days (threshold "
                                        f"{threshold}): run `invoke pki.rotate`")
