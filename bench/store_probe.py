"""How a preview gets its dependencies out of the shared pnpm store, safely and fast: the candidates measured
side by side on this machine, with a real project (the lab's generated Next.js app by default).

The store is filled by a trusted job and mounted read-only in every preview (a tenant must not change what
another tenant reads). Candidates, each a `pnpm install --offline --frozen-lockfile` as uid 1000 in a fresh
container of the template image:

  copy/overlay2     copy into the container's writable layer (today's template)
  copy/xfs          copy into a workspace directory bind-mounted from the store's XFS filesystem
  clone/xfs         reflink clones (pnpm's `clone`) into that workspace: same filesystem, copy-on-write
  hardlink/ro       hard links out of the read-only mount (expected to fail: EXDEV across mounts)
  overlay/xfs       an overlay per preview (lower: the store, upper: the preview's own) holding store and
                    workspace, so pnpm hard-links inside it (each link copies the file up first)
  hardlink/shared   UNSAFE reference: a writable shared store with hard links (what pnpm does on a laptop)
  kept              the workspace's directory kept from the last preview: nothing to install

Needs root (a loop device with XFS, reflink on). Run: `python bench/store_probe.py [--project next-app]
[--runs 2]`. Prints one table; docs/previews.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("DRAPE_STORE_PROBE_DIR", "/var/tmp/drape-store-probe"))  # noqa: S108 - root-only probe
IMAGE_FILE = ROOT / "xfs.img"
MOUNT = ROOT / "xfs"
PNPM = "/opt/drape/pnpm/10/bin/pnpm"
COMMON = ["install", "--offline", "--frozen-lockfile", "--reporter=silent", "--config.confirm-modules-purge=false",
          "--config.side-effects-cache-readonly=true", "--config.manage-package-manager-versions=false"]


def sh(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def ensure_xfs(size_gib: int = 16) -> None:
    """A sparse file with XFS (reflink on), mounted at MOUNT: the stand-in for the store's volume."""
    if sh("mountpoint", "-q", str(MOUNT), check=False).returncode == 0:
        return
    ROOT.mkdir(parents=True, exist_ok=True)
    MOUNT.mkdir(exist_ok=True)
    if not IMAGE_FILE.exists():
        sh("truncate", "-s", f"{size_gib}G", str(IMAGE_FILE))
        sh("mkfs.xfs", "-q", "-m", "reflink=1", str(IMAGE_FILE))
    sh("mount", "-o", "loop", str(IMAGE_FILE), str(MOUNT))


USED: dict[str, int] = {}


def xfs_used() -> int:
    stat = os.statvfs(MOUNT)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def docker_run(image: str, script: str, *mounts: str, user: str = "1000:1000") -> tuple[float, str, int]:
    args = ["docker", "run", "--rm", "--network", "none", "--user", user, "--entrypoint", "sh"]
    for mount in mounts:
        args += ["--mount", mount]
    started, before = time.monotonic(), xfs_used()
    result = subprocess.run([*args, image, "-c", script], capture_output=True, text=True, check=False)
    USED["last"] = xfs_used() - before
    return time.monotonic() - started, (result.stdout + result.stderr)[-600:], result.returncode


def fill_store(image: str, project: Path) -> None:
    """The trusted job: fetch every package of the project's lockfile into the shared store (with network)."""
    store = MOUNT / "store"
    if (store / ".filled-for").exists() and (store / ".filled-for").read_text() == f"{project} 2":
        return
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    os.chown(store, 1000, 1000)
    src = MOUNT / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(project, src, ignore=shutil.ignore_patterns(".git"))
    subprocess.run(["chown", "-R", "1000:1000", str(src)], check=True)
    # The project sits where previews put theirs (/workspace/app): pnpm 10 registers every project in the store
    # (<store>/v10/projects/<hash of its path>), which a read-only store refuses unless it is already there.
    result = subprocess.run(["docker", "run", "--rm", "--network", "host", "--user", "1000:1000", "-v",
                             f"{store}:/x/store", "-v", f"{src}:/workspace/app", "--entrypoint", "sh", image, "-c",
                             f"cd /workspace/app && {PNPM} install --frozen-lockfile --reporter=silent "
                             "--ignore-scripts --store-dir /x/store"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"filling the store failed: {result.stdout[-800:]}{result.stderr[-800:]}")
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(store)], check=True)
    (store / ".filled-for").write_text(f"{project} 2")


def fresh_workspace(project: Path, name: str) -> Path:
    work = MOUNT / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(exist_ok=True)
    shutil.copytree(project, work / "app", ignore=shutil.ignore_patterns(".git"))
    subprocess.run(["chown", "-R", "1000:1000", str(work)], check=True)
    return work


class _Recorder(dict[str, tuple[float, str, int]]):
    """Results, and the XFS space each candidate's run took (blocks shared by reflinks are not counted)."""

    def __setitem__(self, key: str, value: tuple[float, str, int]) -> None:
        USED[key] = USED.pop("last", 0)
        super().__setitem__(key, value)


