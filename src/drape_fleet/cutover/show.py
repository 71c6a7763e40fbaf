"""How the cutover tasks print: plans (gate and steps), the status, the report's table (Rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from drape_fleet.console import console
from drape_fleet.cutover.report import ReportRow
from drape_fleet.cutover.steps import Plan


def show_plan(plan: Plan, title: str) -> None:
    console.print(f"[bold]{title}[/bold]")
    if plan.checks:
        console.print("gate:")
        for check in plan.checks:
            colour = "green" if check.ok else "red"
            line = f"  [{colour}]{'ok' if check.ok else 'FAILED'}[/{colour}] {check.name}: {check.value} " \
                   f"[dim](needs {check.limit})[/dim]"
            if not check.ok and check.fix:
                line += f"\n      fix: {check.fix}"
            console.print(line, soft_wrap=True)
    console.print("plan:")
    for step in plan.steps:
        if step.changes:
            console.print(f"  [cyan]{step.name}[/cyan] {step.title}:")
            for change in step.changes:
                console.print(f"      - {change}", soft_wrap=True)
        else:
            console.print(f"  [cyan]{step.name}[/cyan] {step.title}: no change", soft_wrap=True)
        for note in step.notes:
            console.print(f"      ({note})", soft_wrap=True)


def show_status(data: dict[str, Any]) -> None:
    phase = data["phase"]
    head = f"[bold]cutover: phase {phase} done[/bold] ({data['phase_name']})"
    if data["applying"]:
        head += f"; [yellow]phase {data['applying']} was started and did not finish[/yellow] (done: " \
                f"{', '.join(data['steps_done']) or 'no step'})"
    if data["rolling_back"]:
        head += f"; [yellow]the rollback of phase {data['rolling_back']} did not finish[/yellow]"
    console.print(head)
    console.print("phases: " + ", ".join(f"{n} {s}" for n, s in data["phases"].items()))
    policy = data["policy"]
    console.print(f"routing policy (generation {policy['generation']}): {policy['describe']}; features "
                  f"{policy['features']}")
    split = data.get("split", {})
    if "error" in split:
        console.print(f"starts this phase: [red]{split['error']}[/red]")
    else:
        console.print(f"starts this phase: Hetzner {split['hetzner']['starts']} ({split['hetzner']['failed']} failed, "
                      f"p95 {split['hetzner']['p95_s']} s), Fly {split['fly']['starts']} ({split['fly']['failed']} "
                      f"failed, p95 {split['fly']['p95_s']} s), fallbacks to Fly {split['fallbacks']}, Hetzner share "
                      f"{split['hetzner_share_percent']}%")
    hetzner = data.get("hetzner", {})
    console.print("Hetzner: " + (f"[red]{hetzner['error']}[/red]" if "error" in hetzner else
                                 f"{hetzner['previews']} preview(s) " + str(hetzner["by_host"])))
    fly = data.get("fly")
    if fly is not None:
        console.print("Fly: " + (f"[red]{fly['error']}[/red]" if "error" in fly else
                                 f"{fly['machines']} preview machine(s) {fly['by_state']}; stopped by the cutover "
                                 f"{fly['stopped_by_cutover']}, destroyed {fly['destroyed_by_cutover']}"))
    store = data["store"]
    line = f"state store: generation per host {store['generations']}"
    if store["behind"]:
        line += f"; behind (catching up): {', '.join(store['behind'])}"
    if store["unreachable"]:
        line += f"; [red]unreachable[/red]: {', '.join(store['unreachable'])}"
    if store["divergent"]:
        line += "; [yellow]two records share the newest generation (the next change settles it)[/yellow]"
    console.print(line)
    for host, problems in store["damaged"].items():
        console.print(f"  [red]damaged on {host}[/red]: {'; '.join(problems)}")
    if data.get("gate"):
        console.print(f"gate into phase {data['next_phase']}:")
        for check in data["gate"]:
            colour = "green" if check["ok"] else "red"
            console.print(f"  [{colour}]{'ok' if check['ok'] else 'FAILED'}[/{colour}] {check['check']}: "
                          f"{check['value']} [dim](needs {check['limit']})[/dim]", soft_wrap=True)
    if data["missing"]:
        console.print("[yellow]missing (phase 5)[/yellow]: " + "; ".join(data["missing"]), soft_wrap=True)
    if data["events"]:
        console.print("recent:")
        for event in data["events"]:
            console.print(f"  {event['at'][:19]} {event['by']}: {event['text']}", soft_wrap=True)


def report_table(rows: list[ReportRow]) -> Table:
    table = Table(title="preview starts: measured vs the plan (\"Prestazioni Preview\")")
    for column in ("phase", "provider", "kind", "starts", "failed", "p50 s", "p95 s", "max s", "the plan says",
                   "verdict"):
        table.add_column(column, justify="right" if column in ("starts", "failed", "p50 s", "p95 s", "max s")
                         else "left")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in rows:
        colour = {"slower than the plan": "red", "no successful start": "red"}.get(row.verdict, "green")
        table.add_row(str(row.phase), row.provider, row.kind, str(row.starts),
                      f"{row.failed} ({row.error_percent:g}%)" if row.failed else "0", seconds(row.p50_s),
                      seconds(row.p95_s), seconds(row.max_s), row.expected, f"[{colour}]{row.verdict}[/{colour}]")
    return table
