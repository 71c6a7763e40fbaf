"""The fleet models refuse bad configuration before any connection, naming file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet.config import ConfigError, load_fleet, parse_fleet
from drape_fleet.paths import project_root

GOOD = """
[environment]
name = "production"

[network]
admin_allowlist = ["203.0.113.7/32"]
backend_addresses = ["10.0.0.2/32"]

[provisioning.firewall]
private_network = ["10.0.0.0/24"]

[[hosts]]
name = "ax1"
public_address = "203.0.113.11"
private_address = "10.0.0.11"
robot_server_number = 2100001
capacity = { cpus = 16, memory_gib = 120, disk_gib = 800 }

[[hosts]]
name = "ax2"
public_address = "203.0.113.12"
private_address = "10.0.0.12"
robot_server_number = 2100002
capacity = { cpus = 16, memory_gib = 120, disk_gib = 800 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str) -> tuple[str, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    return str(path), caught.value


def test_good_fleet_loads_and_is_immutable(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD))
    assert fleet.host_names == ("ax1", "ax2")
    assert str(fleet.host("ax2").private_address) == "10.0.0.12"
    with pytest.raises(ValueError, match="frozen"):
        fleet.hosts[0].name = "other"  # type: ignore[misc]


def test_the_shipped_production_fleet_is_valid() -> None:
    fleet = load_fleet(project_root() / "config" / "production.toml")
    assert fleet.environment.name == "production"
    assert len(fleet.hosts) == 3


def test_unknown_field_names_file_field_and_allowed_fields(tmp_path: Path) -> None:
    path, error = problems_of(tmp_path, GOOD.replace('name = "ax2"', 'name = "ax2"\ncolour = "blue"'))
    message = str(error)
    assert message.startswith(path)
    assert "hosts[1] (ax2).colour: unknown field 'colour'" in message
    assert "Fix: remove it or correct its spelling" in message
    assert "private_address" in message  # the allowed fields are listed


def test_duplicate_host_name(tmp_path: Path) -> None:
    path, error = problems_of(tmp_path, GOOD.replace('name = "ax2"', 'name = "ax1"'))
    [problem] = error.problems
    assert problem.field == "hosts[1] (ax1).name"
    assert "already used by hosts[0]" in problem.message
    assert "own name" in problem.fix
    assert str(error).startswith(path)


@pytest.mark.parametrize(("old", "new", "field"), [
    ('"203.0.113.12"', '"203.0.113.11"', "hosts[1] (ax2).public_address"),
    ('"10.0.0.12"', '"10.0.0.11"', "hosts[1] (ax2).private_address"),
    ('"10.0.0.12"', '"203.0.113.11"', "hosts[1] (ax2).private_address"),
])
def test_duplicate_address(tmp_path: Path, old: str, new: str, field: str) -> None:
    _, error = problems_of(tmp_path, GOOD.replace(old, new))
    [problem] = error.problems
    assert problem.field == field
    assert "already used by ax1" in problem.message


@pytest.mark.parametrize("bad", ["10.0.0.300", "ax1.example.com", "", "10.0.0.0/24"])
def test_address_that_is_not_an_ip(tmp_path: Path, bad: str) -> None:
    _, error = problems_of(tmp_path, GOOD.replace('"10.0.0.12"', f'"{bad}"'))
    [problem] = error.problems
    assert problem.field == "hosts[1] (ax2).private_address"
    assert "not a valid IPv4 or IPv6 address" in problem.message
    assert "e.g. 10.0.1.11" in problem.fix


@pytest.mark.parametrize("field", ["cpus", "memory_gib", "disk_gib"])
@pytest.mark.parametrize("value", ["0", "-4"])
def test_capacity_must_be_positive(tmp_path: Path, field: str, value: str) -> None:
    _, error = problems_of(tmp_path, _set_capacity(GOOD, field, value))
    [problem] = error.problems
    assert problem.field == f"hosts[0] (ax1).capacity.{field}"
    assert "greater than 0" in problem.message
    assert problem.fix == "use a number above zero"


def _set_capacity(text: str, field: str, value: str) -> str:
    line = "capacity = { cpus = 16, memory_gib = 120, disk_gib = 800 }"
    fields = {"cpus": "16", "memory_gib": "120", "disk_gib": "800"}
    fields[field] = value
    new = "capacity = { " + ", ".join(f"{k} = {v}" for k, v in fields.items()) + " }"
    return text.replace(line, new, 1)


def test_capacity_must_be_a_number(tmp_path: Path) -> None:
    _, error = problems_of(tmp_path, _set_capacity(GOOD, "cpus", '"sixteen"'))
    [problem] = error.problems
    assert problem.field == "hosts[0] (ax1).capacity.cpus"
    assert "whole number" in problem.fix


def test_missing_field_and_missing_robot_number(tmp_path: Path) -> None:
    _, error = problems_of(tmp_path, GOOD.replace('public_address = "203.0.113.12"\n', "")
                           .replace("robot_server_number = 2100001\n", ""))
    fields = {p.field: p for p in error.problems}
    assert "hosts[1] (ax2).public_address" in fields
    assert fields["hosts[1] (ax2).public_address"].fix == "add it"


