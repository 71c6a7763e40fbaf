"""The cutover's state store: a labelled volume per generation on every host's engine, newest wins.

Why here (docs/cutover.md has the whole argument): every backend process, every service instance and the ops
laptop already reach every engine over mutual TLS, and already read volume labels there (cordons live the same
way), so the store adds no server, no credentials and no single point of failure; a copy on every host survives
losing any of them.

* **Read**: list the state volumes of every host in parallel; the newest generation wins. Two different records
  of the same generation (a write that lost a race) are told apart by their digest: the one more hosts hold wins.
* **Write** (ops only): read first; refuse without a majority of hosts (the newest state might sit on the hosts
  that did not answer), refuse if the newest generation is not the one the caller planned from (another task
  wrote meanwhile); create generation + 1 on every host that answers; succeed once a majority holds it.
  Creating a volume is atomic and a name exists once per engine, so two writers of one generation find out.
* **Repair**: any reader that sees a host behind (it was down during a write) copies the newest record there:
  a host catches up as soon as it answers again, without ops doing anything.
* The last ``keep`` generations stay on every host (``cutover status`` shows them; a rollback never needs them:
  the progress carries what each phase replaced).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from docker.errors import APIError, NotFound

from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.routing.records import KIND_STATE, RecordError, StateRecord, parse_state, state_volume
from drape_fleet.runtime import labels as L
from drape_fleet.runtime.clock import SYSTEM_CLOCK, Clock
from drape_fleet.runtime.engines import Engine
from drape_fleet.runtime.errors import RuntimeFailure
from drape_fleet.runtime.fleet import Fleet

KEEP_GENERATIONS = 5
EXPORT_ARGV = ("sh", "-c", "docker volume ls -q --filter label=drape.kind=cutover-state "
               "| xargs -r docker volume inspect")
"""What a backup runs as root on any host to print the state (every generation it holds, labels included: the
labels live in Docker's volume metadata, not in the volume's directory). ``StateStore.restore`` takes its output."""


class StoreError(RuntimeError):
    """The store cannot be read or written safely now; the message says why and what to do."""


class StoreConflict(StoreError):
    """Someone else wrote a newer state while this change was being planned."""


@dataclass(frozen=True)
class HostCopy:
    """What one host's engine holds."""

    host: str
    records: tuple[StateRecord, ...] = ()
    """Readable records, newest first."""
    damaged: tuple[str, ...] = ()
    error: str | None = None
    """Why the host could not be read (None: it answered)."""

    @property
    def newest(self) -> StateRecord | None:
        return self.records[0] if self.records else None


@dataclass(frozen=True)
class StoreView:
    """The store as every host holds it, read at one moment."""

    copies: dict[str, HostCopy]
    newest: StateRecord | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "newest", _winner(self.copies.values()))

    @property
    def answered(self) -> list[str]:
        return [name for name, copy in self.copies.items() if copy.error is None]

    @property
    def unreachable(self) -> dict[str, str]:
        return {name: copy.error for name, copy in self.copies.items() if copy.error is not None}

    @property
    def quorum(self) -> bool:
        return len(self.answered) * 2 > len(self.copies)

    @property
    def generation(self) -> int:
        return self.newest.generation if self.newest else 0

    @property
    def behind(self) -> list[str]:
        """Hosts that answered but do not hold the newest record."""
        newest = self.newest
        if newest is None:
            return []
        return [name for name, copy in self.copies.items() if copy.error is None
                and not any(r.generation == newest.generation and r.digest == newest.digest for r in copy.records)]

    @property
    def divergent(self) -> bool:
        """Two different records carry the newest generation (a lost write race; the next write settles it)."""
        newest = self.newest
        return newest is not None and any(r.generation == newest.generation and r.digest != newest.digest
                                          for copy in self.copies.values() for r in copy.records)

    def host_generations(self) -> dict[str, int | None]:
        return {name: (copy.newest.generation if copy.newest else 0) if copy.error is None else None
                for name, copy in self.copies.items()}


def no_quorum(view: StoreView, doing: str) -> str:
    """Why a change cannot be made now: which hosts did not answer."""
    down = "; ".join(f"{host}: {error}" for host, error in view.unreachable.items())
    return (f"only {len(view.answered)} of {len(view.copies)} hosts answered ({down}): the cutover state needs a "
            f"majority to {doing} safely (the newest state may be on the others). Bring them back, then run again")


