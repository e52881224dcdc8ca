"""The clickstream: web sessions of humans and bots, and their delayed conversion labels.

A human user starts a Poisson number of sessions a day (rates vary across
users), mostly in the afternoon and evening. A session is a sequence of
actions (``page_view``, ``search``, ``add_to_cart``, ``purchase``) with
log-normal gaps (seconds to minutes); a converting session ends with an
``add_to_cart`` and a ``purchase`` carrying its value.

Bots (``scripted``, by default 5% of sessions) browse at any hour with
near-constant one-second gaps, long sessions of mostly page views and crawler
user agents.

Each human session gets one ``Conversion`` label after it ends (minutes to
two days later, log-normal, median 2 h: the attribution window), targeting the
session's last click: ``converted`` if it purchased, or (a small share) if the
user converted later through another channel. Bot sessions get no label.

Drift ``new_bot_type``: from its ``start_day``, about ``params.share`` (default
0.05) of all sessions are ``jittered`` bots: bot sessions with human-like gaps
and browser user agents. They draw from their own generator, so the scenario
is unchanged before the drift starts.

The truth of a click is ``{"bot": bool, "bot_type": "none" | "scripted" |
"jittered"}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from streamscore.libs.contracts.events import Click, ClickAction
from streamscore.libs.contracts.labels import Conversion
from streamscore.libs.simulator._pending import (
    SECONDS_PER_DAY,
    BoolArray,
    FloatArray,
    IntArray,
    Pending,
    inverse,
    lognormal_delays,
)
from streamscore.libs.simulator.drift import DriftSpec, for_stream
from streamscore.libs.simulator.labels_queue import ArrivalQueue
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord, at
from streamscore.libs.topics import STREAMS

CLICK_TOPIC = STREAMS["clickstream"].input_topic
CONVERSION_TOPIC = STREAMS["clickstream"].label_topic

ACTIONS: tuple[ClickAction, ...] = ("page_view", "search", "add_to_cart", "purchase")
PAGE_VIEW, SEARCH, ADD_TO_CART, PURCHASE = range(4)
BOT_TYPES = ("none", "scripted", "jittered")
HUMAN, SCRIPTED, JITTERED = range(3)
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
)
CRAWLER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "python-requests/2.32.3",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "curl/8.10.1",
)
_AGENTS = BROWSER_AGENTS + CRAWLER_AGENTS


@dataclass(frozen=True)
class ClickStreamConfig:
    """Users, sessions, bots and how conversions arrive (defaults: about 55k clicks a day)."""

    n_users: int = 20_000
    #: Mean of the users' daily session rates (exponential across users).
    sessions_per_user_day: float = 0.4
    #: Mean number of actions of a human session (geometric, at least one).
    actions_per_session: float = 5.0
    human_gap_median_s: float = 20.0
    human_gap_sigma: float = 1.1
    #: Human (and jittered bot) gaps are clipped to this range, seconds.
    human_gap_range_s: tuple[float, float] = (1.0, 900.0)
    #: Share of human sessions that end with a purchase.
    conversion_share: float = 0.05
    #: Share of the other human sessions that convert later, through another channel.
    late_conversion_share: float = 0.02
    purchase_value_median: float = 40.0
    purchase_value_sigma: float = 0.8
    n_products: int = 5_000
    #: Share of all sessions that are scripted bots.
    bot_share: float = 0.05
    #: Actions of a bot session (inclusive range).
    bot_actions: tuple[int, int] = (10, 60)
    bot_gap_s: float = 1.0
    bot_gap_jitter_s: float = 0.05
    bot_page_view_share: float = 0.95
    #: Bots use user ids after the humans' (cookies they keep).
    n_bot_users: int = 500
    label_delay_median_h: float = 2.0
    label_delay_sigma: float = 1.5
    label_delay_min_h: float = 1 / 60
    label_delay_max_h: float = 48.0
    #: Also yield the labels that arrive after the last simulated day.
    include_late_labels: bool = True


@dataclass(frozen=True)
class _Sessions:
    """Sessions and their clicks (clicks grouped by session, in session order)."""

    user: IntArray
    kind: IntArray
    converted: BoolArray
    value: FloatArray
    last: IntArray  # index of the session's last click
    end_s: FloatArray
    # Clicks.
    seconds: FloatArray
    session: IntArray
    action: IntArray
    product: IntArray
    click_value: FloatArray  # NaN unless a purchase


def _concat(a: _Sessions, b: _Sessions) -> _Sessions:
    n_clicks, n_sessions = len(a.seconds), len(a.user)
    return _Sessions(
        np.concatenate([a.user, b.user]),
        np.concatenate([a.kind, b.kind]),
        np.concatenate([a.converted, b.converted]),
        np.concatenate([a.value, b.value]),
        np.concatenate([a.last, b.last + n_clicks]),
        np.concatenate([a.end_s, b.end_s]),
        np.concatenate([a.seconds, b.seconds]),
        np.concatenate([a.session, b.session + n_sessions]),
        np.concatenate([a.action, b.action]),
        np.concatenate([a.product, b.product]),
        np.concatenate([a.click_value, b.click_value]),
    )


class _ClickSimulator:
    def __init__(self, c: ClickStreamConfig, seed: int, drifts: Sequence[DriftSpec]) -> None:
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.drift_rng = np.random.default_rng([seed, 2])
        self.drifts = for_stream(drifts, "clickstream")
        self.rate = self.rng.exponential(c.sessions_per_user_day, size=c.n_users)
        self.agent = self.rng.integers(0, len(BROWSER_AGENTS), size=c.n_users + c.n_bot_users)
        bots = np.arange(c.n_users, c.n_users + c.n_bot_users)
        self.agent[bots] = len(BROWSER_AGENTS) + self.rng.integers(
            0, len(CRAWLER_AGENTS), size=c.n_bot_users
        )

    def day(self, d: int) -> _Sessions:
        c, rng = self.c, self.rng
        humans = np.repeat(np.arange(c.n_users, dtype=np.int64), rng.poisson(self.rate))
        n_bots = int(rng.binomial(len(humans), c.bot_share / (1 - c.bot_share)))
        bots = c.n_users + rng.integers(0, c.n_bot_users, size=n_bots)
        user = np.concatenate([humans, bots])
        kind = np.concatenate([np.full(len(humans), HUMAN), np.full(n_bots, SCRIPTED)])
        day = self._sessions(rng, d, user, kind.astype(np.int64))
        for drift in self.drifts:
            if drift.kind == "new_bot_type" and drift.active(d):
                share = float(drift.param("share", 0.05))
                n = int(self.drift_rng.binomial(len(user), share / (1 - share)))
                # Jittered bots rotate through the humans' ids and browsers.
                users = self.drift_rng.integers(0, c.n_users, size=n)
                jittered = np.full(n, JITTERED, dtype=np.int64)
                day = _concat(day, self._sessions(self.drift_rng, d, users, jittered))
        return day

    def _sessions(
        self, rng: np.random.Generator, d: int, user: IntArray, kind: IntArray
    ) -> _Sessions:
        c = self.c
        s = len(user)
        human = kind == HUMAN
        # 1. Session lengths; a converting session has room for add_to_cart + purchase.
        length = np.where(
            human,
            rng.geometric(1 / c.actions_per_session, size=s),
            rng.integers(c.bot_actions[0], c.bot_actions[1] + 1, size=s),
        ).astype(np.int64)
        converted = human & (rng.random(s) < c.conversion_share)
        length = np.where(converted, np.maximum(length, 3), length)
        value = np.round(
            rng.lognormal(math.log(c.purchase_value_median), c.purchase_value_sigma, size=s), 2
        )
        n = int(length.sum())
        session = np.repeat(np.arange(s, dtype=np.int64), length)
        first = np.cumsum(length) - length
        last = first + length - 1
        pos = np.arange(n, dtype=np.int64) - first[session]
        # 2. Gaps: log-normal for people (and jittered bots), near-constant for scripts.
        lo, hi = c.human_gap_range_s
        gaps = np.clip(
            rng.lognormal(math.log(c.human_gap_median_s), c.human_gap_sigma, size=n), lo, hi
        )
        regular = np.maximum(rng.normal(c.bot_gap_s, c.bot_gap_jitter_s, size=n), 0.1)
        gaps = np.where(kind[session] == SCRIPTED, regular, gaps)
        gaps[first] = 0.0
        cum = np.cumsum(gaps)
        offset = cum - cum[first][session]
        duration = offset[last]
        # 3. Starts: people in the afternoon and evening, bots at any hour; every
        #    session ends within its day, so days follow each other in time order.
        start = np.where(
            human,
            rng.normal(15 * 3600, 4.5 * 3600, size=s) % SECONDS_PER_DAY,
            rng.uniform(0, SECONDS_PER_DAY, size=s),
        )
        start = np.clip(np.minimum(start, SECONDS_PER_DAY - 1 - duration), 0, None)
        seconds = d * SECONDS_PER_DAY + start[session] + offset
        # 4. Actions: people browse, search and fill carts; bots mostly view pages.
        u = rng.random(n)
        people = np.where(u < 0.6, PAGE_VIEW, np.where(u < 0.85, SEARCH, ADD_TO_CART))
        people = np.where(pos == 0, np.where(u < 0.7, PAGE_VIEW, SEARCH), people)
        robots = np.where(u < c.bot_page_view_share, PAGE_VIEW, SEARCH)
        action = np.where(human[session], people, robots).astype(np.int64)
        buyers = last[converted]
        action[buyers - 1] = ADD_TO_CART
        action[buyers] = PURCHASE
        click_value = np.full(n, np.nan)
        click_value[buyers] = value[converted]
        product = rng.integers(0, c.n_products, size=n)
        return _Sessions(
            user,
            kind,
            converted,
            value,
            last,
            seconds[last],
            seconds,
            session,
            action,
            product,
            click_value,
        )


def _page(action: int, product: int) -> str:
    if action == PAGE_VIEW:
        return f"/product/{product}"
    if action == SEARCH:
        return f"/search?q=term{product % 500}"
    if action == ADD_TO_CART:
        return f"/cart/add/{product}"
    return "/checkout/confirmation"


def click_records(
    config: ClickStreamConfig,
    *,
    seed: int,
    days: int,
    start: datetime = DEFAULT_START,
    drifts: Sequence[DriftSpec] = (),
) -> Iterator[SimRecord]:
    """Yield clicks and conversion labels in event-time order, one day in memory at a time.

    Clicks of concurrent sessions interleave by time; a session's label comes after it ends.

    >>> recs = list(click_records(ClickStreamConfig(n_users=300), seed=1, days=2))
    >>> times = [r.time for r in recs]
    >>> times == sorted(times)
    True
    >>> sorted({r.truth["bot_type"] for r in recs if r.topic == CLICK_TOPIC})
    ['none', 'scripted']
    >>> sum(r.topic == CONVERSION_TOPIC for r in recs) > 0
    True
    """
    c = config
    sim = _ClickSimulator(c, seed, drifts)
    # Labels draw from their own generator: changing the label policy does not
    # change the clicks of a seed.
    label_rng = np.random.default_rng([seed, 1])
    queue: ArrivalQueue[Pending] = ArrivalQueue()
    seq = 0
    session_seq = 0
    label_seq = 0
    for d in range(days):
        day = sim.day(d)
        n = len(day.seconds)
        # 1. Merge the sessions' clicks in time order; ids follow that order.
        order = np.argsort(day.seconds, kind="stable")
        position = inverse(order)
        first = seq
        seq += n
        first_session = session_seq
        session_seq += len(day.user)
        # 2. One label per human session, after it ends.
        humans = np.flatnonzero(day.kind == HUMAN)
        late = ~day.converted[humans] & (label_rng.random(len(humans)) < c.late_conversion_share)
        late_value = np.round(
            label_rng.lognormal(
                math.log(c.purchase_value_median), c.purchase_value_sigma, size=len(humans)
            ),
            2,
        )
        delays = lognormal_delays(
            label_rng,
            len(humans),
            median_s=c.label_delay_median_h * 3600,
            sigma=c.label_delay_sigma,
            min_s=c.label_delay_min_h * 3600,
            max_s=c.label_delay_max_h * 3600,
        )
        rows = zip(
            humans.tolist(),
            late.tolist(),
            late_value.tolist(),
            delays.tolist(),
            strict=True,
        )
        for h, is_late, later_value, delay in rows:
            arrival = float(day.end_s[h]) + delay
            bought = bool(day.converted[h])
            value = float(day.value[h]) if bought else later_value if is_late else None
            label = Conversion(
                event_id=f"cv-{seed}-{label_seq:09d}",
                event_time=at(start, arrival),
                user_id=f"u{int(day.user[h]):07d}",
                session_id=f"s-{seed}-{first_session + h:09d}",
                converted=bought or is_late,
                value=value,
                target_event_id=f"ck-{seed}-{first + int(position[day.last[h]]):010d}",
            )
            truth: dict[str, object] = {"late_conversion": is_late}
            queue.push(Pending(arrival, label_seq, SimRecord(CONVERSION_TOPIC, label, truth)))
            label_seq += 1
        # 3. Yield the clicks, releasing the labels due before each.
        secs = day.seconds[order].tolist()
        sessions = day.session[order]
        users, kinds = day.user[sessions].tolist(), day.kind[sessions].tolist()
        sessions_l = sessions.tolist()
        actions, products = day.action[order].tolist(), day.product[order].tolist()
        values = day.click_value[order].tolist()
        agents = sim.agent[day.user[sessions]].tolist()
        for i in range(n):
            s = secs[i]
            for p in queue.due(s):
                yield p.record
            a, v, kind = actions[i], values[i], kinds[i]
            yield SimRecord(
                CLICK_TOPIC,
                Click(
                    event_id=f"ck-{seed}-{first + i:010d}",
                    event_time=at(start, s),
                    user_id=f"u{users[i]:07d}",
                    session_id=f"s-{seed}-{first_session + sessions_l[i]:09d}",
                    action=ACTIONS[a],
                    page=_page(a, products[i]),
                    value=None if math.isnan(v) else v,
                    user_agent=_AGENTS[agents[i]],
                ),
                {"bot": kind != HUMAN, "bot_type": BOT_TYPES[kind]},
            )
    if c.include_late_labels:
        for p in queue.due(float("inf")):
            yield p.record
