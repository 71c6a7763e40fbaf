"""What the deploys share: putting rendered templates and plain files from files/ on a host (owned by root
unless said otherwise; pyinfra compares checksums, so an unchanged file is no change), and telling the runner
something it must act on (``warn``)."""

from __future__ import annotations

from io import StringIO
from typing import Any

from pyinfra import logger
from pyinfra.operations import files

from drape_fleet.provision.notes import DeployNote, NoteKind, record
from drape_fleet.provision.render import files_path


def put_text(name: str, text: str, dest: str, *, mode: str = "644", user: str = "root", group: str = "root",
             **kwargs: Any) -> Any:
    """Upload a rendered template (a builder's output)."""
    return files.put(name=name, src=StringIO(text), dest=dest, mode=mode, user=user, group=group,
                     create_remote_dir=True, **kwargs)


def put_file(name: str, plain_file: str, dest: str, *, mode: str = "644", **kwargs: Any) -> Any:
    """Upload a plain file from files/ as it is."""
    return files.put(name=name, src=str(files_path(plain_file)), dest=dest, mode=mode, user="root", group="root",
                     create_remote_dir=True, **kwargs)


def warn(host: Any, deploy: str, kind: NoteKind, message: str) -> None:
    """Log a warning for ops and record it as a structured note for the runner (drape_fleet.provision.notes)."""
    logger.warning(f"{host.print_prefix}{deploy}: {message}")
    record(DeployNote(host.name, deploy, kind, message))
