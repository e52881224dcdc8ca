"""Store reads kept fresh off the request path: a daemon thread polls, callers get the last answer.

The API decides on an event loop. A read of the policy or model store that
waits on a slow Redis would hold every request queued behind it (FAULTS.md
F7: at +500 ms per round trip the requests took seconds while the feature step
itself was already cut short). Instead:

1. Each source is read once when it is added (its first answer, or its error).
2. One daemon thread re-reads every source every ``every_s``, one after
   another; a read that raises keeps the exception as the answer, so the caller
   sees the failure as if it had read itself (and counts it, backs off...).
3. A call returns the latest answer at once: a change in the store is seen
   within ``every_s`` plus the read's own time, which is what the callers'
   own refresh intervals already allowed.

>>> import itertools
>>> counter = itertools.count()
>>> poller = Poller(every_s=3600)
>>> read = poller.add(lambda: next(counter))
>>> read(), read()   # read once when added; calls do not read
(0, 0)
>>> poller.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class _Source(Generic[T]):
    def __init__(self, read: Callable[[], T]) -> None:
        self.read = read
        self.value: T | None = None
        self.error: Exception | None = None
        self.poll()  # step 1

    def poll(self) -> None:
        try:
            value = self.read()
        except Exception as exc:  # step 2: the error is the answer until the next read
            self.error = exc
            return
        self.value, self.error = value, None

    def __call__(self) -> T:  # step 3
        error = self.error
        if error is not None:
            raise error
        return self.value  # type: ignore[return-value]


class Poller:
    """Polls its sources every ``every_s`` in one daemon thread (module docstring)."""

    def __init__(self, *, every_s: float = 1.0, name: str = "store-poller") -> None:
        self.every_s = every_s
        self._sources: list[_Source[object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, read: Callable[[], T]) -> Callable[[], T]:
        """A callable returning ``read``'s latest answer (raising its latest error)."""
        source = _Source(read)
        self._sources.append(source)  # type: ignore[arg-type]
        return source

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for source in list(self._sources):
                source.poll()

    def close(self) -> None:
        """Stop polling (the sources keep their last answers)."""
        self._stop.set()
        self._thread.join(timeout=5.0)
