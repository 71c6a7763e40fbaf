"""`invoke bench.preview`: real projects through the runtime on the lab, every scenario beside the naive path
(bench/previews.py), printed as a table and drawn as a chart."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from invoke.context import Context
from invoke.tasks import task

from drape_fleet.console import console, fail, say
from drape_fleet.paths import project_root


def _load(name: str) -> ModuleType:
    """A benchmark script from bench/ (they live outside the package: the backend never installs them)."""
    path = project_root() / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"drape_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@task(help={"projects": "which of the lab's projects (default vite-react,vite-vue,next-app)",
            "out": "directory for the table, the rows (JSON) and the chart (PNG); default bench-results/"})
def preview(c: Context, projects: str = "vite-react,vite-vue,next-app", out: str = "bench-results") -> None:
    """On the lab: cold, warm, kept, pre-warmed and hot starts of real projects, each phase, beside the naive path."""
    from drape_fleet.environments import LAB, load
    from drape_fleet.ingress.credentials import lab_ca, link_key
    from drape_fleet.lab import gitserver, previews
    from drape_fleet.lab import projects as lab_projects
    from drape_fleet.runtime.service import PreviewRuntime
    from drape_fleet.tasks.common import engines_of

    bench = _load("previews")
    report = _load("previews_report")
    names = [name.strip() for name in projects.split(",") if name.strip()]
    unknown = sorted(set(names) - set(bench.FRAMEWORK))
    if unknown:
        fail(f"unknown project {', '.join(unknown)}: choose from {', '.join(bench.FRAMEWORK)}")
    target = load(LAB)
    settings = previews.lab_settings()
    engines = engines_of(target)
    try:
        for framework in sorted({bench.FRAMEWORK[name] for name in names}):
            previews.ship_image(engines.engines(), previews.ensure_lab_template(framework, target.fleet, say), say)
    finally:
        engines.close()
    made = lab_projects.ensure_projects(say)
    lab_projects.publish_all(settings, made, say)
    fleet = target.fleet.model_copy(update={"hosts": [h for h in target.fleet.hosts if h.name == bench.HOST]})
    runtime = PreviewRuntime.connect(fleet, pki_dir=target.env.pki_dir, background=False, reaper=False)
    started = time.monotonic()
    try:
        tokens = gitserver.Tokens(settings)
        state = bench.Bench(target, fleet, runtime, {n: gitserver.repo_url(settings, n) for n in names},
                            {n: gitserver.repo_url(settings, f"pub-{n}") for n in names},
                            lambda name: tokens.create(name, ttl_s=3600).repo_token(),
                            made, link_key(target), lab_ca(target), say)
        rows = bench.run(state, names)
    finally:
        runtime.close()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    table = report.render(rows)
    (directory / f"previews-{stamp}.txt").write_text(table + "\n")
    (directory / f"previews-{stamp}.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    png = report.chart(rows, directory / f"previews-{stamp}.png",
                       f"Previews on the lab ({bench.HOST}), {stamp}: each phase to the first 200")
    console.print(table, highlight=False, soft_wrap=True)
    console.print(f"[green]bench.preview[/green] done in {time.monotonic() - started:.0f} s: {png}")
