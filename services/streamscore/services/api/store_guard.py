"""The sync API's guard on the feature store: a deadline per batch and a circuit breaker.

A slow or silent Redis (FAULTS.md F7) must not hold scoring requests: a caller
waiting on a decision is better served by the policy's degraded path now than
by a feature-based decision in half a second. Per coalesced batch:

1. Breaker **open** (the store failed ``fail_max`` batches in a row, less than
   ``open_s`` ago): the store is not asked at all; the batch goes to the
   degraded path at once (``store_circuit_open``).
2. Otherwise the feature step runs under ``deadline_s``. Past it the step is
   cancelled (``store_slow``); a Redis or socket error, or a transaction that
   kept conflicting, ends it too (``store_unavailable``). Either is one failure;
   ``fail_max`` in a row open the breaker.
3. After ``open_s`` the next batch is let through (**half-open**): success
   closes the breaker, failure opens it for another ``open_s``.

The breaker is `pybreaker <https://github.com/danielfm/pybreaker>`_'s (one per
API process, shared by its streams: they share one Redis). Only store failures
count; any other exception (a bug) is re-raised and leaves the breaker alone.
Known limit, as for a socket timeout: a step cancelled while its write was in
flight may have applied the events although they were decided degraded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pybreaker
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamscore.services.feature_state import ConflictLimitError
from streamscore.services.metrics import ApiMetrics

T = TypeVar("T")

STORE_FAILURES: tuple[type[BaseException], ...] = (
    RedisError,
    OSError,
    ConflictLimitError,
    TimeoutError,
)
#: The breaker's state as the ``streamscore_api_store_circuit_state`` gauge reports it.
STATE_VALUE = {
    pybreaker.STATE_CLOSED: 0.0,
    pybreaker.STATE_OPEN: 1.0,
    pybreaker.STATE_HALF_OPEN: 0.5,
}


class _Metrics(pybreaker.CircuitBreakerListener):
    def __init__(self, metrics: ApiMetrics | None) -> None:
        self.metrics = metrics

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if self.metrics is None:
            return
        self.metrics.store_circuit.set(STATE_VALUE[new_state.name])
        if new_state.name == pybreaker.STATE_OPEN:
            self.metrics.store_circuit_opened.inc()


class StoreGuard:
    """Runs the feature step under the deadline and the breaker (module docstring)."""

    def __init__(
        self,
        *,
        deadline_s: float = 0.1,
        fail_max: int = 3,
        open_s: float = 2.0,
        metrics: ApiMetrics | None = None,
    ) -> None:
        if deadline_s <= 0 or fail_max < 1 or open_s <= 0:
            raise ValueError("deadline_s and open_s must be > 0, fail_max >= 1")
        self.deadline_s = deadline_s
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=open_s,
            throw_new_error_on_trip=False,  # the store's own error says what happened
            exclude=[lambda exc: not isinstance(exc, STORE_FAILURES)],
            listeners=[_Metrics(metrics)],
            name="feature-store",
        )
        if metrics is not None:
            metrics.store_circuit.set(0.0)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return str(self.breaker.current_state)

    async def run(self, step: Callable[[], Awaitable[T]]) -> tuple[T | None, str]:
        """``(result, "store")``, or ``(None, why)`` when the degraded path must decide.

        ``step`` is a factory so that nothing is started while the breaker is open.
        """
        try:
            with self.breaker.calling():  # step 1 (raises CircuitBreakerError), 3
                return await asyncio.wait_for(step(), self.deadline_s), "store"  # step 2
        except pybreaker.CircuitBreakerError:
            return None, "store_circuit_open"
        except (TimeoutError, RedisTimeoutError):
            return None, "store_slow"
        except (RedisError, OSError, ConflictLimitError):
            return None, "store_unavailable"
