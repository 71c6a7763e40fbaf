from __future__ import annotations

import random
from datetime import UTC, datetime
from ipaddress import IPv4Network

import pytest

from drape_fleet.config import FleetConfig
from drape_fleet.config.runtime import PreviewResources
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.errors import BadRequest, RequestTooLarge, UnknownFramework
from drape_fleet.runtime.spec import container_spec, make_request, network_spec, pick_subnet

NOW = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def request(fleet: FleetConfig, **kwargs: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"workspace": "ws-1", "user": "u-1", "framework": "nextjs", **kwargs}
    return make_request(fleet.runtime, fleet.hosts, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("workspace", ["", "../etc", "ws 1", "-flag", "a" * 64, "ws/1", "ws=1", "wś", "ws\n"])
def test_unsafe_workspace_ids_are_refused(fleet: FleetConfig, workspace: str) -> None:
    with pytest.raises(BadRequest, match="workspace"):
        request(fleet, workspace=workspace)


@pytest.mark.parametrize("user", ["", "a,b", "x" * 129, "u;rm"])
def test_unsafe_user_ids_are_refused(fleet: FleetConfig, user: str) -> None:
    with pytest.raises(BadRequest, match="user"):
        request(fleet, user=user)


def test_unknown_framework_lists_known_ones(fleet: FleetConfig) -> None:
    with pytest.raises(UnknownFramework, match="nextjs, react, vue"):
        request(fleet, framework="angular")


def test_resources_above_the_largest_preview_or_any_host(fleet: FleetConfig) -> None:
    with pytest.raises(RequestTooLarge, match="memory_mib"):
        request(fleet, resources=PreviewResources(memory_mib=8 * 1024))
    bigger = fleet.runtime.model_copy(update={"max_preview": PreviewResources(memory_mib=512 * 1024, cpus=64)})
    with pytest.raises(RequestTooLarge, match="more than any host offers"):
        make_request(bigger, fleet.hosts, workspace="w", user="u", framework="vue",
                     resources=PreviewResources(memory_mib=200 * 1024))
    with pytest.raises(RequestTooLarge, match="cores"):
        make_request(bigger, fleet.hosts, workspace="w", user="u", framework="vue",
                     resources=PreviewResources(cpus=32))


@pytest.mark.parametrize(("env", "match"), [({"PATH": "/x"}, "not allowed"), ({"DRAPE_X": "1"}, "not allowed"),
                                            ({"lower": "1"}, "not allowed"), ({"OK": "a\0b"}, "NUL")])
def test_env_is_checked(fleet: FleetConfig, env: dict[str, str], match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        request(fleet, env=env)


@pytest.mark.parametrize("repo", ["file:///etc", "https://x/y; rm -rf /", "--upload-pack=x", "ext::sh"])
def test_repo_addresses_are_checked(fleet: FleetConfig, repo: str) -> None:
    with pytest.raises(BadRequest, match="repo"):
        request(fleet, repo=repo)


def test_container_spec_is_confined_and_sized(fleet: FleetConfig) -> None:
    req = request(fleet, project="p-9", repo="https://git.example/u/app.git", env={"API_URL": "https://x"})
    spec = container_spec(req, fleet.runtime, claim="0123456789ab", created=NOW, network="drape-net-ws-1-0123456789ab",
                          publish_address="10.0.0.11", disk_limit=False)
    body = spec.body
    host = body["HostConfig"]
    assert spec.name == "drape-pv-ws-1"
    assert body["Image"] == "drape-nextjs:1"
    assert body["User"] == "1000:1000"
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert "CapAdd" not in host
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Binds"] == ["/srv/drape/pnpm-store:/pnpm-store:ro"]
    assert host["Memory"] == host["MemorySwap"] == 7 * 1024**3
    assert host["CpuShares"] == 4096
    assert "NanoCpus" not in host and "CpuQuota" not in host  # bursts to the idle host
    assert host["PidsLimit"] == 4096
    assert "StorageOpt" not in host
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=512m"}
    assert host["PortBindings"] == {"3000/tcp": [{"HostIp": "10.0.0.11", "HostPort": ""}]}
    assert host["NetworkMode"] == "drape-net-ws-1-0123456789ab"
    assert host["RestartPolicy"] == {"Name": "no"}
    assert "LogConfig" not in host  # the daemon's rotation policy applies
    assert not any("docker.sock" in str(v) for v in host.values())
    assert body["Labels"] == {
        L.OWNER: "drape-fleet", L.KIND: "preview", L.WORKSPACE: "ws-1", L.USER: "u-1", L.PROJECT: "p-9",
        L.FRAMEWORK: "nextjs", L.CREATED: "2025-03-01T12:00:00.123Z", L.MEMORY: str(7 * 1024**3), L.CPUS: "4",
        L.PORT: "3000", L.CLAIM: "0123456789ab",
    }
    env = dict(item.split("=", 1) for item in body["Env"])
    assert env["DRAPE_REPO"] == "https://git.example/u/app.git"
    assert env["API_URL"] == "https://x"
    assert env["PORT"] == "3000"


def test_cpu_limit_and_disk_limit_when_asked(fleet: FleetConfig) -> None:
    req = request(fleet, resources=PreviewResources(cpus=2, cpu_limit=6, memory_mib=2048, disk_gib=5))
    host = container_spec(req, fleet.runtime, claim="0123456789ab", created=NOW, network="n",
                          publish_address="10.0.0.11", disk_limit=True).body["HostConfig"]
    assert host["NanoCpus"] == 6_000_000_000
    assert host["CpuShares"] == 2048
    assert host["StorageOpt"] == {"size": "5G"}


def test_network_spec_isolates_and_binds_privately(fleet: FleetConfig) -> None:
    req = request(fleet)
    spec = network_spec(req, fleet.runtime, claim="0123456789ab", subnet=IPv4Network("10.240.3.16/28"),
                        publish_address="10.0.0.11")
    kwargs = spec.create_kwargs()
    assert kwargs["name"] == "drape-net-ws-1-0123456789ab"
    assert kwargs["options"] == {
        "com.docker.network.bridge.name": "drp0123456789ab",
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "10.0.0.11",
    }
    (pool,) = kwargs["ipam"]["Config"]
    assert (pool["Subnet"], pool["Gateway"]) == ("10.240.3.16/28", "10.240.3.17")
    assert len(spec.bridge) <= 15
    with pytest.raises(ValueError, match="claim"):
        network_spec(req, fleet.runtime, claim="../x", subnet=IPv4Network("10.240.3.16/28"), publish_address="x")


def test_subnets_are_28s_inside_the_pool() -> None:
    rng = random.Random(7)
    pool = IPv4Network("10.240.0.0/16")
    seen = {pick_subnet(IPv4Network("10.240.0.0/16"), rng) for _ in range(200)}
    assert all(s.prefixlen == 28 and s.subnet_of(pool) for s in seen)
    assert len(seen) > 190


def test_a_framework_may_bring_its_own_default_size(fleet_data) -> None:  # type: ignore[no-untyped-def]
    from drape_fleet.config.loader import validate_fleet

    own = {"cpus": 2, "memory_mib": 3072, "pids_limit": 2048, "disk_gib": 10, "tmp_mib": 256}
    fleet = validate_fleet(fleet_data(frameworks={
        "nextjs": {"image": "drape-nextjs:1", "resources": own},
        "vue": {"image": "drape-vue:1"},
    }), source="(test)")
    assert request(fleet).resources.memory_mib == 3072
    assert request(fleet, framework="vue").resources == fleet.runtime.preview
    asked = PreviewResources(cpus=1, memory_mib=512)
    assert request(fleet, resources=asked).resources == asked  # an explicit size still wins


def test_a_framework_size_above_the_largest_preview_is_refused(fleet_data) -> None:  # type: ignore[no-untyped-def]
    from drape_fleet.config import ConfigError
    from drape_fleet.config.loader import validate_fleet

    huge = {"cpus": 4, "memory_mib": 64 * 1024}
    with pytest.raises(ConfigError, match=r"runtime\.frameworks\.nextjs\.resources\.memory_mib.*raise max_preview"):
        validate_fleet(fleet_data(max_preview={"memory_mib": 16 * 1024},
                                  frameworks={"nextjs": {"image": "drape-nextjs:1", "resources": huge}}),
                       source="(test)")
