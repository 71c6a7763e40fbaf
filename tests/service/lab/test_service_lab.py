"""The runtime service deployed on the lab: the Node client end to end (node --test against two instances, one
killed mid-request), bad input over HTTPS through the ingress, the journal free of tokens, metrics scraped (and
counted by Prometheus on the monitoring server), and the service deploy's second run changing nothing."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import ServiceLab

from drape_fleet.environments import FleetTarget
from drape_fleet.paths import project_root

pytestmark = pytest.mark.lab
NODE_CLIENT = project_root() / "clients" / "node"


def call(lab: ServiceLab, caller: str | None, method: str, path: str, *, host: int = 0,
         **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {lab.tokens[caller]}"} if caller else {}
    return requests.request(method, lab.urls[host] + path, headers=headers, verify=str(lab.ca), timeout=30,
                            **kwargs)  # type: ignore[arg-type]


def test_the_node_client_starts_follows_and_stops_a_preview_and_survives_a_killed_instance(
        service_lab: ServiceLab) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the client's tests: apt-get install nodejs (./dev installs it)"
    first = service_lab.container("ax1")
    env = {**os.environ, "DRAPE_RUNTIME_URLS": ",".join(service_lab.urls[:2]),
           "DRAPE_RUNTIME_TOKEN": service_lab.tokens["backend"], "NODE_EXTRA_CA_CERTS": str(service_lab.ca),
           "DRAPE_KILL_FIRST": f"docker exec {first} systemctl kill --signal=KILL drape-runtime.service"}
    restarts_before = _restarts(service_lab, "ax1")
    result = subprocess.run([node, "--test", "test/client.test.js", "test/lab.test.js"], cwd=NODE_CLIENT, env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"^# pass 19$", result.stdout, re.M), result.stdout[-2000:]
    deadline = time.monotonic() + 30  # systemd brings the killed instance back by itself
    while call(service_lab, None, "GET", "/healthz").status_code != 200:
        assert time.monotonic() < deadline, "the killed instance did not come back"
        time.sleep(0.5)
    assert _restarts(service_lab, "ax1") == restarts_before + 1


def _restarts(lab: ServiceLab, host: str) -> int:
    return int(lab.on_host(host, "systemctl show drape-runtime.service -p NRestarts --value").strip())


def _oversized_put(lab: ServiceLab) -> requests.Response:
    """A 200 kB body to the service behind its Caddy. Twice in CI (never here) the answer's 413 was cut after its
    headers (IncompleteRead, 0 of 125 bytes), although the service reads the whole body before it answers
    (``guard``; unit-tested without the proxy). RFC 9110 lets a server close the connection after a 413, so a
    client may see that: asked again, at most twice, and a whole 413 is still required."""
    for attempt in range(3):
        try:
            return call(lab, "backend", "PUT", "/v1/previews/ws-x", host=1,
                        json={"user": "u", "framework": "tiny", "env": {"A": "x" * 200_000}})
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_bad_input_over_https_keeps_its_meaning_and_no_token_reaches_the_journal(service_lab: ServiceLab) -> None:
    since = service_lab.on_host("ax2", "date '+%Y-%m-%d %H:%M:%S'").strip()
    wrong = "drt_wrongwrongwrongwrongwrongwrongwrongwrong1"
    assert call(service_lab, None, "GET", "/v1/previews/ws-x", host=1).status_code == 401
    bad = requests.get(service_lab.urls[1] + "/v1/previews/ws-x", headers={"Authorization": f"Bearer {wrong}"},
                       verify=str(service_lab.ca), timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    not_json = requests.put(service_lab.urls[1] + "/v1/previews/ws-x", data=b"{nope", verify=str(service_lab.ca),
                            timeout=10, headers={"Authorization": f"Bearer {service_lab.tokens['backend']}",
                                                 "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    extra = call(service_lab, "backend", "PUT", "/v1/previews/ws-x", host=1,
                 json={"user": "u", "framework": "tiny", "colour": "red"})
    assert extra.status_code == 422 and extra.json()["field"] == "body.colour"
    assert _oversized_put(service_lab).status_code == 413
    unknown = call(service_lab, "backend", "PUT", "/v1/previews/ws-x", host=1, json={"user": "u", "framework": "rails"})
    assert unknown.status_code == 400 and "tiny" in unknown.json()["known"]
    assert call(service_lab, "backend", "GET", "/v1/hosts", host=1).status_code == 403

    workers = service_lab.fleet.service.workers if service_lab.fleet.service else 1
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # flood: 2/s, burst 5, in each worker process of the instance
        codes = list(pool.map(lambda _: call(service_lab, "flood", "GET", "/v1/previews/ws-x", host=1), range(24)))
    allowed = workers * (5 + 2 * math.ceil(time.monotonic() - started))
    limited = [r for r in codes if r.status_code == 429]
    assert limited and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert sum(r.status_code == 404 for r in codes) <= allowed, [r.status_code for r in codes]

    journal = service_lab.on_host("ax2", f"journalctl -u drape-runtime.service --since '{since}' --no-pager -o cat")
    assert "no valid token" in journal and "by backend" in journal and "by flood" in journal
    assert wrong not in journal
    assert not any(token in journal for token in service_lab.tokens.values())


def test_metrics_are_scraped_with_the_monitoring_token(service_lab: ServiceLab) -> None:
    assert call(service_lab, "backend", "GET", "/metrics", host=2).status_code == 403
    text = call(service_lab, "monitoring", "GET", "/metrics", host=2).text
    for host in ("ax1", "ax2", "ax3"):
        assert f'drape_host_reachable{{host="{host}"}} 1.0' in text
        assert f'drape_host_memory_capacity_bytes{{host="{host}"}} 4.294967296e+09' in text
    scrapes = 'drape_runtime_requests_total{caller="monitoring",method="GET",route="/metrics",status="200"}'
    before = _value(text, scrapes)
    deadline = time.monotonic() + 10  # a request is counted once its answer is sent
    while _value(call(service_lab, "monitoring", "GET", "/metrics", host=2).text, scrapes) <= before:
        assert time.monotonic() < deadline, "scrapes are not counted by caller"


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_second_service_deploy_changes_nothing(service_lab: ServiceLab) -> None:
    from drape_fleet.environments import LAB, load
    from drape_fleet.provision.service import provision

    # Twice in a row: the session's provisioning may be over an hour old, and then the first run's package step
    # refreshes the apt lists (cache_time), which counts as a change that says nothing about the deploy.
    for _ in range(2):
        run = provision(load(LAB), ["ax3"], only="ingress,service").runs[0]
        assert run.ok, run.error
    assert {name: deploy.changed for name, deploy in run.deploys.items() if deploy.changed} == {}
    assert run.deploys["service"].unchanged >= 20


def test_prometheus_on_the_monitoring_server_counts_real_calls_with_a_metrics_only_token(
        service_lab: ServiceLab, provisioned_lab: FleetTarget) -> None:
    from drape_fleet.monitoring.api import MonitoringApi
    from drape_fleet.monitoring.plan import RUNTIME_CA_FILE, bearer_path, monitoring_plan

    plan = monitoring_plan(provisioned_lab.fleet)
    server, job = plan.server.name, "drape-runtime"
    token_file = bearer_path(job)
    assert service_lab.on_host(server, f"stat -c '%a %U %G' {token_file}").split() == ["640", "root", "prometheus"]
    token = service_lab.on_host(server, f"cat {token_file}").strip()
    assert token == service_lab.tokens["monitoring"]
    assert service_lab.on_host(server, f"cat {RUNTIME_CA_FILE}") == service_lab.ca.read_text()
    refused = requests.get(service_lab.urls[0] + "/v1/previews", headers={"Authorization": f"Bearer {token}"},
                           verify=str(service_lab.ca), timeout=30)
    assert refused.status_code == 403, "Prometheus' token may do more than read metrics"

    api = MonitoringApi(provisioned_lab.ssh_target(plan.server), plan)
    hosts = set(service_lab.fleet.host_names)
    deadline = time.monotonic() + 90
    while {s["metric"]["host"] for s in api.query(f'up{{job="{job}"}} == 1')} != hosts:
        assert time.monotonic() < deadline, api.query(f'up{{job="{job}"}}')
        time.sleep(2)
    capacity = api.query(f'drape_host_memory_capacity_bytes{{job="{job}",host="ax3"}}')
    assert len(capacity) == len(hosts) and {float(s["value"][1]) for s in capacity} == {4 * 2**30}

    series = (f'sum(drape_runtime_requests_total{{job="{job}",host="ax2",caller="ops",method="GET",'
              'route="/v1/previews/{workspace}",status="404"})')

    def counted() -> float:
        found = api.query(series)
        return float(found[0]["value"][1]) if found else 0.0

    before = counted()
    for index in range(7):
        assert call(service_lab, "ops", "GET", f"/v1/previews/ws-prom-{index}", host=1).status_code == 404
    deadline = time.monotonic() + 60  # a scrape every 2 s on the lab
    while (now := counted()) < before + 7:
        assert time.monotonic() < deadline, f"Prometheus counts {now - before} of the 7 calls"
        time.sleep(2)
    assert now == before + 7
