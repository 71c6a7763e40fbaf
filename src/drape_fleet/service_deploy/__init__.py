"""Ops side of the runtime service: what ``deploys/service.py`` and ``deploys/ingress.py`` put on a host (the
package bundle, the unit, the instance's config, the token digests, the ingress' certificate), and the ops
secrets store of the service's bearer tokens. Needs the ``ops`` extra; the service itself never imports this."""
