"""Preview networks, and the network holders that keep them ready (spares).

Most of a start's cost is the engine setting a network up: making the bridge (about 70 ms), and on starting a
container on it, its endpoint, the embedded DNS and the port mapping (another 100-200 ms): more than the rest of a
start. So each host keeps a few *network holders* ready (``runtime.spare_networks``): a network of its own
(``drape-net-<claim>``) and a parked container that owns its namespace and publishes the dev server's port
(``drape-nh-<claim>``, see ``spec.holder_spec``). A claim takes one by creating its preview in the holder's
namespace (``container:<holder>``) with the same claim label: its start then sets no network up at all. Two
claimants may pick the same spare: the claim protocol (``lifecycle``) settles it with its count listing: a
claimant that sees another preview with its claim backs off (both may; never neither). A preview's holder and
network are removed with it, so no two previews ever share a namespace. With no spare left (a burst), a claim
makes a network and puts the preview on it directly, as before.
"""

from __future__ import annotations

import random
from datetime import datetime

from docker.errors import APIError, NotFound

from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import EngineError
from drape_fleet.runtime.lifecycle import (
    new_claim_id,
    published_port,
    quietly_discard,
    remove_container,
    remove_network,
)
from drape_fleet.runtime.spec import NetworkSpec, holder_spec, network_spec, pick_subnet

SUBNET_ATTEMPTS = 8



def make_network(engine: Engine, settings: RuntimeSettings, *, address: str, rng: random.Random) -> NetworkSpec:
    """Create a preview network on a random free /28 (the engine refuses overlaps; try another)."""
    last = ""
    for _ in range(SUBNET_ATTEMPTS):
        spec = network_spec(settings, claim=new_claim_id(), subnet=pick_subnet(settings.subnet_pool, rng),
                            publish_address=address)
        kwargs = spec.create_kwargs()
        try:
            engine.call(lambda api, kw=kwargs: api.create_network(**kw), "create network",  # type: ignore[misc]
                        slow=True)
        except APIError as exc:
            last = str(exc.explanation or exc)
            if "overlap" in last.lower():
                continue
            raise
        return spec
    raise EngineError(engine.name, None, f"no free subnet in {settings.subnet_pool} after "
                                         f"{SUBNET_ATTEMPTS} tries ({last})")


def make_spare(engine: Engine, settings: RuntimeSettings, *, address: str, port: int, image: str,
               rng: random.Random, created: datetime) -> str:
    """A network and its holder, started: a spare for a later claim (off any start's path). Returns its claim."""
    network = make_network(engine, settings, address=address, rng=rng)
    claim = claim_of(network.name)
    spec = holder_spec(settings, claim=claim, network=network.name, publish_address=address, port=port, image=image,
                       created=created)
    try:
        engine.call(lambda api: api.create_container_from_config(spec.body, spec.name),  # type: ignore[no-untyped-call]
                    "create network holder")
        engine.call(lambda api: api.start(spec.name), "start network holder", slow=True)
    except BaseException:
        quietly_discard(engine, spec.name, network.name)
        raise
    return claim


def take_holder(engine: Engine, claim: str, port: int) -> tuple[str, int] | None:
    """A spare holder, checked by inspection before a preview joins its namespace: ours as ``holder_spec`` makes
    them (name, network, confinement), running, publishing ``port``. Its id and public port, or None."""
    try:
        inspected = engine.call(lambda api: api.inspect_container(L.holder_name(claim)), "inspect network holder")
    except NotFound:
        return None
    host_config = inspected.get("HostConfig") or {}
    config = inspected.get("Config") or {}
    published = published_port(inspected, port)
    if (inspected.get("Name", "").lstrip("/") != L.holder_name(claim)
            or (inspected.get("State") or {}).get("Status") != "running"
            or host_config.get("NetworkMode") != L.network_name(claim) or host_config.get("Privileged")
            or "ALL" not in {c.upper() for c in host_config.get("CapDrop") or []} or host_config.get("Binds")
            or (config.get("Labels") or {}).get(L.CLAIM) != claim or published is None):
        return None
    return str(inspected["Id"]), published


def claim_of(network: str) -> str:
    claim = network.removeprefix(L.NETWORK_PREFIX)
    if network == claim or not L.CLAIM_RE.fullmatch(claim):
        raise ValueError(f"{network!r} is not a preview network")
    return claim


def discard_holder(engine: Engine, claim: str) -> None:
    remove_container(engine, L.holder_name(claim))
    remove_network(engine, L.network_name(claim))
