"""Fixtures for real projects in previews: the lab's git server holding the generated projects, and the Node 22
template image. Previews run directly on this machine's engine, on the lab's public network (where the git
server is), the way the runtime will run them once the handover is wired in. Like every lab fixture they FAIL
(never skip) when something cannot be prepared.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from preview_support import PreviewLab

from drape_fleet.config import FleetConfig


@pytest.fixture(scope="session")
def preview_lab(lab_fleet: FleetConfig) -> Iterator[PreviewLab]:
    from drape_fleet.lab import gitserver, node_images, previews, projects

    def say(message: str) -> None:
        print(f"[previews] {message}")

    try:
        settings = previews.lab_settings()
        image = node_images.ensure_template("react", say)
        made = projects.ensure_projects(say)
        projects.publish_all(settings, made, say)
        ca = gitserver.ca_file(settings).read_bytes()
    except Exception as exc:  # the lab must work for these tests: fail, never skip
        pytest.fail(f"the previews lab could not be prepared: {exc}", pytrace=False)
    client = docker.from_env(timeout=300)
    yield PreviewLab(settings=settings, client=client, image=image, ca=ca, projects=made)
    for container in client.containers.list(all=True, filters={"label": "drape.test=previews"}):
        container.remove(force=True)
    client.close()
