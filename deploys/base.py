"""Base system (placeholder until the provisioning work): essential packages."""

from pyinfra.operations import apt

apt.packages(name="Essential packages", packages=["ca-certificates", "curl"], update=True, cache_time=3600)
