"""The lab: stand-ins for AX102 servers on this machine (systemd + sshd containers on lab bridges).

The very same deploys, checks and runtime run against these hosts in CI. See ``LabSettings`` for
what a lab is made of and ``fleet.up`` / ``fleet.down`` / ``fleet.status`` for its lifecycle.
"""

from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings

__all__ = ["LabError", "LabSettings"]