def candidates(image: str, project: Path) -> dict[str, tuple[float, str, int]]:
    store_ro = f"type=bind,source={MOUNT / 'store'},target=/pnpm-store,readonly"
    results: _Recorder = _Recorder()
    timed = "s=$(date +%s%N); {cmd} >/tmp/log 2>&1; rc=$?; e=$(date +%s%N); tail -c 400 /tmp/log; " \
            "echo; echo TIME $(( (e - s) / 1000000 )); exit $rc"

    def install(method: str, store: str = "/pnpm-store") -> str:
        return f"{PNPM} {' '.join(COMMON)} --store-dir {store} --package-import-method {method}"

    # copy into the container's writable layer (overlay2 on this machine's ext4)
    stage = fresh_workspace(project, "stage")
    results["copy/overlay2"] = docker_run(
        image, "cp -r /stage/app /workspace/app && cd /workspace/app && " + timed.format(cmd=install("copy")),
        store_ro, f"type=bind,source={stage},target=/stage,readonly")
    for name, method in (("copy/xfs", "copy"), ("clone/xfs", "clone"), ("hardlink/ro", "hardlink")):
        work = fresh_workspace(project, name.replace("/", "-"))
        results[name] = docker_run(image, "cd /workspace/app && " + timed.format(cmd=install(method)),
                                   store_ro, f"type=bind,source={work},target=/workspace")
    # an overlay per preview: store (lower) + the preview's upper, with the project inside the same mount
    work = fresh_workspace(project, "overlay")
    upper, workdir = work / "upper", work / "ovl-work"
    for d in (upper, workdir):
        d.mkdir()
    shutil.move(str(work / "app"), str(upper / "app"))
    subprocess.run(["chown", "-R", "1000:1000", str(work)], check=True)
    volume = f"wtf-store-probe-overlay-{os.getpid()}"
    sh("docker", "volume", "create", "--driver", "local", "--opt", "type=overlay", "--opt", "device=overlay",
       "--opt", f"o=lowerdir={MOUNT / 'store'},upperdir={upper},workdir={workdir}", volume)
    try:
        results["overlay/xfs"] = docker_run(image, "cd /w/app && " + timed.format(cmd=install("hardlink", "/w")),
                                            f"type=volume,source={volume},target=/w")
    finally:
        sh("docker", "volume", "rm", "-f", volume, check=False)
    # UNSAFE reference: the tenant writes the shared store (hard links inside one writable mount)
    work = fresh_workspace(project, "shared")
    shutil.copytree(MOUNT / "store", work / "store", copy_function=os.link, dirs_exist_ok=False)
    subprocess.run(["chown", "-R", "1000:1000", str(work / "store")], check=True)
    results["hardlink/shared"] = docker_run(image, "cd /w/app && " + timed.format(cmd=install("hardlink", "/w/store")),
                                            f"type=bind,source={work},target=/w")
    # a node_modules tree the trusted job prepared for this very lockfile, cloned whole (cp --reflink)
    work = fresh_workspace(project, "tree")
    results["tree-clone/xfs"] = docker_run(
        image, "cd /workspace/app && " + timed.format(cmd="cp -a --reflink=always /prepared/node_modules ."),
        f"type=bind,source={MOUNT / 'work' / 'clone-xfs' / 'app'},target=/prepared,readonly",
        f"type=bind,source={work},target=/workspace")
    # kept: the workspace directory from the last run (clone/xfs), same lockfile: the supervisor skips pnpm;
    # measured as pnpm's own up-to-date check, the upper bound of that path
    results["kept"] = docker_run(image, "cd /workspace/app && " + timed.format(cmd=install("clone")), store_ro,
                                 f"type=bind,source={MOUNT / 'work' / 'clone-xfs'},target=/workspace")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default="next-app")
    parser.add_argument("--image", default="drape-lab/preview-react:node22")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from drape_fleet.lab import projects

    project = projects.ensure_projects(print) / args.project
    ensure_xfs()
    fill_store(args.image, project)
    files = int(sh("sh", "-c", f"find {MOUNT / 'store'} -type f | wc -l").stdout)
    size = sh("du", "-sh", str(MOUNT / "store")).stdout.split()[0]
    print(f"project {args.project}: store {size} in {files} files; {args.runs} run(s) each\n")
    runs: dict[str, list[float]] = {}
    outcome: dict[str, str] = {}
    for _ in range(args.runs):
        for name, (_, out, code) in candidates(args.image, project).items():
            line = next((ln for ln in out.splitlines() if ln.startswith("TIME ")), "TIME nan")
            runs.setdefault(name, []).append(float(line.split()[1]) / 1000)
            outcome[name] = "ok" if code == 0 else "FAILS: " + " ".join(
                ln.strip() for ln in out.splitlines() if "ERR" in ln or "EXDEV" in ln or "rror" in ln)[:90]
    baseline = statistics.median(runs["copy/overlay2"])
    print(f"{'mechanism':<18}{'install s (median)':>20}{'vs copy/overlay2':>18}{'XFS MB written':>16}  outcome")
    for name, values in runs.items():
        median = statistics.median(values)
        used = f"{USED.get(name, 0) / 1e6:.0f}" if name != "copy/overlay2" else "(ext4)"
        print(f"{name:<18}{median:>20.2f}{baseline / median if median else 0:>17.1f}x{used:>16}  {outcome[name]}")


if __name__ == "__main__":
    main()
