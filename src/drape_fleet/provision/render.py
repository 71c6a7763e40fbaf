"""The one way text for a host is made: a jinja2 template from ``files/``, rendered with StrictUndefined.

Builders compute the values from the validated models; the templates only shape the text. A template that
names a value the builder did not pass (or an attribute a model does not have) fails the render here, on
this machine, before any host is touched. Files in ``files/`` without the ``.j2`` suffix are put on hosts
as they are (``files_path``).
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from drape_fleet.paths import project_root

TEMPLATE_SUFFIX = ".j2"


def files_dir() -> Path:
    return project_root() / "files"


def files_path(name: str) -> Path:
    """A plain file from ``files/`` (nothing in it varies), for ``files.put(src=...)``."""
    path = files_dir() / name
    if name.endswith(TEMPLATE_SUFFIX) or not path.is_file():
        raise FileNotFoundError(f"{path}: no such plain file in files/ (templates are rendered with render())")
    return path


@cache
def _environment(directory: Path) -> Environment:
    # Config files, not HTML: nothing is escaped. Block tags take their own line away, so templates read
    # like the files they make.
    environment = Environment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 (config files and scripts, not HTML)
    )
    environment.filters["shell_quote"] = shlex.quote  # values that go into shell scripts
    return environment


def render(name: str, **values: Any) -> str:
    """Render ``files/<name>`` (a ``.j2`` template) with ``values``; a missing value raises
    ``jinja2.UndefinedError`` naming it."""
    if not name.endswith(TEMPLATE_SUFFIX):
        raise ValueError(f"{name}: templates end in {TEMPLATE_SUFFIX} (plain files go through files_path())")
    return _environment(files_dir()).get_template(name).render(**values)
