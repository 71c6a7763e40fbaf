"""What the cutover's lab tests share: the fakes of Fly and Hetzner Cloud DNS as a process, a fleet file for the
lab with the cutover's sections pointing at them, `invoke cutover ...` run as ops type it (a subprocess), and
observers that do not go through the code under test (the engines' volume listings through `docker exec`, the
fakes' APIs through plain HTTP).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tomli_w

ROOT = Path(__file__).resolve().parents[2]
FLY_TOKEN = "fly-cutover-token"
READ_ONLY_FLY_TOKEN = "fly-read-only-token"
DNS_TOKEN = "hcloud-cutover-token"
APP = "drape-previews"
ZONE = "drape.dev"
FLY_CNAME = "drape-previews.fly.dev."
INTERNAL = ("u-ops-1", "u-ops-2")
BETA = ("u-beta-1", "u-beta-2", "u-beta-3")
USERS = (*INTERNAL, *BETA, *(f"u-{n:03d}" for n in range(40)))


def scenario(machines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"fly_tokens": {FLY_TOKEN: {"apps": "*", "write": True}, READ_ONLY_FLY_TOKEN: {"apps": "*", "write": False}},
            "machines": machines, "apps": [APP], "dns_tokens": {DNS_TOKEN: True}, "zone": ZONE,
            "records": [{"name": "*.preview", "type": "CNAME", "values": [FLY_CNAME], "ttl": 300}]}


def preview_machines(states: list[str]) -> list[dict[str, Any]]:
    return [{"app": APP, "state": state, "name": f"preview-{index}", "metadata": {"drape_role": "preview"}}
            for index, state in enumerate(states)]


@dataclass
class FakeApis:
    """The fakes, running as their own process (started and stopped by the test)."""

    process: subprocess.Popen[str]
    fly: str
    dns: str
    machines: dict[str, str]

    @classmethod
    def start(cls, tmp: Path, machines: list[dict[str, Any]]) -> FakeApis:
        path = tmp / "scenario.json"
        path.write_text(json.dumps(scenario(machines)))
        process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "cutover" / "fake_apis.py"), str(path)],
                                   env={**os.environ, "PYTHONPATH": str(ROOT / "tests" / "support")},
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the fake APIs did not start")
        data = json.loads(line)
        return cls(process, data["fly"], data["dns"], data["machines"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    # -- observers (plain HTTP, not the code under test) ------------------------------------------------

    def fly_states(self) -> dict[str, str]:
        answer = requests.get(f"{self.fly}/apps/{APP}/machines", headers={"Authorization": f"Bearer {FLY_TOKEN}"},
                              timeout=10)
        answer.raise_for_status()
        return {m["name"]: m["state"] for m in answer.json()}

    def dns_records(self) -> dict[str, list[str]]:
        answer = requests.get(f"{self.dns}/zones/{ZONE}/rrsets", headers={"Authorization": f"Bearer {DNS_TOKEN}"},
                              timeout=10)
        answer.raise_for_status()
        return {r["type"]: sorted(v["value"] for v in r["records"]) for r in answer.json()["rrsets"]
                if r["name"] == "*.preview"}


def ops_fleet_data(lab_state: Path) -> dict[str, Any]:
    """The lab's fleet file as ops write one for their own environment (production-shaped: Robot numbers, alert
    receivers' URLs named as secrets - ``Ops.env`` gives their values, the lab's own receivers)."""
    data = tomllib.loads((lab_state / "fleet.toml").read_text())
    data["environment"]["name"] = "production"
    for number, host in enumerate(data["hosts"], start=1):
        host["robot_server_number"] = 2_100_000 + number
    for receiver in (data.get("monitoring") or {}).get("receivers", []):
        if "url" in receiver:
            receiver["secret"] = receiver["name"].replace("-", "_") + "_url"
            MONITORING_SECRETS[receiver["secret"]] = receiver.pop("url")
    return data


MONITORING_SECRETS: dict[str, str] = {}


def cutover_fleet(lab_state: Path, tmp: Path, apis: FakeApis, **cutover: Any) -> Path:
    """The lab's fleet file as an ops fleet file with the cutover's sections (Fly and DNS at the fakes)."""
    data = ops_fleet_data(lab_state)
    data["fly"] = {"apps": [APP], "preview_metadata": {"drape_role": "preview"}, "api_url": apis.fly,
                   "lease_ttl_s": 10}
    data["preview_dns"] = {"zone": ZONE, "name": "*.preview", "ttl": 300, "api_endpoint": apis.dns}
    settings: dict[str, Any] = {
        "internal_users": list(INTERNAL), "users_file": "users.txt", "required_frameworks": ["tiny"],
        "verify": False,  # tests/lab/test_provision.py runs `invoke verify` on the same hosts
        "policy_poll_s": 0.5, "fly_grace_days": 0,
        "gate": {"min_starts": 10, "p95_cold_s": 40, "p95_warm_s": 20, "max_error_percent": 1.0},
        "smoke": {"framework": "tiny", "timeout_s": 60},
        "load_test": {"framework": "tiny", "previews": 4, "rounds": 3, "timeout_s": 90, "max_p95_s": 30},
    }
    settings.update(cutover)
    data["cutover"] = settings
    fleet = tmp / "fleet.toml"
    fleet.write_text(tomli_w.dumps(data))
    (tmp / "users.txt").write_text("# the backend's user ids\n" + "\n".join(USERS) + "\n")
    (tmp / "fleet.known_hosts").write_text((lab_state / "ssh" / "known_hosts").read_text())
    return fleet


@dataclass
class Ops:
    """`invoke cutover ...` as ops type it, against the lab and the fakes."""

    fleet: Path
    lab_state: Path
    fly_token: str = FLY_TOKEN
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DRAPE_ENV": "production", "DRAPE_FLEET_FILE": str(self.fleet),
                "DRAPE_PKI_DIR": str(self.lab_state / "pki"), "DRAPE_SSH_KEY": str(self.lab_state / "ssh/id_ed25519"),
                "DRAPE_SSH_USER": "deploy", "DRAPE_FLY_API_TOKEN": self.fly_token, "DRAPE_HCLOUD_TOKEN": DNS_TOKEN,
                "DRAPE_SECRETS_FILE": str(self.fleet.parent / "no-secrets.toml"), "COLUMNS": "220",
                **{f"DRAPE_MONITORING_{name.upper()}": url for name, url in MONITORING_SECRETS.items()}}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "invoke", *args]

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(self.argv(*args), cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                timeout=timeout, check=False)
        self.timings[" ".join(args)] = time.monotonic() - started
        if expect is not None and result.returncode != expect:
            raise AssertionError(f"`invoke {' '.join(args)}` exited {result.returncode}, expected {expect}:\n"
                                 f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=ROOT, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def status(self) -> dict[str, Any]:
        out = self("cutover", "status", "--json").stdout
        return json.loads(out[out.index("{"):])


def lab_volumes(container: str, kind: str = "cutover-state") -> list[dict[str, str]]:
    """Our cutover volumes on a lab host, read through the outer engine (`docker exec ... docker volume ls`)."""
    result = subprocess.run(["docker", "exec", container, "docker", "volume", "ls", "--filter",
                             f"label=drape.kind={kind}", "--format", "{{json .}}"], capture_output=True, text=True,
                            timeout=30, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def newest_generation(container: str) -> int:
    names = [v["Name"] for v in lab_volumes(container)]
    return max((int(n.rsplit("-", 1)[1]) for n in names), default=0)


class Backend:
    """A backend process (tests/cutover/backend_process.py) the test talks to line by line."""

    def __init__(self, fleet: Path, pki: Path, *, poll_s: float = 0.5) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "cutover" / "backend_process.py"), str(fleet), str(pki), "--poll",
             str(poll_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        ready = self._read()
        assert "ready" in ready, ready

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the backend process ended ({self.process.poll()})")
        return dict(json.loads(line))

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise AssertionError(f"backend: {reply['error']}")
        return reply["ok"]

    def route(self, user: str, workspace: str | None = None) -> dict[str, Any]:
        return dict(self.ask("route", user=user, workspace=workspace))

    def wait_for_phase(self, phase: int, *, within: float = 5.0) -> float:
        """Seconds until this process routes by a policy of ``phase`` (fails after ``within``)."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if self.route("u-probe")["phase"] == phase:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"the backend process still routes by phase {self.route('u-probe')['phase']} after "
                             f"{within} s (expected {phase})")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.flush()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
