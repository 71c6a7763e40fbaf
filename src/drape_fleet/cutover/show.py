"""How the cutover tasks print: plans (gate and steps), the status, the report's table (Rich)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape as e
from rich.table import Table

from drape_fleet.console import console
from drape_fleet.cutover.report import ReportRow
from drape_fleet.cutover.steps import Plan


def show_plan(plan: Plan, title: str) -> None:
    console.print(f"[bold]{e(title)}[/bold]")
    if plan.checks:
        console.print("gate:")
        for check in plan.checks:
            colour = "green" if check.ok else "red"
            line = f"  [{colour}]{'ok' if check.ok else 'FAILED'}[/{colour}] {e(check.name)}: {e(check.value)} " \
                   f"[dim](needs {e(check.limit)})[/dim]"
            if not check.ok and check.fix:
                line += f"\n      fix: {e(check.fix)}"
            console.print(line, soft_wrap=True)
    console.print("plan:")
    for step in plan.steps:
        if step.changes:
            console.print(f"  [cyan]{step.name}[/cyan] {e(step.title)}:")
            for change in step.changes:
                console.print(f"      - {e(change)}", soft_wrap=True)
        else:
            console.print(f"  [cyan]{step.name}[/cyan] {e(step.title)}: no change", soft_wrap=True)
        for note in step.notes:
            console.print(f"      ({e(note)})", soft_wrap=True)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def show_status(data: dict[str, Any]) -> None:
    phase = data["phase"]
    head = f"[bold]cutover: phase {phase} done[/bold] ({e(data['phase_name'])})"
    if data["applying"]:
        head += f"; [yellow]phase {data['applying']} was started and did not finish[/yellow] (done: " \
                f"{e(', '.join(data['steps_done']) or 'no step')}): run `invoke cutover phase{data['applying']} " \
                "--apply` again, or `invoke cutover rollback --apply`"
    if data["rolling_back"]:
        head += f"; [yellow]the rollback of phase {data['rolling_back']} did not finish[/yellow]: run `invoke " \
                "cutover rollback --apply` again"
    console.print(head, soft_wrap=True)
    console.print("phases: " + ", ".join(f"{n} {s}" for n, s in data["phases"].items()))
    policy = data["policy"]
    features = ", ".join(name for name, on in policy["features"].items() if on) or "none"
    console.print(f"routing policy (generation {policy['generation']}): {e(policy['describe'])}; features on: "
                  f"{features}", soft_wrap=True)
    split = data.get("split", {})
    if "error" in split:
        console.print(f"starts this phase: [red]{e(split['error'])}[/red]", soft_wrap=True)
    else:
        share = "-" if split["hetzner_share_percent"] is None else f"{split['hetzner_share_percent']:g}%"
        console.print(f"starts this phase: Hetzner {split['hetzner']['starts']} ({split['hetzner']['failed']} failed, "
                      f"p95 {_seconds(split['hetzner']['p95_s'])}), Fly {split['fly']['starts']} "
                      f"({split['fly']['failed']} failed, p95 {_seconds(split['fly']['p95_s'])}), fallbacks to Fly "
                      f"{split['fallbacks']}, Hetzner's share of starts {share}", soft_wrap=True)
    hetzner = data.get("hetzner", {})
    console.print("Hetzner: " + (f"[red]{e(hetzner['error'])}[/red]" if "error" in hetzner else
                                 f"{hetzner['previews']} preview(s) (" + ", ".join(
                                     f"{host} {n}" for host, n in hetzner["by_host"].items()) + ")"), soft_wrap=True)
    fly = data.get("fly")
    if fly is not None:
        by_state = ", ".join(f"{n} {state}" for state, n in fly.get("by_state", {}).items()) or "none"
        console.print("Fly: " + (f"[red]{e(fly['error'])}[/red]" if "error" in fly else
                                 f"{fly['machines']} preview machine(s) ({by_state}); stopped by the cutover "
                                 f"{fly['stopped_by_cutover']}, destroyed {fly['destroyed_by_cutover']}"),
                      soft_wrap=True)
    store = data["store"]
    line = "state store: generation per host " + ", ".join(f"{h} {g}" for h, g in store["generations"].items())
    if store["behind"]:
        line += f"; behind (catching up): {', '.join(store['behind'])}"
    if store["unreachable"]:
        line += f"; [red]unreachable[/red]: {', '.join(store['unreachable'])}"
    if store["divergent"]:
        line += "; [yellow]two records share the newest generation (the next change settles it)[/yellow]"
    console.print(line, soft_wrap=True)
    for host, problems in store["damaged"].items():
        console.print(f"  [red]damaged on {host}[/red]: {e('; '.join(problems))}", soft_wrap=True)
    if data.get("gate"):
        console.print(f"gate into phase {data['next_phase']}:")
        for check in data["gate"]:
            colour = "green" if check["ok"] else "red"
            text = f"  [{colour}]{'ok' if check['ok'] else 'FAILED'}[/{colour}] {e(check['check'])}: " \
                   f"{e(check['value'])} [dim](needs {e(check['limit'])})[/dim]"
            if not check["ok"] and check["fix"]:
                text += f"\n      fix: {e(check['fix'])}"
            console.print(text, soft_wrap=True)
    if data["missing"]:
        console.print("[yellow]missing (phase 5)[/yellow]: " + e("; ".join(data["missing"])), soft_wrap=True)
    if data["events"]:
        console.print("recent:")
        for event in data["events"]:
            console.print(f"  {event['at'][:19]} {e(event['by'])}: {e(event['text'])}", soft_wrap=True)


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
