"""Where the migration plan's own tables agree with the model, and where they do not (pure).

Every check puts the seed's claim beside the model's figure and a verdict: ``agrees``, ``rounded`` (the
same within the seed's rounding), ``tight`` (true on paper, with no room to spare) or ``disagrees``.
``scenario_warnings`` adds what ops should know about the chosen number of containers (memory nearly
full, no room for a server failure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from drape_fleet.plan import seed
from drape_fleet.plan.model import Scenario, scenario, server_capacity
from drape_fleet.plan.settings import PlanConfig

Verdict = Literal["agrees", "rounded", "tight", "disagrees"]
TIGHT_MEMORY_PERCENT = 90


@dataclass(frozen=True)
class Finding:
    table: str
    seed: str
    model: str
    verdict: Verdict

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _eur(amount: float) -> str:
    return f"{'-' if amount < 0 else ''}€{abs(amount):,.2f}"


def _close(claim: float, computed: float, *, tolerance: float) -> Verdict:
    if claim == computed:
        return "agrees"
    return "rounded" if abs(claim - computed) <= tolerance else "disagrees"


def _costs(config: PlanConfig) -> list[Finding]:
    found: list[Finding] = []
    price, vm = config.hetzner.server_monthly, config.fly.vm_monthly
    for row in seed.COSTS:
        model = scenario(config, row.containers)
        found.append(Finding("Confronto costi", f"{row.containers} containers on Fly: {_eur(row.fly_monthly)}",
                             f"{row.containers} x {_eur(vm)} = {_eur(model.fly_monthly)}",
                             _close(row.fly_monthly, model.fly_monthly, tolerance=0.5)))
        servers_verdict: Verdict = "agrees" if row.servers == model.servers else "disagrees"
        found.append(Finding(
            "Confronto costi", f"{row.containers} containers on {row.servers} server(s): {_eur(row.hetzner_monthly)}",
            f"{row.servers} x {model.per_server} = {row.servers * model.per_server} previews fit; {row.containers} "
            f"need {model.servers} server(s): {_eur(model.hetzner_monthly)}", servers_verdict))
        if row.hetzner_monthly != row.servers * price:
            found.append(Finding("Confronto costi", f"{row.servers} server(s): {_eur(row.hetzner_monthly)}",
                                 f"{row.servers} x {_eur(price)} = {_eur(row.servers * price)}", "disagrees"))
    return found


def _resources(config: PlanConfig) -> list[Finding]:
    found: list[Finding] = []
    for row in seed.RESOURCES:
        model = scenario(config, row.containers)
        found.append(Finding("Risorse per container", f"{row.containers} active: {row.servers} x AX102",
                             f"{model.servers} x AX102 ({model.per_server} per server)",
                             "agrees" if row.servers == model.servers else "disagrees"))
        cpu = f"~{row.cpu_per_container:g} cores{' (burst)' if row.cpu_is_burst else ''} per container"
        found.append(Finding(
            "Risorse per container", f"{row.containers} active: {cpu}",
            f"{model.guaranteed_cores:.2f} real cores each when all are busy ({row.servers * config.hetzner.cores} "
            f"cores / {row.containers}); nominal share {model.nominal_cores:g}, burst up to {model.burst_cores}",
            "agrees" if row.cpu_is_burst and row.cpu_per_container <= model.burst_cores
            and row.cpu_per_container >= model.guaranteed_cores else "disagrees"))
        usable = row.servers * server_capacity(config).usable_memory_gib
        used = row.containers * row.ram_gib
        verdict: Verdict = "agrees" if used <= usable and row.ram_gib == model.memory_limit_gib else "disagrees"
        spare = ""
        if verdict == "agrees" and 100 * used / usable > TIGHT_MEMORY_PERCENT:
            verdict = "tight"
            spare = (f"; {100 * used / usable:.0f}% full, {model.capacity - row.containers} spare slot(s), one "
                     f"server down: {model.capacity_one_down} fit")
        found.append(Finding(
            "Risorse per container", f"{row.containers} active: {row.ram_gib:g} GB each on {row.servers} server(s)",
            f"limit {model.memory_limit_gib:g} GiB each; {row.containers} x {row.ram_gib:g} = {used:g} GiB of "
            f"{usable:g} usable ({'fits' if used <= usable else 'does not fit'}; even share "
            f"{usable / row.containers:.1f} GiB){spare}", verdict))
    return found


def _revenue(config: PlanConfig) -> list[Finding]:
    claim = seed.REVENUE
    model = scenario(config, claim.users)
    hetzner_percent = model.hetzner_margin_percent or 0.0
    fly_percent = model.fly_margin_percent or 0.0
    return [
        Finding("Revenue vs Costi", f"{claim.users} users x {_eur(claim.price)} = {_eur(claim.revenue)}",
                _eur(model.revenue), _close(claim.revenue, model.revenue, tolerance=1)),
        Finding("Revenue vs Costi", f"Fly margin {_eur(claim.fly_margin)} ({claim.fly_margin_percent:g}%)",
                f"{_eur(model.fly_margin)} ({fly_percent:.1f}%)",
                _close(claim.fly_margin, model.fly_margin, tolerance=1)
                if abs(claim.fly_margin_percent - fly_percent) <= 1 else "disagrees"),
        Finding("Revenue vs Costi", f"Hetzner margin {_eur(claim.hetzner_margin)} ({claim.hetzner_margin_percent:g}%)",
                f"{_eur(model.hetzner_margin)} ({hetzner_percent:.1f}%)",
                _close(claim.hetzner_margin, model.hetzner_margin, tolerance=1)
                if abs(claim.hetzner_margin_percent - hetzner_percent) <= 1 else "disagrees"),
    ]


def _setup_and_scaling(config: PlanConfig) -> list[Finding]:
    setup, capacity = seed.SETUP, server_capacity(config)
    price, server = config.hetzner.server_monthly, config.hetzner
    per_user_hetzner = price / capacity.previews
    implied = max(row.containers / row.servers for row in seed.COSTS)
    one_down = (setup.servers - 1) * capacity.previews
    low, high = setup.two_servers_down_holds
    return [
        Finding("Costi Dettagliati", f"{setup.servers} x {_eur(setup.server_monthly)} = {_eur(setup.total_monthly)}; "
                f"{setup.cores} cores / {setup.memory_gib} GB / {setup.nvme} NVMe",
                f"{_eur(setup.servers * price)}; {setup.servers * server.cores} cores / "
                f"{setup.servers * server.memory_gib} GB / {setup.servers * server.nvme_drives} NVMe",
                "agrees" if setup.total_monthly == setup.servers * price
                and setup.cores == setup.servers * server.cores else "disagrees"),
        Finding("Costi Dettagliati", f'"{setup.fixed_cost_claim}"',
                f"fixed only up to {setup.servers * capacity.previews} active previews; one more needs server "
                f"{setup.servers + 1} ({_eur((setup.servers + 1) * price)})", "disagrees"),
        Finding("Scalabilità", f"+1 server = {_eur(setup.server_monthly)} (~{setup.users_per_extra_server} users)",
                f"+1 server = {_eur(price)} for {capacity.previews} previews ({_eur(per_user_hetzner)} per user, vs "
                f"{_eur(config.fly.vm_monthly)} per Fly VM); the seed's 100-container row implies {implied:g}",
                "agrees" if setup.users_per_extra_server == capacity.previews else "disagrees"),
        Finding("Ridondanza", f"1 of {setup.servers} servers down: the other {setup.servers - 1} hold "
                f"~{setup.one_server_down_holds}", f"{setup.servers - 1} x {capacity.previews} = {one_down}",
                _close(setup.one_server_down_holds, one_down, tolerance=0.1 * one_down)),
        Finding("Ridondanza", f"2 down: 1 server holds ~{low}-{high}", f"{capacity.previews}",
                "agrees" if low <= capacity.previews <= high else "disagrees"),
    ]


def seed_findings(config: PlanConfig) -> list[Finding]:
    """Every check of the seed's tables against the model, in the seed's order."""
    return _setup_and_scaling(config)[:2] + _costs(config) + _revenue(config) + _resources(config) \
        + _setup_and_scaling(config)[2:]


def scenario_warnings(model: Scenario) -> list[str]:
    """What to know about running ``model.containers`` previews on ``model.servers`` servers."""
    warnings: list[str] = []
    if model.memory_used_percent > TIGHT_MEMORY_PERCENT:
        warnings.append(f"{model.containers} previews use {model.memory_used_percent:.0f}% of the usable memory of "
                        f"{model.servers} server(s): {model.capacity - model.containers} spare slot(s)")
    if model.capacity_one_down < model.containers:
        warnings.append(f"with one server down only {model.capacity_one_down} of {model.containers} previews fit "
                        f"(the rest queue): {model.servers + 1} servers give N+1 redundancy")
    if model.guaranteed_cores < 1:
        warnings.append(f"when all {model.containers} are busy each gets {model.guaranteed_cores:.2f} real cores "
                        "(compiles slow down together)")
    return warnings
