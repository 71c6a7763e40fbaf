"""Every deploy, in order: `pyinfra inventories/lab.py deploys/site.py`."""

from pyinfra import local

for concern in ("base", "docker"):
    local.include(f"deploys/{concern}.py")
