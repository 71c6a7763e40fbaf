"""The lab as ops use it: every host answers SSH and Docker; up is idempotent and completes a half-made
lab; down removes everything, also from a half-made lab; bad input is refused before anything is made.

Throwaway labs run beside the main one under their own prefix and subnets, so the main lab (which
other tests use) is never disturbed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import docker
import pytest

from drape_fleet.config import FleetConfig
from drape_fleet.lab import LabError, LabSettings
from drape_fleet.lab.down import down, planned_removal
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.lab.up import up
from drape_fleet.paths import project_root
from drape_fleet.ssh import ssh_run

pytestmark = pytest.mark.lab

INVOKE = str(project_root() / ".venv" / "bin" / "invoke")


def main_settings() -> LabSettings:
    return lab_state_settings()


@pytest.fixture
def throwaway(tmp_path: Path, lab_fleet: FleetConfig) -> Iterator[LabSettings]:
    """A one-host lab of its own; removed afterwards whatever the test did to it."""
    settings = LabSettings(hosts=1, prefix="drape-labt", state_dir=tmp_path / "lab",
                           public_subnet=IPv4Network("172.29.110.0/24"),
                           private_subnet=IPv4Network("172.29.120.0/24"))
    yield settings
    down(settings, lambda _: None)


def owned(settings: LabSettings) -> dict[str, list[str]]:
    """What the engine holds under this lab's label: read straight from Docker, not from lab code."""
    client = docker.from_env()
    label = {"label": f"drape.lab={settings.prefix}"}
    return {
        "containers": sorted(c.name or "" for c in client.containers.list(all=True, filters=label)),
        "volumes": sorted(v.name for v in client.volumes.list(filters=label)),
        "networks": sorted(n.name or "" for n in client.networks.list(filters=label)),
    }


def test_every_lab_host_answers_ssh_as_deploy(lab_fleet: FleetConfig) -> None:
    settings = main_settings()
    for index, host in enumerate(lab_fleet.hosts, start=1):
        result = ssh_run(settings.ssh_target(index), "hostname && sudo -n true && echo sudo-ok", timeout=20,
                         check=False)
        assert result.ok, f"{host.name}: {result.stderr}"
        assert result.stdout.split() == [host.name, "sudo-ok"]


def test_a_fresh_lab_host_takes_keys_for_root_and_deploy_as_after_installimage(throwaway: LabSettings) -> None:
    up(throwaway, lambda _: None)
    for user in ("root", "deploy"):
        result = ssh_run(throwaway.ssh_target(1, user=user), "id -un", timeout=20, check=False)
        assert result.ok, f"{user}: {result.stderr}"
        assert result.stdout.strip() == user


def test_lab_hosts_refuse_password_logins(lab_fleet: FleetConfig) -> None:
    host = lab_fleet.hosts[0]
    result = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=5",
         "-o", f"UserKnownHostsFile={main_settings().known_hosts}", f"root@{host.public_address}", "true"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


# A three-file image made inside the host (dash and the two libraries it needs): no registry required.
PROBE = (
    "sudo -n docker image inspect drape-lab-probe >/dev/null 2>&1 || "
    "sudo -n tar -ch /bin/dash /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2 2>/dev/null "
    "| sudo -n docker import - drape-lab-probe >/dev/null"
)


def test_every_lab_host_runs_an_inner_docker_engine(provisioned_lab: object, lab_fleet: FleetConfig) -> None:
    settings = main_settings()
    for index, host in enumerate(lab_fleet.hosts, start=1):
        target = settings.ssh_target(index)
        info = ssh_run(target, "sudo -n docker info --format '{{.Driver}}'", timeout=60)
        assert info.stdout.strip() == "overlay2", f"{host.name}: inner engine uses {info.stdout.strip()}"
        ssh_run(target, PROBE, timeout=60)
        script = ("echo nested-ok; read limit < /sys/fs/cgroup/memory/memory.limit_in_bytes "
                  "|| read limit < /sys/fs/cgroup/memory.max; echo $limit")
        nested = ssh_run(target, "sudo -n docker run --rm --memory 64m --pids-limit 50 drape-lab-probe "
                                 f"/bin/dash -c '{script}'", timeout=60)
        assert nested.stdout.split() == ["nested-ok", str(64 * 1024 * 1024)], f"{host.name}: {nested.stdout}"


