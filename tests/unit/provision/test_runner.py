from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from drape_fleet.provision.runner import (
    UnknownDeploy,
    error_from_stderr,
    parse_run_json,
    pyinfra_argv,
    select_deploys,
    split_op_name,
    summary_rows,
)


def test_select_deploys_keeps_site_order() -> None:
    assert select_deploys("") == ("storage", "base", "ssh", "firewall", "docker", "cache", "ingress", "monitoring",
                                  "monitoring_server", "backup", "link", "hardening")
    assert select_deploys("firewall, ssh") == ("ssh", "firewall")
    with pytest.raises(UnknownDeploy, match="unknown deploy 'fw': choose from storage, base, ssh"):
        select_deploys("ssh,fw")


def test_argv() -> None:
    inventory = Path("/repo/inventories/lab.py")
    assert pyinfra_argv(inventory=inventory, host="ax1", deploys=select_deploys("")) == [
        sys.executable, "-m", "pyinfra", "--json", "--limit", "ax1", "-y", "/repo/inventories/lab.py",
        "deploys/site.py"]
    assert pyinfra_argv(inventory=inventory, host="ax2", deploys=("ssh", "firewall"), dry=True,
                        data={"drape_force": "true"}, ssh_user="root") == [
        sys.executable, "-m", "pyinfra", "--json", "--limit", "ax2", "--dry", "--user", "root",
        "--data", "drape_force=true", "/repo/inventories/lab.py", "deploys/ssh.py", "deploys/firewall.py"]


def test_op_names() -> None:
    assert split_op_name("deploys/ssh.py | ssh | sshd_config candidate") == ("ssh", "sshd_config candidate")
    assert split_op_name("cache | Size guard | timer") == ("cache", "Size guard | timer")
    assert split_op_name("server.shell (echo)") == ("(other)", "server.shell (echo)")


RESULTS = {
    "plan": [],
    "results": {
        "operations": [
            {"name": "deploys/base.py | base | Essential packages", "success": [], "error": [], "no_change": ["ax1"]},
            {"name": "deploys/ssh.py | ssh | sshd_config candidate", "success": ["ax1"], "error": [],
             "no_change": []},
            {"name": "deploys/docker.py | docker | TLS CA", "success": [], "error": ["ax1"], "no_change": []},
        ],
        "totals": {"hosts": 3, "success": 1, "error": 1, "no_change": 1},
        "failed_hosts": ["ax1"],
    },
}


def test_parse_results() -> None:
    run = parse_run_json(json.dumps(RESULTS), "ax1", dry=False)
    assert not run.ok and run.changes == 1
    assert run.deploys["ssh"].changed == ["sshd_config candidate"]
    assert run.deploys["docker"].failed == ["TLS CA"]
    assert run.deploys["base"].unchanged == 1
    assert summary_rows([run]) == [
        {"host": "ax1", "deploy": "base", "changed": 0, "unchanged": 1, "failed": 0, "what": []},
        {"host": "ax1", "deploy": "ssh", "changed": 1, "unchanged": 0, "failed": 0,
         "what": ["sshd_config candidate"]},
        {"host": "ax1", "deploy": "docker", "changed": 0, "unchanged": 0, "failed": 1, "what": ["TLS CA"]},
    ]


def test_parse_dry_plan() -> None:
    plan = {"plan": [
        {"name": "cache | Store location and limit", "hosts_with_change": ["ax3"],
         "hosts_with_conditional_change": []},
        {"name": "cache | Store measured now", "hosts_with_change": [], "hosts_with_conditional_change": ["ax3"]},
        {"name": "cache | Size guard timer on", "hosts_with_change": [], "hosts_with_conditional_change": []},
    ], "results": None}
    run = parse_run_json(json.dumps(plan), "ax3", dry=True)
    assert run.dry and run.ok
    assert run.deploys["cache"].changed == ["Store location and limit"]
    assert run.deploys["cache"].conditional == ["Store measured now"]
    assert run.deploys["cache"].unchanged == 1


def test_errors_are_picked_from_pyinfra_logs() -> None:
    stderr = ("--> Loading inventory...\n    [ax1] Connected\n\x1b[31m--> pyinfra error: ax1: RAID not redundant: "
              "md2\x1b[0m\n")
    assert error_from_stderr(stderr) == "--> pyinfra error: ax1: RAID not redundant: md2"


FAKE_PYINFRA = """
import json, os, sys
from drape_fleet.provision.notes import DeployNote, NoteKind, record
print("--> Starting operation: deploys/ssh.py | ssh | sshd_config candidate", file=sys.stderr)
print("    [ax1] root login KEPT (key only): pyinfra's log line, which nobody parses", file=sys.stderr)
assert record(DeployNote("ax1", "ssh", NoteKind.ROOT_LOGIN_KEPT, "deploy is not proven yet"))
record(DeployNote("ax2", "storage", NoteKind.RAID_FORCED, "another host's note"))
print(json.dumps({"plan": [], "results": {"operations": [
    {"name": "deploys/ssh.py | ssh | sshd_config candidate", "success": ["ax1"], "error": [], "no_change": []}],
    "failed_hosts": []}}))
"""


def test_deploys_tell_the_runner_through_structured_notes() -> None:
    """A real process stands in for pyinfra: what it records for this host comes back as data."""
    from drape_fleet.provision.notes import DeployNote, NoteKind
    from drape_fleet.provision.runner import Progress, run_pyinfra

    progress: list[Progress] = []
    run = run_pyinfra([sys.executable, "-c", FAKE_PYINFRA], "ax1", dry=False, on_progress=progress.append)
    assert run.ok, run.error
    assert run.notes == [DeployNote("ax1", "ssh", NoteKind.ROOT_LOGIN_KEPT, "deploy is not proven yet")]
    assert run.noted(NoteKind.ROOT_LOGIN_KEPT) and not run.noted(NoteKind.RAID_FORCED)
    assert progress == [Progress("ax1", "ssh", "sshd_config candidate")]
    assert run.deploys["ssh"].changed == ["sshd_config candidate"]


def test_a_deploy_run_by_hand_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from drape_fleet.provision.notes import NOTES_VAR, DeployNote, NoteKind, record

    monkeypatch.delenv(NOTES_VAR, raising=False)
    assert not record(DeployNote("ax1", "ssh", NoteKind.ROOT_LOGIN_KEPT, "x"))
