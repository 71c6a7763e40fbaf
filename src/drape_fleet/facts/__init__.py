"""pyinfra facts we need and pyinfra lacks (mdadm, LVM, nftables, os-release, the SSH client's address).

Each is a ``command()`` and a ``process(lines)``; ``process`` hands the text to a pure parser in
``drape_fleet.provision`` so the parsing is tested from fixtures without a host.
"""
