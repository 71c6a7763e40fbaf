"""How the cutover's state and start metrics are written into Docker volume labels, and read back (pure).

A volume's labels are its whole content: Docker keeps them with the volume (they survive engine restarts and
reboots), lists them in one call, and cannot change them afterwards, so a record is never half-written: a new
state is a new volume. Large values (the ops' progress, a metrics snapshot) are JSON, zlib-compressed, base64.
A digest over the content lets a reader tell two different records of the same generation apart (and a damaged
one from a good one).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from drape_fleet.routing.policy import RoutingPolicy
from drape_fleet.runtime import labels as L

KIND_STATE = "cutover-state"
KIND_METRICS = "cutover-metrics"
GENERATION = "drape.generation"
POLICY = "drape.cutover.policy"
PROGRESS = "drape.cutover.progress"
DIGEST = "drape.cutover.digest"
WRITER = "drape.cutover.writer"
PROCESS = "drape.cutover.process"
SEQUENCE = "drape.cutover.seq"
METRICS = "drape.cutover.metrics"
STATE_PREFIX = "drape-cutover-state-"
METRICS_PREFIX = "drape-cutover-metrics-"
MAX_VALUE_BYTES = 128 * 1024
"""Docker sets no limit on a label, but every listing carries every label: a state bigger than this is a
mistake (an allowlist of thousands belongs in the percentage)."""


class RecordError(ValueError):
    """A record that cannot be written (too large) or read (damaged); the message says which and why."""


def pack(data: Any) -> str:
    return base64.b64encode(zlib.compress(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), 9)).decode()


def unpack(text: str) -> Any:
    try:
        return json.loads(zlib.decompress(base64.b64decode(text.encode(), validate=True)))
    except (ValueError, zlib.error) as exc:
        raise RecordError(f"a packed label does not decode ({exc})") from None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StateRecord:
    """One generation of the cutover's state: the routing policy (what backends read) and the ops' progress
    (opaque here; ``drape_fleet.cutover.progress`` gives it its shape)."""

    generation: int
    policy: RoutingPolicy
    progress: dict[str, Any]
    writer: str
    created: datetime
    digest: str

    @classmethod
    def make(cls, generation: int, policy: RoutingPolicy, progress: dict[str, Any], *, writer: str,
             created: datetime) -> StateRecord:
        policy_json = policy.model_dump_json()
        packed = pack(progress)
        return cls(generation, policy, progress, writer, created, _digest(str(generation), policy_json, packed))

    @property
    def volume(self) -> str:
        return state_volume(self.generation)

    def labels(self, owner: str) -> dict[str, str]:
        policy_json = self.policy.model_dump_json()
        packed = pack(self.progress)
        size = len(policy_json) + len(packed)
        if size > MAX_VALUE_BYTES:
            raise RecordError(f"the cutover state would take {size // 1024} KiB of labels (limit "
                              f"{MAX_VALUE_BYTES // 1024} KiB): shorten the allowlist and route by percentage")
        return {L.OWNER: owner, L.KIND: KIND_STATE, GENERATION: str(self.generation), POLICY: policy_json,
                PROGRESS: packed, DIGEST: self.digest, WRITER: self.writer[:200],
                L.CREATED: L.format_time(self.created)}


def state_volume(generation: int) -> str:
    return f"{STATE_PREFIX}{generation:09d}"


def parse_state(volume: dict[str, Any], owner: str) -> StateRecord | None:
    """The record a listed volume holds; None when it is not one of ours. ``RecordError`` when it is ours but
    damaged (its digest does not match its content)."""
    labels = volume.get("Labels") or {}
    name = str(volume.get("Name", ""))
    if labels.get(L.OWNER) != owner or labels.get(L.KIND) != KIND_STATE or not name.startswith(STATE_PREFIX):
        return None
    try:
        generation = int(labels[GENERATION])
        policy_json, packed = labels[POLICY], labels[PROGRESS]
        if name != state_volume(generation):
            raise RecordError(f"volume {name} says it is generation {generation}")
        if _digest(str(generation), policy_json, packed) != labels[DIGEST]:
            raise RecordError(f"volume {name}: its digest does not match its content")
        policy = RoutingPolicy.model_validate_json(policy_json)
        progress = unpack(packed)
        created = L.parse_time(labels[L.CREATED])
    except (KeyError, ValueError, ValidationError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"volume {name} is not a readable cutover state ({type(exc).__name__}: {exc})") from None
    if not isinstance(progress, dict):
        raise RecordError(f"volume {name}: its progress is not an object")
    return StateRecord(generation, policy, progress, labels.get(WRITER, ""), created, labels[DIGEST])


@dataclass(frozen=True)
class MetricsRecord:
    """One process's cumulative start metrics, as last flushed (``drape_fleet.routing.metrics``)."""

    process: str
    sequence: int
    snapshot: dict[str, Any]
    created: datetime

    @property
    def volume(self) -> str:
        return metrics_volume(self.process, self.sequence)

    def labels(self, owner: str) -> dict[str, str]:
        packed = pack(self.snapshot)
        if len(packed) > MAX_VALUE_BYTES:
            raise RecordError(f"a metrics snapshot of {len(packed) // 1024} KiB is above the "
                              f"{MAX_VALUE_BYTES // 1024} KiB limit")
        return {L.OWNER: owner, L.KIND: KIND_METRICS, PROCESS: self.process, SEQUENCE: str(self.sequence),
                METRICS: packed, L.CREATED: L.format_time(self.created)}


def metrics_volume(process: str, sequence: int) -> str:
    return f"{METRICS_PREFIX}{process}-{sequence:09d}"


def parse_metrics(volume: dict[str, Any], owner: str) -> MetricsRecord | None:
    labels = volume.get("Labels") or {}
    if labels.get(L.OWNER) != owner or labels.get(L.KIND) != KIND_METRICS:
        return None
    try:
        record = MetricsRecord(labels[PROCESS], int(labels[SEQUENCE]), unpack(labels[METRICS]),
                               L.parse_time(labels[L.CREATED]))
    except (KeyError, ValueError) as exc:
        raise RecordError(f"volume {volume.get('Name')} is not a readable metrics snapshot ({exc})") from None
    if volume.get("Name") != record.volume or not isinstance(record.snapshot, dict):
        raise RecordError(f"volume {volume.get('Name')} does not match its labels")
    return record
