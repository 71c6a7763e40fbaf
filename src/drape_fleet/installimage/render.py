"""The installimage config and the post-install script, rendered from ``files/installimage/*.j2`` through the
project's one render function (StrictUndefined: a value the layout does not have fails the render, not the
server)."""

from __future__ import annotations

from drape_fleet.installimage.layout import QUOTA_MOUNT_OPTIONS, InstallLayout
from drape_fleet.provision.render import render

POST_INSTALL_MARKER = "/root/.drape-post-install"
POST_INSTALL_MARKER_TEXT = "drape-fleet post-install done"


def render_config(layout: InstallLayout) -> str:
    return render("installimage/installimage.conf.j2", hostname=layout.hostname, boot_mode=layout.boot_mode,
                  drives=layout.drives, software_raid=layout.software_raid, raid_level=layout.raid_level,
                  partitions=layout.partitions, volumes=layout.volumes, image=layout.image)


def render_post_install(layout: InstallLayout) -> str:
    return render("installimage/post-install.sh.j2", hostname=layout.hostname, quota_mounts=layout.quota_mounts,
                  options=QUOTA_MOUNT_OPTIONS, marker=POST_INSTALL_MARKER, marker_text=POST_INSTALL_MARKER_TEXT)
