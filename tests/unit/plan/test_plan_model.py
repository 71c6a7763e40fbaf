"""The capacity and cost model pinned to the migration plan's numbers, and every disagreement it flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape_fleet.config import load_fleet
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.plan.findings import scenario_warnings, seed_findings
from drape_fleet.plan.model import PlanInputError, scenario, server_capacity
from drape_fleet.plan.report import plan_data
from drape_fleet.plan.settings import PlanConfig, load_plan

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def config() -> PlanConfig:
    return load_plan(ROOT / "config" / "plan.toml")


def test_a_server_takes_17_previews_bound_by_memory(config: PlanConfig) -> None:
    capacity = server_capacity(config)
    assert (capacity.usable_memory_gib, capacity.by_memory) == (120, 17)
    assert (capacity.nominal_cores, capacity.by_cpu) == (80, 20)
    assert (capacity.previews, capacity.bound_by) == (17, "memory")


@pytest.mark.parametrize(("containers", "servers", "fly", "hetzner"), [
    (15, 1, 180.0, 99.0),     # seed: Fly €184, Hetzner €99 (1 server)
    (30, 2, 360.0, 198.0),    # seed: €360, €198 (2)
    (50, 3, 600.0, 297.0),    # seed: €600, €297 (3)
    (51, 3, 612.0, 297.0),    # the last one that fits on 3
    (52, 4, 624.0, 396.0),
    (100, 6, 1200.0, 594.0),  # seed: €1,200, €396 (4)
])
def test_costs_of_the_seed_scenarios(config: PlanConfig, containers: int, servers: int, fly: float,
                                     hetzner: float) -> None:
    model = scenario(config, containers)
    assert (model.servers, model.fly_monthly, model.hetzner_monthly) == (servers, fly, hetzner)


def test_revenue_and_margin_at_fifty_go_users(config: PlanConfig) -> None:
    model = scenario(config, 50)
    assert model.revenue == pytest.approx(499.50)
    assert model.fly_margin == pytest.approx(-100.50) and model.fly_margin_percent == pytest.approx(-20.12, abs=0.01)
    assert model.hetzner_margin == pytest.approx(202.50)
    assert model.hetzner_margin_percent == pytest.approx(40.54, abs=0.01)
    assert scenario(config, 50, users=0).hetzner_margin_percent is None  # no revenue, no percentage


def test_what_each_container_gets(config: PlanConfig) -> None:
    fifty = scenario(config, 50)
    assert fifty.guaranteed_cores == pytest.approx(0.96) and (fifty.nominal_cores, fifty.burst_cores) == (4, 16)
    assert fifty.memory_limit_gib == 7 and fifty.memory_share_gib == pytest.approx(7.2)
    assert fifty.memory_used_percent == pytest.approx(97.2, abs=0.05) and fifty.capacity_one_down == 34
    assert scenario(config, 10).memory_share_gib == 12  # the seed's "12GB" for 10 on one server


def test_the_seeds_disagreements(config: PlanConfig) -> None:
    flagged = {(f.table, f.seed, f.verdict) for f in seed_findings(config) if f.verdict != "agrees"}
    assert flagged == {
        ("Costi Dettagliati", '"Il costo è fisso a €297/mese, indipendentemente da quanti container hai"', "disagrees"),
        ("Confronto costi", "15 containers on Fly: €184.00", "disagrees"),
        ("Confronto costi", "100 containers on 4 server(s): €396.00", "disagrees"),
        ("Revenue vs Costi", "50 users x €9.99 = €500.00", "rounded"),
        ("Revenue vs Costi", "Fly margin -€100.00 (-20%)", "rounded"),
        ("Revenue vs Costi", "Hetzner margin €203.00 (40%)", "rounded"),
        ("Risorse per container", "10 active: 12 GB each on 1 server(s)", "disagrees"),
        ("Risorse per container", "20 active: ~4 cores per container", "disagrees"),
        ("Risorse per container", "30 active: ~3.5 cores per container", "disagrees"),
        ("Risorse per container", "30 active: 6 GB each on 2 server(s)", "disagrees"),
        ("Risorse per container", "50 active: ~4 cores per container", "disagrees"),
        ("Risorse per container", "50 active: 7 GB each on 3 server(s)", "tight"),
        ("Scalabilità", "+1 server = €99.00 (~15 users)", "disagrees"),
        ("Ridondanza", "1 of 3 servers down: the other 2 hold ~35", "rounded"),
    }
    hundred = next(f for f in seed_findings(config) if f.seed.startswith("100 containers on 4"))
    assert hundred.model == "4 x 17 = 68 previews fit; 100 need 6 server(s): €594.00"
    scaling = next(f for f in seed_findings(config) if f.table == "Scalabilità")
    assert "17 previews" in scaling.model and "implies 25" in scaling.model


def test_warnings_for_the_asked_number(config: PlanConfig) -> None:
    assert scenario_warnings(scenario(config, 50)) == [
        "50 previews use 97% of the usable memory of 3 server(s): 1 spare slot(s)",
        "with one server down only 34 of 50 previews fit (the rest queue): 4 servers give N+1 redundancy",
        "when all 50 are busy each gets 0.96 real cores (compiles slow down together)"]
    assert scenario_warnings(scenario(config, 15)) == [
        "with one server down only 0 of 15 previews fit (the rest queue): 2 servers give N+1 redundancy"]


def test_headroom_and_cpu_bound_models(config: PlanConfig) -> None:
    spare = config.model_copy(update={"capacity": config.capacity.model_copy(update={"headroom_percent": 10})})
    assert server_capacity(spare).previews == 15  # 17 less 10%: the seed's "~15 users" per server
    tight_cpu = config.model_copy(update={"capacity": config.capacity.model_copy(update={"cpu_overcommit": 2})})
    assert (server_capacity(tight_cpu).previews, server_capacity(tight_cpu).bound_by) == (8, "CPU")


@pytest.mark.parametrize(("containers", "users"), [(0, None), (-5, None), (100_001, None), (50, -1)])
def test_impossible_counts_are_refused(config: PlanConfig, containers: int, users: int | None) -> None:
    with pytest.raises(PlanInputError, match="pass a whole number"):
        scenario(config, containers, users)


def test_defaults_match_the_runtime_and_the_production_fleet(config: PlanConfig) -> None:
    """The plan models the same previews the runtime places: if one changes, this says so."""
    runtime = RuntimeSettings()
    host = load_fleet(ROOT / "config" / "production.toml").hosts[0].capacity
    assert config.capacity.preview_memory_gib * 1024 == runtime.preview.memory_mib
    assert config.capacity.preview_cpus == runtime.preview.cpus
    assert config.capacity.cpu_overcommit == runtime.cpu_overcommit
    assert config.hetzner.memory_gib - config.capacity.os_reserve_memory_gib == host.memory_gib
    assert config.hetzner.cores == host.cpus


def test_plan_data_lists_the_seed_rows_and_the_asked_one(config: PlanConfig) -> None:
    data = plan_data(config, 42)
    assert [row["containers"] for row in data["costs"]] == [15, 30, 42, 50, 100]
    assert [row["containers"] for row in data["resources"]] == [10, 20, 30, 42, 50]
    assert data["costs"][2]["seed"] is None and data["costs"][0]["seed"]["fly_monthly"] == 184
    assert data["asked"]["servers"] == 3 and data["scaling"]["hetzner_per_user"] == 5.82
