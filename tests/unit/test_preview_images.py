"""The templates' build contexts (from the checkout's images/preview) and the skip-when-built rule. No engine:
a recording stand-in for docker-py's ``APIClient`` answers ``inspect_image`` and ``build``."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from docker.errors import NotFound

from drape_fleet import preview_images


class RecordingApi:
    def __init__(self, labels: Mapping[str, str] | None = None, build_output: list[dict[str, Any]] | None = None):
        self.labels = labels
        self.build_output = build_output or [{"stream": "Step 1/1 : FROM base\n"}]
        self.builds: list[dict[str, Any]] = []

    def inspect_image(self, tag: str) -> dict[str, Any]:
        if self.labels is None:
            raise NotFound(f"no such image: {tag}")
        return {"Config": {"Labels": dict(self.labels)}}

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.builds.append(kwargs)
        return iter(self.build_output)


def test_a_templates_context_is_the_common_files_and_its_starter() -> None:
    files = preview_images.context_files("react")
    assert {"Dockerfile", "entrypoint.sh", "starter/package.json", "starter/index.html"} <= set(files)
    assert not [name for name in files if "node_modules" in name]
    with tarfile.open(fileobj=io.BytesIO(preview_images.context_tar(files))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == set(files)
    assert members["entrypoint.sh"].mode == 0o755 and members["Dockerfile"].mode == 0o644
    assert {m.mtime for m in members.values()} == {0}  # the same files make the same tar


def test_unknown_template_is_refused() -> None:
    with pytest.raises(KeyError, match="no template for 'svelte'"):
        preview_images.context_files("svelte")


def test_the_recipe_changes_with_the_files_and_the_base() -> None:
    files = preview_images.context_files("vue")
    same = preview_images.recipe(files, "node:22")
    assert preview_images.recipe(dict(files), "node:22") == same
    assert preview_images.recipe(files, "node:20") != same
    assert preview_images.recipe({**files, "starter/extra.js": b"x"}, "node:22") != same


def test_a_build_is_skipped_when_the_same_recipe_is_there_and_made_otherwise() -> None:
    files = {"Dockerfile": b"ARG BASE\nFROM $BASE\n"}
    wanted = preview_images.recipe(files, "base:1")
    built = RecordingApi(labels={preview_images.RECIPE_LABEL: wanted})
    assert preview_images.build_image(built, files, "t:1", base="base:1") == "t:1"
    assert built.builds == []
    stale, missing = RecordingApi(labels={preview_images.RECIPE_LABEL: "old"}), RecordingApi()
    for api in (stale, missing):
        preview_images.build_image(api, files, "t:1", base="base:1", labels={"x": "y"})
        [build] = api.builds
        assert build["buildargs"] == {"BASE": "base:1"}
        assert build["labels"] == {"x": "y", preview_images.RECIPE_LABEL: wanted}


def test_a_failed_build_says_why_with_the_end_of_its_log() -> None:
    api = RecordingApi(build_output=[{"stream": "Step 3/9 : RUN pnpm install\n"},
                                     {"error": "The command returned a non-zero code: 1"}])
    with pytest.raises(RuntimeError, match=r"building t:1 failed: The command returned a non-zero code: 1\n"
                                           r"Step 3/9 : RUN pnpm install"):
        preview_images.build_image(api, {"Dockerfile": b""}, "t:1", base="b")
