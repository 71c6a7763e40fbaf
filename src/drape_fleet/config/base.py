"""The base every configuration model shares: immutable, no unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def invalid(kind: str, message: str, *, fix: str, at: str = "") -> PydanticCustomError:
    """A validation error that carries where it is (relative to the model) and how to fix it.

    The loader turns ``at`` and ``fix`` into the file/field/fix message ops read.
    """
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"), {"at": at, "fix": fix})
