"""An installimage config file, read the way installimage reads it (``read_vars`` in functions.sh of
hetzneronline/installimage), so the checks in ``rules.py`` judge what installimage will actually see.

How installimage reads, and the traps that follow from it:
- A single-valued key is the second word of the *first* line that starts with the key (``grep -m1 ^KEY``): a
  line ``SWRAIDLEVEL 1`` above ``SWRAID 1`` is read as SWRAID, and ``DRIVE10`` above ``DRIVE1`` as DRIVE1.
  ``ParsedConfig.value`` is that reading; ``ParsedConfig.intended`` the exact key's, and they must agree.
- Partitions are the lines starting with ``PART `` (but counted as the lines starting with ``PART``), volume
  groups the ``PART lvm <vg> <size>`` ones, logical volumes the ``LV `` lines.
- Sizes go through ``translate_unit``: a number with M/MiB, G/GiB or T/TiB becomes MiB, a bare number is MiB,
  ``all`` is the rest of the drive; anything else stays text (and is refused as "not a valid number").
Every other line is ignored, typos included: ``unknown`` lists them so they can be refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SINGLE_KEYS = ("SWRAID", "SWRAIDLEVEL", "BOOTLOADER", "HOSTNAME", "IMAGE", "GOVERNOR", "CRYPTPASSWORD",
               "RAID_ASSUME_CLEAN", "RAID_LAYOUT", "FORCE_GPT", "FORCE_SIGN", "FORCE_PASSWORD", "PRESERVE_VG",
               "PRESERVE_FS", "REUSE_FSTAB", "ALLOW_USB_DRIVES", "SSHKEYS_URL", "IPV4_ONLY",
               "TAKE_OVER_RESCUE_SYSTEM_SSH_PUBLIC_KEYS", "USE_KERNEL_MODE_SETTING")
NUMBERED_KEYS = ("DRIVE", "FORMATDRIVE")
LINE_KEYS = ("PART", "LV", "SUBVOL")
MAX_DRIVES = 24
_UNIT = re.compile(r"^([0-9]+)(M|MiB|G|GiB|T|TiB)$")
_FACTOR = {"M": 1, "MiB": 1, "G": 1024, "GiB": 1024, "T": 1024 * 1024, "TiB": 1024 * 1024}

ALL = "all"


def translate_unit(text: str) -> int | str:
    """MiB for a valid size, ``"all"`` for all, else the text unchanged (installimage's translate_unit)."""
    if match := _UNIT.match(text):
        return int(match.group(1)) * _FACTOR[match.group(2)]
    if text.isdigit():
        return int(text)
    return text


@dataclass(frozen=True)
class PartLine:
    line: int
    mount: str
    filesystem: str
    """The filesystem, or the volume group's name when ``mount`` is ``lvm``."""
    size_text: str
    crypt: str = ""

    @property
    def size(self) -> int | str:
        return translate_unit(self.size_text)

    @property
    def size_mib(self) -> int | None:
        size = self.size
        return size if isinstance(size, int) else None


@dataclass(frozen=True)
class LvLine:
    line: int
    vg: str
    name: str
    mount: str
    filesystem: str
    size_text: str

    @property
    def size(self) -> int | str:
        return translate_unit(self.size_text)

    @property
    def size_mib(self) -> int | None:
        size = self.size
        return size if isinstance(size, int) else None


@dataclass(frozen=True)
class ParsedConfig:
    text: str
    lines: tuple[str, ...]
    parts: tuple[PartLine, ...]
    part_count: int
    """Lines starting with ``PART`` (installimage's PART_COUNT), which is more than ``len(parts)`` when a line
    starts with PART without the space."""
    lvs: tuple[LvLine, ...]
    unknown: tuple[tuple[int, str], ...]

    def value(self, key: str) -> str:
        """What installimage reads for ``key``: the second word of the first line starting with it, or ''."""
        for line in self.lines:
            if line.startswith(key):
                words = line.split()
                return words[1] if len(words) > 1 else ""
        return ""

    def intended(self, key: str) -> tuple[int, str] | None:
        """(line number, value) of the first line whose first word is exactly ``key``."""
        for number, line in enumerate(self.lines, start=1):
            words = line.split()
            if words and words[0] == key:
                return number, words[1] if len(words) > 1 else ""
        return None

    def first_line_starting(self, key: str) -> int | None:
        for number, line in enumerate(self.lines, start=1):
            if line.startswith(key):
                return number
        return None

    @property
    def drives(self) -> dict[int, str]:
        """DRIVE<n> as installimage reads them (n from 1 while lines exist, up to the drives it found)."""
        found = {}
        for n in range(1, MAX_DRIVES + 1):
            if value := self.value(f"DRIVE{n}"):
                found[n] = value
        return found

    @property
    def format_drives(self) -> dict[int, str]:
        return {n: value for n in range(1, MAX_DRIVES + 1) if (value := self.value(f"FORMATDRIVE{n}"))}

    @property
    def swraid(self) -> str:
        return self.value("SWRAID") or "0"

    @property
    def swraid_level(self) -> str:
        return self.value("SWRAIDLEVEL") or "1"

    @property
    def volume_groups(self) -> tuple[PartLine, ...]:
        return tuple(part for part in self.parts if part.mount == "lvm")

    @property
    def uses_lvm(self) -> bool:
        return bool(self.volume_groups) and bool(self.lvs)

    def keys_used(self) -> list[tuple[int, str]]:
        return [(number, line.split()[0]) for number, line in enumerate(self.lines, start=1)
                if line.strip() and not line.startswith("#")]


def parse_config(text: str) -> ParsedConfig:
    lines = tuple(text.splitlines())
    parts, lvs, unknown = [], [], []
    part_count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        if line[0].isspace():
            unknown.append((number, f"{words[0]} (indented)"))
            continue
        if line.startswith("PART"):
            part_count += 1
        if line.startswith("PART "):
            padded = [*words[1:], "", "", "", ""]
            parts.append(PartLine(number, padded[0], padded[1], padded[2], padded[3]))
        elif line.startswith("LV "):
            padded = [*words[1:], "", "", "", "", ""]
            lvs.append(LvLine(number, *padded[:5]))
        elif not _known(words[0]):
            unknown.append((number, words[0]))
    return ParsedConfig(text, lines, tuple(parts), part_count, tuple(lvs), tuple(unknown))


def _known(key: str) -> bool:
    if key in SINGLE_KEYS or key in LINE_KEYS:
        return True
    return any(key.startswith(prefix) and key[len(prefix):].isdigit() for prefix in NUMBERED_KEYS)
