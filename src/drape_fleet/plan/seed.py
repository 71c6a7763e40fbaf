"""The migration plan's own tables ("Piano Migrazione: da Fly.io a Hetzner + Docker"), quoted as data.

These are claims to check, not inputs: ``invoke plan`` computes every figure from ``config/plan.toml`` and
puts the plan's numbers beside its own, flagging where they disagree. Amounts are EUR per month.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedCostRow:
    """"Confronto costi Fly.io vs Hetzner": one scenario."""

    containers: int
    fly_monthly: float
    hetzner_monthly: float
    servers: int


@dataclass(frozen=True)
class SeedResourcesRow:
    """"Risorse per container": active containers, CPU and RAM per container, servers needed."""

    containers: int
    cpu_per_container: float
    cpu_is_burst: bool
    ram_gib: float
    servers: int


@dataclass(frozen=True)
class SeedRevenue:
    """"Revenue vs Costi (50 utenti piano Go €9.99)" and the "Riepilogo Finale" margins."""

    users: int = 50
    price: float = 9.99
    revenue: float = 500
    fly_cost: float = 600
    hetzner_cost: float = 297
    fly_margin: float = -100
    hetzner_margin: float = 203
    fly_margin_percent: float = -20
    hetzner_margin_percent: float = 40


@dataclass(frozen=True)
class SeedSetup:
    """"Costi Dettagliati": the setup, and what one more of each costs ("Scalabilità")."""

    servers: int = 3
    server_monthly: float = 99
    total_monthly: float = 297
    cores: int = 48
    memory_gib: int = 384
    nvme: int = 6
    fly_vm_monthly: float = 12
    users_per_extra_server: int = 15
    one_server_down_holds: int = 35
    two_servers_down_holds: tuple[int, int] = (15, 20)
    fixed_cost_claim: str = "Il costo è fisso a €297/mese, indipendentemente da quanti container hai"


COSTS: tuple[SeedCostRow, ...] = (
    SeedCostRow(15, 184, 99, 1),
    SeedCostRow(30, 360, 198, 2),
    SeedCostRow(50, 600, 297, 3),
    SeedCostRow(100, 1200, 396, 4),
)
RESOURCES: tuple[SeedResourcesRow, ...] = (
    SeedResourcesRow(10, 8, True, 12, 1),
    SeedResourcesRow(20, 4, False, 7, 2),
    SeedResourcesRow(30, 3.5, False, 6, 2),
    SeedResourcesRow(50, 4, False, 7, 3),
)
REVENUE = SeedRevenue()
SETUP = SeedSetup()
