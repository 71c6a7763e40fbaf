"""The plan for N containers as data (``plan_data``, what ``--json`` prints) and as the seed's tables in
Rich (``plan_tables``, built from that same data, so the two never differ)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from drape_fleet.plan import seed
from drape_fleet.plan.findings import scenario_warnings, seed_findings
from drape_fleet.plan.model import Scenario, scenario, server_capacity
from drape_fleet.plan.settings import PlanConfig


def _money(amount: float | None, currency: str) -> str:
    if amount is None:
        return "-"
    symbol = "€" if currency == "EUR" else f"{currency} "
    return f"{'-' if amount < 0 else ''}{symbol}{abs(amount):,.2f}"


def _scenario_data(model: Scenario) -> dict[str, Any]:
    return {"containers": model.containers, "users": model.users, "servers": model.servers,
            "previews_per_server": model.per_server, "capacity": model.capacity,
            "capacity_one_server_down": model.capacity_one_down, "fly_monthly": round(model.fly_monthly, 2),
            "hetzner_monthly": round(model.hetzner_monthly, 2), "revenue": round(model.revenue, 2),
            "fly_margin": round(model.fly_margin, 2), "hetzner_margin": round(model.hetzner_margin, 2),
            "fly_margin_percent": None if model.fly_margin_percent is None else round(model.fly_margin_percent, 1),
            "hetzner_margin_percent": None if model.hetzner_margin_percent is None
            else round(model.hetzner_margin_percent, 1),
            "real_cores_each_when_all_busy": round(model.guaranteed_cores, 2), "nominal_cores": model.nominal_cores,
            "burst_cores": model.burst_cores, "memory_limit_gib": model.memory_limit_gib,
            "memory_even_share_gib": round(model.memory_share_gib, 1),
            "memory_used_percent": round(model.memory_used_percent, 1)}


def plan_data(config: PlanConfig, containers: int, users: int | None = None) -> dict[str, Any]:
    """Everything the plan says for ``containers`` active previews (and ``users`` paying users)."""
    asked = scenario(config, containers, users)
    capacity = server_capacity(config)
    cost_counts = sorted({row.containers for row in seed.COSTS} | {containers})
    resource_counts = sorted({row.containers for row in seed.RESOURCES} | {containers})
    seed_costs = {row.containers: row for row in seed.COSTS}
    seed_resources = {row.containers: row for row in seed.RESOURCES}
    findings = seed_findings(config)
    return {
        "currency": config.currency,
        "asked": _scenario_data(asked),
        "capacity_model": {"usable_memory_gib": capacity.usable_memory_gib, "by_memory": capacity.by_memory,
                           "nominal_cores": capacity.nominal_cores, "by_cpu": capacity.by_cpu,
                           "previews_per_server": capacity.previews, "bound_by": capacity.bound_by,
                           "headroom_percent": config.capacity.headroom_percent,
                           "explanation": capacity.explanation},
        "server": {"name": config.hetzner.server, "monthly": config.hetzner.server_monthly,
                   "cores": config.hetzner.cores, "memory_gib": config.hetzner.memory_gib,
                   "nvme_drives": config.hetzner.nvme_drives},
        "offer": {"name": config.offer.name, "monthly_price": config.offer.monthly_price},
        "costs": [{**{k: v for k, v in _scenario_data(scenario(config, n)).items()
                      if k in ("containers", "servers", "fly_monthly", "hetzner_monthly")},
                   "seed": None if n not in seed_costs else {"fly_monthly": seed_costs[n].fly_monthly,
                                                             "hetzner_monthly": seed_costs[n].hetzner_monthly,
                                                             "servers": seed_costs[n].servers}}
                  for n in cost_counts],
        "resources": [{**_scenario_data(scenario(config, n)),
                       "seed": None if n not in seed_resources else {
                           "servers": seed_resources[n].servers, "cpu": seed_resources[n].cpu_per_container,
                           "cpu_is_burst": seed_resources[n].cpu_is_burst, "ram_gib": seed_resources[n].ram_gib}}
                      for n in resource_counts],
        "scaling": {"fly_per_user": config.fly.vm_monthly, "server_monthly": config.hetzner.server_monthly,
                    "previews_per_server": capacity.previews,
                    "hetzner_per_user": round(config.hetzner.server_monthly / capacity.previews, 2),
                    "seed_users_per_server": seed.SETUP.users_per_extra_server},
        "findings": [f.as_dict() for f in findings],
        "warnings": scenario_warnings(asked),
    }


def plan_tables(data: dict[str, Any]) -> list[Table]:
    """The seed's tables, computed, with the seed's own figures beside them."""
    cur, asked, server = data["currency"], data["asked"], data["server"]
    count, servers = asked["containers"], asked["servers"]

    def money(amount: float | None) -> str:
        return _money(amount, cur)

    setup = Table(title=f"Costi Dettagliati: {count} previews on {servers} x {server['name']}")
    for column in ("voce", "dettaglio", "costo/mese"):
        setup.add_column(column, justify="right" if column == "costo/mese" else "left")
    detail = f"{server['name']} ({server['cores']} core / {server['memory_gib']}GB / {server['nvme_drives']}x NVMe)"
    for index in range(1, min(servers, 6) + 1):
        setup.add_row(f"Server {index}", detail, money(server["monthly"]))
    if servers > 6:
        setup.add_row(f"Server 7..{servers}", detail, money(server["monthly"] * (servers - 6)))
    setup.add_row("[bold]Totale[/bold]", f"{servers * server['cores']} core / {servers * server['memory_gib']}GB RAM / "
                  f"{servers * server['nvme_drives']}x NVMe", f"[bold]{money(asked['hetzner_monthly'])}[/bold]")

    costs = Table(title="Confronto costi Fly.io vs Hetzner (model | seed)")
    for column in ("containers", "Fly.io", "seed", "Hetzner", "servers", "seed"):
        costs.add_column(column, justify="right")
    for row in data["costs"]:
        claim = row["seed"] or {}
        mark = " <" if row["containers"] == count else ""
        costs.add_row(f"{row['containers']}{mark}", money(row["fly_monthly"]), money(claim.get("fly_monthly")),
                      money(row["hetzner_monthly"]), str(row["servers"]),
                      f"{money(claim.get('hetzner_monthly'))} ({claim['servers']})" if claim else "-")

    offer = data["offer"]
    revenue = Table(title=f"Revenue vs Costi ({asked['users']} utenti piano {offer['name']} "
                          f"{money(offer['monthly_price'])})")
    for column in ("", "Fly.io", "Hetzner"):
        revenue.add_column(column, justify="right")
    revenue.add_row("Entrate", money(asked["revenue"]), money(asked["revenue"]))
    revenue.add_row("Costi infrastruttura", money(asked["fly_monthly"]), money(asked["hetzner_monthly"]))

    def margin(amount: float, percent: float | None) -> str:
        return f"[bold]{money(amount)}[/bold]" + ("" if percent is None else f" ({percent:.1f}%)")

    revenue.add_row("Margine", margin(asked["fly_margin"], asked["fly_margin_percent"]),
                    margin(asked["hetzner_margin"], asked["hetzner_margin_percent"]))

    resources = Table(title="Risorse per container (model | seed)")
    for column in ("active", "servers", "seed", "real cores each, all busy", "nominal / burst", "memory limit",
                   "even share", "seed CPU", "seed RAM"):
        resources.add_column(column, justify="right")
    for row in data["resources"]:
        claim = row["seed"] or {}
        resources.add_row(f"{row['containers']}{' <' if row['containers'] == count else ''}", str(row["servers"]),
                          str(claim.get("servers", "-")), f"{row['real_cores_each_when_all_busy']:.2f}",
                          f"{row['nominal_cores']:g} / {row['burst_cores']}", f"{row['memory_limit_gib']:g} GiB",
                          f"{row['memory_even_share_gib']:.1f} GiB",
                          f"~{claim['cpu']:g}{' burst' if claim['cpu_is_burst'] else ''}" if claim else "-",
                          f"{claim['ram_gib']:g} GB" if claim else "-")

    scaling = Table(title="Scalabilità")
    for column in ("", "model", "seed"):
        scaling.add_column(column)
    scale = data["scaling"]
    scaling.add_row("Fly.io", f"+1 VM = +{money(scale['fly_per_user'])} (1 user)", "+1 VM = +€12")
    scaling.add_row("Hetzner", f"+1 server = +{money(scale['server_monthly'])} ({scale['previews_per_server']} users, "
                    f"{money(scale['hetzner_per_user'])} each)",
                    f"+1 server = +€99 (~{scale['seed_users_per_server']} users)")

    findings = [f for f in data["findings"] if f["verdict"] != "agrees"]
    flags = Table(title=f"Where the seed's tables disagree with the model ({len(data['findings']) - len(findings)} "
                        f"of {len(data['findings'])} checks agree)")
    for column in ("table", "the seed says", "the model says", "verdict"):
        flags.add_column(column)
    colours = {"rounded": "dim", "tight": "yellow", "disagrees": "red"}
    for finding in findings:
        colour = colours[finding["verdict"]]
        flags.add_row(finding["table"], finding["seed"], finding["model"], f"[{colour}]{finding['verdict']}[/{colour}]")
    return [setup, costs, revenue, resources, scaling, flags]
