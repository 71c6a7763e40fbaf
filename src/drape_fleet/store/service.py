"""What the tasks call, per host: the sources of a fill, the fill (or rebuild) itself, and the store's status."""

from __future__ import annotations

from datetime import timedelta

from drape_fleet.config import FleetConfig
from drape_fleet.preview_images import TEMPLATES
from drape_fleet.runtime.engines import Engine
from drape_fleet.store.job import JobReport, job_image, run_job
from drape_fleet.store.sources import Source, popular_source, read_projects, read_templates, select
from drape_fleet.store.status import StoreStatus, store_status
from drape_fleet.store.workspaces import PrunePlan, kept_workspaces, plan


def template_images(fleet: FleetConfig) -> dict[str, str]:
    """The preview templates the fleet runs (the frameworks built from images/preview), by framework."""
    return {name: framework.image for name, framework in fleet.runtime.frameworks.items() if name in TEMPLATES}


def sources_for(engine: Engine, fleet: FleetConfig) -> list[Source]:
    """Everything one fill of this host's store covers, read from the host now."""
    settings = fleet.previews.store
    image = job_image(fleet.runtime.frameworks, TEMPLATES)
    templates = read_templates(engine, template_images(fleet), settings.lockfile_max_kib * 1024)
    projects = read_projects(engine, fleet.runtime.owner, settings, image) if settings.recent_projects else []
    popular = popular_source(settings.popular) if settings.popular else None
    return select(templates, popular, projects, settings.recent_projects)


def fill(engine: Engine, fleet: FleetConfig, *, rebuild: bool = False,
         sources: list[Source] | None = None) -> JobReport:
    """Fill the host's store from its sources (``rebuild``: build a new store from them and swap it in)."""
    image = job_image(fleet.runtime.frameworks, TEMPLATES)
    chosen = sources if sources is not None else sources_for(engine, fleet)
    return run_job(engine, image, fleet.provisioning.cache, fleet.previews.store, chosen, rebuild=rebuild)


def status(engine: Engine, fleet: FleetConfig, *, window: timedelta = timedelta(days=7)) -> StoreStatus:
    image = job_image(fleet.runtime.frameworks, TEMPLATES)
    return store_status(engine, image, fleet.provisioning.cache, fleet.runtime.owner, window=window,
                        max_bytes=fleet.previews.store.lockfile_max_kib * 1024)


def workspaces(engine: Engine, fleet: FleetConfig) -> PrunePlan:
    """The host's kept workspaces, measured, and which would go to fit ``workspace_budget_gib``."""
    image = job_image(fleet.runtime.frameworks, TEMPLATES)
    budget = int(fleet.previews.store.workspace_budget_gib * 1024 * 1024)
    return plan(kept_workspaces(engine, fleet.runtime.owner, image), budget)
