"""Facts about the system as a whole."""

from __future__ import annotations

import shlex

from pyinfra.api.facts import FactBase


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or not key.strip() or key.startswith("#"):
            continue
        parts = shlex.split(raw) if raw.strip() else [""]
        values[key.strip()] = parts[0] if parts else ""
    return values


class OsRelease(FactBase[dict[str, str]]):
    """/etc/os-release as a dict (ID, VERSION_ID, VERSION_CODENAME, ...)."""

    def command(self) -> str:
        return "cat /etc/os-release"

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_os_release("\n".join(output))


class SshClientAddress(FactBase[str | None]):
    """The address this SSH session comes from, as the host sees it (first field of $SSH_CONNECTION).
    Read without sudo: sudo drops SSH_CONNECTION from the environment."""

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    def process(self, output: list[str]) -> str | None:
        fields = "\n".join(output).split()
        return fields[0] if fields else None


class FileText(FactBase[str | None]):
    """A small text file's content, or None when it does not exist."""

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return f"if [ -f {quoted} ]; then cat {quoted}; else echo __DRAPE_ABSENT__; fi"

    def process(self, output: list[str]) -> str | None:
        if output == ["__DRAPE_ABSENT__"]:
            return None
        return "\n".join(output)


class UnitFileState(FactBase[str]):
    """``systemctl is-enabled`` of a unit: enabled, disabled, masked, static, ... or ``absent``."""

    def command(self, unit: str) -> str:
        quoted = shlex.quote(unit)
        return f"systemctl is-enabled {quoted} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        text = "\n".join(output).strip()
        return text.splitlines()[-1] if text else "absent"


class ContainerKind(FactBase[str]):
    """``systemd-detect-virt --container``: ``none`` on a real server, ``docker`` on a lab stand-in.
    Services that refuse to run in a container (time sync) are only enabled there, not started."""

    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        text = "\n".join(output).strip()
        return text or "none"
