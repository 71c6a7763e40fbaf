# Managed by drape-fleet (deploys/hardening.py): files ops create are not world-readable.
umask 027
