"""Bare-metal stand-ins: lab machines that act like a Hetzner dedicated server through a reinstall.

A machine has a disk (a Docker volume), firmware that boots it (``power``: Robot's reset boots the rescue
system when it is activated, a reboot boots the disk), a rescue system (images/rescue: sshd, the installimage
stand-in that checks what it receives with the project's validator and installs onto the disk) and, after
the install, the lab host image booted with the new system's host keys, authorized keys and volumes.
``invoke provision --host NAME --reinstall`` runs against one end to end, with the fake Robot webservice
calling ``python -m drape_fleet.lab.baremetal robot-reset`` on each reset (tests/lab/test_reinstall.py).

Modules: ``machine`` (what a machine is), ``spec`` (its containers), ``disk``, ``power``, ``lifecycle``.
"""
