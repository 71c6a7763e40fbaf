"""Reinstall a dedicated server from bare metal: Robot's rescue system, installimage with this project's layout
(RAID1, LVM, XFS for Docker and the store), the new system's host key pinned. ``executor.Reinstall`` is the
entry point; ``plan`` holds the steps, ``steps`` what each does, ``commands`` what runs on the servers."""
