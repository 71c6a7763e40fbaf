"""Claiming one host for one preview (the claim protocol of ``lifecycle``, sequenced): take a spare network holder
(or make a network), create the container, then at once check the host's capacity (a listing of it), check that
the workspace is on no other host (a listing of each), and write the repository token; start it if all three agree.

The three checks run side by side: none needs another's answer, and each is a round trip. A host that does not
answer the workspace check is *unknown*: the claim is withdrawn (``UNSURE``) rather than risk a second copy of a
workspace that may be running there.

Within this process, claims on one host are serialised (so back-offs happen only between processes) and what is
being claimed counts against the host in the ranking until it shows in the listings (``pending``).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from docker.errors import APIError

from drape_fleet.config.models import FleetConfig
from drape_fleet.config.runtime import RuntimeSettings
from drape_fleet.runtime import holders, lifecycle
from drape_fleet.runtime.clock import Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet
from drape_fleet.runtime.lifecycle import ClaimResult, Outcome
from drape_fleet.runtime.spec import PreviewRequest
from drape_fleet.runtime.state import PreviewRecord
from drape_fleet.runtime.stops import StopIntents
from drape_fleet.runtime.tombstones import TombstoneSightings
from drape_fleet.runtime.views import Observer

log = logging.getLogger(__name__)

SPARE_RETRY_S = 60.0
"""After a spare holder could not be made on a host (its image missing, usually), the next try waits this long:
every claim and every reaper pass would otherwise make a network and remove it again, for nothing."""


class Claimer:
    def __init__(self, config: FleetConfig, fleet: Fleet, observer: Observer, tombstones: TombstoneSightings,
                 stops: StopIntents, *, closed: threading.Event, rng: random.Random, clock: Clock) -> None:
        self._config = config
        self._settings = config.runtime
        self._fleet = fleet
        self._observer = observer
        self._tombstones = tombstones
        self._stops = stops
        self._closed = closed
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        self._host_locks = {name: threading.Lock() for name in fleet.names}
        self._pending: dict[str, tuple[int, float]] = {}
        self._topping_up: set[str] = set()
        self._spares_warned: set[tuple[str, str]] = set()
        self._spares_failed: dict[tuple[str, str], float] = {}
        """(host, image) -> when (the runtime's monotonic clock) a spare holder last could not be made."""
        self._top_up_again: set[str] = set()
        self._withdrawn: set[str] = set()
        """Bounded by this process's failed claims whose removal failed too: each placement round retries them."""
        self._helpers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="drape-claim")

    def close(self) -> None:
        self._helpers.shutdown(wait=False, cancel_futures=True)

    def pending(self) -> Mapping[str, tuple[int, float]]:
        """Per host: memory and cores of the claims this process is making right now (ranked as used)."""
        with self._lock:
            return dict(self._pending)

    def _busy(self, host: str) -> bool:
        """Claims of this process are under way on the host: making spares now would slow them down."""
        with self._lock:
            return self._pending.get(host, (0, 0.0))[0] > 0

    def _count(self, host: str, memory: int, cpus: float) -> None:
        with self._lock:
            used = self._pending.get(host, (0, 0.0))
            self._pending[host] = (used[0] + memory, used[1] + cpus)

    # -- one claim --------------------------------------------------------------------------------

    def claim(self, host: str, request: PreviewRequest, *, created: datetime, replacing: str | None) -> ClaimResult:
        """Claim ``host`` for ``request`` and start the preview there (see the module's docstring)."""
        engine = self._fleet[host]
        memory, cpus = request.resources.memory_bytes, request.resources.cpus
        self._count(host, memory, cpus)
        try:
            return self._claim(engine, request, created=created, replacing=replacing)
        except RuntimeFailure as exc:
            return ClaimResult(Outcome.FAILED, reason=str(exc))
        except APIError as exc:
            return ClaimResult(Outcome.FAILED, reason=f"{host}: {exc.explanation or exc}")
        finally:
            self._count(host, -memory, -cpus)
            self.keep_spares(host)  # once the host has no claim of this process under way

    def _claim(self, engine: Engine, request: PreviewRequest, *, created: datetime,
               replacing: str | None) -> ClaimResult:
        host = engine.name
        address = str(self._config.host(host).private_address)
        network, holder = self._network(engine, address, int(self._settings.frameworks[request.framework].port))
        lock = self._host_locks[host]
        # Only steps 1-3 (create, list, count) are serialised per host: the rest of a claim (the rival check, the
        # token, the start) runs beside other claims. A claim never waits long for one stuck on a silent host.
        if not lock.acquire(timeout=self._settings.request_timeout_s):
            return ClaimResult(Outcome.FAILED, reason=f"{host}: this process's claims there are waiting for an answer")
        try:
            try:
                container_id = lifecycle.create(engine, request, self._settings, network=network, created=created,
                                                address=address, holder=holder)
            except lifecycle.NetworkGone:
                return ClaimResult(Outcome.DUPLICATE, reason=f"{network} on {host} was removed meanwhile")
            except lifecycle.ImageMissing as missing:
                return ClaimResult(Outcome.FAILED, reason=f"{host} does not have the image {missing.args[0]}: "
                                   "`invoke fleet.images` puts every template on every host")
            except lifecycle.NameTaken as taken:
                return self._name_taken(engine, request, str(taken.args[0]))
            self._observer.trust(container_id)
            rivals = self._helpers.submit(self._rivals, request.workspace, host, replacing)
            token: Future[None] | None = None
            ca = lifecycle.repo_ca(self._settings.repo_ca_file) if request.repo else None
            if request.repo_token is not None or ca is not None:
                token = self._helpers.submit(lifecycle.write_token, engine, container_id, request.repo_token,
                                             self._settings.run_as, ca)
            try:
                result = lifecycle.check_claim(self._observer.host_view(host), container_id, network, self._settings)
            except BaseException:
                self._discard_later(engine, container_id, None)
                raise
        finally:
            lock.release()
        try:
            if result.outcome is Outcome.PLACED:
                result = rivals.result() or result
            if result.outcome is Outcome.PLACED and token is not None:
                token.result()
        except BaseException:
            self._discard_later(engine, container_id, None)
            raise
        if result.outcome is not Outcome.PLACED or result.record is None:
            self._discard_later(engine, container_id, None)  # its network stays: a spare for the next claim
            return result
        record = result.record
        try:
            port = lifecycle.start(engine, record)
        except (APIError, RuntimeFailure) as exc:
            self._discard_later(engine, record.id, record.network)
            return ClaimResult(Outcome.FAILED, reason=f"{host}: start failed: {exc}")
        return ClaimResult(Outcome.PLACED, record=replace(record, public_port=port, state="running"))

    def _discard_later(self, engine: Engine, container_id: str, network: str | None) -> None:
        """Remove a claim that did not pass, off the placement's way (the slow-call budget applies to removals, and
        a silent host would hold the placement that long; a leftover is the reaper's after ``claim_timeout_s``).
        Until it is gone it is ``withdrawn``: this process's next round does not take it for a rival."""

        def discard() -> None:
            gone = False
            try:
                gone = lifecycle.quietly_discard(engine, container_id, network)
            finally:
                if gone:  # else it stays withdrawn: the next round of the placement removes it (``Launcher._clear``)
                    with self._lock:
                        self._withdrawn.discard(container_id)

        with self._lock:
            self._withdrawn.add(container_id)
        try:
            self._helpers.submit(discard)
        except RuntimeError:  # shut down
            with self._lock:
                self._withdrawn.discard(container_id)

    def withdrawn(self) -> frozenset[str]:
        """Claims of this process that did not pass and are being, or still to be, removed."""
        with self._lock:
            return frozenset(self._withdrawn)

    def removed(self, container_id: str) -> None:
        """A withdrawn claim is gone."""
        with self._lock:
            self._withdrawn.discard(container_id)

    def _rivals(self, workspace: str, host: str, replacing: str | None) -> ClaimResult | None:
        """Is the workspace live on another host, or could it be (a host that did not answer)?"""
        others = [h for h in self._fleet.names if h != host]
        if not others:
            return None
        # The count listing runs beside this and takes as long: the same budget as an ordinary call, not the
        # ranking's (a busy engine answering in two seconds is not a host that may hide the workspace).
        found, unknown = self._observer.find(workspace, hosts=others, timeout=self._settings.request_timeout_s)
        stops = self._stops.all_markers()
        withdrawn = self.withdrawn()
        rivals = [p for p in found if p.id != replacing and p.id not in withdrawn and live_copy(p, self._tombstones)
                  and not self._stops.covers(p, stops)]
        if rivals:
            return ClaimResult(Outcome.DUPLICATE, reason=f"{workspace} is also on "
                               f"{', '.join(sorted({p.host for p in rivals}))}")
        if unknown:
            return ClaimResult(Outcome.UNSURE, reason=f"{', '.join(unknown)} did not answer whether {workspace} "
                               "runs there")
        return None

    def _name_taken(self, engine: Engine, request: PreviewRequest, name: str) -> ClaimResult:
        previews, foreign = self._observer.records(engine, workspace=request.workspace)
        if any(p.name == name for p in previews):
            return ClaimResult(Outcome.DUPLICATE, reason=f"{engine.name} already has {name}")
        # Something that is not one of our previews holds the name: never touch it; use another host.
        why = next((f.reason for f in foreign if f.name == name), "not made by this runtime")
        return ClaimResult(Outcome.FAILED, reason=f"{engine.name}: the name {name} is held by a foreign container "
                                                  f"({why})")

    # -- networks: a spare holder's, or a new one --------------------------------------------------

    def _network(self, engine: Engine, address: str, port: int) -> tuple[str, tuple[str, int] | None]:
        """A spare network holder of the host (taken, checked by one inspect) and its network; else a new network
        for the preview to be put on directly."""
        watch = self._observer.watch(engine.name)
        for _ in range(2):
            spare = watch.take_spare(port, self._rng)
            if spare is None:
                break
            taken = holders.take_holder(engine, spare.claim, port)
            if taken is not None:
                return spare.network, taken
        return holders.make_network(engine, self._settings, address=address, rng=self._rng).name, None

    def keep_spares(self, host: str) -> None:
        """Top the host's spare network holders up to ``spare_networks`` per dev-server port, in the background
        (once at a time per host)."""
        wanted = self._settings.spare_networks
        engine = self._fleet[host]
        if wanted == 0 or not engine.available() or self._busy(host):
            return
        with self._lock:
            if host in self._topping_up:
                self._top_up_again.add(host)  # it counted before this call's reason (a spare taken): count again
                return
            self._topping_up.add(host)

        def top_up() -> None:
            try:
                view = self._observer.host_view(host)  # counted from a listing: the watch may lag a moment
                if view.unplaceable is not None:
                    return
                taken = self._observer.watch(host).taken()
                address = str(self._config.host(host).private_address)
                for port, image in holder_images(self._settings).items():
                    if self._spares_failing(host, image):
                        continue
                    spares = [h for h in view.spares(port) if h.claim not in taken]
                    for _ in range(max(0, wanted - len(spares))):
                        if self._closed.is_set() or not engine.available() or self._busy(host):
                            return  # a burst of claims comes first; the next claim or reaper pass tops up
                        try:
                            holders.make_spare(engine, self._settings, address=address, port=port, image=image,
                                                 rng=self._rng, created=self._clock.now())
                        except (RuntimeFailure, APIError) as exc:
                            self._spare_failed(host, image, exc)
                            return
            except (RuntimeFailure, APIError):
                return
            finally:
                with self._lock:
                    self._topping_up.discard(host)
                    again = host in self._top_up_again
                    self._top_up_again.discard(host)
                if again:
                    self.keep_spares(host)

        try:
            self._helpers.submit(top_up)
        except RuntimeError:  # shut down
            with self._lock:
                self._topping_up.discard(host)

    def _spares_failing(self, host: str, image: str) -> bool:
        with self._lock:
            failed = self._spares_failed.get((host, image))
        return failed is not None and self._clock.monotonic() - failed < SPARE_RETRY_S

    def _spare_failed(self, host: str, image: str, error: Exception) -> None:
        """Said once per host and image: without spares every start there makes its network first (slower, not
        wrong), and the usual cause is the holder image missing on the host. Tried again after ``SPARE_RETRY_S``."""
        with self._lock:
            self._spares_failed[(host, image)] = self._clock.monotonic()
            if (host, image) in self._spares_warned:
                return
            self._spares_warned.add((host, image))
        log.warning("%s: no spare network holder could be made from %s (%s); starts there make their network "
                    "first. Is the image on the host? `invoke fleet.images` puts every template there", host, image,
                    str(error)[:300])


def holder_images(settings: RuntimeSettings) -> dict[int, str]:
    """Per dev-server port, the image its holders run ``sleep`` from: a template's, present on every host."""
    images: dict[int, str] = {}
    for _, framework in sorted(settings.frameworks.items()):
        images.setdefault(int(framework.port), framework.image)
    return images


def live_copy(record: PreviewRecord, tombstones: TombstoneSightings) -> bool:
    """A copy of its workspace that may serve or come back: live, and not being stopped, and not a tombstone a
    dead reaper left (which the reaper settles)."""
    return record.live and not record.stopping and not tombstones.stale(record)
