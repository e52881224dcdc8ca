"""From declarations to window engines: which inputs a feature group keeps, with which windows.

A group keeps one window engine per *input*:

* ``ev``: every event of the entity (value 0); serves ``count``, ``since_last``
  and the denominator of ``label_rate``, and holds the event ids that make a
  redelivered event a no-op (the other inputs skip an event ``ev`` refused);
* ``<field>``: the values of one field (derived inputs included, see
  ``DERIVED_INPUTS``), for ``sum``/``mean``/``std``/``min``/``max``/``zscore``;
  an event without a value for the field is not added to it;
* ``d:<field>``: the keys of one field, for ``distinct``.

``ewma`` features keep an :class:`~.ewma.Ewma` each, ``label_rate`` features
a :class:`~.label_ledger.LabelLedger` per group.

Tiles are one hour, or half the shortest window when that is shorter than an
hour; every window is ``exact`` (the handbook's definitions are exact to the
microsecond). Events may be up to :data:`GRACE_S` late (behind the entity's
newest event) and still count; a later one is not merged (see
:mod:`streamscore.libs.windows.engine`, rule 3) and is counted. A group whose
windows all end ``d`` before the event (the terminal's, delayed by the label
delay) takes ``max(GRACE_S, d)`` as its grace: no read has yet covered an event
less than ``d`` old, so merging it late changes no feature already emitted.
This matters for entities that are not the topic's key (a terminal's events
come from every partition, whose event times drift apart, by hours when a
backlog is replayed).

A group's *status* for an event is ``PRESENT`` when the entity has other
events in :attr:`GroupPlan.status_window` (its longest window, as of the
event), else ``NOT_FOUND``: a definition by event time, so it does not depend
on the order in which partitions are consumed either.

>>> p = plan_for(group("customer_tx"))
>>> sorted(p.inputs), p.tile_us // 1_000_000
(['amount', 'd:terminal_id', 'ev'], 3600)
>>> p.input_of(p.group.features[0])
'ev'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from streamscore.libs.features.definitions import GROUPS
from streamscore.libs.features.spec import HOUR, FeatureGroup, WindowedFeature
from streamscore.libs.windows.config import WindowConfig
from streamscore.libs.windows.window import Window

#: How late (behind the entity's newest event) an event may be and still count.
GRACE_S = 10 * 60
#: The all-events input.
EVENTS = "ev"
_US = 1_000_000


def group(name: str) -> FeatureGroup:
    """A declared group by name."""
    for g in GROUPS:
        if g.name == name:
            return g
    raise KeyError(name)


@cache
def window_of(f: WindowedFeature) -> Window:
    return Window(f.window_s * _US, delay_us=f.delay_s * _US)


def input_name(f: WindowedFeature) -> str | None:
    """The input a feature reads (``None``: an ``ewma``, kept apart)."""
    if f.agg in ("count", "since_last", "label_rate"):
        return EVENTS
    if f.agg == "distinct":
        return f"d:{f.field}"
    if f.agg == "ewma":
        return None
    if f.field is None:
        raise ValueError(f"{f.name}: {f.agg} needs a field")
    return f.field


@dataclass(frozen=True)
class InputPlan:
    """One window engine of a group."""

    name: str
    #: The field whose value is added (``None``: value 0, every event).
    value_field: str | None
    #: The field whose value is the distinct key (``d:`` inputs).
    key_field: str | None
    config: WindowConfig


@dataclass(frozen=True)
class GroupPlan:
    """Everything a processor keeps for one entity of one group."""

    group: FeatureGroup
    tile_us: int
    grace_us: int
    inputs: dict[str, InputPlan]
    #: ``ewma`` feature name -> (field, half-life in seconds).
    ewmas: dict[str, tuple[str, float]]
    #: The label ledger's horizon, or ``None`` if the group has no label feature.
    ledger_horizon_us: int | None
    #: How long an idle entity's state is kept (Redis TTL).
    ttl_s: int
    #: The window whose other events make the group ``PRESENT`` for an event.
    status_window: Window

    def input_of(self, f: WindowedFeature) -> str | None:
        return input_name(f)


def _tile_us(g: FeatureGroup) -> int:
    shortest = min(f.window_s for f in g.features)
    return (HOUR if shortest >= HOUR else shortest // 2) * _US


@cache
def plan_for(g: FeatureGroup) -> GroupPlan:
    """The engines of a group (cached: plans are immutable)."""
    min_delay_s = min(f.delay_s for f in g.features)
    max_span_s = max(f.window_s + f.delay_s for f in g.features)
    status_window = Window((max_span_s - min_delay_s) * _US, delay_us=min_delay_s * _US)
    tile, grace = _tile_us(g), max(GRACE_S, min_delay_s) * _US
    windows: dict[str, set[Window]] = {EVENTS: {status_window}}
    for f in g.features:
        name = input_name(f)
        if name is not None:
            windows.setdefault(name, set()).add(window_of(f))
    inputs = {}
    for name, wanted in windows.items():
        ws = wanted
        distinct = name.startswith("d:")
        config = WindowConfig(
            tile_us=tile,
            windows=tuple(sorted(ws, key=lambda w: (w.span_us, w.length_us))),
            grace_us=grace,
            keep_events=True,
            distinct=distinct,
            dedupe=name == EVENTS,
        )
        value_field = None if name == EVENTS or distinct else name
        key_field = name[2:] if distinct else None
        inputs[name] = InputPlan(name, value_field, key_field, config)
    ewmas = {f.name: (f.field or "", float(f.window_s)) for f in g.features if f.agg == "ewma"}
    has_labels = any(f.agg == "label_rate" for f in g.features)
    horizon_us = max_span_s * _US + grace
    return GroupPlan(
        group=g,
        tile_us=tile,
        grace_us=grace,
        inputs=inputs,
        ewmas=ewmas,
        ledger_horizon_us=horizon_us if has_labels else None,
        ttl_s=max(max_span_s, g.max_age_s) + grace // _US + 3600,
        status_window=status_window,
    )