def _winner(copies: Iterable[HostCopy]) -> StateRecord | None:
    held: Counter[tuple[int, str]] = Counter()
    by_key: dict[tuple[int, str], StateRecord] = {}
    for copy in copies:
        for record in copy.records:
            key = (record.generation, record.digest)
            held[key] += 1
            by_key[key] = record
    if not held:
        return None
    top = max(generation for generation, _ in held)
    key = max((k for k in held if k[0] == top), key=lambda k: (held[k], k[1]))
    return by_key[key]


class StateStore:
    """Reads and writes the cutover's state on every engine of ``fleet``. Thread-safe (no state of its own)."""

    def __init__(self, fleet: Fleet, owner: str, *, timeout_s: float = 5.0, keep: int = KEEP_GENERATIONS,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.fleet = fleet
        self.owner = owner
        self.timeout_s = timeout_s
        self.keep = max(1, keep)
        self._clock = clock

    # -- reading -----------------------------------------------------------------------------------

    def _listing(self, engine: Engine) -> HostCopy:
        filters = {"label": [f"{L.OWNER}={self.owner}", f"{L.KIND}={KIND_STATE}"]}
        answer = engine.call(lambda api: api.volumes(filters=filters), "list the cutover state")
        records: list[StateRecord] = []
        damaged: list[str] = []
        for volume in (answer or {}).get("Volumes") or []:
            try:
                record = parse_state(volume, self.owner)
            except RecordError as exc:
                damaged.append(str(exc))
                continue
            if record is not None:
                records.append(record)
        records.sort(key=lambda r: r.generation, reverse=True)
        return HostCopy(engine.name, tuple(records), tuple(damaged))

    def read(self) -> StoreView:
        results = self.fleet.each(self._listing, timeout=self.timeout_s)
        copies = {name: result if isinstance(result, HostCopy) else HostCopy(name, error=_why(result))
                  for name, result in results.items()}
        return StoreView(copies)

    # -- writing -----------------------------------------------------------------------------------

    def _create(self, engine: Engine, record: StateRecord) -> None:
        labels = record.labels(self.owner)
        engine.call(lambda api: api.create_volume(name=record.volume, labels=labels), "write the cutover state")
        found = engine.call(lambda api: api.inspect_volume(record.volume), "check the cutover state")
        if (found.get("Labels") or {}).get("drape.cutover.digest") != record.digest:
            raise StoreConflict(f"{engine.name} already holds a different generation {record.generation}: another "
                                "cutover task wrote at the same time. Run `invoke cutover status`, then again")

    def _remove(self, engine: Engine, name: str) -> None:
        with contextlib.suppress(NotFound):
            engine.call(lambda api: api.remove_volume(name), "remove an old cutover state")

    def write(self, policy: RoutingPolicy, progress: dict[str, Any], *, expected: int, writer: str) -> StateRecord:
        """Store generation ``expected + 1``; ``StoreConflict`` when the newest generation is not ``expected``,
        ``StoreError`` without a majority of hosts. Hosts that miss the write catch up on their next read."""
        view = self.read()
        if not view.quorum:
            raise StoreError(no_quorum(view, "read"))
        if view.generation != expected:
            raise StoreConflict(f"the cutover state moved from generation {expected} to {view.generation} while this "
                                "task ran (another cutover task?). Run `invoke cutover status`, then again")
        record = StateRecord.make(expected + 1, policy, progress, writer=writer, created=self._clock.now())
        record.labels(self.owner)  # too large: refused before any host is touched
        results = self.fleet.each(lambda engine: self._create(engine, record), hosts=view.answered,
                                  timeout=self.timeout_s * 2)
        conflicts = [r for r in results.values() if isinstance(r, StoreConflict)]
        written = [name for name, result in results.items() if not isinstance(result, BaseException)]
        if conflicts or len(written) * 2 <= len(view.copies):
            self.fleet.each(lambda engine: self._undo(engine, record), hosts=written, timeout=self.timeout_s)
            if conflicts:
                raise conflicts[0]
            failed = {name: _why(r) for name, r in results.items() if isinstance(r, BaseException)}
            raise StoreError(f"the new state reached only {len(written)} of {len(view.copies)} hosts "
                             f"({'; '.join(f'{h}: {e}' for h, e in failed.items())}); nothing changed. Fix what "
                             "the hosts report, then run again")
        self.prune()
        return record

    def _undo(self, engine: Engine, record: StateRecord) -> None:
        copy = self._listing(engine)
        if any(r.generation == record.generation and r.digest == record.digest for r in copy.records):
            self._remove(engine, record.volume)

    # -- keeping every host current ------------------------------------------------------------------

    def repair(self, view: StoreView | None = None) -> list[str]:
        """Copy the newest record to every host that answered without it; return the hosts brought up to date."""
        view = view or self.read()
        newest = view.newest
        if newest is None or not view.behind:
            return []

        def bring(engine: Engine) -> None:
            copy = view.copies[engine.name]
            stale = [r for r in copy.records if r.generation == newest.generation]
            for record in stale:  # the loser of a write race: its name is taken
                self._remove(engine, record.volume)
            self._create(engine, newest)

        results = self.fleet.each(bring, hosts=view.behind, timeout=self.timeout_s)
        return [name for name, result in results.items() if not isinstance(result, BaseException)]

    def prune(self) -> None:
        """Keep the newest ``keep`` generations on every host that answers."""
        def trim(engine: Engine) -> None:
            copy = self._listing(engine)
            for record in copy.records[self.keep:]:
                self._remove(engine, record.volume)

        self.fleet.each(trim, timeout=self.timeout_s)

    # -- backups (issue 14) ---------------------------------------------------------------------------

    def export(self) -> dict[str, Any] | None:
        """The newest record as JSON, for a backup. The labels live in Docker's volume metadata, not in the
        volume's directory: a file-level copy of /var/lib/docker/volumes/<name> does not hold them."""
        newest = self.read().newest
        if newest is None:
            return None
        return {"generation": newest.generation, "policy": newest.policy.model_dump(mode="json"),
                "progress": newest.progress, "writer": newest.writer, "created": newest.created.isoformat(),
                "digest": newest.digest}

    def restore(self, document: dict[str, Any] | list[dict[str, Any]], *, writer: str) -> StateRecord:
        """Write a backed-up record back as the next generation (on top of whatever the hosts hold now).

        ``document`` is what ``export`` returned, or what a host's engine printed for the backup without any of
        drape-fleet installed (``EXPORT_ARGV``: ``docker volume inspect`` of the state volumes, a list; its newest
        readable record is restored)."""
        if isinstance(document, list):
            records = []
            for volume in document:
                try:
                    record = parse_state(volume, self.owner)
                except RecordError:
                    continue
                if record is not None:
                    records.append(record)
            if not records:
                raise StoreError("not an exported cutover state: the volume listing holds no readable state of ours")
            newest = max(records, key=lambda r: r.generation)
            document = {"generation": newest.generation, "policy": newest.policy.model_dump(mode="json"),
                        "progress": newest.progress}
        try:
            policy = RoutingPolicy.model_validate(document["policy"])
            progress = document["progress"]
        except (KeyError, ValueError) as exc:
            raise StoreError(f"not an exported cutover state ({exc}): restore a file `export` wrote") from None
        if not isinstance(progress, dict):
            raise StoreError("not an exported cutover state (its progress is not an object)")
        view = self.read()
        return self.write(policy, progress, expected=view.generation,
                          writer=f"{writer} (restored generation {document.get('generation', '?')})")

    def wipe(self) -> int:
        """Remove every state volume of ours from every host that answers (tests and a fresh lab; never a task)."""
        removed = 0

        def clear(engine: Engine) -> int:
            copy = self._listing(engine)
            names = [r.volume for r in copy.records]
            for name in names:
                self._remove(engine, name)
            return len(names)

        for result in self.fleet.each(clear, timeout=self.timeout_s).values():
            removed += result if isinstance(result, int) else 0
        return removed


def _why(error: object) -> str:
    if isinstance(error, RuntimeFailure | APIError | RecordError | StoreError):
        return str(error)
    return f"{type(error).__name__}: {error}"


__all__ = ["HostCopy", "StateStore", "StoreConflict", "StoreError", "StoreView", "no_quorum", "state_volume"]
