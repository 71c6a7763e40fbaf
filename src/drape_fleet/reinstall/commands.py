"""What the reinstall runs on the rescue system and on the new system, as shell text, and how their output is read.

Pure: the executor sends these through the SSH seam; tests assert them exactly and feed the parsers output in
the formats the tools print.

installimage runs detached (``setsid nohup``), writing its exit status to a file: a dropped SSH connection during
the 5-15 minutes it takes neither kills it nor loses the outcome, and a re-run finds it still running. It gets
no terminal and stdin from /dev/null, so none of its prompts (the 20-second countdown, a password question, the
editor it opens on a config it rejects when not in automatic mode) can wait for input.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from drape_fleet.reinstall.keys import PublicKey, parse_keys

INSTALLIMAGE = "/root/.oldroot/nfs/install/installimage"
WORKDIR = "/root/drape"
CONFIG_PATH = f"{WORKDIR}/installimage.conf"
POST_INSTALL_PATH = f"{WORKDIR}/post-install.sh"
LOG_PATH = f"{WORKDIR}/installimage.log"
EXIT_PATH = f"{WORKDIR}/installimage.exit"
PID_PATH = f"{WORKDIR}/installimage.pid"
DEBUG_LOG = "/root/debug.txt"

IDENTIFY_RESCUE = f"test -x {INSTALLIMAGE} && echo hetzner-rescue"


def upload(path: str, mode: str) -> str:
    """Write stdin to ``path`` (private), then print its SHA-256 so the caller can compare."""
    quoted = shlex.quote(path)
    return (f"umask 077 && mkdir -p {shlex.quote(WORKDIR)} && cat > {quoted} && chmod {mode} {quoted} && "
            f"sha256sum {quoted}")


def image_present(image: str) -> str | None:
    """Whether a local image exists (None for an http(s) image, which installimage downloads)."""
    if not image.startswith("/"):
        return None
    return f"if [ -f {shlex.quote(image)} ]; then echo present; else echo absent; fi"


def start_installimage() -> str:
    run = (f"TERM=xterm {INSTALLIMAGE} -a -c {CONFIG_PATH} -x {POST_INSTALL_PATH} </dev/null >{LOG_PATH} 2>&1; "
           f"echo $? > {EXIT_PATH}")
    # Separate statements: "a && b & c" would background the whole list, and its rm race the pid file.
    return (f"rm -f {EXIT_PATH} {PID_PATH}; cd {WORKDIR} || exit 1; "
            f"setsid nohup sh -c {shlex.quote(run)} </dev/null >/dev/null 2>&1 & echo $! > {PID_PATH}; "
            f"cat {PID_PATH}")


def poll_installimage(pid: int) -> str:
    """Prints ``exit N``, ``running`` or ``gone`` (no exit status and no process: the rescue system restarted),
    then installimage's last progress line."""
    return (f"if [ -f {EXIT_PATH} ]; then echo \"exit $(cat {EXIT_PATH})\"; "
            f"elif kill -0 {pid} 2>/dev/null; then echo running; else echo gone; fi; "
            f"grep -a -E '^ *[0-9]+/[0-9]+ *:' {LOG_PATH} 2>/dev/null | tail -n 1 || true")


def stop_installimage(pid: int) -> str:
    # "kill -SIG -PGID" (no "--"): the form both bash and dash read as a process group.
    return f"kill -TERM -{pid} 2>/dev/null; sleep 2; kill -KILL -{pid} 2>/dev/null; true"


FETCH_DEBUG = f"tail -n 400 {DEBUG_LOG} 2>/dev/null; echo '== installimage output'; tail -n 60 {LOG_PATH} 2>/dev/null"


@dataclass(frozen=True)
class InstallStatus:
    state: str
    """``exit``, ``running`` or ``gone``."""
    exit_code: int | None
    progress: str


