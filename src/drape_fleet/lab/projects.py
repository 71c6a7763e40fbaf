"""Real users' projects for the lab: made by their own generators, at their current versions, with history.

``create-vite`` (react-ts, vue-ts) and ``create-next-app`` run from the npm registry in a container of the lab's
Node 22 base; pnpm writes each lockfile (``--lockfile-only``). Then each project becomes a git repository with
some history (the generator's output, the lockfile, an edit; a tag and a feature branch), and the bad cases are
derived from them: a Vite project with its own port in ``.env``, one asking for Node 16, one whose lockfile is
out of date, one that is no known framework, one whose dev server never answers, one whose config crashes, one
too large for a small disk, one installed with npm.

Generation takes a few minutes, so it is cached in ``$DRAPE_PROJECTS_CACHE`` (default
``~/.cache/drape-fleet/lab-projects``) under a key made of the generators' versions, pnpm's and this recipe's:
a new generator release makes a new set, CI otherwise reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings

Log = Callable[[str], None]

RECIPE = "3"
"""Bump when what is generated changes (variants, history): the cache key includes it."""
PNPM_VERSION = "10.34.9"
GENERATORS = ("create-vite", "create-next-app")
AUTHOR = ("Drape Lab", "lab@drape.invalid")


@dataclass(frozen=True)
class Project:
    """One generated repository and what a preview of it must do."""

    name: str
    framework: str
    """The runtime's framework (template) to start it with."""
    expect: str
    """``ready``, or the words the failed phase must contain."""
    marker: str = ""
    """Text the start page must show when it is ready (empty: nothing to check)."""


PROJECTS: tuple[Project, ...] = (
    Project("vite-react", "react", "ready", "Drape lab vite-react"),
    Project("vite-vue", "vue", "ready", "Drape lab vite-vue"),
    Project("next-app", "nextjs", "ready", "Drape lab next-app"),
    Project("vite-own-port", "react", "ready", "Drape lab vite-own-port"),
    Project("vite-npm", "react", "ready", "Drape lab vite-npm"),
    Project("node16", "react", "Node 16"),
    Project("outdated-lockfile", "react", "out of date"),
    Project("not-a-framework", "react", "neither Next.js nor Vite"),
    Project("never-answers", "react", "nothing answers"),
    Project("config-crashes", "react", "exited"),
    Project("big-assets", "react", "ready", "Drape lab big-assets"),
)


def cache_root() -> Path:
    return Path(os.environ.get("DRAPE_PROJECTS_CACHE", "~/.cache/drape-fleet/lab-projects")).expanduser()


def current_versions() -> dict[str, str]:
    """Each generator's current version, asked of the npm registry with npm itself."""
    versions = {}
    for generator in GENERATORS:
        result = subprocess.run(["npm", "view", generator, "version"], capture_output=True, text=True, timeout=60,
                                check=False)
        if result.returncode != 0 or not result.stdout.strip():
            raise LabError(f"`npm view {generator} version` failed: {result.stderr.strip()[-300:]}")
        versions[generator] = result.stdout.strip()
    return versions


def cache_key(versions: dict[str, str]) -> str:
    text = json.dumps({"recipe": RECIPE, "pnpm": PNPM_VERSION, **versions}, sort_keys=True)
    return "-".join(f"{g}@{versions[g]}" for g in GENERATORS) + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def ensure_projects(log: Log, versions: dict[str, str] | None = None) -> Path:
    """The directory holding one git work tree per project in ``PROJECTS`` (generated unless cached)."""
    versions = versions or current_versions()
    target = cache_root() / cache_key(versions)
    if all((target / p.name / ".git").is_dir() for p in PROJECTS):
        return target
    log(f"generating the lab's projects with {', '.join(f'{g}@{v}' for g, v in versions.items())} "
        "(a few minutes; cached afterwards)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".generating-") as tmp:
        work = Path(tmp)
        from drape_fleet.lab.node_images import ensure_node_base

        _generate(work / "out", versions, ensure_node_base(log))
        built = work / "repos"
        from drape_fleet.lab import project_variants

        project_variants.make_all(work / "out", built, versions, commit=_commit)
        shutil.rmtree(target, ignore_errors=True)
        built.rename(target)
    return target


# ---------------------------------------------------------------------------------------------------
# The generators, in the lab's Node 22 base (network: the npm registry)
# ---------------------------------------------------------------------------------------------------

def generate_script(versions: dict[str, str]) -> str:
    """What runs in the generator container (pure): every output under /out, each with its lockfile."""
    vite, next_app = versions["create-vite"], versions["create-next-app"]
    return "\n".join([
        "set -eu",
        "export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false",
        f"npm install --silent -g --prefix /tmp/pnpm pnpm@{PNPM_VERSION}",
        "export PATH=/tmp/pnpm/bin:$PATH",
        "cd /out",
        f"npm exec --yes create-vite@{vite} -- vite-react --template react-ts --no-interactive --no-immediate",
        f"npm exec --yes create-vite@{vite} -- vite-vue --template vue-ts --no-interactive --no-immediate",
        f"npm exec --yes create-next-app@{next_app} -- next-app --ts --tailwind --eslint --app --src-dir "
        "--import-alias '@/*' --use-pnpm --skip-install --disable-git --yes --no-agent-feedback",
        "for p in vite-react vite-vue next-app; do (cd $p && pnpm install --lockfile-only --silent); done",
        "cp -r vite-react vite-react-npm && rm vite-react-npm/pnpm-lock.yaml",
        "(cd vite-react-npm && npm install --package-lock-only --silent)",
        "",
    ])


def _generate(out: Path, versions: dict[str, str], node_image: str) -> None:
    out.mkdir(parents=True)
    out.chmod(0o777)  # the generators run as the image's node user (uid 1000)
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "--user", "1000:1000", "-e", "HOME=/tmp",
         "-v", f"{out}:/out", node_image, "sh", "-c", generate_script(versions)],
        capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LabError(f"generating the lab projects failed (exit {result.returncode}):\n{tail}")


def _commit(repo: Path, message: str, when: int) -> None:
    """Commit everything in ``repo`` as the lab's author at a fixed time (repeatable history)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
           "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1],
           "GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "--quiet", "--allow-empty", "-m", message], check=True,
                   env=env)


PUBLIC_PREFIX = "pub-"
"""Each project is also served without a token as ``pub-<name>`` (a public repository), for callers that
cannot hand a token over yet (the runtime before the token file is wired in)."""


def publish_all(settings: LabSettings, projects_dir: Path, log: Log) -> dict[str, str]:
    """Serve every project on the lab git server (behind tokens, and public as ``pub-<name>``), then start or
    reload the server; returns name -> URL of the token-protected ones."""
    from drape_fleet.lab import gitserver

    urls = {p.name: gitserver.publish(settings, p.name, projects_dir / p.name) for p in PROJECTS}
    for p in PROJECTS:
        gitserver.publish(settings, PUBLIC_PREFIX + p.name, projects_dir / p.name, public=True)
    gitserver.ensure(settings, log)
    log(f"serving {len(urls)} projects on the lab git server (and their public copies)")
    return urls
