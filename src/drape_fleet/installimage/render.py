"""The installimage config and the post-install script, rendered from ``files/installimage/*.j2``.

jinja2 with StrictUndefined, so a value the layout does not have fails the render, not the server. (The
project's shared render function for ``files/`` is being written beside this; this module can move onto it.)
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path

import jinja2

from drape_fleet.installimage.layout import QUOTA_MOUNT_OPTIONS, InstallLayout
from drape_fleet.paths import project_root

POST_INSTALL_MARKER = "/root/.drape-post-install"
POST_INSTALL_MARKER_TEXT = "drape-fleet post-install done"


def templates_dir() -> Path:
    return project_root() / "files" / "installimage"


@cache
def _environment(directory: Path) -> jinja2.Environment:
    # Config files and a shell script, not HTML: nothing to escape. Shell values go through shell_quote.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False)  # noqa: S701
    environment.filters["shell_quote"] = shlex.quote
    return environment


def render_config(layout: InstallLayout) -> str:
    template = _environment(templates_dir()).get_template("installimage.conf.j2")
    return template.render(hostname=layout.hostname, boot_mode=layout.boot_mode, drives=layout.drives,
                           software_raid=layout.software_raid, raid_level=layout.raid_level,
                           partitions=layout.partitions, volumes=layout.volumes, image=layout.image)


def render_post_install(layout: InstallLayout) -> str:
    template = _environment(templates_dir()).get_template("post-install.sh.j2")
    return template.render(hostname=layout.hostname, quota_mounts=layout.quota_mounts, options=QUOTA_MOUNT_OPTIONS,
                           marker=POST_INSTALL_MARKER, marker_text=POST_INSTALL_MARKER_TEXT)
