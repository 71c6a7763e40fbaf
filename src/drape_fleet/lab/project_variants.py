"""From the generators' outputs to the lab's repositories: history, and the good and bad variants.

Each repository gets: the generator's output ("Initial commit from <generator>@<version>"), its lockfile, an
edit of the start page (a marker the tests look for), a tag ``v1`` and a branch ``feature`` one commit ahead.
The bad cases are small edits of the Vite + React project, each the way a real project gets there.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

Commit = Callable[[Path, str, int], None]

EPOCH = 1_767_225_600  # 2026-01-01: the history's first commit

OWN_PORT_CONFIG = """\
import { defineConfig, loadEnv } from 'vite'
import react from '@vitejs/plugin-react'

// The project picks its own port and host, as many real projects do.
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd())
  return {
    plugins: [react()],
    server: { host: 'localhost', port: Number(env.VITE_PORT), strictPort: true, open: false },
  }
})
"""

NEVER_ANSWERS_CONFIG = """\
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// A plugin that never finishes setting the server up: the process lives, nothing ever listens.
export default defineConfig({
  plugins: [react(), {
    name: 'waits-forever',
    async configureServer() {
      setInterval(() => {}, 1 << 30)
      await new Promise(() => {})
    },
  }],
})
"""

CRASHING_CONFIG = """\
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import missing from './does-not-exist.js'

export default defineConfig({ plugins: [react(), missing()] })
"""

PLAIN_SERVER = """\
import { createServer } from 'node:http'

createServer((req, res) => res.end('hello from a plain Node server')).listen(process.env.PORT || 8080)
"""


def make_all(out: Path, repos: Path, versions: dict[str, str], *, commit: Commit) -> None:
    """Every repository of ``drape_fleet.lab.projects.PROJECTS`` under ``repos``, from the outputs in ``out``."""
    vite = f"create-vite@{versions['create-vite']}"
    next_app = f"create-next-app@{versions['create-next-app']}"
    repos.mkdir(parents=True)
    _repo(out / "vite-react", repos / "vite-react", vite, commit, _mark_vite("vite-react"))
    _repo(out / "vite-vue", repos / "vite-vue", vite, commit, _mark_vite("vite-vue"))
    _repo(out / "next-app", repos / "next-app", next_app, commit, _mark_next("next-app"))
    _repo(out / "vite-react-npm", repos / "vite-npm", vite, commit, _mark_vite("vite-npm"),
          lockfile="package-lock.json")

    def own_port(path: Path) -> None:
        _mark_vite("vite-own-port")(path)
        (path / ".env").write_text("VITE_PORT=8848\n")
        (path / "vite.config.ts").write_text(OWN_PORT_CONFIG)

    def node16(path: Path) -> None:
        _mark_vite("node16")(path)
        _edit_json(path / "package.json", lambda p: p.setdefault("engines", {}).update({"node": "16.x"}))
        (path / ".nvmrc").write_text("16\n")

    def outdated(path: Path) -> None:
        _mark_vite("outdated-lockfile")(path)
        # A dependency added to package.json by hand, the lockfile not updated: `pnpm install` in CI refuses it.
        _edit_json(path / "package.json", lambda p: p["dependencies"].update({"left-pad": "^1.3.0"}))

    def plain(path: Path) -> None:
        for item in path.iterdir():
            if item.name != ".git":
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        (path / "package.json").write_text(json.dumps(
            {"name": "plain-server", "private": True, "type": "module", "scripts": {"dev": "node server.js"}},
            indent=2) + "\n")
        (path / "server.js").write_text(PLAIN_SERVER)

    def never(path: Path) -> None:
        _mark_vite("never-answers")(path)
        (path / "vite.config.ts").write_text(NEVER_ANSWERS_CONFIG)

    def crashes(path: Path) -> None:
        _mark_vite("config-crashes")(path)
        (path / "vite.config.ts").write_text(CRASHING_CONFIG)

    def big(path: Path) -> None:
        _mark_vite("big-assets")(path)
        assets = path / "public" / "big"
        assets.mkdir(parents=True)
        rng = random.Random(7)  # noqa: S311 - incompressible filler, so the repository really is this large
        for i in range(4):
            (assets / f"blob-{i}.bin").write_bytes(rng.randbytes(16 * 1024 * 1024))

    for name, change in (("vite-own-port", own_port), ("node16", node16), ("outdated-lockfile", outdated),
                         ("not-a-framework", plain), ("never-answers", never), ("config-crashes", crashes),
                         ("big-assets", big)):
        _repo(out / "vite-react", repos / name, vite, commit, change)


def _repo(source: Path, target: Path, generator: str, commit: Commit, edit: Callable[[Path], None],
          lockfile: str = "pnpm-lock.yaml") -> None:
    """Generator output, then its lockfile, then ``edit`` (tagged v1), then a feature branch ahead of main."""
    shutil.copytree(source, target)
    lock = target / lockfile
    lock_data = lock.read_bytes() if lock.exists() else None
    if lock_data is not None:
        lock.unlink()
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(target)], check=True)
    commit(target, f"Initial commit from {generator}", EPOCH)
    if lock_data is not None:
        lock.write_bytes(lock_data)
        commit(target, f"Add {lockfile}", EPOCH + 3600)
    edit(target)
    commit(target, "Make the start page ours", EPOCH + 7200)
    subprocess.run(["git", "-C", str(target), "tag", "v1"], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", "-b", "feature"], check=True)
    (target / "FEATURE.md").write_text("Work in progress on a branch.\n")
    commit(target, "Start a feature", EPOCH + 10800)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", "main"], check=True)


def _mark_vite(name: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        index = path / "index.html"
        index.write_text(re.sub(r"<title>.*?</title>", f"<title>Drape lab {name}</title>", index.read_text()))
    return edit


def _mark_next(name: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        page = path / "src" / "app" / "page.tsx"
        text = page.read_text()
        marked = re.sub(r"(<main[^>]*>)", rf"\1\n        <h1>Drape lab {name}</h1>", text, count=1)
        if marked == text:
            raise ValueError(f"{page}: no <main> element to mark (the generator's page changed)")
        page.write_text(marked)
    return edit


def _edit_json(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
