"""A TCP proxy on loopback that makes a server slow or silent (fault injection, FAULTS.md F7).

Clients connect to the proxy's port instead of the server's. Each chunk the
server sends back is held for ``delay`` seconds after it arrived (so every
request/response round trip gets ``delay`` longer while pipelined requests stay
pipelined), and while the proxy is a **blackhole** nothing is forwarded in
either direction and nothing is refused: the client sees a server that accepts
and never answers, which only its timeouts can detect. Held chunks flow again,
in order, when the blackhole is lifted (a client that timed out has closed its
connection by then, and the proxy closes the server side with it).

The proxy runs its own event loop in a daemon thread, so a test (or a service
process pointed at it) uses it like any server::

    proxy = LatencyProxy("127.0.0.1", 6379)
    port = proxy.start()
    proxy.set_delay(0.05)   # +50 ms per round trip
    proxy.blackhole(True)   # silence
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class LatencyProxy:
    """Forwards 127.0.0.1:``port`` to ``target``, with settable delay and blackhole."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay = 0.0
        self.port = 0
        self.connections = 0
        self._silent = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        )
        self._server = fut.result(timeout=5.0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def set_delay(self, seconds: float) -> None:
        """Hold every server→client chunk this long (applies to chunks arriving from now)."""
        self.delay = max(0.0, seconds)

    def blackhole(self, on: bool) -> None:
        """Stop (``True``) or resume (``False``) forwarding in both directions."""
        if on:
            self._silent.set()
        else:
            self._silent.clear()

    def stop(self) -> None:
        """Close the listener and every connection, then the loop."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.close()
            return
        up = asyncio.ensure_future(self._pump(c_reader, s_writer, delayed=False))
        down = asyncio.ensure_future(self._pump(s_reader, c_writer, delayed=True))
        for t in (up, down):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (s_writer, c_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        """Copy chunks in order; a chunk leaves at (arrival + delay) and never while silent."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                while True:
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    elif self._silent.is_set():
                        await asyncio.sleep(0.005)
                    else:
                        break
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                chunk = await reader.read(65536)
                due = time.monotonic() + (self.delay if delayed else 0.0)
                queue.put_nowait((due, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()