def parse_poll(output: str) -> InstallStatus:
    lines = output.strip().splitlines() or ["gone"]
    first, progress = lines[0].strip(), (lines[1].strip() if len(lines) > 1 else "")
    if first.startswith("exit "):
        code = first.split()[1]
        return InstallStatus("exit", int(code) if code.lstrip("-").isdigit() else -1, progress)
    return InstallStatus(first if first in ("running", "gone") else "gone", None, progress)


_RELEVANT = re.compile(r"error|fail|fatal|cannot|can't|unable|insufficient|invalid|not found|no such|no space|"
                       r"denied|abort|refused", re.IGNORECASE)


def relevant_lines(log: str, *, context: int = 15, limit: int = 40) -> list[str]:
    """The lines of installimage's debug log worth showing: every line that reports an error, then the last
    ``context`` lines; at most ``limit`` lines, in log order."""
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    chosen = {index for index, line in enumerate(lines) if _RELEVANT.search(line)}
    chosen |= set(range(max(0, len(lines) - context), len(lines)))
    picked = [lines[i] for i in sorted(chosen)]
    return picked[-limit:]


def read_new_system(volume_group: str, marker: str) -> str:
    """Mount the installed root read-only in the rescue system and print its SSH host keys, fstab and the
    post-install marker: the new system's identity, read over the already-pinned rescue connection."""
    root = shlex.quote(f"/dev/{volume_group}/root")
    return ("set -e; mnt=$(mktemp -d); vgchange -ay >/dev/null 2>&1 || true; "
            f"mount -o ro {root} \"$mnt\"; trap 'umount \"$mnt\"; rmdir \"$mnt\"' EXIT; "
            "echo '== keys'; cat \"$mnt\"/etc/ssh/ssh_host_*_key.pub; echo '== fstab'; cat \"$mnt/etc/fstab\"; "
            f"echo '== marker'; cat \"$mnt\"{shlex.quote(marker)} 2>/dev/null || true")


@dataclass(frozen=True)
class NewSystem:
    host_keys: tuple[PublicKey, ...]
    fstab: str
    marker: str


def parse_new_system(output: str) -> NewSystem:
    sections: dict[str, list[str]] = {"keys": [], "fstab": [], "marker": []}
    current = None
    for line in output.splitlines():
        if line.startswith("== ") and line[3:].strip() in sections:
            current = line[3:].strip()
        elif current is not None:
            sections[current].append(line)
    return NewSystem(tuple(parse_keys("\n".join(sections["keys"]))), "\n".join(sections["fstab"]),
                     "\n".join(sections["marker"]).strip())


def fstab_options(fstab: str) -> dict[str, tuple[str, str]]:
    """mount point -> (filesystem, options) for every active fstab line."""
    entries = {}
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) >= 4 and not fields[0].startswith("#"):
            entries[fields[1]] = (fields[2], fields[3])
    return entries


REBOOT = "nohup sh -c 'sleep 2; reboot' >/dev/null 2>&1 &"
OS_RELEASE = ". /etc/os-release && echo \"$ID $VERSION_ID\" && hostname"
FINDMNT = "findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS"
MDSTAT = "cat /proc/mdstat"


def xfs_info(mount: str) -> str:
    return f"xfs_info {shlex.quote(mount)}"


def parse_findmnt(output: str) -> dict[str, tuple[str, str]]:
    """mount point -> (filesystem, options), from ``findmnt -J`` (nested children flattened)."""
    found: dict[str, tuple[str, str]] = {}

    def walk(nodes: list[dict[str, object]]) -> None:
        for node in nodes:
            found[str(node.get("target"))] = (str(node.get("fstype")), str(node.get("options")))
            walk(node.get("children") or [])  # type: ignore[arg-type]

    walk(json.loads(output).get("filesystems", []))
    return found


def reflink_enabled(xfs_info_output: str) -> bool | None:
    match = re.search(r"reflink=([01])", xfs_info_output)
    return None if match is None else match.group(1) == "1"
