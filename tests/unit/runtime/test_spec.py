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


@pytest.mark.parametrize(("env", "match"), [
    ({"PATH": "/x"}, "runtime's own"), ({"DRAPE_X": "1"}, "runtime's own"), ({"PORT": "80"}, "runtime's own"),
    ({"HOST": "0"}, "runtime's own"), ({"HOME": "/"}, "runtime's own"), ({"LD_PRELOAD": "/x.so"}, "runtime's own"),
    ({"GIT_TRACE": "1"}, "runtime's own"), ({"NPM_CONFIG_STORE_DIR": "/x"}, "runtime's own"),
    ({"DRAPE_REPO_TOKEN_FILE": "/etc/shadow"}, "runtime's own"),
    ({"lower": "1"}, "not allowed"), ({"OK": "a\0b"}, "NUL"), ({"BIG": "x" * 5000}, "at most 4096"),
    ({f"V{i}": "x" * 4000 for i in range(10)}, "bytes in all"), ({f"V{i}": "1" for i in range(101)}, "100 variables"),
])
def test_env_is_checked(fleet: FleetConfig, env: dict[str, str], match: str) -> None:
    """Issue 8, bad input: env that overrides the runtime's own variables, oversized env (per value and in all)."""
    with pytest.raises(BadRequest, match=match):
        request(fleet, env=env)


@pytest.mark.parametrize(("repo", "match"), [
    ("file:///etc", "local path or file://"), ("/srv/repos/app.git", "local path"), ("./app", "local path"),
    ("../../etc", "local path"), ("~/app", "local path"), ("FILE:///etc/passwd", "file://"),
    ("https://x/y; rm -rf /", "not an https"), ("--upload-pack=x", "not an https"), ("ext::sh", "not an https"),
    ("http://github.com/a/b.git", "not an https"),
    ("https://user:ghp_secret@github.com/a/b.git", "credentials"), ("https://ghp_secret@github.com/a/b", "credentials"),
    ("https://127.0.0.1/a/b.git", "private, loopback"), ("https://10.0.0.11/a/b.git", "private, loopback"),
    ("https://169.254.169.254/latest/meta-data", "private, loopback"), ("https://[::1]/a/b", "private, loopback"),
    ("https://192.168.1.5:8443/a/b", "private, loopback"), ("git@172.16.0.9:a/b.git", "private, loopback"),
    ("https://localhost/a/b", "not a public host"), ("https://metadata.google.internal/a", "not a public host"),
])
def test_repo_addresses_are_checked(fleet: FleetConfig, repo: str, match: str) -> None:
    """Issue 8, bad input: credentials inside the address, file:// and local paths, private-range hosts."""
    with pytest.raises(BadRequest, match=match) as raised:
        request(fleet, repo=repo)
    assert "ghp_secret" not in str(raised.value)  # a refused credential is not echoed back either


def test_a_private_git_server_may_be_allowed_by_range(fleet: FleetConfig) -> None:
    allowed = fleet.runtime.model_copy(update={"private_repo_networks": (IPv4Network("172.29.80.0/24"),)})
    ok = make_request(allowed, fleet.hosts, workspace="w", user="u", framework="vue",
                      repo="https://172.29.80.5/projects/app.git")
    assert ok.repo_host == "172.29.80.5"
    with pytest.raises(BadRequest, match="private"):
        make_request(allowed, fleet.hosts, workspace="w", user="u", framework="vue", repo="https://172.29.81.5/a/b")


def test_a_repository_token_is_its_own_field_and_never_shown(fleet: FleetConfig) -> None:
    with pytest.raises(BadRequest, match="needs a repo"):
        request(fleet, repo_token="ghp_secret")
    with pytest.raises(BadRequest, match="printable") as raised:
        request(fleet, repo="https://github.com/a/b.git", repo_token="ghp secret\n")
    assert "ghp" not in str(raised.value)
    req = request(fleet, repo="https://github.com/a/b.git", repo_token="ghp_secret")
    assert "ghp_secret" not in repr(req) and "ghp_secret" not in str(req.repo_token)
    spec = container_spec(req, fleet.runtime, claim="0123456789ab", created=NOW, network="drape-net-0123456789ab",
                          publish_address="10.0.0.11", disk_limit=True)
    assert "ghp_secret" not in repr(spec.body)  # not in labels, not in the environment: in a file (lifecycle)
    assert spec.labels[L.REPO_AUTH] == "token"
    assert "DRAPE_REPO_TOKEN_FILE=/drape/repo-token" in spec.body["Env"]


