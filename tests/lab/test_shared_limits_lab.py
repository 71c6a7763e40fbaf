"""Shared kernel limits (issue 8, item 4): every preview runs as one host uid, so per-user inotify limits are
shared by all tenants. Measured here: one preview holding more inotify instances than the whole host used to
allow (fs.inotify.max_user_instances was 8192) does not make inotify (what fs.watch uses) fail in another
preview running as the same uid.

What the lab can and cannot show: fs.inotify.* is not namespaced and a lab host shares this machine's kernel,
so the limit measured against is this machine's (which the lab's base deploy sets, and which another lab on
the same machine may set back). The lab cannot lower it to show the failure of the old value without breaking
every other process of that uid on the machine; the old value is stated, the new one read. The uid used here
(54321) belongs to nothing else on the machine, so the test's instances count against no one else."""

from __future__ import annotations

import time

import pytest

from drape_fleet.environments import FleetTarget
from tests.lab.lab_helpers import PERL, ensure_perl_image, networks, ssh

pytestmark = pytest.mark.lab

SHARED_UID = 54321
OLD_LIMIT = 8192
HOLD = OLD_LIMIT + 1000

# inotify_init1 (294) and inotify_add_watch (254) on x86_64, through perl's syscall().
HOARD = f"""
my @held;
for (1 .. {HOLD}) {{ my $fd = syscall(294, 0); if ($fd < 0) {{ print "stopped at ", scalar(@held), ": $!\\n"; last }}
                     push @held, $fd }}
print "held ", scalar(@held), "\\n"; $| = 1; sleep 120;
"""
WATCH = """
my $fd = syscall(294, 0); die "inotify_init1: $!\\n" if $fd < 0;
my $path = "/"; my $wd = syscall(254, $fd, $path, 0x100); die "inotify_add_watch: $!\\n" if $wd < 0;
print "watching\\n";
"""


def test_one_preview_hoarding_inotify_does_not_break_watching_in_another(provisioned_lab: FleetTarget) -> None:
    # The host's own persisted setting, applied now: on a shared kernel the live value is the last writer's.
    ssh("ax1", "sudo sysctl -q -p /etc/sysctl.d/60-drape.conf")
    limit = int(ssh("ax1", "cat /proc/sys/fs/inotify/max_user_instances"))
    assert limit > HOLD, f"the host's own fs.inotify.max_user_instances is {limit}, not above {HOLD}"
    ensure_perl_image("ax1")
    with networks("ax1", "drptest5") as (preview, _):
        hoarder = ssh("ax1", f"sudo docker run -d --network {preview} --user {SHARED_UID} --ulimit nofile=20000:20000 "
                             f"{PERL} perl -e '{HOARD}'")
        try:
            deadline = time.monotonic() + 60
            said = ""
            while "held" not in said and "stopped" not in said and time.monotonic() < deadline:
                time.sleep(1)
                said = ssh("ax1", f"sudo docker logs {hoarder}", check=False)
            assert said.strip() == f"held {HOLD}", said
            other = ssh("ax1", f"sudo docker run --rm --network {preview} --user {SHARED_UID} {PERL} "
                               f"perl -e '{WATCH}' 2>&1", check=False)
            assert other == "watching", other
        finally:
            ssh("ax1", f"sudo docker rm -f {hoarder}", check=False)
    print(f"one preview held {HOLD} inotify instances (the old host-wide limit was {OLD_LIMIT}, now {limit}); "
          "another preview of the same uid still watched files")
