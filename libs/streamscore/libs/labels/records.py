"""What the joiner keeps per scored event, packed small, and the example it becomes.

A :class:`Record` holds exactly what a labelled example needs besides the
event id (the Redis field name): event time, the key values, the score and
the model input values, and the small id of a :class:`Context`: the strings
shared by many events (model and policy versions, feature names hash, key
names, decision), stored once per stream. It is msgpack with positional
fields and trailing defaults omitted, so a pending record carries no label
fields at all (about 110 bytes for 18 features: Redis's allocator rounds it
to 128).

The values and the score are packed vectors, stored exactly: as float32
when every number round-trips through float32 (the scorer's model inputs and
scores are float32), else as float64; ``None`` (never NaN in a scored event)
is stored as NaN.

>>> v = [1.5, None, -0.0, 3.25]
>>> unpack_values(pack_values(v)) == v, len(pack_values(v))
(True, 17)
>>> unpack_values(pack_values([0.1]))  # not a float32: kept as a double
[0.1]
>>> rec = Record(t_us=5, ctx=0, keys=["C1"], score=pack_values([0.5]), values=pack_values(v))
>>> unpack_record(pack_record(rec)) == rec, unpack_values(rec.score)
(True, [0.5])
"""

from __future__ import annotations

import hashlib
import math
from array import array
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from streamscore.libs.contracts.examples import ExampleKind, LabelledExample
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.labels.facts import LabelRef
from streamscore.libs.labels.spec import from_us, to_us

#: Record states: no label yet and not matured; labelled (primary emitted); matured unlabelled.
PENDING: Final = 0
LABELLED: Final = 1
MATURED: Final = 2
State = Literal[0, 1, 2]

_F32, _F64 = b"f", b"d"


class Context(msgspec.Struct, frozen=True, array_like=True):
    """Strings shared by many records, stored once per stream under a small id."""

    model_version: str
    policy_version: str
    feature_names_hash: str
    key_names: tuple[str, ...]
    decision: str

    @property
    def digest(self) -> str:
        """A stable name of the context (the key of its id in the stream's table)."""
        return hashlib.blake2b(msgspec.msgpack.encode(self), digest_size=12).hexdigest()


class Record(msgspec.Struct, array_like=True, omit_defaults=True):
    """One scored event as the joiner holds it until it closes (mutable: its label moves)."""

    t_us: int
    #: The id of its :class:`Context` in the stream's table.
    ctx: int
    keys: list[str]
    #: ``[score]`` and the values, packed by :func:`pack_values`.
    score: bytes
    values: bytes
    #: The effective label: the latest by (label time, label id); ``None`` before any.
    label: LabelRef | None = None
    state: int = PENDING
    #: The revision of the last example emitted for it (-1: none yet).
    revision: int = -1


class Orphan(msgspec.Struct, array_like=True):
    """The latest label of an event not seen yet, kept until ``expires_us`` (stream time)."""

    label: LabelRef
    expires_us: int


_record_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(Record)
_orphan_decoder = msgspec.msgpack.Decoder(Orphan)
_context_decoder = msgspec.msgpack.Decoder(Context)


def pack_values(values: list[float | None]) -> bytes:
    """The values as float32 when that is exact, else float64; ``None`` as NaN."""
    doubles = array("d", [math.nan if v is None else v for v in values])
    try:
        singles = array("f", doubles)
    except OverflowError:
        return _F64 + doubles.tobytes()
    exact = all(
        a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(singles, doubles, strict=True)
    )
    return _F32 + singles.tobytes() if exact else _F64 + doubles.tobytes()


def unpack_values(data: bytes) -> list[float | None]:
    """The inverse of :func:`pack_values` (NaN back to ``None``)."""
    arr = array("f" if data[:1] == _F32 else "d")
    arr.frombytes(data[1:])
    return [None if math.isnan(v) else v for v in arr]


def pack_record(rec: Record) -> bytes:
    return _record_encoder.encode(rec)


def unpack_record(data: bytes) -> Record:
    return _record_decoder.decode(data)


def pack_orphan(orphan: Orphan) -> bytes:
    return _record_encoder.encode(orphan)


def unpack_orphan(data: bytes) -> Orphan:
    return _orphan_decoder.decode(data)


def pack_context(ctx: Context) -> bytes:
    return _record_encoder.encode(ctx)


def unpack_context(data: bytes) -> Context:
    return _context_decoder.decode(data)


def context_of(event: ScoredEvent) -> Context:
    """The shared strings of a scored event."""
    names = tuple(sorted(event.keys))
    return Context(
        event.model_version, event.policy_version, event.feature_names_hash, names, event.decision
    )


def record_of(event: ScoredEvent, ctx_id: int) -> Record:
    """The record of a scored event whose context has id ``ctx_id``."""
    return Record(
        t_us=to_us(event.event_time),
        ctx=ctx_id,
        keys=[event.keys[k] for k in sorted(event.keys)],
        score=pack_values([event.score]),
        values=pack_values(event.values),
    )


@dataclass(frozen=True)
class Emitted:
    """An example the machine decided to emit (the service turns it into a message)."""

    event_id: str
    kind: ExampleKind
    revision: int
    #: The deciding label (``None`` for a matured negative).
    label: LabelRef | None
    #: The label arrived after the event's horizon.
    late: bool
    record: Record
    matured_at_us: int

    @property
    def value(self) -> bool:
        """The label this example states."""
        return self.label is not None and self.label.positive


def to_example(e: Emitted, ctx: Context, stream: str) -> LabelledExample:
    """The contract message of an emitted example."""
    r = e.record
    return LabelledExample(
        event_id=e.event_id,
        stream=stream,
        event_time=from_us(r.t_us),
        kind=e.kind,
        revision=e.revision,
        label=e.value,
        label_time=None if e.label is None else from_us(e.label.time_us),
        label_id=None if e.label is None else e.label.label_id,
        late=e.late,
        matured_at=from_us(e.matured_at_us),
        keys=dict(zip(ctx.key_names, r.keys, strict=True)),
        feature_names_hash=ctx.feature_names_hash,
        values=unpack_values(r.values),
        model_version=ctx.model_version,
        policy_version=ctx.policy_version,
        score=unpack_values(r.score)[0],
        decision=ctx.decision,
    )
