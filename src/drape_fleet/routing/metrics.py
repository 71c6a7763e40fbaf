"""Preview start timings and failures, by cutover phase, provider and kind: recorded in memory by every backend
process (O(1) per start), flushed to the hosts, merged by ``invoke cutover report`` and the phase 4 gate.

Each process keeps cumulative histograms (fixed buckets that include the gate's thresholds, 20 s and 40 s, so a
p95 "at most 40 s" is exact at the threshold) and flushes the whole snapshot as one labelled volume per process
(``drape-cutover-metrics-<process>-<seq>``) on every host, replacing its previous one. Snapshots of different
processes add up (like Prometheus counters), a process that restarts starts a new series without losing the
old one, and a host that is down loses nothing (the others hold every snapshot).
"""

from __future__ import annotations

import bisect
import contextlib
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from docker.errors import NotFound

from drape_fleet.routing.policy import PROVIDERS, START_KINDS, Provider, RoutingError, StartKind
from drape_fleet.routing.records import KIND_METRICS, MetricsRecord, RecordError, parse_metrics
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.fleet import Fleet

BOUNDS: tuple[float, ...] = (0.5, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 90, 120, 180, 240, 300, 420, 600,
                             900, 1800)
"""Upper bounds (seconds) of the buckets; one more bucket holds everything above the last."""
MAX_REASONS = 20


@dataclass
class Series:
    """The starts of one (phase, provider, kind): a histogram of successful start times, failures by reason."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS) + 1))
    total_s: float = 0.0
    max_s: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(self.counts)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def attempts(self) -> int:
        return self.ok + self.failed

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def fail(self, reason: str) -> None:
        reason = (reason or "unknown")[:80]
        if reason not in self.failures and len(self.failures) >= MAX_REASONS:
            reason = "other"
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def merge(self, other: Series) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)
        for reason, count in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + count

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of successful starts, interpolated inside its bucket (Prometheus'
        ``histogram_quantile``), never above the largest start seen. None without starts."""
        total = self.ok
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low = 0.0 if index == 0 else BOUNDS[index - 1]
                high = BOUNDS[index] if index < len(BOUNDS) else self.max_s
                value = low + (high - low) * max(0.0, rank - seen) / count
                return min(value, self.max_s)
            seen += count
        return self.max_s

    @property
    def mean(self) -> float | None:
        return self.total_s / self.ok if self.ok else None

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "total_s": round(self.total_s, 3), "max_s": round(self.max_s, 3),
                "failures": self.failures}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        counts = [int(c) for c in data.get("counts", [])]
        if len(counts) != len(BOUNDS) + 1:
            raise RecordError(f"a metrics series has {len(counts)} buckets, expected {len(BOUNDS) + 1}")
        return cls(counts, float(data.get("total_s", 0)), float(data.get("max_s", 0)),
                   {str(k): int(v) for k, v in (data.get("failures") or {}).items()})


SeriesKey = tuple[int, str, str]
"""(cutover phase when the start began, provider, kind)."""


def _key_text(key: SeriesKey) -> str:
    return f"{key[0]}|{key[1]}|{key[2]}"


def _key_of(text: str) -> SeriesKey:
    phase, provider, kind = text.split("|")
    return int(phase), provider, kind


