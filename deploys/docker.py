"""Docker engine (placeholder until the provisioning work): the distro package."""

from pyinfra.operations import apt, systemd

apt.packages(name="Docker engine (distro package)", packages=["docker.io"], update=True, cache_time=3600)
systemd.service(name="Docker running and enabled", service="docker", running=True, enabled=True)
