"""The state of one entity as a ``dict[str, bytes | int]``: one Redis hash, one field per tile.

Header fields (ints, or bytes for ``last``):

==========  ==============================================================
``v``       format version (2)
``tile``    the tile size it was written with (checked on load)
``wm``      watermark, microseconds (absent before the first event)
``late``    late events dropped so far; ``dup``: duplicates ignored so far
``oldest``  the oldest retained tile index
``last``    :meth:`~.last.LastSeen.to_bytes`
==========  ==============================================================

Tile fields ``t:<tile index>``, one per retained non-empty tile, each a msgpack
array ``[count, sum, mean, m2, min, max, times, values, hashes, has_key,
distinct, ids]``: the moments as an int and five float64, the raw events (when
``keep_events``) as little-endian int64 / float64 / uint64 / uint8 byte
strings (:class:`~.raw_events.TileEvents`' columns, copied as they are), the
:class:`~.distinct.Distinct` bytes (or nil) and the event ids (when ``dedupe``)
in the order they were accepted (format 2 wrote them sorted; either loads).

Write the whole state with :func:`to_fields`, or incrementally: after some
``add`` calls, :func:`changes` gives the header plus the changed tile fields to
``HSET`` and the evicted tile fields to ``HDEL`` (a bounded number of fields
per event, in one pipeline or script). Reads after
``from_fields(config, fields)`` are identical to reads of the original.

>>> from streamscore.libs.windows.timebase import DAY, HOUR
>>> from streamscore.libs.windows.window import Window
>>> cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),))
>>> e = EntityWindows(cfg)
>>> _ = e.add(DAY, 1.5, event_id="x")
>>> f = to_fields(e)
>>> sorted(f), f["wm"]
(['dup', 'last', 'late', 'oldest', 't:24', 'tile', 'v', 'wm'], 86400000000)
>>> from_fields(cfg, f).read(DAY, Window(DAY)).sum
1.5
>>> _ = e.take_changes(); _ = e.add(3 * DAY, 2.0)
>>> put, delete = changes(e)
>>> sorted(k for k in put if k.startswith("t:")), delete
(['t:72'], ['t:24'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from streamscore.libs.windows.config import WindowConfig
from streamscore.libs.windows.distinct import Distinct
from streamscore.libs.windows.engine import EntityWindows
from streamscore.libs.windows.last import LastSeen
from streamscore.libs.windows.raw_events import TileEvents

VERSION = 2
TILE_PREFIX = "t:"
Fields = dict[str, bytes | int]
_N_TILE_ITEMS = 12
_NO_EVENTS = TileEvents().to_bytes()
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def tile_field(k: int) -> str:
    """The hash field of tile ``k``."""
    return f"{TILE_PREFIX}{k}"


def header_fields(e: EntityWindows) -> Fields:
    """The header fields (everything but the tiles)."""
    out: Fields = {
        "v": VERSION,
        "tile": e.config.tile_us,
        "late": e.late_events,
        "dup": e.duplicates,
        "oldest": e.oldest_tile,
        "last": e.last.to_bytes(),
    }
    if e.watermark is not None:
        out["wm"] = e.watermark
    return out


def tile_bytes(e: EntityWindows, k: int) -> bytes:
    """The field value of tile ``k`` (see the module docstring)."""
    return _tile_fields(e, [k])[tile_field(k)]


def _tile_fields(e: EntityWindows, ks: list[int]) -> dict[str, bytes]:
    r, slots = e.moments, e.config.slots
    idx = [k % slots for k in ks]
    tiles = r.tile[idx].tolist()
    counts = r.count[idx].tolist()
    f = r.f[:, idx].T.tolist()
    out: dict[str, bytes] = {}
    for i, k in enumerate(ks):
        if tiles[i] != k:
            raise KeyError(f"tile {k} is not retained")
        evs = e.events.get(k)
        d = e.distinct.get(k)
        item: list[Any] = [
            counts[i],
            *f[i],  # sum, mean, m2, min, max: bit-exact float64
            *(_NO_EVENTS if evs is None else evs.to_bytes()),
            None if d is None else d.to_bytes(),
            list(e.ids.get(k, ())),
        ]
        out[tile_field(k)] = _encode(item)
    return out


def to_fields(e: EntityWindows) -> Fields:
    """The whole state: header and every retained tile."""
    out = header_fields(e)
    out.update(_tile_fields(e, sorted(e.live)))
    return out


def changes(e: EntityWindows) -> tuple[Fields, list[str]]:
    """Fields to set (header and tiles changed since the last call) and fields to delete
    (tiles evicted since then); uses and resets :meth:`EntityWindows.take_changes`."""
    changed, evicted = e.take_changes()
    put = header_fields(e)
    put.update(_tile_fields(e, sorted(changed)))
    return put, [tile_field(k) for k in sorted(evicted)]


def _int(fields: Mapping[str, bytes | int], name: str) -> int:
    return int(fields[name])


def _load_tile(e: EntityWindows, k: int, data: bytes) -> tuple[int, list[float]]:
    """Load tile ``k``'s raw events, sketch and ids; return its count and float moments."""
    item = _decode(data)
    if not isinstance(item, list) or len(item) != _N_TILE_ITEMS:
        raise ValueError(f"malformed tile field {tile_field(k)!r}")
    count, s, mean, m2, lo, hi, et, ex, eh, ek, dist, ids = item
    cfg = e.config
    if cfg.keep_events and et:
        e.events[k] = TileEvents.from_bytes(et, ex, eh, ek)
    if cfg.distinct and dist is not None:
        e.distinct[k] = Distinct.from_bytes(dist, cfg.distinct_threshold, cfg.hll_p)
    if cfg.dedupe and ids:
        e.ids[k] = dict.fromkeys(ids)
    e.live.add(k)
    return int(count), [float(s), float(mean), float(m2), float(lo), float(hi)]


def from_fields(
    config: WindowConfig, raw: Mapping[str, bytes | int] | Mapping[bytes, bytes]
) -> EntityWindows:
    """Rebuild the state from :func:`to_fields` (or a hash kept current with :func:`changes`).

    Accepts what ``HGETALL`` returns (bytes names, ints as decimal bytes); an
    absent hash (no fields) is a new entity.
    """
    e = EntityWindows(config)
    fields: dict[str, bytes | int] = {
        (k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()
    }
    if not fields:
        return e
    if _int(fields, "v") != VERSION:
        raise ValueError(f"unknown window state version {fields['v']!r}")
    if _int(fields, "tile") != config.tile_us:
        raise ValueError("window state was written with another tile size")
    e.late_events = _int(fields, "late")
    e.duplicates = _int(fields, "dup")
    e._oldest = _int(fields, "oldest")
    e.watermark = _int(fields, "wm") if "wm" in fields else None
    last = fields["last"]
    if not isinstance(last, bytes):
        raise ValueError("field 'last' must be bytes")
    e.last = LastSeen.from_bytes(last)
    ks: list[int] = []
    counts: list[int] = []
    moments: list[list[float]] = []
    for key, value in fields.items():
        if key.startswith(TILE_PREFIX):
            if not isinstance(value, bytes):
                raise ValueError(f"field {key!r} must be bytes")
            k = int(key[len(TILE_PREFIX) :])
            if k >= e.oldest_tile:  # a tile the writer evicted but did not delete is ignored
                n, fs = _load_tile(e, k, value)
                ks.append(k)
                counts.append(n)
                moments.append(fs)
    if ks:
        r, slots = e.moments, [k % config.slots for k in ks]
        r.tile[slots] = ks
        r.count[slots] = counts
        r.f[:, slots] = list(zip(*moments, strict=True))
    return e