def test_lab_status_command_reports_every_host_healthy(provisioned_lab: object, lab_fleet: FleetConfig) -> None:
    result = subprocess.run([INVOKE, "lab.status", "--json"], capture_output=True, text=True, timeout=120,
                            check=False, cwd=project_root())
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    rows = {row["name"]: row for row in data["hosts"]}
    assert sorted(rows) == sorted(lab_fleet.host_names)
    git = data["git_server"]
    assert git["healthy"] and git["container"] == "running" and git["https"].startswith("ok (TLS verified")
    for host in lab_fleet.hosts:
        row = rows[host.name]
        assert row["healthy"] and row["container"] == "running"
        assert (row["public_address"], row["private_address"]) == (str(host.public_address), str(host.private_address))
        assert row["ssh"].startswith("ok (") and row["docker"].startswith("ok (")
        assert row["docker_api"].startswith("ok (") and f"{host.private_address}:2376" in row["docker_api"]


def test_up_twice_leaves_the_same_fleet(throwaway: LabSettings) -> None:
    messages: list[str] = []
    first = up(throwaway, messages.append)
    made = owned(throwaway)
    ids = {c.name: c.id for c in docker.from_env().containers.list(filters={"label": throwaway.label_filter})}
    fleet_text = throwaway.fleet_file.read_text()
    messages.clear()

    second = up(throwaway, messages.append)

    assert second == first
    assert owned(throwaway) == made
    assert {c.name: c.id for c in docker.from_env().containers.list(
        filters={"label": throwaway.label_filter})} == ids
    assert throwaway.fleet_file.read_text() == fleet_text
    assert not [m for m in messages if "creating" in m or "starting" in m], messages
    assert made == {
        "containers": ["drape-labt-ax1", "drape-labt-backup-target", "drape-labt-git"],  # backups: docs/backups.md
        "volumes": [],  # Docker's data and /srv/drape are on the host's XFS data disk
        "networks": ["drape-labt-private", "drape-labt-public"],
    }
    # One XFS filesystem with reflink for Docker's data and the store, as production's storage plan asks.
    mounts = ssh_run(throwaway.ssh_target(1), "stat -f -c %T /var/lib/docker /srv/drape; "
                     "findmnt -n -o SOURCE --target /srv/drape; findmnt -n -o SOURCE --target /var/lib/docker",
                     timeout=20).stdout.split()
    assert mounts[:2] == ["xfs", "xfs"] and mounts[2].split("[")[0] == mounts[3].split("[")[0], mounts
    image = Path("/var/lib/drape-lab/disks/drape-labt-ax1.img")
    assert image.exists() and "reflink=1" in subprocess.run(
        ["xfs_info", "/var/lib/drape-lab/disks/drape-labt-ax1"], capture_output=True, text=True).stdout


def test_up_completes_a_half_made_lab(throwaway: LabSettings) -> None:
    up(throwaway, lambda _: None)
    client = docker.from_env()
    container = client.containers.get("drape-labt-ax1")
    # Break it the ways an interrupted run leaves it: host stopped, private link missing, files lost.
    client.networks.get("drape-labt-private").disconnect(container)
    container.stop(timeout=5)
    throwaway.known_hosts.unlink()
    throwaway.fleet_file.unlink()

    up(throwaway, lambda _: None)

    container.reload()
    assert container.status == "running"
    assert set(container.attrs["NetworkSettings"]["Networks"]) == {"drape-labt-public", "drape-labt-private"}
    assert ssh_run(throwaway.ssh_target(1), "ip -4 -o addr", timeout=20).stdout.count("172.29.120.11/24") == 1


