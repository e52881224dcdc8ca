"""The state of one entity of one feature group, and its Redis hash.

Fields of the hash ``ss:w:{<group>:<id>}`` (see :mod:`.online_layout`):

* ``<input>|<field>``: the window engine of each input, fields as in
  :mod:`streamscore.libs.windows.codec` (``ev|wm``, ``amount|t:491520``, ...);
* ``ewma|<feature>``: an :class:`~.ewma.Ewma` as a msgpack array;
* ``labels``: the :class:`~.label_ledger.LabelLedger` as a msgpack array.

:meth:`GroupState.changes` gives what to ``HSET`` and ``HDEL`` after some
events, so one event writes a bounded number of fields.

>>> from streamscore.libs.features.plan import group, plan_for
>>> s = GroupState(plan_for(group("customer_tx")))
>>> _ = s.engines["ev"].add(10**12, event_id="e1")
>>> put, delete = s.changes()
>>> sorted(k for k in put if k.startswith("ev|t:")), delete
(['ev|t:277'], [])
>>> GroupState.from_fields(s.plan, put).engines["ev"].watermark
1000000000000
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from streamscore.libs.features.ewma import Ewma
from streamscore.libs.features.label_ledger import LabelLedger
from streamscore.libs.features.plan import GroupPlan
from streamscore.libs.windows.codec import changes as engine_changes
from streamscore.libs.windows.codec import from_fields as engine_from_fields
from streamscore.libs.windows.codec import to_fields as engine_to_fields
from streamscore.libs.windows.engine import EntityWindows

SEP = "|"
EWMA_PREFIX = "ewma|"
LABELS = "labels"
Fields = dict[str, bytes | int]


class GroupState:
    """Engines, EWMAs and label ledger of one entity (new and empty, or loaded)."""

    def __init__(self, plan: GroupPlan) -> None:
        self.plan = plan
        self.engines = {name: EntityWindows(p.config) for name, p in plan.inputs.items()}
        self.ewmas = {name: Ewma(hl) for name, (_, hl) in plan.ewmas.items()}
        self.ledger = (
            LabelLedger(plan.ledger_horizon_us) if plan.ledger_horizon_us is not None else None
        )
        #: Whether the entity had any state when loaded.
        self.existed = False
        self._ewma_dirty = False

    @property
    def events(self) -> EntityWindows:
        """The all-events engine (ids, watermark, last event)."""
        return self.engines["ev"]

    def add_ewma(self, feature: str, t_us: int, x: float) -> None:
        self.ewmas[feature].add(t_us, x)
        self._ewma_dirty = True

    # -- the Redis hash ----------------------------------------------------
    def to_fields(self) -> Fields:
        out: Fields = {}
        for name, e in self.engines.items():
            out.update({f"{name}{SEP}{k}": v for k, v in engine_to_fields(e).items()})
        out.update(self._extra(force=True))
        return out

    def _extra(self, *, force: bool) -> Fields:
        out: Fields = {}
        if force or self._ewma_dirty:
            for name, ew in self.ewmas.items():
                out[EWMA_PREFIX + name] = msgspec.msgpack.encode(ew.to_list())
            self._ewma_dirty = False
        if self.ledger is not None and (force or self.ledger.changed):
            out[LABELS] = msgspec.msgpack.encode(self.ledger.to_list())
            self.ledger.changed = False
        return out

    def changes(self) -> tuple[Fields, list[str]]:
        """Fields to set and fields to delete since the last call (or since loading)."""
        put: Fields = {}
        delete: list[str] = []
        for name, e in self.engines.items():
            if not (e.dirty or e.evicted):
                continue
            p, d = engine_changes(e)
            put.update({f"{name}{SEP}{k}": v for k, v in p.items()})
            delete += [f"{name}{SEP}{k}" for k in d]
        put.update(self._extra(force=False))
        return put, delete

    @classmethod
    def from_fields(
        cls, plan: GroupPlan, raw: Mapping[str, bytes | int] | Mapping[bytes, bytes]
    ) -> GroupState:
        """Rebuild from ``HGETALL`` (an empty mapping is a new entity)."""
        s = cls(plan)
        if not raw:
            return s
        s.existed = True
        per_input: dict[str, dict[str, Any]] = {name: {} for name in plan.inputs}
        for key, value in raw.items():
            k = key.decode() if isinstance(key, bytes) else key
            if k == LABELS:
                assert plan.ledger_horizon_us is not None
                data = msgspec.msgpack.decode(_as_bytes(value))
                s.ledger = LabelLedger.from_list(plan.ledger_horizon_us, data)
            elif k.startswith(EWMA_PREFIX):
                name = k[len(EWMA_PREFIX) :]
                if name in plan.ewmas:
                    data = msgspec.msgpack.decode(_as_bytes(value))
                    s.ewmas[name] = Ewma.from_list(plan.ewmas[name][1], data)
            else:
                inp, _, field = k.partition(SEP)
                if inp in per_input:
                    per_input[inp][field] = value
        for name, fields in per_input.items():
            s.engines[name] = engine_from_fields(plan.inputs[name].config, fields)
        return s


def _as_bytes(value: bytes | int) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("expected a bytes field")
    return value
