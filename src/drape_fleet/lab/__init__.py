"""The lab: stand-ins for AX102 servers on this machine (systemd + sshd containers on lab bridges).

The very same deploys, checks and runtime run against these hosts in CI. One module per concern:
``settings`` (what a lab is), ``state`` (the one resolver of a lab's settings, and its files), ``fleet``
(the fleet it stands for), ``spec`` (what it asks the engine for), ``engine``, ``images``, ``ranges``
(address ranges), ``hosts`` (the stand-ins), and its lifecycle: ``up``, ``status``, ``down``. ``baremetal``
adds a stand-in for a dedicated server through a reinstall (Robot reset, rescue system, installimage).
"""

from drape_fleet.lab.errors import LabError
from drape_fleet.lab.settings import LabSettings

__all__ = ["LabError", "LabSettings"]
