"""What the template's supervisor decides from a project's own files, run for real in one container of the Node 22
template: the pnpm major its ``packageManager`` asks for (pnpm's own record of who installed says which ran), the
Node its ``.nvmrc`` / ``.node-version`` / ``engines.node`` asks for, npm and Yarn 1 lockfiles on the slower path,
a kept workspace that installs nothing, and the project files that cannot start (each a failed phase naming the
file and the fix). Projects depend on a local ``vite`` package (``file:``), so every install runs offline in
seconds; the phase and timings files the supervisor writes are the observations."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
from preview_support import PreviewLab

pytestmark = [pytest.mark.lab, pytest.mark.templates]

VITE = {"name": "vite", "version": "7.0.0", "bin": {"vite": "bin.js"}}
"""A stand-in for vite: the supervisor only needs a ``vite`` dependency that installs and has its binary."""


def project(**fields: Any) -> dict[str, str]:
    package = {"name": "app", "private": True, "devDependencies": {"vite": "file:./vite"}, **fields}
    return {"package.json": json.dumps(package), "vite/package.json": json.dumps(VITE),
            "vite/bin.js": "#!/usr/bin/env node\n"}


CASES: dict[str, dict[str, str]] = {
    "pnpm-9": project(packageManager="pnpm@9.1.0"),
    "pnpm-11": project(packageManager="pnpm@11.0.0+sha512.abc"),  # not the 11.x we carry: no download, ours runs
    "pnpm-8": project(packageManager="pnpm@8.15.0"),
    "nvmrc-22": {**project(), ".nvmrc": "v22\n"},
    "nvmrc-lts": {**project(), ".nvmrc": "lts/*\n"},
    "node-version": {**project(), ".node-version": "22.1.0\n"},
    "engines-ok": project(engines={"node": ">=18"}),
    "engines-20": project(engines={"node": "^20.19.0"}),
    "nvmrc-18": {**project(), ".nvmrc": "18.20.4\n"},
    "npm": {**project(), "make-lock": "npm install --package-lock-only --no-audit --no-fund -q"},
    "yarn-1": {**project(), "make-lock": "yarn install --non-interactive --silent"},
    "yarn-berry": {**project(), "yarn.lock": "__metadata:\n  version: 8\n"},
    "no-package": {"README.md": "nothing here\n"},
    "bad-json": {"package.json": "{ \"name\": \"app\", }"},
    "not-vite-or-next": {"package.json": json.dumps({"name": "app", "dependencies": {"express": "^5"}})},
}


def projects_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def folder(name: str) -> None:  # the preview's user owns the project, as after a clone
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = tarfile.DIRTYPE, 1000, 1000, 0o755
            tar.addfile(info)

        folder("p")
        for case, files in CASES.items():
            folder(f"p/{case}")
            if any(name.startswith("vite/") for name in files):
                folder(f"p/{case}/vite")
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"p/{case}/{name}")
                info.size, info.uid, info.gid, info.mode = len(data), 1000, 1000, 0o755
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# One run per case, as the entrypoint would hand over (the project's directory, its own workspace); the lockfiles
# a user would have committed are made first. The supervisor installs only (DRAPE_INSTALL_ONLY): no dev server.
RUN_ALL = r"""
set -u
for dir in /tmp/p/*/; do
  case=$(basename "$dir"); cd "$dir"
  if [ -f make-lock ]; then sh -c "$(cat make-lock)" >/dev/null 2>&1; rm -rf node_modules; fi
  runs=1; [ "$case" = pnpm-9 ] && runs=2   # the second run is a kept workspace
  for run in $(seq $runs); do
    DRAPE_WORKDIR=/tmp/w/$case DRAPE_PHASE_FILE=/tmp/w/$case/phase DRAPE_INSTALL_ONLY=1 \
      node /opt/drape/preview.mjs >/tmp/w-$case.log 2>&1
    code=$?
    modules=$(grep -h -m1 'packageManager' node_modules/.modules.yaml 2>/dev/null || true)
    node -e 'const fs = require("fs"); const [c, code, run, modules] = process.argv.slice(1);
      const read = (f) => { try { return fs.readFileSync(f, "utf8") } catch { return "" } };
      const w = `/tmp/w/${c}`;
      console.log(JSON.stringify({ case: c, run: Number(run), code: Number(code), modules,
        phase: read(`${w}/phase`).trim().split("\n"), timings: JSON.parse(read(`${w}/timings.json`) || "{}") }))' \
      "$case" "$code" "$run" "$modules"
  done
done
"""


@pytest.fixture(scope="module")
def outcomes(preview_lab: PreviewLab) -> Iterator[dict[str, list[dict[str, Any]]]]:
    container = preview_lab.client.containers.create(
        preview_lab.image, entrypoint=["sleep", "600"], user="1000:1000", network_mode="none",
        labels={"drape.test": "previews"})
    try:
        container.start()
        container.put_archive("/tmp", projects_tar())
        code, output = container.exec_run(["sh", "-c", RUN_ALL], user="1000:1000")
        assert code == 0, output.decode(errors="replace")[-2000:]
        results: dict[str, list[dict[str, Any]]] = {}
        for line in output.decode().splitlines():
            if line.startswith("{"):
                found = json.loads(line)
                results.setdefault(found["case"], []).append(found)
        assert set(results) == set(CASES), output.decode(errors="replace")[-2000:]
        yield results
    finally:
        container.remove(force=True)


def headline(outcome: dict[str, Any]) -> str:
    """The first detail line: what the supervisor found the project to be."""
    return str(outcome["phase"][0])


@pytest.mark.parametrize(("case", "pnpm", "note"), [
    ("pnpm-9", 9, None),
    ("pnpm-11", 11, None),
    ("pnpm-8", 9, "pnpm 8 is not in previews: using pnpm 9"),  # the nearest major we carry, said
])
def test_package_manager_field_picks_the_pnpm_major_that_installs(outcomes: dict[str, list[dict[str, Any]]],
                                                                 case: str, pnpm: int, note: str | None) -> None:
    first = outcomes[case][0]
    assert first["code"] == 0, first
    assert first["timings"]["package_manager"] == f"pnpm {pnpm}"
    assert f"pnpm@{pnpm}." in first["modules"], first  # pnpm's own record of who installed (.modules.yaml)
    assert first["timings"]["install_path"] == "registry"  # no shared store in this container, no lockfile
    if note:
        assert any(note in line for line in first["phase"]), first["phase"]


def test_a_kept_workspace_installs_nothing_the_second_time(outcomes: dict[str, list[dict[str, Any]]]) -> None:
    first, second = outcomes["pnpm-9"]
    assert first["timings"]["install_path"] == "registry" and second["timings"]["install_path"] == "kept"
    assert second["timings"].get("install_s") is None  # nothing ran


@pytest.mark.parametrize(("case", "why"), [
    ("nvmrc-22", ".nvmrc: 22"),  # "v22" as written
    ("nvmrc-lts", ".nvmrc: lts/*"),
    ("node-version", ".node-version: 22.1.0"),
    ("engines-ok", "engines.node: >=18"),
])
def test_the_project_asks_for_node_22_and_gets_it(outcomes: dict[str, list[dict[str, Any]]], case: str,
                                                   why: str) -> None:
    outcome = outcomes[case][0]
    assert outcome["code"] == 0, outcome
    assert outcome["timings"]["node"].startswith("22.")
    assert f"({why})" in headline(outcome)


@pytest.mark.parametrize(("case", "words"), [
    ("engines-20", "this project asks for Node ^20.19.0 (package.json engines.node); previews have Node 22."),
    ("nvmrc-18", "this project asks for Node 18.20.4 (.nvmrc); previews have Node 22."),
    ("yarn-berry", "Yarn 2 or later without its release committed"),
    ("no-package", "the repository has no package.json at its root"),
    ("bad-json", "package.json is not valid JSON"),
    ("not-vite-or-next", "neither Next.js nor Vite"),
])
def test_project_files_that_cannot_start_fail_with_the_file_and_the_fix(outcomes: dict[str, list[dict[str, Any]]],
                                                                       case: str, words: str) -> None:
    outcome = outcomes[case][0]
    assert outcome["code"] == 1
    assert outcome["phase"][-1].startswith("failed: ") and words in outcome["phase"][-1], outcome["phase"]


@pytest.mark.parametrize(("case", "manager"), [("npm", "npm"), ("yarn-1", "yarn")])
def test_npm_and_yarn_lockfiles_install_on_the_slower_path_and_say_so(outcomes: dict[str, list[dict[str, Any]]],
                                                                     case: str, manager: str) -> None:
    outcome = outcomes[case][0]
    assert outcome["code"] == 0, outcome
    assert outcome["timings"]["install_path"] == manager
    assert any(line.startswith(manager) and "the slower path" in line for line in outcome["phase"]), outcome["phase"]
