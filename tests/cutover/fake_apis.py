"""The Fly Machines fake and the Hetzner Cloud DNS fake (tests/support/fakes) in one process, seeded from a
scenario file, for the cutover's end-to-end tests (the cutover reaches them through the fleet file's
``[fly] api_url`` and ``[preview_dns] api_endpoint``, as it would reach the real APIs).

    PYTHONPATH=tests/support python tests/cutover/fake_apis.py SCENARIO.json

prints one JSON line ``{"fly": URL, "dns": URL, "machines": {...}}`` once both listen. The scenario::

    {"fly_tokens": {"TOKEN": {"apps": "*", "write": true}},
     "machines": [{"app": "drape-previews", "state": "started", "name": "preview-u1",
                   "metadata": {"drape_role": "preview"}}],
     "dns_tokens": {"TOKEN": true}, "zone": "drape.dev",
     "records": [{"name": "*.preview", "type": "CNAME", "values": ["drape-previews.fly.dev."], "ttl": 300}]}
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from fakes.fly_machines import FakeFly
from fakes.fly_state import Grant
from fakes.hcloud_dns import FakeCloudDns


def main(argv: list[str]) -> int:
    scenario = json.loads(Path(argv[0]).read_text())
    tokens = {token: Grant(apps="*" if spec.get("apps", "*") == "*" else frozenset(spec["apps"]),
                           write=bool(spec.get("write", True)))
              for token, spec in scenario["fly_tokens"].items()}
    fly = FakeFly(tokens, transition_s=float(scenario.get("transition_s", 0.3)))
    machines: dict[str, str] = {}
    for item in scenario.get("machines", []):
        fly.world.add_app(item["app"])
        made = fly.world.add_machine(item["app"], state=item.get("state", "started"), name=item.get("name"),
                                     metadata=item.get("metadata"))
        machines[made.name] = made.id
    for app in scenario.get("apps", []):
        fly.world.add_app(app)
    dns = FakeCloudDns({token: bool(write) for token, write in scenario["dns_tokens"].items()})
    zone = dns.world.add_zone(scenario["zone"])
    for record in scenario.get("records", []):
        dns.world.add_rrset(zone, record["name"], record["type"], record["values"], record.get("ttl"))
    fly.start()
    dns.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"fly": fly.url, "dns": dns.url, "machines": machines}), flush=True)
    stop.wait()
    fly.stop()
    dns.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
