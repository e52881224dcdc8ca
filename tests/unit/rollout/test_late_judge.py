"""The late judge: counts per version and bucket, maturity, the verdicts, and its saved state."""

from __future__ import annotations

import random

import msgspec
import msgspec.structs
import pytest

from streamscore.libs.rollout.late_judge import (
    FLAGGED,
    FLAGGED_POS,
    POS,
    LateBounds,
    LateState,
    N,
    judge,
    observe,
)

H = 3_600_000_000
HORIZON = 10 * H
BOUNDS = LateBounds(min_flagged=30, min_drop=0.05)


def _feed(
    s: LateState,
    version: str,
    hours: range,
    *,
    per_hour: int,
    flag_rate: float,
    precision: float,
    rng: random.Random,
) -> None:
    """``per_hour`` events an hour, a share flagged; flagged ones fraudulent at ``precision``
    and the others at 1 %; every example matured (positives when labelled, 2 h later)."""
    for h in hours:
        for i in range(per_hour):
            t = h * H + i * (H // per_hour)
            flagged = rng.random() < flag_rate
            label = rng.random() < (precision if flagged else 0.01)
            matured = t + 2 * H if label else t + HORIZON
            observe(s, version, t_us=t, revision=0, label=label, flagged=flagged,
                    matured_us=matured, bucket_us=H)  # fmt: skip


def _canary_then_promoted(new_precision: float, *, seed: int = 1) -> LateState:
    """Hours 0-5: v1 and v2 split the traffic (the canary); hours 6-8: v2 alone."""
    rng, s = random.Random(seed), LateState()
    _feed(s, "v1", range(6), per_hour=100, flag_rate=0.2, precision=0.5, rng=rng)
    _feed(s, "v2", range(6), per_hour=100, flag_rate=0.2, precision=new_precision, rng=rng)
    _feed(s, "v2", range(6, 9), per_hour=200, flag_rate=0.2, precision=new_precision, rng=rng)
    return s


def test_a_clearly_worse_promotion_is_rolled_back_once_its_cohort_has_matured() -> None:
    s = _canary_then_promoted(0.2)
    v = judge(s, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS)
    assert v is not None and v.verdict == "rolled_back" and v.buckets == 6
    assert 0.4 < v.old_precision < 0.6 and 0.1 < v.new_precision < 0.3 and v.z < -3.09
    assert v.old_flagged > 100 and v.new_flagged > 100
    assert "rolled_back" in v.reason() and v.pair == "v1->v2"


def test_as_good_or_slightly_worse_is_kept_and_too_few_flags_say_so() -> None:
    v = judge(_canary_then_promoted(0.5), new="v2", old="v1", horizon_us=HORIZON,
              bucket_us=H, bounds=BOUNDS)  # fmt: skip
    assert v is not None and v.verdict == "kept"
    # A drop smaller than min_drop is kept however significant.
    strict = LateBounds(min_flagged=30, min_drop=0.9)
    v = judge(_canary_then_promoted(0.2), new="v2", old="v1", horizon_us=HORIZON,
              bucket_us=H, bounds=strict)  # fmt: skip
    assert v is not None and v.verdict == "kept"
    few = LateBounds(min_flagged=10_000)
    v = judge(_canary_then_promoted(0.2), new="v2", old="v1", horizon_us=HORIZON,
              bucket_us=H, bounds=few)  # fmt: skip
    assert v is not None and v.verdict == "too_few"


def test_it_waits_until_the_promotion_itself_has_matured() -> None:
    rng, s = random.Random(3), LateState()
    _feed(s, "v1", range(6), per_hour=100, flag_rate=0.2, precision=0.5, rng=rng)
    _feed(s, "v2", range(6), per_hour=100, flag_rate=0.2, precision=0.1, rng=rng)
    # The canary hours have matured, but no hour of v2 alone yet: the canary may go on.
    s.frontier_us = 30 * H
    assert judge(s, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS) is None
    # v2 alone in hour 6, not yet final (the frontier must pass 7 h + horizon).
    observe(s, "v2", t_us=6 * H, revision=0, label=False, flagged=False,
            matured_us=16 * H, bucket_us=H)  # fmt: skip
    s.frontier_us = 17 * H - 1
    assert judge(s, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS) is None
    s.frontier_us = 17 * H
    v = judge(s, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS)
    assert v is not None and v.verdict == "rolled_back"


def test_promoted_without_a_canary_has_no_cohort() -> None:
    rng, s = random.Random(4), LateState()
    _feed(s, "v1", range(6), per_hour=100, flag_rate=0.2, precision=0.5, rng=rng)
    _feed(s, "v2", range(6, 12), per_hour=100, flag_rate=0.2, precision=0.1, rng=rng)
    young = msgspec.structs.replace(s, frontier_us=0)  # nothing of v2 has matured yet
    assert judge(young, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS) is None
    v = judge(s, new="v2", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS)
    assert v is not None and v.verdict == "no_cohort"
    assert judge(s, new="v3", old="v1", horizon_us=HORIZON, bucket_us=H, bounds=BOUNDS) is None


def test_corrections_move_the_counts_and_old_versions_are_forgotten() -> None:
    s = LateState()
    kw = {"t_us": 5, "matured_us": 7, "bucket_us": H}
    observe(s, "v1", revision=0, label=True, flagged=True, **kw)
    observe(s, "v1", revision=1, label=False, flagged=True, **kw)  # reversed
    observe(s, "v1", revision=0, label=False, flagged=False, **kw)
    observe(s, "v1", revision=1, label=True, flagged=False, **kw)  # reported after all
    row = s.counts["v1"][0]
    assert (row[N], row[POS], row[FLAGGED], row[FLAGGED_POS]) == (2, 1, 1, 0)
    for v in ("v2", "v3", "v4", "v5"):
        observe(s, v, revision=0, label=False, flagged=False, **kw)
    assert s.versions == ["v2", "v3", "v4", "v5"] and "v1" not in s.counts
    assert s.frontier_us == 7


def test_the_state_survives_json_and_bounds_are_checked() -> None:
    s = _canary_then_promoted(0.2)
    s.judged.append("v0->v1")
    back = msgspec.json.decode(msgspec.json.encode(s), type=LateState)
    assert back == s
    for bad in ({"min_flagged": 0}, {"min_drop": 1.0}, {"alpha": 0.0}):
        with pytest.raises(ValueError, match="min_flagged"):
            LateBounds(**bad)  # type: ignore[arg-type]
