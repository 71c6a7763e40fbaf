"""Settings the runtime reads (per environment): preview sizes, frameworks, persistence, queueing, engines.

Every default here is the production value from the migration plan ("Risorse per container": 4 cores that
may burst, 7 GB memory; "Container persistenti": 30 minutes). The lab's fleet file overrides the sizes so
that a 4 GiB stand-in host fills up after a handful of previews and queueing is really exercised.

CPU semantics (read this before changing ``cpus``):

* ``cpus`` is the *nominal* share of a preview. It becomes the container's CPU weight
  (``cpu_shares = 1024 * cpus``): when the host is busy, CPU time is divided in proportion to these
  weights, so every preview gets at least about its nominal cores. There is no quota by default, so a
  preview alone on an idle host may burst to all of the host's cores (the plan's "burst su tutti i 16 core").
* ``cpu_limit`` (optional) is a hard ceiling in cores (``nano_cpus``); leave it unset to allow the burst.
* Placement counts nominal cores against ``capacity.cpus * cpu_overcommit``: CPU is shared, so a host
  takes more nominal cores than it has (the plan runs ~17 previews x 4 cores on 16 cores). Memory is never
  overcommitted: the sum of the previews' memory limits stays within ``capacity.memory_gib``.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from drape_fleet.config.base import FrozenModel, invalid
from drape_fleet.config.provisioning import LAB_RANGE

FrameworkName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
LabelValue = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9.-]{0,62}$")]

# Capabilities a dev server may be given back after ``cap_drop=ALL``. The templates run as an unprivileged
# user on a port above 1024 and need none of them; the list exists so that a framework that does need one
# is an explicit, reviewed configuration change instead of a silent widening.
ALLOWED_CAPABILITIES = frozenset({"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "NET_BIND_SERVICE", "KILL"})

_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


class PreviewResources(FrozenModel):
    """What one preview container gets (and what placement reserves for it)."""

    cpus: Annotated[float, Field(gt=0, le=256)] = 4.0
    cpu_limit: Annotated[float, Field(gt=0, le=256)] | None = None
    memory_mib: Annotated[int, Field(ge=64)] = 7 * 1024
    pids_limit: Annotated[int, Field(ge=32)] = 4096
    disk_gib: Annotated[int, Field(ge=1)] | None = 20
    """Size of the writable layer (``storage_opt size``). Required where ``RuntimeSettings.disk_limit`` is
    ``required`` (production): there it is set on every preview, and a host whose engine cannot enforce it
    takes no previews."""
    tmp_mib: Annotated[int, Field(ge=16)] = 512
    """``/tmp`` as tmpfs: bounded, and charged to the preview's memory."""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024

    @model_validator(mode="after")
    def _limit_not_below_share(self) -> Self:
        if self.cpu_limit is not None and self.cpu_limit < self.cpus:
            raise invalid("cpu_limit_below_share", f"cpu_limit {self.cpu_limit} is below cpus {self.cpus}",
                          at="cpu_limit", fix="raise cpu_limit to at least cpus, or leave it out to allow bursts")
        return self


class Framework(FrozenModel):
    """A preview template: its image and how its dev server is reached."""

    image: str
    port: Annotated[int, Field(ge=1024, le=65535)] = 3000
    ready_path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._~/-]*$")] = "/"
    """What the runtime GETs to see the dev server answer (any status below 500). For a template the start page is
    already compiled (``ready_when``): a path the dev server answers without rendering anything serves better
    (``NEXT_PROBE_PATH``), as the runtime asks on every probe and every confirmation."""
    ready_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    resources: PreviewResources | None = None
    """This template's own default size, where its dev server needs other than ``preview`` (a Next.js
    compile needs more memory than a Vite server)."""
    ready_when: Literal["answers", "page-compiled"] = "answers"
    """``answers``: ready as soon as the port answers HTTP; ``page-compiled`` (the templates, images/preview): when
    the phase file also says ``ready``, which the template's supervisor writes once the start page and its assets
    are compiled (docs/previews.md), so the user's first page is not a compile."""
    keep_workspace: bool = False
    """Mount the workspace's own volume at ``/workspace`` (the clone, ``node_modules``, framework caches), kept after
    the container, so the next start of the workspace installs nothing and compiles less (the templates)."""

    @model_validator(mode="after")
    def _image_is_a_reference(self) -> Self:
        if not _IMAGE_RE.fullmatch(self.image):
            raise invalid("bad_image", f"{self.image!r} is not an image reference", at="image",
                          fix="write it like drape-nextjs:1 or registry.example/drape-vue:2024-06")
        return self