def test_down_removes_a_half_made_lab(throwaway: LabSettings) -> None:
    client = docker.from_env()
    # What a run killed after its first steps leaves behind: a network, one volume, a key directory.
    client.networks.create("drape-labt-public", labels={"drape.lab": "drape-labt"},
                           ipam=docker.types.IPAMConfig(pool_configs=[
                               docker.types.IPAMPool(subnet="172.29.110.0/24")]))
    client.volumes.create("drape-labt-ax1-docker", labels={"drape.lab": "drape-labt"})
    throwaway.ssh_dir.mkdir(parents=True)
    (throwaway.ssh_dir / "id_ed25519").write_text("half-made")

    report = down(throwaway, lambda _: None)

    assert report.networks == ["drape-labt-public"] and report.volumes == ["drape-labt-ax1-docker"]
    assert owned(throwaway) == {"containers": [], "volumes": [], "networks": []}
    assert not throwaway.state_dir.exists()
    assert planned_removal(throwaway).nothing


def test_down_removes_everything_a_full_lab_made(throwaway: LabSettings) -> None:
    up(throwaway, lambda _: None)
    assert Path("/var/lib/drape-lab/disks/drape-labt-ax1.img").exists()
    down(throwaway, lambda _: None)
    assert owned(throwaway) == {"containers": [], "volumes": [], "networks": []}
    assert not throwaway.state_dir.exists()
    assert not Path("/var/lib/drape-lab/disks/drape-labt-ax1.img").exists()  # the data disk went too
    assert "drape-labt-ax1" not in subprocess.run(["findmnt", "-l", "-n", "-o", "TARGET"], capture_output=True,
                                                  text=True).stdout


def test_down_removes_a_git_server_that_predates_the_labs_label(throwaway: LabSettings) -> None:
    """A git server made with only its own label kept lab.down from removing the public network ("network has
    active endpoints"): down finds it by that label too."""
    client = docker.from_env()
    network = client.networks.create("drape-labt-public", labels={"drape.lab": "drape-labt"},
                                     ipam=docker.types.IPAMConfig(pool_configs=[
                                         docker.types.IPAMPool(subnet="172.29.110.0/24")]))
    old = client.containers.create("drape-lab/rootfs:bookworm", ["sleep", "600"], name="drape-labt-git",
                                   labels={"drape.lab.git": "drape-labt"})
    network.connect(old)
    down(throwaway, lambda _: None)
    assert owned(throwaway)["networks"] == []
    assert not client.containers.list(all=True, filters={"name": "drape-labt-git"})


def test_an_address_range_already_taken_is_refused_before_anything_is_made(throwaway: LabSettings) -> None:
    client = docker.from_env()
    squatter = client.networks.create("drape-test-squatter", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="172.29.110.0/25")]))
    try:
        with pytest.raises(LabError) as caught:
            up(throwaway, lambda _: None)
    finally:
        squatter.remove()
    message = str(caught.value)
    assert "172.29.110.0/24 (--public-subnet) is already taken" in message
    assert "drape-test-squatter" in message and "--public-subnet 10.213.10.0/24" in message
    assert owned(throwaway) == {"containers": [], "volumes": [], "networks": []}


def test_a_shrink_request_is_refused_not_destroying_hosts(lab_fleet: FleetConfig) -> None:
    settings = main_settings().model_copy(update={"hosts": 1})
    with pytest.raises(LabError, match=r"already runs 3 hosts.*lab\.down"):
        up(settings, lambda _: None)


@pytest.mark.parametrize(("args", "expected"), [
    (["--hosts", "0"], "--hosts: Input should be greater than or equal to 1"),
    (["--hosts", "500"], "use a count from 1 to 9"),
    (["--public-subnet", "not-a-net"], "--public-subnet 'not-a-net' is not an IPv4 network"),
])
def test_cli_refuses_bad_input(args: list[str], expected: str, tmp_path: Path) -> None:
    env = {**os.environ, "DRAPE_LAB_PREFIX": "drape-labcli"}
    result = subprocess.run([INVOKE, "lab.up", *args], capture_output=True, text=True, timeout=60, check=False,
                            cwd=project_root(), env=env)
    assert result.returncode == 1
    assert expected in " ".join(result.stderr.split())
    assert owned(LabSettings(prefix="drape-labcli")) == {"containers": [], "volumes": [], "networks": []}


def test_cli_without_root_is_refused() -> None:
    env = {**os.environ, "DRAPE_LAB_PREFIX": "drape-labcli", "HOME": "/tmp"}
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", INVOKE, "lab.up"],
                            capture_output=True, text=True, timeout=60, check=False, cwd=project_root(), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "lab.up needs root" in " ".join(result.stderr.split())
