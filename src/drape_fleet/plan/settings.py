"""The plan's prices and capacity model (``config/plan.toml``) as validated, immutable models.

Bad input fails here, before anything is computed, with the file, the field and the fix::

    config/plan.toml: 1 problem(s) in the configuration
      - capacity.headroom_percent: Input should be less than 100 (got 120). Fix: use a percentage from 0 to 99
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator

from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.config.errors import ConfigError, Problem

Money = Annotated[float, Field(gt=0, le=1_000_000)]
DEFAULT_PLAN_FILE = Path("config/plan.toml")


class FlyPrices(FrozenModel):
    vm_monthly: Money
    vm_cpus: Annotated[int, Field(ge=1, le=64)] = 2
    vm_cpu_kind: str = "shared"
    vm_memory_gib: Annotated[float, Field(gt=0, le=512)] = 2


class HetznerPrices(FrozenModel):
    server: str = "AX102"
    server_monthly: Money
    cores: Annotated[int, Field(ge=1, le=512)]
    memory_gib: Annotated[int, Field(ge=1, le=16384)]
    nvme_drives: Annotated[int, Field(ge=1, le=24)] = 2


class Offer(FrozenModel):
    name: str = "Go"
    monthly_price: Money


class CapacityModel(FrozenModel):
    os_reserve_memory_gib: Annotated[float, Field(ge=0)]
    preview_memory_gib: Annotated[float, Field(gt=0)]
    preview_cpus: Annotated[float, Field(gt=0, le=256)]
    cpu_overcommit: Annotated[float, Field(ge=1, le=16)]
    headroom_percent: Annotated[float, Field(ge=0, lt=100)] = 0


class PlanConfig(FrozenModel):
    currency: Annotated[str, Field(min_length=3, max_length=3)] = "EUR"
    fly: FlyPrices
    hetzner: HetznerPrices
    offer: Offer
    capacity: CapacityModel

    @model_validator(mode="after")
    def _a_server_holds_a_preview(self) -> Self:
        usable = self.hetzner.memory_gib - self.capacity.os_reserve_memory_gib
        if usable <= 0:
            raise invalid("reserve_too_large", f"the OS reserve ({self.capacity.os_reserve_memory_gib:g} GiB) leaves "
                          f"nothing of the server's {self.hetzner.memory_gib} GiB", at="capacity.os_reserve_memory_gib",
                          fix="reserve less than the server's memory (8 GiB of 128 is the plan's value)")
        if usable < self.capacity.preview_memory_gib:
            raise invalid("preview_too_large", f"one preview ({self.capacity.preview_memory_gib:g} GiB) does not fit "
                          f"in the {usable:g} GiB a server offers", at="capacity.preview_memory_gib",
                          fix="make previews smaller, or the reserve smaller")
        if self.capacity.preview_cpus > self.hetzner.cores * self.capacity.cpu_overcommit:
            raise invalid("preview_too_many_cores", f"one preview's {self.capacity.preview_cpus:g} cores exceed a "
                          "server's nominal cores", at="capacity.preview_cpus", fix="give previews fewer cores")
        return self


# How to mend each kind of error, and an example value for a missing field.
_FIXES = {
    "greater_than": "use a number above zero",
    "greater_than_equal": "use a larger number",
    "less_than": "use a smaller number",
    "less_than_equal": "use a smaller number",
    "float_parsing": "write a number without quotes",
    "float_type": "write a number without quotes",
    "int_parsing": "write a whole number without quotes",
    "int_type": "write a whole number without quotes",
    "int_from_float": "write a whole number",
    "string_type": "write it as a quoted string",
    "model_type": "write a table (a [section])",
}
_EXAMPLES = {
    "fly": "[fly] with vm_monthly = 12.0", "fly.vm_monthly": "vm_monthly = 12.0 (one Fly Machine per month)",
    "hetzner": "[hetzner] with server_monthly, cores, memory_gib",
    "hetzner.server_monthly": "server_monthly = 99.0 (one AX102 per month)", "hetzner.cores": "cores = 16",
    "hetzner.memory_gib": "memory_gib = 128", "offer": "[offer] with monthly_price = 9.99",
    "offer.monthly_price": "monthly_price = 9.99 (what one user pays per month)",
    "capacity": "[capacity] (see config/plan.toml)", "capacity.os_reserve_memory_gib": "os_reserve_memory_gib = 8",
    "capacity.preview_memory_gib": "preview_memory_gib = 7", "capacity.preview_cpus": "preview_cpus = 4",
    "capacity.cpu_overcommit": "cpu_overcommit = 5",
}


def _problem(error: Mapping[str, Any]) -> Problem:
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    ctx = error.get("ctx") or {}
    if at := ctx.get("at"):
        return Problem(str(at), str(error["msg"]), str(ctx.get("fix", "correct the value")))
    kind = error["type"]
    if kind == "missing":
        return Problem(field, "this required field is missing", f"add {_EXAMPLES.get(field, field)}")
    if kind == "extra_forbidden":
        return Problem(field, f"unknown field {error['loc'][-1]!r}", "remove it or correct its spelling")
    fix = _FIXES.get(kind, "correct the value")
    if field.endswith("headroom_percent"):
        fix = "use a percentage from 0 to 99"
    return Problem(field, f"{error['msg']} (got {error.get('input')!r})", fix)


def parse_plan(data: Mapping[str, Any], *, source: str) -> PlanConfig:
    try:
        return PlanConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(e) for e in exc.errors(include_url=False)]) from None


def load_plan(path: str | Path = DEFAULT_PLAN_FILE) -> PlanConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = Problem("(file)", "the file does not exist", "pass --config with the plan file (config/plan.toml)")
        raise ConfigError(str(path), [problem]) from None
    except tomllib.TOMLDecodeError as exc:
        problem = Problem("(syntax)", f"not valid TOML: {exc}", "correct the line it names")
        raise ConfigError(str(path), [problem]) from None
    return parse_plan(data, source=str(path))
