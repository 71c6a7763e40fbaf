"""Start metrics: histograms whose p95 is exact at the gate's thresholds, merging across processes, snapshots
on the hosts (one per process, replaced as it flushes), and bad measurements refused."""

from __future__ import annotations

import pytest
from volume_engines import OWNER, VolumeFleet

from drape_fleet.routing.metrics import MetricsStore, Series, StartMetrics, StartRecorder
from drape_fleet.routing.policy import RoutingError


def test_quantiles_interpolate_inside_a_bucket_and_never_pass_the_largest_start() -> None:
    series = Series()
    for seconds in [3.0] * 95 + [38.0] * 5:
        series.add(seconds)
    assert series.quantile(0.5) is not None and 2.0 < series.quantile(0.5) <= 3.0  # type: ignore[operator]
    assert series.quantile(0.95) == pytest.approx(3.0)
    assert series.quantile(1.0) == 38.0
    assert Series().quantile(0.95) is None


def test_a_p95_at_the_threshold_is_not_reported_above_it() -> None:
    series = Series()
    for _ in range(100):
        series.add(40.0)
    assert 30.0 < series.quantile(0.95) <= 40.0  # type: ignore[operator]
    for _ in range(4):
        series.add(45.0)
    assert series.quantile(0.95) <= 40.0  # type: ignore[operator]  # 4 of 104 above: the p95 is not
    series.add(45.0)
    series.add(45.0)
    assert series.quantile(0.95) > 40.0  # type: ignore[operator]  # 6 of 106 above: it is


def test_failures_are_counted_by_reason_and_merge() -> None:
    a, b = StartMetrics(), StartMetrics()
    a.of((3, "hetzner", "cold")).add(10)
    a.of((3, "hetzner", "cold")).fail("queue full")
    b.of((3, "hetzner", "cold")).fail("queue full")
    b.of((3, "fly", "warm")).add(150)
    b.fallbacks[3] = 2
    merged = StartMetrics().merge(a).merge(b)
    cold = merged.select(phase=3, provider="hetzner", kind="cold")
    assert (cold.ok, cold.failed, cold.failures) == (1, 2, {"queue full": 2})
    assert merged.select(phase=3).attempts == 4 and merged.fallbacks == {3: 2}
    assert StartMetrics.from_json(merged.to_json()).to_json() == merged.to_json()


def test_bad_measurements_are_refused() -> None:
    recorder = StartRecorder()
    with pytest.raises(RoutingError, match="provider 'aws'"):
        recorder.record(3, "aws", "cold", 1.0)  # type: ignore[arg-type]
    with pytest.raises(RoutingError, match="start kind 'tepid'"):
        recorder.record(3, "fly", "tepid", 1.0)  # type: ignore[arg-type]
    with pytest.raises(RoutingError, match="not a duration"):
        recorder.record(3, "fly", "cold", -4)


def test_each_process_keeps_one_snapshot_per_host_and_the_report_adds_them(volumes: VolumeFleet) -> None:
    store = MetricsStore(volumes.fleet, OWNER)
    first, second = StartRecorder("proc-a"), StartRecorder("proc-b")
    first.record(3, "hetzner", "cold", 12.0)
    assert first.flush(store) and not first.flush(store)  # nothing new: nothing written
    first.record(3, "hetzner", "warm", 6.0)
    first.flush(store)
    second.record(3, "fly", "cold", 200.0)
    volumes.apis["ax1"].down = True
    second.flush(store)
    assert volumes.names("ax2") == ["drape-cutover-metrics-proc-a-000000002", "drape-cutover-metrics-proc-b-000000001"]
    merged, missing = store.read()
    assert missing == ["ax1"]
    assert merged.select(provider="hetzner").ok == 2 and merged.select(provider="fly").ok == 1
