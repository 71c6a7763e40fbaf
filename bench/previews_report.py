"""The table and the chart of `invoke bench.preview` (pure: rows in, text and a PNG out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PHASES = ("container", "clone", "install", "compile", "page")
COLUMNS = (*PHASES, "first 200", "via ingress")
SCENARIO_ORDER = ("cold", "warm", "kept", "prewarmed", "hot", "naive")
TARGETS_S = {  # issue 9's targets on the lab, to the first 200 from the backend's call
    ("react", "warm"): 3.0, ("vue", "warm"): 3.0, ("nextjs", "warm"): 6.0, ("*", "kept"): 2.0,
    ("*", "prewarmed"): 0.5, ("*", "hot"): 0.1,
}


def target_for(framework: str, scenario: str) -> float | None:
    return TARGETS_S.get((framework, scenario), TARGETS_S.get(("*", scenario)))


def _cell(value: Any) -> str:
    return f"{value:>9.2f}" if isinstance(value, float | int) and not isinstance(value, bool) else f"{'-':>9}"


def render(rows: list[dict[str, Any]]) -> str:
    """One line per project and scenario: each phase, the first 200 (backend's GET) and through the ingress, the
    target, the ratio to the naive path of the same project in the same run, and how it installed."""
    head = (f"{'project':<11}{'scenario':<10}" + "".join(f"{c:>10}" for c in COLUMNS)
            + f"{'target':>8}{'vs naive':>10}  note")
    lines = [head, "-" * len(head)]
    naive = {r["project"]: r.get("first 200") for r in rows if r["scenario"] == "naive"}
    for row in sorted(rows, key=lambda r: (r["project"], SCENARIO_ORDER.index(r["scenario"]))):
        cells = "".join(" " + _cell(row.get(c)) for c in COLUMNS)
        total, base = row.get("first 200"), naive.get(row["project"])
        ratio = f"{base / total:>9.1f}x" if isinstance(total, float) and total > 0 and base else f"{'-':>10}"
        target = target_for(row.get("framework", ""), row["scenario"])
        verdict = "" if target is None or not isinstance(total, float) else (
            f"{target:>5.1f}{'✓' if total <= target else '✗':>3}")
        note = row.get("error") or row.get("note") or row.get("path") or ""
        lines.append(f"{row['project']:<11}{row['scenario']:<10}{cells}{verdict:>8}{ratio}  {note}")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Stacked horizontal bars, one per project and scenario: the phases, then what is left to the first 200."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in sorted(rows, key=lambda r: (r["project"], -SCENARIO_ORDER.index(r["scenario"])))
             if isinstance(r.get("first 200"), float)]
    labels = [f"{r['project']} · {r['scenario']}" for r in shown]
    colours = dict(zip((*PHASES, "other"), ("#8c8c8c", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#b0b0b0"),
                       strict=True))
    figure, axis = plt.subplots(figsize=(11, 0.42 * len(shown) + 1.6))
    named: set[str] = set()

    def bar(index: int, width: float, left: float, part: str) -> None:
        axis.barh(index, width, left=left, color=colours[part], label=None if part in named else part)
        named.add(part)

    for index, row in enumerate(shown):
        left = 0.0
        for phase in PHASES:
            value = row.get(phase)
            if isinstance(value, float | int) and value > 0:
                bar(index, value, left, phase)
                left += value
        rest = row["first 200"] - left
        if rest > 0.01:
            bar(index, rest, left, "other")
        axis.text(row["first 200"], index, f" {row['first 200']:.2f} s", va="center", fontsize=8)
    axis.set_yticks(range(len(shown)), labels, fontsize=8)
    axis.set_xscale("symlog", linthresh=1.0)
    axis.set_xlabel("seconds from the backend's start() to the first 200 of the start page (symlog scale)")
    axis.set_title(title, fontsize=10, pad=28)
    from matplotlib.patches import Patch

    order = [part for part in (*PHASES, "other") if part in named]
    axis.legend([Patch(color=colours[part]) for part in order], order, loc="lower center", ncol=len(order),
                bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
