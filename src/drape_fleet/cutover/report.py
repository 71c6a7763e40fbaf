"""``invoke cutover report``: measured preview starts beside the migration plan's expected times ("Prestazioni
Preview"), by the phase each start began in, provider and kind - as rows (pure) and as a chart (PNG).

The seed's ranges are quoted as data here; a row's verdict compares the measured p95 with the range's upper end
(and, for Hetzner cold starts, with the plan's "ottimizzato" target).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drape_fleet.routing.metrics import StartMetrics
from drape_fleet.routing.policy import PROVIDERS, START_KINDS


@dataclass(frozen=True)
class Expected:
    low_s: float
    high_s: float
    optimized_high_s: float | None = None
    seed: str = ""


EXPECTED: dict[tuple[str, str], Expected] = {
    ("fly", "cold"): Expected(180, 300, seed="3-5 min"),
    ("fly", "warm"): Expected(120, 300, seed="2-5 min"),
    ("fly", "hot"): Expected(120, 300, seed="2-5 min (uccide e riavvia)"),
    ("hetzner", "cold"): Expected(60, 120, 40, seed="1-2 min (ottimizzato: 20-40 s)"),
    ("hetzner", "warm"): Expected(10, 20, seed="10-20 s"),
    ("hetzner", "hot"): Expected(0, 1, seed="0 s (server già running)"),
    ("hetzner", "prewarmed"): Expected(0, 1, seed="l'utente non aspetta"),
}
"""The plan's "Prestazioni Preview" tables (totals), per provider and kind."""


@dataclass(frozen=True)
class ReportRow:
    phase: int
    provider: str
    kind: str
    starts: int
    failed: int
    error_percent: float
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    expected: str
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(p95: float | None, expected: Expected | None) -> str:
    if p95 is None:
        return "no successful start"
    if expected is None:
        return "no expectation in the plan"
    if expected.optimized_high_s is not None and p95 <= expected.optimized_high_s:
        return "meets the optimized target"
    if p95 < expected.low_s:
        return "faster than the plan"
    return "within the plan" if p95 <= expected.high_s else "slower than the plan"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def report_rows(metrics: StartMetrics) -> list[ReportRow]:
    rows = []
    for phase, provider, kind in sorted(metrics.series, key=lambda k: (k[0], PROVIDERS.index(k[1])
                                                                        if k[1] in PROVIDERS else 9,
                                                                        START_KINDS.index(k[2])
                                                                        if k[2] in START_KINDS else 9)):
        series = metrics.series[(phase, provider, kind)]
        if series.attempts == 0:
            continue
        expected = EXPECTED.get((provider, kind))
        p95 = series.quantile(0.95)
        rows.append(ReportRow(phase, provider, kind, series.attempts, series.failed,
                              round(100 * series.failed / series.attempts, 2), _r(series.quantile(0.5)), _r(p95),
                              _r(series.max_s if series.ok else None), expected.seed if expected else "-",
                              _verdict(p95, expected)))
    return rows


def render_chart(rows: list[ReportRow], path: Path, *, title: str) -> Path:
    """One panel per phase with starts: measured p95 (bar) and p50 (dot) per provider and kind, the plan's
    expected range as a band behind each bar. Log scale: a hot start of 0.3 s and a Fly cold start of 4 min
    belong on one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = sorted({row.phase for row in rows})
    figure, axes = plt.subplots(1, max(1, len(phases)), figsize=(5.5 * max(1, len(phases)), 4.8), squeeze=False,
                                sharey=True)
    colours = {"hetzner": "#d50c2d", "fly": "#7b3be2"}
    for axis, phase in zip(axes[0], phases or [0], strict=False):
        here = [row for row in rows if row.phase == phase]
        labels = []
        for index, row in enumerate(here):
            labels.append(f"{row.provider}\n{row.kind}")
            expected = EXPECTED.get((row.provider, row.kind))
            if expected is not None:
                axis.fill_between([index - 0.4, index + 0.4], max(expected.low_s, 0.1), expected.high_s,
                                  color="#999999", alpha=0.25, linewidth=0)
                axis.hlines(expected.high_s, index - 0.4, index + 0.4, colors="#555555", linestyles="dashed",
                            linewidth=1)
                if expected.optimized_high_s is not None:
                    axis.hlines(expected.optimized_high_s, index - 0.4, index + 0.4, colors="#2a7f2a",
                                linestyles="dotted", linewidth=1.5)
            top = 0.05
            if row.p95_s is not None:
                top = max(row.p95_s, 0.05)
                axis.bar(index, top, width=0.5, color=colours.get(row.provider, "#333333"))
            if row.p50_s is not None:
                axis.plot(index, max(row.p50_s, 0.05), "o", color="black", markersize=4)
            label = "no start" if row.p95_s is None else f"{row.p95_s:.1f} s"
            if row.failed:
                label += f"\n{row.error_percent:g}% failed"
            axis.annotate(label, (index, top), ha="center", va="bottom", fontsize=8,
                          color="#b00000" if row.failed else "black")
        axis.set_xticks(range(len(labels)), labels, fontsize=8)
        axis.set_yscale("log")
        axis.set_ylim(0.05, 1000)
        axis.set_title(f"starts in phase {phase}", fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("seconds to ready (bar p95, dot p50; grey: the plan, green: its optimized target)",
                          fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
