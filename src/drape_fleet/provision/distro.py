"""Per-distribution profiles: one TOML file per supported release in ``data/distros/``."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import ValidationError

from drape_fleet.config.provisioning import DistroProfile


class UnsupportedDistro(RuntimeError):
    """The host runs a release we have no profile for; the message lists the ones we have."""


def _data_dir() -> resources.abc.Traversable:
    return resources.files("drape_fleet.provision").joinpath("data", "distros")


@cache
def supported() -> tuple[str, ...]:
    return tuple(sorted(p.name.removesuffix(".toml") for p in _data_dir().iterdir() if p.name.endswith(".toml")))


@cache
def load_profile(distro_id: str) -> DistroProfile:
    if distro_id not in supported():
        raise UnsupportedDistro(f"no profile for {distro_id!r}: supported are {', '.join(supported())}. "
                                f"Add data/distros/{distro_id}.toml to support it")
    text = _data_dir().joinpath(f"{distro_id}.toml").read_text(encoding="utf-8")
    try:
        return DistroProfile.model_validate(tomllib.loads(text))
    except ValidationError as exc:
        raise UnsupportedDistro(f"data/distros/{distro_id}.toml is invalid: {exc}") from None


def distro_id(os_release: dict[str, str]) -> str:
    """``debian-12``, ``ubuntu-24.04``: from /etc/os-release's ID and VERSION_ID."""
    return f"{os_release.get('ID', 'unknown')}-{os_release.get('VERSION_ID', 'unknown')}"


def profile_for(os_release: dict[str, str]) -> DistroProfile:
    return load_profile(distro_id(os_release))
