"""The one place local commands are run: argv lists in, clear errors out."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class CommandFailed(RuntimeError):
    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"`{shlex.join(self.argv)}` exited with {returncode}" + (f":\n{tail}" if tail else ""))


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    input: str | bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``argv`` and capture its output; raise ``CommandFailed`` (with the output's tail) if asked to."""
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(list(argv), input=data, capture_output=True, timeout=timeout, check=False,
                              env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, -1, f"timed out after {timeout} s") from exc
    except FileNotFoundError as exc:
        raise CommandFailed(argv, 127, f"{argv[0]}: command not found") from exc
    result = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    if check and not result.ok:
        raise CommandFailed(argv, result.returncode, result.stderr + result.stdout)
    return result
