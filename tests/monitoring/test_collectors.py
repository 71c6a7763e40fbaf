"""The textfile collectors (files/monitoring/drape-node-metrics): parsing from captured output, and whole runs of
the script against stand-in commands on PATH, their output checked by `promtool check metrics`."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drape_fleet.provision.render import files_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "monitoring"
SCRIPT = files_path("monitoring/drape-node-metrics")
Tool = Callable[[str], str]


@pytest.fixture(scope="module")
def collectors() -> ModuleType:
    loader = SourceFileLoader("drape_node_metrics", str(SCRIPT))  # a script without .py: load it by path
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _check_metrics(tool: Tool, text: str) -> None:
    run = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr + text


def test_pending_upgrades_split_into_security_and_other(collectors: ModuleType) -> None:
    debian = collectors.upgrades((FIXTURES / "apt-simulate-debian-12.txt").read_text())
    assert debian == {"security": 3, "other": 3}
    ubuntu = collectors.upgrades((FIXTURES / "apt-simulate-ubuntu-24.04.txt").read_text())
    assert ubuntu == {"security": 2, "other": 1}
    assert collectors.upgrades("Reading package lists...\n0 upgraded, 0 newly installed\n") == {
        "security": 0, "other": 0}


def test_updates_metrics_say_since_when_a_reboot_is_required(collectors: ModuleType, tool: Tool) -> None:
    metrics = collectors.Metrics()
    collectors.updates_metrics(metrics, {"security": 3, "other": 1}, 1780000000.5)
    text = metrics.text()
    assert 'drape_apt_upgrades_pending{kind="security"} 3' in text
    assert "drape_reboot_required 1\n" in text
    assert "drape_reboot_required_since_timestamp_seconds 1780000000.5\n" in text
    _check_metrics(tool, text)


def test_smart_health_from_smartctl_json(collectors: ModuleType, tool: Tool) -> None:
    metrics = collectors.Metrics()
    for name, device in (("healthy", "/dev/nvme0"), ("failing", "/dev/nvme1")):
        collectors.smart_metrics(metrics, device, json.loads((FIXTURES / f"smartctl-nvme-{name}.json").read_text()))
    text = metrics.text()
    labels = 'device="/dev/nvme{0}",model="SAMSUNG MZQL21T9HCJR-00A07",serial="S64GNE0T10000{1}"'
    assert f"drape_smart_healthy{{{labels.format(0, 1)}}} 1" in text
    assert f"drape_smart_healthy{{{labels.format(1, 2)}}} 0" in text
    assert 'drape_smart_critical_warning{device="/dev/nvme1"} 4' in text
    assert 'drape_smart_available_spare_percent{device="/dev/nvme1"} 8' in text
    assert 'drape_smart_media_errors{device="/dev/nvme1"} 312' in text
    assert 'drape_smart_percentage_used{device="/dev/nvme0"} 2' in text
    assert text.count("# TYPE drape_smart_healthy gauge") == 1, "a family's samples must stay together"
    _check_metrics(tool, text)


def test_a_report_without_a_verdict_counts_as_unhealthy(collectors: ModuleType) -> None:
    metrics = collectors.Metrics()
    collectors.smart_metrics(metrics, "/dev/nvme2", {"smartctl": {"exit_status": 2}})
    assert 'drape_smart_healthy{device="/dev/nvme2",model="",serial=""} 0' in metrics.text()


def test_certificate_end_dates_as_openssl_prints_them(collectors: ModuleType) -> None:
    assert collectors.not_after_seconds("notAfter=Jun  1 12:00:00 2026 GMT\n") == datetime.datetime(
        2026, 6, 1, 12, tzinfo=datetime.UTC).timestamp()


def _fake_command(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _run_collector(tmp_path: Path, path_dir: Path, *args: str) -> tuple[int, str]:
    out = tmp_path / "textfiles"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{path_dir}:{os.environ['PATH']}"}
    run = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out), "--interval", "30"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [f"drape_{args[0]}.prom"], "one file, renamed into place (no leftovers)"
    assert oct(written[0].stat().st_mode & 0o777) == "0o644"
    return run.returncode, written[0].read_text()


def test_docker_collector_counts_containers_by_state(tmp_path: Path, tool: Tool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_command(bin_dir, "docker", 'case "$1" in info) echo 7f3c;; ps) printf "running\\nrunning\\nexited\\n";; '
                                     "esac")
    code, text = _run_collector(tmp_path, bin_dir, "docker")
    assert code == 0
    assert "drape_docker_engine_up 1" in text
    assert 'drape_docker_containers{state="running"} 2' in text
    assert 'drape_docker_containers{state="exited"} 1' in text
    assert 'drape_docker_containers{state="paused"} 0' in text
    assert 'drape_collector_success{collector="docker"} 1' in text
    assert 'drape_collector_interval_seconds{collector="docker"} 30' in text
    _check_metrics(tool, text)


def test_an_engine_that_does_not_answer_is_down_not_a_failed_collector(tmp_path: Path, tool: Tool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_command(bin_dir, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    code, text = _run_collector(tmp_path, bin_dir, "docker")
    assert code == 0
    assert "drape_docker_engine_up 0" in text
    assert "drape_docker_containers" not in text
    assert 'drape_collector_success{collector="docker"} 1' in text
    hung = tmp_path / "hung"
    hung.mkdir()
    _fake_command(hung, "docker", "sleep 30")
    code, text = _run_collector(tmp_path, hung, "docker", "--timeout", "1")
    assert "drape_docker_engine_up 0" in text, "an engine that hangs is down"
    _check_metrics(tool, text)


def _certificate(path: Path, days: int) -> datetime.datetime:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ax1")])
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return not_after


def test_tls_collector_reads_each_certificates_end_with_openssl(tmp_path: Path, tool: Tool) -> None:
    server_end = _certificate(tmp_path / "cert.pem", 10)
    ca_end = _certificate(tmp_path / "ca.pem", 3650)
    code, text = _run_collector(tmp_path, tmp_path, "tls", f"--cert=server={tmp_path / 'cert.pem'}",
                                f"--cert=ca={tmp_path / 'ca.pem'}")
    assert code == 0
    assert (f'drape_tls_certificate_not_after_timestamp_seconds{{path="{tmp_path / "cert.pem"}",role="server"}} '
            f"{int(server_end.timestamp())}") in text
    assert f"{int(ca_end.timestamp())}" in text
    _check_metrics(tool, text)


def test_a_missing_certificate_fails_the_collector_visibly(tmp_path: Path) -> None:
    code, text = _run_collector(tmp_path, tmp_path, "tls", f"--cert=server={tmp_path / 'missing.pem'}")
    assert code == 1
    assert 'drape_collector_success{collector="tls"} 0' in text