def test_production_host_needs_robot_number(tmp_path: Path) -> None:
    _, error = problems_of(tmp_path, GOOD.replace("robot_server_number = 2100002\n", ""))
    [problem] = error.problems
    assert problem.field == "hosts[1] (ax2).robot_server_number"
    assert "Robot" in problem.fix


def test_unknown_role_and_environment(tmp_path: Path) -> None:
    text = GOOD.replace('name = "production"', 'name = "Staging 2"').replace(
        'name = "ax2"', 'name = "ax2"\nroles = ["preview", "database"]')
    _, error = problems_of(tmp_path, text)
    fields = {p.field: p for p in error.problems}
    assert "should match pattern" in fields["environment.name"].message
    assert "lowercase letters, digits and dashes" in fields["environment.name"].fix
    assert "'database' is not allowed" in fields["hosts[1] (ax2).roles[1]"].message


@pytest.mark.parametrize("name", ["AX1", "1ax", "ax_1", "ax1-", "a" * 40])
def test_host_name_must_be_a_safe_name(tmp_path: Path, name: str) -> None:
    _, error = problems_of(tmp_path, GOOD.replace('name = "ax2"', f'name = "{name}"'))
    [problem] = error.problems
    assert problem.field.startswith("hosts[1]") and problem.field.endswith(".name")
    assert "lowercase letters" in problem.fix


def test_allowlist_entries_must_be_networks(tmp_path: Path) -> None:
    _, error = problems_of(tmp_path, GOOD.replace('["203.0.113.7/32"]', '["office"]'))
    [problem] = error.problems
    assert problem.field == "network.admin_allowlist[0]"
    assert "CIDR" in problem.fix


def test_empty_lists_are_refused(tmp_path: Path) -> None:
    _, error = problems_of(tmp_path, GOOD.replace('["203.0.113.7/32"]', "[]"))
    [problem] = error.problems
    assert problem.field == "network.admin_allowlist"
    assert problem.fix == "list at least one entry"


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path, error = problems_of(tmp_path, GOOD.replace('name = "ax2"', 'name = "ax2'))
    assert str(error).startswith(path)
    assert "line" in error.problems[0].message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_fleet(tmp_path / "nope.toml")


def test_parse_without_file_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^<fleet>"):
        parse_fleet("[environment]\nname = 'lab'\n")


def test_unknown_host_lists_the_known_ones(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, GOOD))
    with pytest.raises(KeyError, match="this fleet has ax1, ax2"):
        fleet.host("ax9")


# -- the address plan: checked across sections when the file loads, for every command ----------------------

@pytest.mark.parametrize(("section", "field", "clash", "message"), [
    ("runtime", "subnet_pool", '"10.200.0.0/16"', "overlaps provisioning.docker.address_pool 10.200.0.0/16"),
    ("runtime", "subnet_pool", '"10.0.0.0/24"', "overlaps ax1's private_address (10.0.0.11/32)"),
    ("provisioning.docker", "address_pool", '"10.0.0.0/16"', "overlaps ax1's private_address"),
    ("provisioning.docker", "bridge_address", '"10.0.0.1/30"', "overlaps network.backend_addresses (10.0.0.2/32)"),
    ("provisioning.docker", "address_pool", '"203.0.113.0/24"', "overlaps ax1's public_address"),
])
def test_engine_ranges_must_not_overlap_each_other_or_the_fleets_addresses(
        tmp_path: Path, section: str, field: str, clash: str, message: str) -> None:
    text = GOOD.replace("[[hosts]]", f"[{section}]\n{field} = {clash}\n\n[[hosts]]", 1)
    path, error = problems_of(tmp_path, text)
    [problem] = error.problems
    assert str(error).startswith(path)
    assert problem.field == f"{section}.{field}"
    assert message in problem.message
    assert "range" in problem.fix


@pytest.mark.parametrize(("pool", "message", "fix"), [
    ('"10.240.0.0/33"', "not a valid IPv4 network", "CIDR form"),
    ('"fd00::/64"', "not a valid IPv4 network", "CIDR form"),
    ('"8.8.0.0/16"', "not private", "private /24"),
    ('"172.29.128.0/17"', "overlaps the lab range", "10.0.0.0/8"),
])
def test_subnet_pool_is_a_private_ipv4_network_clear_of_the_lab(tmp_path: Path, pool: str, message: str,
                                                                fix: str) -> None:
    _, error = problems_of(tmp_path, GOOD.replace("[[hosts]]", f"[runtime]\nsubnet_pool = {pool}\n\n[[hosts]]", 1))
    [problem] = error.problems
    assert problem.field == "runtime.subnet_pool"
    assert message in problem.message
    assert fix in problem.fix


def test_the_subnet_pool_is_a_network_not_text(tmp_path: Path) -> None:
    from ipaddress import IPv4Network

    fleet = load_fleet(write(tmp_path, GOOD.replace("[[hosts]]", '[runtime]\nsubnet_pool = "10.241.0.0/16"\n\n'
                                                                 "[[hosts]]", 1)))
    assert fleet.runtime.subnet_pool == IPv4Network("10.241.0.0/16")
