"""Facts about nftables."""

from __future__ import annotations

from pyinfra.api.facts import FactBase


def parse_tables(text: str) -> list[str]:
    """``nft list tables`` lines (``table inet drape_filter``) as ``family name`` strings."""
    tables = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table":
            tables.append(f"{parts[1]} {parts[2]}")
    return tables


class NftTables(FactBase[list[str]]):
    """Tables loaded in the kernel now, e.g. ``["ip nat", "inet drape_filter"]``."""

    def requires_command(self) -> str:
        return "nft"

    def command(self) -> str:
        return "nft list tables"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return parse_tables("\n".join(output))