NEXT_PROBE_PATH = "/_next/static/drape-probe"
"""Next.js answers a missing static file with a 404 in milliseconds; a GET of the start page renders it (tens to
hundreds of milliseconds of the dev server's CPU). Vite answers ``/`` with its index page, as fast."""


def _default_frameworks() -> dict[str, Framework]:
    return {
        name: Framework(image=f"drape-{name}:1", port=3000, ready_when="page-compiled", keep_workspace=True,
                        ready_path=NEXT_PROBE_PATH if name == "nextjs" else "/")
        for name in ("nextjs", "react", "vue")
    }


class RuntimeSettings(FrozenModel):
    owner: LabelValue = "drape-fleet"
    """The value of the ``drape.owner`` label on everything the runtime makes; objects without it (or with
    another value) are never touched."""

    preview: PreviewResources = PreviewResources()
    max_preview: PreviewResources | None = None
    """The largest resources a single request may ask for; defaults to ``preview`` (no overrides)."""
    cpu_overcommit: Annotated[float, Field(ge=1, le=16)] = 5.0
    frameworks: dict[FrameworkName, Framework] = Field(default_factory=_default_frameworks)

    persist_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0
    """A preview lives this long after its last activity, then the reaper stops and removes it."""
    reaper_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    activity_flush_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    """Activity pings are buffered in memory and written to the hosts this often (off the request path)."""

    queue_limit: Annotated[int, Field(ge=0, le=10000)] = 200
    queue_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    claim_timeout_s: Annotated[float, Field(ge=10, le=3600)] = 120.0
    """A container still in ``created`` state after this long is a claim its process abandoned: removed."""

    disk_limit: Literal["required", "where-supported"] = "required"
    """``required``: every preview gets its writable-layer size limit (``disk_gib`` must be set), and a host whose
    engine cannot enforce one (overlay2 on XFS with project quotas) is not placeable; production must say this.
    ``where-supported``: the limit is set where the engine can, and ``hosts()`` says where it cannot (the lab:
    its engines run on the stand-ins' overlay without project quotas)."""

    api_version: Annotated[str, StringConstraints(pattern=r"^1\.\d{2}$")] = "1.41"
    """Engine API version, passed explicitly so building a client never calls the daemon (1.41: Debian 12's
    docker.io 20.10; Docker CE 25+ still accepts it)."""
    request_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    snapshot_timeout_s: Annotated[float, Field(gt=0, le=60)] = 4.0
    """How long a placement waits for all hosts' listings; slower hosts are left out of that decision."""
    slow_call_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Calls that take long on a healthy host: removing a preview (a real project's ``node_modules``), loading an
    image. Their own budget: a slow removal is not a dead host."""
    probe_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    """A health check (``GET /_ping``) that takes longer fails. Only failed health checks count against a host:
    after two in a row it is down (calls refused at once, placement goes elsewhere) until one succeeds."""
    preview_read_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    """The total time one read from a preview may take (its phase file, its log tail, one HTTP readiness probe),
    however the preview answers (a dev server trickling a byte a second holds nothing longer than this)."""
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    backoff_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Health checks of a down host are spaced from ``backoff_initial_s`` to this (exponential, with jitter)."""
    spare_networks: Annotated[int, Field(ge=0, le=32)] = 2
    """Preview networks kept ready per host, so that a start does not wait for one to be made (about 70 ms of
    bridge and firewall set-up on the engine). Each preview still gets a network of its own."""

    subnet_pool: IPv4Network = IPv4Network("10.240.0.0/16")
    """Preview networks get a /28 from this range (one network per workspace), chosen at random and
    made unique by the engine, which refuses overlapping pools. The fleet checks it against the engines' own
    ranges and the addresses it uses (``address_plan``)."""
    private_repo_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    """Private ranges a repository may be in (a self-hosted git server on the private network; the lab's). Every
    other private, loopback, link-local or reserved address is refused as a repository host, written or resolved."""
    repo_ca_file: Path | None = None
    """A CA certificate (PEM) that previews trust for repositories besides the public ones: a self-hosted git
    server with its own CA (the lab's). Handed to the preview as ``/drape/git-ca.pem`` with the token; read at the first
    start that needs it (the lab writes its fleet file before its CA exists)."""
    pnpm_store: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]+$")] = "/srv/drape/pnpm-store"
    """Host path of the shared pnpm store, mounted read-only at ``/pnpm-store`` in every preview."""
    run_as: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{2,9}:[1-9][0-9]{2,9}$")] = "1000:1000"
    cap_add: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        pool = self.subnet_pool
        if pool.prefixlen > 24 or not pool.is_private:
            raise invalid("bad_pool", f"{pool} is too small or not private", at="subnet_pool",
                          fix="use a private /24 or larger, e.g. 10.240.0.0/16")
        if pool.overlaps(LAB_RANGE):
            raise invalid("overlaps_lab", f"{pool} overlaps the lab range {LAB_RANGE}", at="subnet_pool",
                          fix="pick a range inside 10.0.0.0/8 that the fleet does not use, e.g. 10.240.0.0/16")
        unknown = sorted(set(self.cap_add) - ALLOWED_CAPABILITIES)
        if unknown:
            raise invalid("capability_not_allowed", f"capabilities {', '.join(unknown)} may not be given back",
                          at="cap_add", fix=f"use only {', '.join(sorted(ALLOWED_CAPABILITIES))}")
        if not self.frameworks:
            raise invalid("no_frameworks", "no frameworks are configured", at="frameworks",
                          fix="add at least one, e.g. [runtime.frameworks.nextjs] image = \"drape-nextjs:1\"")
        if self.backoff_max_s < self.backoff_initial_s:
            raise invalid("backoff_order", "backoff_max_s is below backoff_initial_s", at="backoff_max_s",
                          fix="make backoff_max_s at least backoff_initial_s")
        largest = self.largest_preview
        if self.disk_limit == "required":
            self._disk_sizes_given()
        for field in ("cpus", "memory_mib", "pids_limit", "tmp_mib"):
            if getattr(largest, field) < getattr(self.preview, field):
                raise invalid("max_below_default", f"max_preview.{field} is below preview.{field}",
                              at=f"max_preview.{field}", fix="make max_preview at least as large as preview")
            for name, framework in sorted(self.frameworks.items()):
                if framework.resources is not None and getattr(framework.resources, field) > getattr(largest, field):
                    raise invalid("framework_above_max", f"frameworks.{name}.resources.{field} is above the "
                                  "largest preview allowed", at=f"frameworks.{name}.resources.{field}",
                                  fix="lower it, or raise max_preview")
        return self

    def _disk_sizes_given(self) -> None:
        sizes: dict[str, PreviewResources | None] = {"preview": self.preview, "max_preview": self.max_preview}
        sizes.update({f"frameworks.{n}.resources": f.resources for n, f in sorted(self.frameworks.items())})
        for where, resources in sizes.items():
            if resources is not None and resources.disk_gib is None:
                raise invalid("disk_limit_required", f"{where}.disk_gib is not set but disk_limit is 'required'",
                              at=f"{where}.disk_gib", fix="give every preview size a disk_gib (e.g. 20)")

    def default_resources(self, framework: str) -> PreviewResources:
        """What a preview of ``framework`` gets when the backend asks for no particular size."""
        own = self.frameworks[framework].resources
        return self.preview if own is None else own

    @property
    def largest_preview(self) -> PreviewResources:
        return self.max_preview or self.preview

    @property
    def persist_s(self) -> float:
        return self.persist_minutes * 60.0


def production_runtime_problem(runtime: RuntimeSettings) -> PydanticCustomError | None:
    """What production may not relax (checked when a fleet file loads): every preview has a disk limit."""
    if runtime.disk_limit != "required":
        return invalid("production_disk_limit", "production previews must have a disk limit, but "
                       f"runtime.disk_limit is {runtime.disk_limit!r}", at="runtime.disk_limit",
                       fix='remove the setting (the default is "required"); hosts must put Docker on XFS with '
                           "project quotas (provisioning.storage)")
    return None
