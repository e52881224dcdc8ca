"""The logins stream: login attempts, takeover attacks and their delayed takeover labels.

Each account has 1-3 usual devices, 1-4 usual IPs, a home country, a preferred
login hour with its own spread and a daily login rate (a Poisson count per
day); a small share of its logins fail (mistyped password). Two attacks are
mixed in every day:

* **account takeover** (``ato``): a few accounts get a burst of failed
  attempts, seconds apart, then a success, all from a new device, a new IP and
  a country the account never uses;
* **credential stuffing** (``stuffing``): one IP tries many accounts within
  minutes; most attempts fail, a few succeed.

A successful malicious login is a takeover. Most takeovers are confirmed by an
``AccountTakeover(confirmed=True)`` label hours to days later (log-normal,
median 18 h, capped at 7 days); a few benign logins are reported by mistake and
cleared later (``confirmed=False``).

Drift ``stuffing_wave``: from its ``start_day``, ``params.per_day`` (default 5)
extra stuffing attacks a day come from ``params.country`` (default ``"ZZ"``), a
country never seen before. They draw from their own generator, so the scenario
is unchanged before the drift starts.

The truth of a login is ``{"attack": "none" | "ato" | "stuffing", "takeover":
bool, "drift": bool}`` (``takeover``: a successful malicious login).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from streamscore.libs.contracts.events import Login
from streamscore.libs.contracts.labels import AccountTakeover
from streamscore.libs.simulator._pending import (
    SECONDS_PER_DAY,
    BoolArray,
    FloatArray,
    IntArray,
    Pending,
    lognormal_delays,
)
from streamscore.libs.simulator.drift import DriftSpec, for_stream
from streamscore.libs.simulator.labels_queue import ArrivalQueue
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord, at
from streamscore.libs.topics import STREAMS

LOGIN_TOPIC = STREAMS["logins"].input_topic
LOGIN_LABEL_TOPIC = STREAMS["logins"].label_topic

#: Home countries of accounts, with their weights.
HOME_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "BE", "AT", "US", "CA")
_HOME_WEIGHTS = np.array([20, 15, 15, 8, 8, 8, 6, 4, 4, 3, 6, 3], dtype=np.float64)
#: Countries attacks come from (never an account's home).
ATTACK_COUNTRIES = ("RU", "CN", "BR", "NG", "VN", "IN", "UA", "RO")
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
)
STUFFING_AGENTS = ("python-requests/2.32.3", "Go-http-client/1.1", "okhttp/4.12.0")
_AGENTS = BROWSER_AGENTS + STUFFING_AGENTS
_ATTACKS = ("none", "ato", "stuffing", "stuffing")  # code 3: stuffing from the drift

MAX_DEVICES = 3
MAX_IPS = 4
#: Attackers' devices are numbered from here (accounts' devices stay below).
_ATTACKER_DEVICES = 1_000_000_000


@dataclass(frozen=True)
class LoginStreamConfig:
    """Accounts, attacks and how takeover labels arrive (defaults: about 30k logins a day)."""

    n_accounts: int = 20_000
    #: Mean of the accounts' daily login rates (gamma-distributed across accounts).
    logins_per_day: float = 1.5
    failed_password_share: float = 0.03
    #: Range of the accounts' login-hour spreads (standard deviation, hours).
    hour_spread_h: tuple[float, float] = (1.0, 4.0)
    ato_per_day: int = 3
    #: Failed attempts before an account takeover succeeds (inclusive range).
    ato_failures: tuple[int, int] = (3, 10)
    stuffing_per_day: int = 2
    #: Accounts tried by one stuffing attack (inclusive range).
    stuffing_accounts: tuple[int, int] = (50, 300)
    stuffing_success_share: float = 0.03
    stuffing_window_s: float = 600.0
    #: Share of takeovers later confirmed by a label.
    confirm_share: float = 0.9
    label_delay_median_h: float = 18.0
    label_delay_sigma: float = 0.9
    label_delay_min_h: float = 0.25
    label_delay_max_h: float = 168.0
    #: Mean number of benign logins reported by mistake (and cleared) per day.
    false_reports_per_day: float = 2.0
    #: Also yield the labels that arrive after the last simulated day.
    include_late_labels: bool = True


@dataclass(frozen=True)
class _Day:
    seconds: FloatArray  # seconds since the scenario start, sorted
    account: IntArray
    device: IntArray
    ip: IntArray
    country: IntArray  # index into HOME_COUNTRIES + ATTACK_COUNTRIES + drift countries
    agent: IntArray
    success: BoolArray
    attack: IntArray  # 0 none, 1 ato, 2 stuffing, 3 stuffing (drift)


class _Accounts:
    def __init__(self, c: LoginStreamConfig, rng: np.random.Generator) -> None:
        n = c.n_accounts
        self.n_devices = rng.integers(1, MAX_DEVICES + 1, size=n)
        self.agents = rng.integers(0, len(BROWSER_AGENTS), size=(n, MAX_DEVICES))
        self.n_ips = rng.integers(1, MAX_IPS + 1, size=n)
        self.ips = rng.integers(1 << 24, 0xDF000000, size=(n, MAX_IPS))
        self.home = rng.choice(len(HOME_COUNTRIES), size=n, p=_HOME_WEIGHTS / _HOME_WEIGHTS.sum())
        self.hour = rng.normal(19.0, 4.0, size=n) % 24
        self.spread = rng.uniform(*c.hour_spread_h, size=n)
        self.rate = rng.gamma(2.0, c.logins_per_day / 2.0, size=n)


def _concat(parts: Sequence[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    return [np.concatenate(col) for col in zip(*parts, strict=True)]


def _bursts(
    rng: np.random.Generator, starts: FloatArray, sizes: IntArray, gap: tuple[float, float]
) -> tuple[IntArray, FloatArray]:
    """Group index and time of each attempt of bursts of ``sizes`` attempts from ``starts``."""
    group = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    gaps = rng.uniform(*gap, size=len(group))
    first = np.cumsum(sizes) - sizes
    gaps[first] = 0.0
    cum = np.cumsum(gaps)
    return group, starts[group] + cum - cum[first][group]


class _LoginSimulator:
    def __init__(self, c: LoginStreamConfig, seed: int, drifts: Sequence[DriftSpec]) -> None:
        self.c = c
        self.rng = np.random.default_rng(seed)
        self.drift_rng = np.random.default_rng([seed, 2])
        self.drifts = for_stream(drifts, "logins")
        self.accounts = _Accounts(c, self.rng)
        self.countries = list(HOME_COUNTRIES + ATTACK_COUNTRIES)

    def day(self, d: int) -> _Day:
        c, a, rng = self.c, self.accounts, self.rng
        counts = rng.poisson(a.rate)
        acct = np.repeat(np.arange(c.n_accounts, dtype=np.int64), counts)
        m = len(acct)
        sec = (rng.normal(a.hour[acct], a.spread[acct]) % 24) * 3600.0
        k = np.floor(rng.random(m) * a.n_devices[acct]).astype(np.int64)
        j = np.floor(rng.random(m) * a.n_ips[acct]).astype(np.int64)
        success = rng.random(m) >= c.failed_password_share
        parts = [
            (
                sec,
                acct,
                acct * MAX_DEVICES + k,
                a.ips[acct, j],
                a.home[acct],
                a.agents[acct, k],
                success,
                np.zeros(m, dtype=np.int64),
            ),
            self._ato(),
            self._stuffing(rng, c.stuffing_per_day, None, 2),
        ]
        for drift in self.drifts:
            if drift.kind == "stuffing_wave" and drift.active(d):
                country = self._country(str(drift.param("country", "ZZ")))
                per_day = int(drift.param("per_day", 5))
                parts.append(self._stuffing(self.drift_rng, per_day, country, 3))
        cols = _concat(parts)
        order = np.argsort(cols[0], kind="stable")
        s, acct, dev, ip, ctry, agent, ok, attack = (col[order] for col in cols)
        return _Day(s + d * SECONDS_PER_DAY, acct, dev, ip, ctry, agent, ok, attack)

    def _country(self, code: str) -> int:
        if code not in self.countries:
            self.countries.append(code)
        return self.countries.index(code)

    def _ato(self) -> tuple[np.ndarray, ...]:
        c, rng = self.c, self.rng
        n = min(c.ato_per_day, c.n_accounts)
        victims = rng.choice(c.n_accounts, size=n, replace=False).astype(np.int64)
        sizes = rng.integers(c.ato_failures[0], c.ato_failures[1] + 1, size=n) + 1
        starts = rng.uniform(0, SECONDS_PER_DAY - 3600, size=n)
        group, sec = _bursts(rng, starts, sizes, (2.0, 20.0))
        device = _ATTACKER_DEVICES + rng.integers(0, _ATTACKER_DEVICES, size=n)
        ip = rng.integers(1 << 24, 0xDF000000, size=n)
        country = len(HOME_COUNTRIES) + rng.integers(0, len(ATTACK_COUNTRIES), size=n)
        agent = rng.integers(0, len(BROWSER_AGENTS), size=n)
        last = np.cumsum(sizes) - 1
        success = np.zeros(len(group), dtype=np.bool_)
        success[last] = True
        return (
            sec,
            victims[group],
            device[group],
            ip[group],
            country[group],
            agent[group],
            success,
            np.ones(len(group), dtype=np.int64),
        )

    def _stuffing(
        self, rng: np.random.Generator, attacks: int, country: int | None, code: int
    ) -> tuple[np.ndarray, ...]:
        c = self.c
        lo, hi = c.stuffing_accounts
        sizes = np.minimum(rng.integers(lo, hi + 1, size=attacks), c.n_accounts)
        starts = rng.uniform(0, SECONDS_PER_DAY - 2 * c.stuffing_window_s, size=attacks)
        ip = rng.integers(1 << 24, 0xDF000000, size=attacks)
        if country is None:
            ctry = len(HOME_COUNTRIES) + rng.integers(0, len(ATTACK_COUNTRIES), size=attacks)
        else:
            ctry = np.full(attacks, country, dtype=np.int64)
        group = np.repeat(np.arange(attacks, dtype=np.int64), sizes)
        accounts = np.concatenate(
            [rng.choice(c.n_accounts, size=int(n), replace=False) for n in sizes]
            or [np.zeros(0, dtype=np.int64)]
        ).astype(np.int64)
        m = len(group)
        sec = starts[group] + rng.uniform(0, c.stuffing_window_s, size=m)
        device = _ATTACKER_DEVICES + rng.integers(0, _ATTACKER_DEVICES, size=m)
        agent = len(BROWSER_AGENTS) + rng.integers(0, len(STUFFING_AGENTS), size=m)
        success = rng.random(m) < c.stuffing_success_share
        return (
            sec,
            accounts,
            device,
            ip[group],
            ctry[group],
            agent,
            success,
            np.full(m, code, dtype=np.int64),
        )


def _ip(x: int) -> str:
    return f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


def login_records(
    config: LoginStreamConfig,
    *,
    seed: int,
    days: int,
    start: datetime = DEFAULT_START,
    drifts: Sequence[DriftSpec] = (),
) -> Iterator[SimRecord]:
    """Yield logins and takeover labels in event-time order, one day in memory at a time.

    A label's ``event_time`` is its arrival; it is yielded when the scenario
    clock passes it, so it always comes after the login it targets.

    >>> recs = list(login_records(LoginStreamConfig(n_accounts=500), seed=1, days=3))
    >>> times = [r.time for r in recs]
    >>> times == sorted(times)
    True
    >>> sorted({r.truth["attack"] for r in recs if r.topic == LOGIN_TOPIC})
    ['ato', 'none', 'stuffing']
    """
    c = config
    sim = _LoginSimulator(c, seed, drifts)
    # Labels draw from their own generator: changing the label policy does not
    # change the logins of a seed.
    label_rng = np.random.default_rng([seed, 1])
    queue: ArrivalQueue[Pending] = ArrivalQueue()
    seq = 0
    label_seq = 0
    for d in range(days):
        day = sim.day(d)
        n = len(day.seconds)
        first = seq
        seq += n
        # 1. Schedule the day's labels before yielding its logins: each arrives later
        #    than its target, so the queue releases it in order.
        malicious = day.success & (day.attack > 0)
        takeovers = np.flatnonzero(malicious & (label_rng.random(n) < c.confirm_share))
        benign = np.flatnonzero(day.success & (day.attack == 0))
        n_false = min(int(label_rng.poisson(c.false_reports_per_day)), len(benign))
        false = np.sort(label_rng.choice(benign, size=n_false, replace=False))
        targets = np.concatenate([takeovers, false]).astype(np.int64)
        confirmed = np.arange(len(targets)) < len(takeovers)
        delays = lognormal_delays(
            label_rng,
            len(targets),
            median_s=c.label_delay_median_h * 3600,
            sigma=c.label_delay_sigma,
            min_s=c.label_delay_min_h * 3600,
            max_s=c.label_delay_max_h * 3600,
        )
        for t, ok, delay in zip(targets.tolist(), confirmed.tolist(), delays.tolist(), strict=True):
            arrival = float(day.seconds[t]) + delay
            label = AccountTakeover(
                event_id=f"ato-{seed}-{label_seq:09d}",
                event_time=at(start, arrival),
                account_id=f"A{int(day.account[t]):07d}",
                confirmed=ok,
                target_event_id=f"lg-{seed}-{first + t:010d}",
            )
            truth: dict[str, object] = {"false_report": not ok}
            queue.push(Pending(arrival, label_seq, SimRecord(LOGIN_LABEL_TOPIC, label, truth)))
            label_seq += 1
        # 2. Yield the logins, releasing the labels due before each.
        countries = sim.countries
        secs, accts, devs = day.seconds.tolist(), day.account.tolist(), day.device.tolist()
        ips, ctrs, agents = day.ip.tolist(), day.country.tolist(), day.agent.tolist()
        oks, attacks = day.success.tolist(), day.attack.tolist()
        for i in range(n):
            s = secs[i]
            for p in queue.due(s):
                yield p.record
            attack = attacks[i]
            yield SimRecord(
                LOGIN_TOPIC,
                Login(
                    event_id=f"lg-{seed}-{first + i:010d}",
                    event_time=at(start, s),
                    account_id=f"A{accts[i]:07d}",
                    device_id=f"d{devs[i]:010d}",
                    ip=_ip(ips[i]),
                    country=countries[ctrs[i]],
                    success=oks[i],
                    user_agent=_AGENTS[agents[i]],
                ),
                {
                    "attack": _ATTACKS[attack],
                    "takeover": attack > 0 and oks[i],
                    "drift": attack == 3,
                },
            )
    if c.include_late_labels:
        for p in queue.due(float("inf")):
            yield p.record