def test_workspace_ids_for_stop_status_and_activity_are_bounded(fleet: FleetConfig) -> None:
    from drape_fleet.runtime.spec import check_workspace

    assert check_workspace("ws-1") == "ws-1"
    for bad in ("x" * 10_000, "a b", "", None, "../x"):
        with pytest.raises(BadRequest, match="workspace") as raised:
            check_workspace(bad)
        assert len(str(raised.value)) < 300  # the error does not echo ten kilobytes back


def test_production_refuses_a_preview_without_a_disk_limit(fleet_data) -> None:  # type: ignore[no-untyped-def]
    from drape_fleet.config import ConfigError
    from drape_fleet.config.loader import validate_fleet

    required = validate_fleet(fleet_data(), source="(test)")  # the default is "required"
    with pytest.raises(BadRequest, match="disk_gib"):
        request(required, resources=PreviewResources(cpus=1, memory_mib=512, disk_gib=None))
    with pytest.raises(ConfigError, match=r"preview\.disk_gib.*give every preview size a disk_gib"):
        validate_fleet(fleet_data(preview={"disk_gib": None}), source="(test)")
    production = {**fleet_data(disk_limit="where-supported"), "environment": {"name": "production"}}
    for host in production["hosts"]:
        host["robot_server_number"] = 1000 + len(host["name"])
    with pytest.raises(ConfigError, match=r"runtime\.disk_limit.*production previews must have a disk limit"):
        validate_fleet(production, source="(test)")
    lab = validate_fleet(fleet_data(disk_limit="where-supported", preview={"disk_gib": None}), source="(test)")
    assert request(lab, framework="vue").resources.disk_gib is None  # the lab says so, explicitly


def test_container_spec_is_confined_and_sized(fleet: FleetConfig) -> None:
    req = request(fleet, project="p-9", repo="https://git.example/u/app.git", env={"API_URL": "https://x"})
    spec = container_spec(req, fleet.runtime, claim="0123456789ab", created=NOW, network="drape-net-0123456789ab",
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
    assert host["NetworkMode"] == "drape-net-0123456789ab"
    assert host["RestartPolicy"] == {"Name": "no"}
    assert "LogConfig" not in host  # the daemon's rotation policy applies
    assert not any("docker.sock" in str(v) for v in host.values())
    assert body["Labels"] == {
        L.OWNER: "drape-fleet", L.KIND: "preview", L.WORKSPACE: "ws-1", L.USER: "u-1", L.PROJECT: "p-9",
        L.FRAMEWORK: "nextjs", L.CREATED: "2025-03-01T12:00:00.123Z", L.MEMORY: str(7 * 1024**3), L.CPUS: "4",
        L.PORT: "3000", L.CLAIM: "0123456789ab",
        L.REPO: "https://git.example/u/app.git", L.ENV_KEYS: "API_URL",  # names only: values stay in the config
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
    spec = network_spec(fleet.runtime, claim="0123456789ab", subnet=IPv4Network("10.240.3.16/28"),
                        publish_address="10.0.0.11")
    kwargs = spec.create_kwargs()
    assert kwargs["name"] == "drape-net-0123456789ab"  # made before it is known which workspace takes it
    assert kwargs["labels"] == {L.OWNER: "drape-fleet", L.KIND: L.KIND_NETWORK, L.CLAIM: "0123456789ab"}
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
        network_spec(fleet.runtime, claim="../x", subnet=IPv4Network("10.240.3.16/28"), publish_address="x")


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
