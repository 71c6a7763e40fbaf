"""Each host's HTTPS ingress for its previews: ``https://<workspace>.<host>.<domain>`` (docs/previews.md).

Shipped to the hosts and run there on the host's own Python (standard library only): ``links`` (signed links and
sessions, which the backend also imports to hand links out), ``local_engine`` (read-only calls to the host's
Docker engine), ``routes`` (previews as routes) and ``gate`` (the service Caddy asks). Ops side only: ``host_files``
(what the ingress deploy puts on a host) and ``dns`` (the per-host wildcard records in Hetzner Cloud DNS).
"""
