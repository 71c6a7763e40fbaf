"""The shared pnpm store on each host, filled by a trusted job (``invoke cache.warm``), watched (``cache.status``)
and pruned by rebuilding (``cache.prune``). Ops side: it reaches the hosts through the runtime's engine seam.

* ``sources``: what goes into a store: the templates' own lockfiles, the configured popular packages, and the
  lockfiles of the projects most recently started on the host (read from its previews and kept workspaces);
* ``job``: the trusted job, one container on the host: the template's supervisor in fill mode (the same
  package-manager choice a preview makes), as the store's owner, no install scripts, only the store writable;
* ``status``: size, age of the last fill, and the hit rate from the installs previews record.

Locking (docs/previews.md): installs and fills hold a shared ``flock`` on the store directory; the only step
that removes packages (swapping in a rebuilt store) holds it exclusively, so it never runs under an install.
"""
