"""Check an installimage config before it reaches a server, with the rules installimage applies (and a few of
this project's): the whole list of problems at once, each with its fix and its source.

This matters beyond tidiness: installimage refuses a config it finds invalid (and in its interactive mode drops
into an editor), so the checks run here, in the flow's ``validate`` step, and in a dry run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from drape_fleet.config.reinstall import Drive
from drape_fleet.installimage import rules_keys, rules_machine, rules_storage
from drape_fleet.installimage.config import ParsedConfig, parse_config
from drape_fleet.installimage.machine import Machine
from drape_fleet.installimage.problems import InvalidConfig, Problem, errors_of

ConfigRule = Callable[[ParsedConfig], Iterable[Problem]]
MachineRule = Callable[[ParsedConfig, Machine, Sequence[Drive]], Iterable[Problem]]


def _registered(module: object) -> list[Callable[..., Iterable[Problem]]]:
    return [value for value in vars(module).values() if callable(value) and hasattr(value, "rule_name")]


CONFIG_RULES: list[ConfigRule] = [*_registered(rules_keys),
                                  *(r for r in _registered(rules_storage) if r is not rules_storage.runtime_xfs)]
MACHINE_RULES: list[MachineRule] = _registered(rules_machine)


def check_config(config: ParsedConfig | str, machine: Machine | None = None, *, expected: Sequence[Drive] = (),
                 xfs_mounts: tuple[str, ...] = ()) -> list[Problem]:
    """Every problem with ``config`` (text or parsed): errors and warnings."""
    parsed = parse_config(config) if isinstance(config, str) else config
    problems = [p for check in CONFIG_RULES for p in check(parsed)]
    if machine is not None:
        problems += [p for check in MACHINE_RULES for p in check(parsed, machine, expected)]
    problems += rules_storage.runtime_xfs(parsed, xfs_mounts)
    return problems


def require_valid(subject: str, config: str, machine: Machine | None = None, *, expected: Sequence[Drive] = (),
                  xfs_mounts: tuple[str, ...] = ()) -> list[Problem]:
    """The warnings, or ``InvalidConfig`` listing every error."""
    problems = check_config(config, machine, expected=expected, xfs_mounts=xfs_mounts)
    if errors_of(problems):
        raise InvalidConfig(subject, problems)
    return [p for p in problems if p.severity == "warning"]
