"""The fleet file's ``[previews]`` section: the shared store's trusted filling and the preview URL's ingress.

Both have defaults, so a fleet file without the section is valid; the ingress is off until ``[previews.ingress]``
names the preview domain::

    [previews.store]
    popular = ["react@^19", "vite@^7", "next@^16"]   # filled into every host's store by `invoke cache.warm`
    recent_projects = 50                             # and the lockfiles of the 50 most recently started projects

    [previews.ingress]
    domain = "preview.drape.dev"      # previews at https://<workspace>.<host>.preview.drape.dev
    certificates = "files"            # <certificate_dir>/<host>/{cert,key}.pem, a wildcard per host

Secrets are not here: the key that signs preview links is ``preview_url_key`` (``drape_fleet.config.secrets``).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from drape_fleet.config.base import FrozenModel, invalid

PackageSpec = Annotated[str, StringConstraints(
    pattern=r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*@[0-9A-Za-z^~<>=.*|x +-]{1,60}$")]
"""``name@range`` as in package.json (``react@^19``, ``@vitejs/plugin-react@^5``)."""
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
Domain = Annotated[str, StringConstraints(pattern=rf"^{_LABEL}(?:\.{_LABEL})+$")]

DEFAULT_POPULAR: tuple[str, ...] = (
    # What the generators of the projects previews see most put in a new project (create-vite react-ts and
    # vue-ts, create-next-app with Tailwind and ESLint), by major: the store keeps their current releases.
    "react@^19", "react-dom@^19", "@types/react@^19", "@types/react-dom@^19", "vite@^7",
    "@vitejs/plugin-react@^5", "vue@^3", "@vitejs/plugin-vue@^6", "vue-tsc@^3", "next@^16", "typescript@^5",
    "tailwindcss@^4", "@tailwindcss/postcss@^4", "eslint@^9", "eslint-config-next@^16", "@types/node@^22",
)


class StoreSettings(FrozenModel):
    """What ``invoke cache.warm`` puts in each host's shared pnpm store (as its owner, read-only for previews)."""

    popular: tuple[PackageSpec, ...] = DEFAULT_POPULAR
    """Packages most projects use, resolved to their newest matching release at each warm."""
    recent_projects: Annotated[int, Field(ge=0, le=1000)] = 50
    """The lockfiles of this many of the most recently started projects on the host are filled too."""
    lockfile_max_kib: Annotated[int, Field(ge=16, le=65536)] = 4096
    """A project's package.json or lockfile larger than this is left out (read from a tenant's container)."""
    workspace_budget_gib: Annotated[float, Field(gt=0, le=100000)] = 400.0
    """The kept workspaces on a host (clones, ``node_modules``, caches) are pruned to this, least recently started
    first, by ``invoke cache.workspaces --prune`` (and ``cache.warm``). They live on Docker's data root."""
    job_memory_mib: Annotated[int, Field(ge=512, le=65536)] = 3072
    job_timeout_s: Annotated[int, Field(ge=60, le=86400)] = 3600


class IngressSettings(FrozenModel):
    """Each host's HTTPS ingress (Caddy) for its previews: ``https://<workspace>.<host>.<domain>``."""

    domain: Domain
    """Under the editor's registrable domain (``preview.drape.dev`` for ``app.drape.dev``), so the session cookie
    is same-site inside the editor's iframe."""
    certificates: Literal["files", "lab-ca"] = "files"
    """``files``: a wildcard certificate per host (``*.<host>.<domain>``) that ops obtain (DNS-01) and keep in
    ``certificate_dir/<host>/{cert,key}.pem``; ``lab-ca``: issued by the lab's own CA (the lab only)."""
    certificate_dir: str = "~/.config/drape-fleet/ingress"
    https_port: Annotated[int, Field(ge=1, le=65535)] = 443
    gate_port: Annotated[int, Field(ge=1024, le=65535)] = 7480
    """The host-local gate (link check, session cookie, route lookup) listens on 127.0.0.1 only."""
    link_ttl_s: Annotated[int, Field(ge=10, le=3600)] = 120
    """A signed link the backend hands out must be opened within this long."""
    session_hours: Annotated[float, Field(gt=0, le=168)] = 12.0
    """The cookie a link sets lasts this long (the editor hands out a new link when it runs out)."""
    dns_ttl: Annotated[int, Field(ge=60, le=86400)] = 300

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.https_port == self.gate_port:
            raise invalid("same_port", "the gate and HTTPS share a port", at="gate_port",
                          fix="give the gate its own port, e.g. 7480")
        if len(self.domain) > 200:
            raise invalid("domain_too_long", "the domain leaves no room for workspace and host names", at="domain",
                          fix="use a shorter domain, e.g. preview.drape.dev")
        return self

    def host_domain(self, host: str) -> str:
        """The name the host's previews live under: ``<host>.<domain>``."""
        return f"{host}.{self.domain}"


class PreviewsSettings(FrozenModel):
    store: StoreSettings = StoreSettings()
    ingress: IngressSettings | None = None
