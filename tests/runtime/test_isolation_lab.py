"""Isolation between users' previews, checked from inside a preview (through the outer engine, not the runtime)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runtime_lab_support import RuntimeLab

from drape_fleet.runtime.readiness import Phase
from drape_fleet.runtime.service import PreviewRuntime

pytestmark = pytest.mark.lab


def inside(lab: RuntimeLab, host: str, workspace: str, command: str) -> tuple[int, str]:
    import subprocess

    result = subprocess.run(["docker", "exec", lab.container(host), "docker", "exec", f"drape-pv-{workspace}",
                             "sh", "-c", command], capture_output=True, text=True, timeout=30, check=False)
    return result.returncode, result.stdout + result.stderr


def connects(lab: RuntimeLab, host: str, workspace: str, address: str, port: int) -> bool:
    code, _ = inside(lab, host, workspace, f"echo | busybox nc -w 1 {address} {port}")
    return code == 0


def test_previews_cannot_reach_each_other_the_host_or_the_docker_api(
        lab: RuntimeLab, runtimes: Callable[..., PreviewRuntime]) -> None:
    runtime = runtimes()
    runtime.cordon("ax2", "test")
    runtime.cordon("ax3", "test")
    a = runtime.start("iso-a", "alice", "tiny", wait=30)
    b = runtime.start("iso-b", "bob", "tiny", wait=30)
    runtime.uncordon("ax2")
    runtime.cordon("ax1", "test")
    c = runtime.start("iso-c", "carol", "tiny", wait=30)
    assert [(s.phase, s.host) for s in (a, b, c)] == [(Phase.READY, "ax1"), (Phase.READY, "ax1"),
                                                       (Phase.READY, "ax2")]
    ax1, ax2 = (str(lab.fleet.host(h).private_address) for h in ("ax1", "ax2"))
    # a preview in a network holder's namespace has its address there
    mode = lab.on_host("ax1", "docker inspect -f '{{.HostConfig.NetworkMode}}' drape-pv-iso-b").strip()
    owner = mode.removeprefix("container:") if mode.startswith("container:") else "drape-pv-iso-b"
    b_ip = lab.on_host("ax1", "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "
                              f"{owner}").strip()
    b_port, c_port = (int((s.url or "").rsplit(":", 1)[1]) for s in (b, c))

    # positive controls: the tool works, the preview serves, the backend reaches it
    assert connects(lab, "ax1", "iso-a", "127.0.0.1", 3000)
    assert lab.on_host("ax1", f"curl -s -m 3 http://{b_ip}:3000/").strip() == "preview of iso-b"
    # another workspace: directly, through its published port on the same host, on another host
    assert not connects(lab, "ax1", "iso-a", b_ip, 3000)
    assert not connects(lab, "ax1", "iso-a", ax1, b_port)
    assert not connects(lab, "ax1", "iso-a", ax2, c_port)
    # the hosts' Docker API (own host and another) and the backend's address
    assert not connects(lab, "ax1", "iso-a", ax1, lab.fleet.network.docker_api_port)
    assert not connects(lab, "ax1", "iso-a", ax2, lab.fleet.network.docker_api_port)
    assert not connects(lab, "ax1", "iso-a", str(lab.settings.private_gateway), 22)

    # no Docker socket, no capabilities, no new privileges, not root
    code, out = inside(lab, "ax1", "iso-a", "ls -la /var/run/docker.sock /run/docker.sock 2>&1; "
                                            "find / -xdev -name 'docker.sock' 2>/dev/null | head -1")
    assert "No such file" in out and "docker.sock\n" not in out.split("\n", 2)[-1]
    code, out = inside(lab, "ax1", "iso-a", "id -u; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status")
    lines = out.split()
    assert lines[0] == "1000"
    assert "0000000000000000" in lines[lines.index("CapEff:") + 1]
    assert lines[lines.index("NoNewPrivs:") + 1] == "1"
    # the shared store is readable and not writable; the activity stamp cannot be forged
    marker = "/srv/drape/pnpm-store/.drape-isolation-test"
    lab.on_host("ax1", f"echo trusted > {marker} && chmod 0644 {marker}")
    try:
        code, out = inside(lab, "ax1", "iso-a", "cat /pnpm-store/.drape-isolation-test")
        assert code == 0 and out.strip() == "trusted"
        for target in ("/pnpm-store/.drape-isolation-test", "/pnpm-store/new-file", "/.drape-activity"):
            code, out = inside(lab, "ax1", "iso-a", f"echo evil > {target}")
            assert code != 0, f"{target} is writable: {out}"
        assert lab.on_host("ax1", f"cat {marker}").strip() == "trusted"
    finally:
        lab.on_host("ax1", f"rm -f {marker}")
    # the limits placement counted are the ones the kernel enforces
    memory = lab.on_host("ax1", "docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} "
                                "{{.HostConfig.Privileged}} {{.HostConfig.CpuShares}}' drape-pv-iso-a").split()
    assert memory == [str(256 * 1024 * 1024), "512", "false", "512"]
