"""Small helpers the deploys share: text files from builders, and facts about the host's kind."""

from __future__ import annotations

from io import StringIO
from typing import Any

from pyinfra.operations import files


def put_text(name: str, text: str, dest: str, *, mode: str = "644", user: str = "root", group: str = "root",
             **kwargs: Any) -> Any:
    """Upload builder output; pyinfra compares checksums, so an unchanged file is no change."""
    return files.put(name=name, src=StringIO(text), dest=dest, mode=mode, user=user, group=group,
                     create_remote_dir=True, **kwargs)
