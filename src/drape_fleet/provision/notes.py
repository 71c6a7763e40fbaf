"""What a deploy tells the runner beyond pyinfra's own results, as data rather than log text.

pyinfra's JSON says which operations changed; it cannot say "root login was kept because the deploy user is
not proven yet" or "a degraded RAID was overridden with --force". A deploy records such a note as one JSON
line in the file the runner names in ``$DRAPE_DEPLOY_NOTES``; the runner reads them back per host. Run by
hand (plain ``pyinfra``), there is no such file and the note is only logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

NOTES_VAR = "DRAPE_DEPLOY_NOTES"


class NoteKind(StrEnum):
    ROOT_LOGIN_KEPT = "root_login_kept"
    """The ssh deploy left root login on (key only): the deploy user is not proven yet."""
    RAID_FORCED = "raid_forced"
    """The storage deploy went on despite a RAID that is not redundant (--force)."""


@dataclass(frozen=True)
class DeployNote:
    host: str
    deploy: str
    kind: NoteKind
    message: str


def record(note: DeployNote) -> bool:
    """Append ``note`` for the runner; False when no runner asked for notes."""
    path = os.environ.get(NOTES_VAR)
    if not path:
        return False
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(note)) + "\n")
    return True


def read_notes(path: Path, host: str) -> list[DeployNote]:
    if not path.exists():
        return []
    notes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            if data["host"] == host:
                notes.append(DeployNote(data["host"], data["deploy"], NoteKind(data["kind"]), data["message"]))
    return notes