@dataclass
class StartMetrics:
    """A set of series, keyed by (phase, provider, kind); ``fallbacks`` counts Hetzner placements that failed and
    went to Fly, per phase."""

    series: dict[SeriesKey, Series] = field(default_factory=dict)
    fallbacks: dict[int, int] = field(default_factory=dict)

    def of(self, key: SeriesKey) -> Series:
        return self.series.setdefault(key, Series())

    def merge(self, other: StartMetrics) -> StartMetrics:
        for key, series in other.series.items():
            self.of(key).merge(series)
        for phase, count in other.fallbacks.items():
            self.fallbacks[phase] = self.fallbacks.get(phase, 0) + count
        return self

    def select(self, *, phase: int | None = None, provider: str | None = None, kind: str | None = None) -> Series:
        """Everything matching, merged into one series."""
        merged = Series()
        for (p, pr, k), series in self.series.items():
            if (phase is None or p == phase) and (provider is None or pr == provider) and (kind is None or k == kind):
                merged.merge(series)
        return merged

    def to_json(self) -> dict[str, Any]:
        return {"series": {_key_text(k): s.to_json() for k, s in sorted(self.series.items())},
                "fallbacks": {str(p): c for p, c in sorted(self.fallbacks.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StartMetrics:
        try:
            series = {_key_of(k): Series.from_json(v) for k, v in (data.get("series") or {}).items()}
            fallbacks = {int(p): int(c) for p, c in (data.get("fallbacks") or {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            raise RecordError(f"a metrics snapshot does not parse ({exc})") from None
        return cls(series, fallbacks)


def check_start(provider: str, kind: str, seconds: float) -> None:
    if provider not in PROVIDERS:
        raise RoutingError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    if kind not in START_KINDS:
        raise RoutingError(f"start kind {kind!r} is not one of {', '.join(START_KINDS)}")
    if not 0 <= seconds <= 86_400:
        raise RoutingError(f"a start of {seconds!r} s is not a duration: pass the seconds from request to ready")


class StartRecorder:
    """This process's metrics (thread-safe), and their flushing to the hosts."""

    def __init__(self, process: str | None = None) -> None:
        self.process = process or secrets.token_hex(6)
        self._metrics = StartMetrics()
        self._lock = threading.Lock()
        self._sequence = 0
        self._dirty = False

    def record(self, phase: int, provider: Provider, kind: StartKind, seconds: float, *, ok: bool = True,
               reason: str = "") -> None:
        check_start(provider, kind, seconds)
        with self._lock:
            series = self._metrics.of((phase, provider, kind))
            if ok:
                series.add(seconds)
            else:
                series.fail(reason)
            self._dirty = True

    def fallback(self, phase: int) -> None:
        with self._lock:
            self._metrics.fallbacks[phase] = self._metrics.fallbacks.get(phase, 0) + 1
            self._dirty = True

    def snapshot(self) -> StartMetrics:
        with self._lock:
            return StartMetrics.from_json(self._metrics.to_json())

    def flush(self, store: MetricsStore, *, force: bool = False) -> bool:
        """Write this process's snapshot to the hosts when it changed; True when written somewhere."""
        with self._lock:
            if not (self._dirty or force):
                return False
            self._sequence += 1
            sequence, data, self._dirty = self._sequence, self._metrics.to_json(), False
        written = store.write(self.process, sequence, data)
        if not written:
            with self._lock:
                self._dirty = True
        return bool(written)


class MetricsStore:
    """Per-process snapshots on every host's engine (see the module's docstring)."""

    def __init__(self, fleet: Fleet, owner: str, *, timeout_s: float = 5.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.fleet = fleet
        self.owner = owner
        self.timeout_s = timeout_s
        self._clock = clock

    def _list(self, engine: Engine) -> list[MetricsRecord]:
        filters = {"label": [f"{L.OWNER}={self.owner}", f"{L.KIND}={KIND_METRICS}"]}
        answer = engine.call(lambda api: api.volumes(filters=filters), "list start metrics")
        found = []
        for volume in (answer or {}).get("Volumes") or []:
            try:
                record = parse_metrics(volume, self.owner)
            except RecordError:
                continue
            if record is not None:
                found.append(record)
        return found

    def write(self, process: str, sequence: int, data: dict[str, Any]) -> list[str]:
        record = MetricsRecord(process, sequence, data, self._clock.now())
        labels = record.labels(self.owner)

        def put(engine: Engine) -> None:
            engine.call(lambda api: api.create_volume(name=record.volume, labels=labels), "write start metrics")
            for old in self._list(engine):
                if old.process == process and old.sequence < sequence:
                    _remove(engine, old.volume)

        results = self.fleet.each(put, timeout=self.timeout_s)
        return [name for name, result in results.items() if not isinstance(result, BaseException)]

    def read(self) -> tuple[StartMetrics, list[str]]:
        """Every process's newest snapshot (from whichever host holds it), merged; and the hosts that did not
        answer."""
        newest: dict[str, MetricsRecord] = {}
        missing: list[str] = []
        for name, result in self.fleet.each(self._list, timeout=self.timeout_s).items():
            if isinstance(result, BaseException):
                missing.append(name)
                continue
            for record in result:
                if record.process not in newest or newest[record.process].sequence < record.sequence:
                    newest[record.process] = record
        merged = StartMetrics()
        for record in newest.values():
            try:
                merged.merge(StartMetrics.from_json(record.snapshot))
            except RecordError:
                continue
        return merged, missing

    def wipe(self) -> None:
        """Remove every snapshot (tests; never a task)."""
        def clear(engine: Engine) -> None:
            for record in self._list(engine):
                _remove(engine, record.volume)

        self.fleet.each(clear, timeout=self.timeout_s)


def _remove(engine: Engine, name: str) -> None:
    with contextlib.suppress(NotFound):
        engine.call(lambda api: api.remove_volume(name), "remove start metrics")


def merged(snapshots: Iterable[StartMetrics]) -> StartMetrics:
    total = StartMetrics()
    for snapshot in snapshots:
        total.merge(snapshot)
    return total
