"""Read a fleet file and turn every validation failure into "file: field: what is wrong. Fix: how"."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from drape_fleet.config.errors import ConfigError, Problem
from drape_fleet.config.models import FleetConfig

# How to mend each kind of pydantic error, when the error itself does not carry a fix.
_FIXES: dict[str, str] = {
    "missing": "add it",
    "ip_any_address": "write an IPv4 or IPv6 address, e.g. 10.0.1.11",
    "ip_any_network": "write an address or a network in CIDR form, e.g. 203.0.113.7/32",
    "ip_v4_network": "write an IPv4 network in CIDR form, e.g. 10.240.0.0/16",
    "greater_than": "use a number above zero",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "int_parsing": "write a whole number without quotes",
    "int_type": "write a whole number without quotes",
    "int_from_float": "write a whole number",
    "string_type": "write it as a quoted string",
    "string_pattern_mismatch": "use lowercase letters, digits and dashes, starting with a letter",
    "too_short": "list at least one entry",
    "tuple_type": "write a list, e.g. [\"a\", \"b\"]",
    "model_type": "write a table (a [section] or { key = value })",
    "bool_type": "write true or false",
}


def load_fleet(path: str | Path) -> FleetConfig:
    """Load and validate a fleet file; raise ``ConfigError`` naming the file, field and fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("(file)", "the file does not exist",
                                              "create it, or pass the path of an existing fleet file")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [Problem("(file)", f"cannot read it ({exc.strerror})",
                                              "check the path and its permissions")]) from None
    return parse_fleet(text, source=str(path))


def parse_fleet(text: str, *, source: str = "<fleet>") -> FleetConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("(syntax)", f"not valid TOML: {exc}",
                                           "correct the line it names")]) from None
    return validate_fleet(data, source=source)


def validate_fleet(data: Mapping[str, Any], *, source: str) -> FleetConfig:
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise ConfigError(source, [_problem(e, data) for e in errors if not _is_echo(e, errors)]) from None


def _is_echo(error: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """A list whose items failed is also reported as "too short": that echo only confuses."""
    if error["type"] != "too_short":
        return False
    loc = tuple(error["loc"])
    return any(tuple(other["loc"])[: len(loc)] == loc and other is not error for other in errors)


def _problem(error: ErrorDetails, data: Mapping[str, Any]) -> Problem:
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    field = _render_loc(loc, data)
    if at := ctx.get("at"):
        field = f"{field}.{at}" if field else str(at)
        field = _name_hosts(field, data)
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_fields(loc[:-1]))
        return Problem(field, f"unknown field {loc[-1]!r}",
                       f"remove it or correct its spelling (allowed here: {allowed})")
    if kind == "missing":
        return Problem(field, "this required field is missing", "add it")
    if kind == "literal_error":
        return Problem(field, f"{error['input']!r} is not allowed", f"use {ctx.get('expected', 'a listed value')}")
    fix = str(ctx.get("fix") or _FIXES.get(kind, "correct the value"))
    if "input" in error and kind not in ("missing",) and not ctx.get("at"):
        message = f"{message} (got {error['input']!r})"
    return Problem(field or "(top level)", message, fix)


def _render_loc(loc: Sequence[int | str], data: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(item)
    return _name_hosts(".".join(parts), data)


def _name_hosts(field: str, data: Mapping[str, Any]) -> str:
    """``hosts[1].x`` becomes ``hosts[1] (ax2).x`` so ops find the entry by the name they gave it."""
    if not field.startswith("hosts["):
        return field
    index_text = field[len("hosts["):field.index("]")]
    hosts = data.get("hosts")
    if not index_text.isdigit() or not isinstance(hosts, list):
        return field
    index = int(index_text)
    name = hosts[index].get("name") if index < len(hosts) and isinstance(hosts[index], dict) else None
    if not isinstance(name, str):
        return field
    head = f"hosts[{index}]"
    return f"{head} ({name}){field[len(head):]}"


def _allowed_fields(loc: Sequence[int | str]) -> list[str]:
    """The fields the model at ``loc`` accepts, to suggest when an unknown one is given."""
    model: type[BaseModel] = FleetConfig
    for item in loc:
        if isinstance(item, int):
            continue
        annotation = model.model_fields[item].annotation
        nested = _model_in(annotation)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    if origin is not None:
        return _model_in(origin)
    return None
