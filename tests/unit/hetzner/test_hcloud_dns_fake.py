"""The Cloud DNS fake against the published reference, with raw HTTP: shapes hcloud-python's fixtures use,
error bodies and codes, pagination, rate-limit headers, RRSet rules, actions, and process mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from dns_testing import ZONE
from fakes.hcloud_dns import DEFAULT_TOKEN, FakeCloudDns

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
SUPPORT = Path(__file__).resolve().parents[2] / "support"


def call(api: FakeCloudDns, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return requests.request(method, f"{api.url}{path}", headers=headers, timeout=10, **kwargs)


def error(answer: requests.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}  # reference, "Errors"
    return answer.status_code, body["error"]["code"]


def test_zone_and_rrset_shapes_match_hcloud_python_fixtures(api: FakeCloudDns) -> None:
    zone = call(api, "GET", f"/zones/{ZONE}").json()["zone"]
    assert set(zone) == {"id", "name", "created", "mode", "ttl", "protection", "labels", "primary_nameservers",
                         "record_count", "status", "registrar", "authoritative_nameservers"}
    assert zone["mode"] == "primary" and zone["protection"] == {"delete": False}
    assert call(api, "GET", f"/zones/{zone['id']}").json()["zone"]["name"] == ZONE  # by ID or by name
    rrsets = call(api, "GET", f"/zones/{ZONE}/rrsets").json()["rrsets"]
    assert {(r["name"], r["type"]) for r in rrsets} == {("@", "NS"), ("@", "SOA")}  # created with the zone
    assert set(rrsets[0]) == {"zone", "id", "name", "type", "ttl", "labels", "protection", "records"}
    assert rrsets[0]["id"] == f"{rrsets[0]['name']}/{rrsets[0]['type']}" and rrsets[0]["zone"] == zone["id"]


def test_create_answers_the_rrset_and_a_running_action_that_then_succeeds(api: FakeCloudDns) -> None:
    api.world.action_s = 0.2
    created = call(api, "POST", f"/zones/{ZONE}/rrsets",
                   json={"name": "*.preview", "type": "A", "ttl": 300, "records": [{"value": "203.0.113.11"}]})
    assert created.status_code == 201
    body = created.json()
    assert body["rrset"]["records"] == [{"value": "203.0.113.11", "comment": ""}]
    action = body["action"]
    assert set(action) == {"id", "command", "status", "progress", "started", "finished", "resources", "error"}
    assert action["status"] == "running" and action["finished"] is None
    assert call(api, "GET", f"/actions/{action['id']}").json()["action"]["status"] == "running"
    time.sleep(0.25)
    done = call(api, "GET", f"/zones/actions/{action['id']}").json()["action"]
    assert done["status"] == "success" and done["progress"] == 100 and done["finished"]
    assert error(call(api, "POST", f"/zones/{ZONE}/rrsets", json={"name": "*.preview", "type": "A",
                                                                  "records": [{"value": "203.0.113.12"}]})) == (
        409, "uniqueness_error")


def test_rrset_rules_are_invalid_input_naming_the_field(api: FakeCloudDns) -> None:
    cases = [({"name": "WWW", "type": "A", "records": [{"value": "203.0.113.1"}]}, "name"),
             ({"name": f"www.{ZONE}", "type": "A", "records": [{"value": "203.0.113.1"}]}, "name"),
             ({"name": "www", "type": "A", "ttl": 30, "records": [{"value": "203.0.113.1"}]}, "ttl"),
             ({"name": "www", "type": "A", "records": []}, "records"),
             ({"name": "www", "type": "A", "records": [{"value": "203.0.113.1"}, {"value": "203.0.113.1"}]},
              "records"),
             ({"name": "www", "type": "AAAA", "records": [{"value": "203.0.113.1"}]}, "records"),
             ({"name": "www", "type": "BOGUS", "records": [{"value": "x"}]}, "type")]
    for body, field in cases:
        answer = call(api, "POST", f"/zones/{ZONE}/rrsets", json=body)
        assert error(answer) == (400, "invalid_input"), body
        assert answer.json()["error"]["details"]["fields"][0]["name"] == field
    assert error(call(api, "POST", f"/zones/{ZONE}/rrsets", data=b"{not json")) == (400, "json_error")


def test_record_actions_follow_the_reference(api: FakeCloudDns) -> None:
    base = f"/zones/{ZONE}/rrsets/www/A"
    assert error(call(api, "POST", f"{base}/actions/set_records", json={"records": [{"value": "203.0.113.1"}]})) == (
        404, "not_found")  # set_records: "an existing RRSet"
    added = call(api, "POST", f"{base}/actions/add_records", json={"records": [{"value": "203.0.113.1"}]})
    assert added.status_code == 201  # add_records: "automatically created if it doesn't exist"
    call(api, "POST", f"{base}/actions/add_records", json={"records": [{"value": "203.0.113.2"}], "ttl": 120})
    assert [r["value"] for r in call(api, "GET", base).json()["rrset"]["records"]] == ["203.0.113.1", "203.0.113.2"]
    assert error(call(api, "POST", f"{base}/actions/change_ttl", json={})) == (400, "invalid_input")
    call(api, "POST", f"{base}/actions/change_ttl", json={"ttl": None})
    assert call(api, "GET", base).json()["rrset"]["ttl"] is None  # null: the zone's default
    call(api, "POST", f"{base}/actions/remove_records",
         json={"records": [{"value": "203.0.113.1"}, {"value": "203.0.113.2"}]})
    assert error(call(api, "GET", base)) == (404, "not_found")  # "automatically deleted" once empty


def test_auth_errors(api: FakeCloudDns) -> None:
    assert error(requests.get(f"{api.url}/zones", timeout=5)) == (401, "unauthorized")
    assert error(call(api, "GET", "/zones", headers={"Authorization": "Bearer nope"})) == (401, "unauthorized")
    reader = {"Authorization": "Bearer read-only-token"}
    assert call(api, "GET", "/zones", headers=reader).status_code == 200
    assert error(call(api, "POST", f"/zones/{ZONE}/rrsets", headers=reader, json={})) == (403, "token_readonly")


def test_secondary_zones_refuse_rrset_calls(api: FakeCloudDns) -> None:
    api.world.add_zone("secondary.dev", mode="secondary")
    assert error(call(api, "GET", "/zones/secondary.dev/rrsets")) == (422, "incorrect_zone_mode")
    assert error(call(api, "GET", "/zones/none.dev")) == (404, "not_found")


def test_pagination_meta_and_link_header(api: FakeCloudDns) -> None:
    for index in range(3):
        api.world.add_zone(f"zone{index}.dev")
    first = call(api, "GET", "/zones", params={"per_page": 2})
    assert first.json()["meta"]["pagination"] == {"page": 1, "per_page": 2, "previous_page": None, "next_page": 2,
                                                  "last_page": 2, "total_entries": 4}
    assert 'rel="next"' in first.headers["Link"] and 'rel="prev"' not in first.headers["Link"]
    second = call(api, "GET", "/zones", params={"page": 2, "per_page": 2}).json()
    assert second["meta"]["pagination"]["next_page"] is None and len(second["zones"]) == 2
    assert call(api, "GET", "/zones", params={"name": "zone1.dev"}).json()["zones"][0]["name"] == "zone1.dev"
    assert error(call(api, "GET", "/zones", params={"page": 0})) == (400, "invalid_input")


def test_rate_limit_headers_and_429() -> None:
    with FakeCloudDns(limit_per_hour=3) as api:
        answers = [call(api, "GET", "/zones") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" and int(a.headers["RateLimit-Reset"]) > 0 for a in answers)
    assert error(answers[-1]) == (429, "rate_limit_exceeded")
    assert answers[0].headers["X-Correlation-Id"]


def test_runs_as_a_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(SUPPORT)}
    process = subprocess.Popen([sys.executable, "-m", "fakes.hcloud_dns", "--token", "proc", "--zone", "lab.dev"],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("FAKE_HCLOUD_URL=http://127.0.0.1:")
        zones = requests.get(f"{line.split('=', 1)[1]}/zones", headers={"Authorization": "Bearer proc"}, timeout=5)
        assert [z["name"] for z in zones.json()["zones"]] == ["lab.dev"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
