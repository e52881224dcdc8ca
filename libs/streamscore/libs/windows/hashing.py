"""A stable 64-bit hash of distinct-count keys (the same in every process and run).

Python's ``hash()`` of a ``str`` changes per process (``PYTHONHASHSEED``), so it
cannot be stored in Redis or compared across processors. Keys are hashed by
their text form: ``1`` and ``"1"`` are the same key.

>>> hash64("terminal-42") == hash64("terminal-42")
True
>>> hash64(1) == hash64("1")
True
>>> 0 <= hash64(b"x") < 2**64
True
"""

from __future__ import annotations

from hashlib import blake2b

Key = str | int | bytes


def hash64(key: Key) -> int:
    """The unsigned 64-bit BLAKE2b hash of ``key`` (``str`` as UTF-8, ``int`` as decimal)."""
    if isinstance(key, bytes):
        data = key
    elif isinstance(key, str):
        data = key.encode()
    else:
        data = str(key).encode()
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")
