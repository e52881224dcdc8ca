"""The Redis layout of the online store: key names and the packed serving vector.

One entity of one feature group owns two keys, both with the hash tag
``{<group>:<entity id>}`` so that on Redis Cluster they live on one slot:

=====================================  =====================================================
``ss:w:{<group>:<id>}``                window state (a hash; fields ``<input>|<codec field>``,
                                       see :mod:`streamscore.libs.windows.codec`), with a TTL
``ss:fv:{<group>:<id>}``               the serving vector: the group's feature values as of
                                       the entity's latest event (a string, :func:`pack`)
``ss:labels:{<group>:<id>}``           arrived labels of the entity (label-derived features)
``ss:out:<stream>:{<event id>}``       the feature vector already emitted for an event (the
                                       dedupe record that makes redelivery idempotent)
=====================================  =====================================================

A dedupe record is tagged by its event id, not by the stream: on Redis Cluster
a stream's records then spread over every node instead of one hot slot (they
are the largest values written).

The serving vector is little-endian: a 1-byte format version, the first 8
bytes of the group's feature-name hash (a reader refuses a vector written
under another declaration), the event time and the write time (int64
microseconds since the epoch), the value count (uint16), then float32 values
with NaN for a missing value (values are finite by construction: non-finite
inputs never reach the windows, so NaN means missing and only that).

>>> from streamscore.libs.features.definitions import GROUPS
>>> g = GROUPS[0]
>>> blob = pack(g, [1.0, None] + [0.5] * (len(g.features) - 2), event_time_us=10, written_us=12)
>>> v = unpack(g, blob)
>>> v.values[:3], v.event_time_us, v.written_us
([1.0, None, 0.5], 10, 12)
>>> vector_key(g, "c42")
'ss:fv:{customer_tx:c42}'
>>> output_key("transactions", "tx-1")
'ss:out:transactions:{tx-1}'
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np

from streamscore.libs.features.definitions import hash_feature_names
from streamscore.libs.features.spec import FeatureGroup

VERSION = 1
_HEADER = struct.Struct("<B8sqqH")
HEADER_BYTES = _HEADER.size


class LayoutError(ValueError):
    """A stored value that does not match this declaration or format."""


def tag(group: FeatureGroup, entity_id: str) -> str:
    """The hash tag shared by every key of one entity of one group."""
    return f"{{{group.name}:{entity_id}}}"


def state_key(group: FeatureGroup, entity_id: str) -> str:
    return f"ss:w:{tag(group, entity_id)}"


def group_of_key(key: str) -> str:
    """The group name of a state, vector or labels key.

    >>> group_of_key("ss:w:{customer_tx:C1}")
    'customer_tx'
    """
    return key[key.index("{") + 1 : key.index(":", key.index("{"))]


def vector_key(group: FeatureGroup, entity_id: str) -> str:
    return f"ss:fv:{tag(group, entity_id)}"


def labels_key(group: FeatureGroup, entity_id: str) -> str:
    return f"ss:labels:{tag(group, entity_id)}"


def output_key(stream: str, event_id: str) -> str:
    return f"ss:out:{stream}:{{{event_id}}}"


@cache
def group_hash(group: FeatureGroup) -> bytes:
    """First 8 bytes of the SHA-256 of the group's ordered feature names."""
    return bytes.fromhex(hash_feature_names(group.feature_names))[:8]


@dataclass(frozen=True)
class StoredVector:
    """One decoded serving vector: values in declaration order (``None``: missing)."""

    values: list[float | None]
    event_time_us: int
    written_us: int


def pack(
    group: FeatureGroup, values: list[float | None], *, event_time_us: int, written_us: int
) -> bytes:
    """The serving vector of ``group`` (values in ``group.features`` order)."""
    if len(values) != len(group.features):
        raise LayoutError(f"{group.name}: {len(values)} values for {len(group.features)} features")
    arr = np.array([math.nan if v is None else v for v in values], dtype="<f4")
    header = _HEADER.pack(VERSION, group_hash(group), event_time_us, written_us, len(values))
    return header + arr.tobytes()


def unpack_array(group: FeatureGroup, blob: bytes) -> tuple[np.ndarray, int, int]:
    """``(float32 values with NaN for missing, event_time_us, written_us)``; checks the header."""
    if len(blob) < HEADER_BYTES:
        raise LayoutError(f"{group.name}: vector of {len(blob)} bytes is truncated")
    version, ghash, event_us, written_us, n = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise LayoutError(f"{group.name}: vector format {version}, expected {VERSION}")
    if ghash != group_hash(group):
        raise LayoutError(f"{group.name}: vector written under another feature declaration")
    if n != len(group.features) or len(blob) != HEADER_BYTES + 4 * n:
        raise LayoutError(f"{group.name}: vector length does not match the declaration")
    return np.frombuffer(blob, dtype="<f4", offset=HEADER_BYTES), event_us, written_us


def unpack(group: FeatureGroup, blob: bytes) -> StoredVector:
    """Decode a serving vector (missing values as ``None``)."""
    arr, event_us, written_us = unpack_array(group, blob)
    values: list[float | None] = [None if math.isnan(x) else float(x) for x in arr.tolist()]
    return StoredVector(values, event_us, written_us)
