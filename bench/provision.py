"""Benchmark: provision 3 fresh lab hosts in parallel, re-run (idempotent), and ask ssh-audit for its verdict.

    .venv/bin/python bench/provision.py [--keep]

It makes a lab of its own (prefix drape-bench, 172.29.70.0/24 and 172.29.80.0/24 unless told otherwise),
so the main lab and anyone's tests are left alone, and takes it down afterwards (unless --keep).
Prints one line per figure, for the issue's closing note.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", default="drape-bench")
    parser.add_argument("--public-subnet", default="172.29.70.0/24")
    parser.add_argument("--private-subnet", default="172.29.80.0/24")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab up afterwards")
    args = parser.parse_args()
    os.environ["DRAPE_LAB_PREFIX"] = args.prefix
    os.environ.pop("DRAPE_PKI_DIR", None)

    from drape_fleet.environments import LAB, load
    from drape_fleet.lab.down import down
    from drape_fleet.lab.state import lab_state_settings
    from drape_fleet.lab.up import up
    from drape_fleet.provision.service import provision

    settings = lab_state_settings(3, IPv4Network(args.public_subnet), IPv4Network(args.private_subnet))
    quiet = lambda message: None  # noqa: E731

    down(settings, quiet)
    started = time.monotonic()
    up(settings, quiet)
    lab_up = time.monotonic() - started
    try:
        target = load(LAB)
        started = time.monotonic()
        fresh = provision(target, every=True)
        fresh_s = time.monotonic() - started
        if not fresh.ok:
            print("provisioning failed:", [(r.host, r.error) for r in fresh.runs if not r.ok])
            return 1
        started = time.monotonic()
        again = provision(target, every=True)
        again_s = time.monotonic() - started
        audit = ssh_audit(str(target.fleet.hosts[0].public_address))
        print(f"lab.up of 3 fresh hosts (not provisioning):      {lab_up:6.1f} s")
        print(f"provision 3 fresh lab hosts in parallel:         {fresh_s:6.1f} s "
              f"({sum(r.changes for r in fresh.runs)} changes)")
        print(f"idempotent re-run on the same 3 hosts:           {again_s:6.1f} s "
              f"({sum(r.changes for r in again.runs)} changes)")
        print(f"ssh-audit verdict on {target.fleet.hosts[0].name}:                         {audit}")
        return 0 if again.ok and all(r.changes == 0 for r in again.runs) else 1
    finally:
        if not args.keep:
            down(settings, quiet)


def ssh_audit(address: str) -> str:
    tool = shutil.which("ssh-audit") or str(Path(sys.executable).with_name("ssh-audit"))
    result = subprocess.run([tool, "-j", address], capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(result.stdout)
    fails = warns = 0
    for section in ("kex", "key", "enc", "mac"):
        for algorithm in report.get(section, []):
            notes = algorithm.get("notes", {})
            fails += len(notes.get("fail", []))
            warns += len(notes.get("warn", []))
    verdict = "PASS" if result.returncode == 0 and not fails and not warns else "FAIL"
    return (f"{verdict}: {fails} failure(s), {warns} warning(s), {len(report.get('cves', []))} CVE(s), "
            f"exit {result.returncode} ({report['banner']['software']}, kex {report['kex'][0]['algorithm']})")


if __name__ == "__main__":
    sys.exit(main())
