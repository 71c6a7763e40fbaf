"""What the backup lab tests do on hosts and on the target: run commands as root, fill and fingerprint data."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass

import docker

from drape_fleet.backup.lab import TARGET_USER
from drape_fleet.backup.lab_target import container_name
from drape_fleet.environments import FleetTarget
from drape_fleet.lab.state import lab_state_settings
from drape_fleet.ssh import ssh_run

STORE = "/srv/drape/pnpm-store"
OWNER = "drape-cache"
MANIFEST = (
    # Every file, directory and link under the store: type, mode, owner, size, mtime (ns) and content hash.
    "cd {top} && find . -printf '%y %m %u:%g %s %T@ %p\\n' | sort -k6 && "
    "find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
)


@dataclass
class BackupLab:
    target: FleetTarget

    def root(self, host: str, command: str, *, timeout: float = 120, check: bool = True,
             input: str | None = None) -> str:
        """``command`` as root on ``host`` (the deploy user's sudo, which logs the command line: secrets go in
        ``input``), its stdout."""
        entry = self.target.fleet.host(host)
        result = ssh_run(self.target.ssh_target(entry), f"sudo -n sh -c {shlex.quote(command)}", timeout=timeout,
                         check=check, input=input)
        return result.stdout

    def fill_store(self, host: str, *, files: int, size_kib: int, name: str = "pkgs") -> None:
        """Random, incompressible files as the store's owner writes them, nested as pnpm's are, plus a link."""
        self.root(host, f"""set -e
mkdir -p {STORE}/{name}/a/b {STORE}/{name}/c
for i in $(seq 1 {files}); do head -c {size_kib}K /dev/urandom > {STORE}/{name}/a/b/f$i; done
printf '{{"name":"left-pad","version":"1.3.0"}}' > {STORE}/{name}/c/package.json
chmod 0755 {STORE}/{name}/c/package.json
ln -sfn ../c/package.json {STORE}/{name}/a/link.json
chown -R {OWNER}:{OWNER} {STORE}/{name}
""")

    def manifest(self, host: str, top: str = STORE) -> str:
        return self.root(host, MANIFEST.format(top=top))

    def state(self, host: str) -> dict[str, object]:
        text = self.root(host, "cat /var/lib/drape/backup/state.json 2>/dev/null || echo '{}'")
        loaded: dict[str, object] = json.loads(text)
        return loaded

    # -- the target -----------------------------------------------------------------------------------

    def target_container(self) -> docker.models.containers.Container:
        return docker.from_env().containers.get(container_name(lab_state_settings()))

    def on_target(self, command: str) -> str:
        code, output = self.target_container().exec_run(["sh", "-c", command], demux=False)
        text = output.decode(errors="replace") if isinstance(output, bytes) else ""
        assert code == 0, f"on the target: {command}: {text}"
        return text

    def repository(self, source: str) -> str:
        return f"/home/{TARGET_USER}/drape/{self.target.environment}/{source}"

    def packs(self, source: str) -> int:
        """Pack files in the repository (docker exec's output can come back empty on a loaded engine: asked again)."""
        for _ in range(5):
            text = self.on_target(f"find {self.repository(source)}/data -type f | wc -l").strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.2)
        raise AssertionError(f"could not count {source}'s packs on the target")


def wait_for(condition: object, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
