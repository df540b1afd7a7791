"""A request body as a blocking file object, so the pack decoder can run in a worker thread.

The ASGI body arrives as async chunks; ``receive_pack`` wants ``read()``. A task on the event
loop keeps reading the body into a short queue (at most ``ahead`` chunks) while the worker
thread decodes what arrived before, so the network and the decoding overlap instead of taking
turns (the server stops reading the socket while nobody consumes the body). Each refill
crosses from the worker thread to the event loop once and takes what is queued, up to
``batch`` bytes, so a 1 GB push costs about a thousand crossings.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.from_thread

#: A client that sends no body bytes for this long is cut off (a stalled push must not hold
#: a worker thread forever).
IDLE_TIMEOUT_S = 60.0


_EOF = object()


class BodyTooLarge(Exception):
    """More body bytes than the hub accepts (answered 413)."""


class BodyTruncated(Exception):
    """The client went away before the end of its body."""


class AsyncBodyReader(io.RawIOBase):
    """Raw, blocking reader over an async byte iterator; use only from a worker thread."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        limit: int | None,
        batch: int = 1 << 20,
        idle_s: float = IDLE_TIMEOUT_S,
        ahead: int = 32,
    ) -> None:
        self._chunks = chunks
        self._idle_s = idle_s
        self._limit = limit
        self._batch = batch
        self._ahead = ahead
        self._buf = memoryview(b"")
        self._eof = False
        self.total = 0
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._end: Any = None  # _EOF or the exception that ended the body, once seen
        self._over: Callable[[], Exception] | None = None  # raised instead of BodyTooLarge

    def readable(self) -> bool:
        return True

    async def _pump(self) -> None:
        """Read the body into the queue ahead of the worker (runs on the event loop)."""
        q = self._queue
        assert q is not None
        while True:
            try:
                with anyio.fail_after(self._idle_s):
                    chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                await q.put(_EOF)
                return
            except TimeoutError:
                await q.put(BodyTruncated(f"no body bytes for {self._idle_s:g} s"))
                return
            except Exception as e:  # starlette.requests.ClientDisconnect and friends
                await q.put(BodyTruncated(str(e) or type(e).__name__))
                return
            if chunk:
                await q.put(chunk)

    def stop(self) -> None:
        """Stop reading ahead (call on the event loop once the body is no longer wanted)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _gather(self) -> bytes | None:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._ahead)
            self._task = asyncio.get_running_loop().create_task(self._pump())
        q = self._queue
        parts: list[bytes] = []
        size = 0
        while size < self._batch and self._end is None:
            if parts and q.empty():
                break  # decode what arrived; the pump keeps reading meanwhile
            item = await q.get()
            if isinstance(item, bytes):
                parts.append(item)
                size += len(item)
            else:
                self._end = item
        if parts:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if self._end is _EOF:
            return None
        raise self._end

    def _fill(self) -> None:
        data = anyio.from_thread.run(self._gather)
        if data is None:
            self._eof = True
            return
        self.total += len(data)
        self._buf = memoryview(data)
        self._check_limit()

    def _check_limit(self) -> None:
        if self._limit is not None and self.total > self._limit:
            self._buf = memoryview(b"")
            if self._over is not None:
                raise self._over()
            raise BodyTooLarge(f"body larger than {self._limit} bytes")

    @property
    def position(self) -> int:
        """Body bytes consumed so far (read, not merely received)."""
        return self.total - len(self._buf)

    def limit_rest(self, n: int, error: Callable[[], Exception]) -> None:
        """Accept at most ``n`` more bytes from :attr:`position` on (a storage quota's room),
        raising ``error()`` beyond them; a tighter limit already set stays."""
        limit = self.position + n
        if self._limit is None or limit < self._limit:
            self._limit, self._over = limit, error
        self._check_limit()

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            if self._eof:
                return 0
            self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def read(self, n: int | None = -1) -> bytes:
        """Up to n bytes (all that is left for n < 0) with one copy, not RawIOBase's two."""
        if n is None or n < 0:
            return self.readall()
        while not self._buf:
            if self._eof or n == 0:
                return b""
            self._fill()
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def readall(self) -> bytes:
        parts = [bytes(self._buf)]
        self._buf = memoryview(b"")
        while not self._eof:
            self._fill()
            parts.append(bytes(self._buf))
            self._buf = memoryview(b"")
        return b"".join(parts)

    def read_exact(self, n: int) -> bytes:
        """n bytes, or fewer only at the end of the body."""
        out = bytearray()
        while len(out) < n:
            chunk = self.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
