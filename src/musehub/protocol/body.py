"""A request body as a blocking file object, so the pack decoder can run in a worker thread.

The ASGI body arrives as async chunks; ``receive_pack`` wants ``read()``. Each refill crosses
from the worker thread to the event loop once and gathers up to ``batch`` bytes there, so a
1 GB push costs about a thousand crossings, and memory holds at most one batch.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import anyio
import anyio.from_thread

#: A client that sends no body bytes for this long is cut off (a stalled push must not hold
#: a worker thread forever).
IDLE_TIMEOUT_S = 60.0


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
    ) -> None:
        self._chunks = chunks
        self._idle_s = idle_s
        self._limit = limit
        self._batch = batch
        self._buf = memoryview(b"")
        self._eof = False
        self.total = 0

    def readable(self) -> bool:
        return True

    async def _gather(self) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while size < self._batch:
            try:
                with anyio.fail_after(self._idle_s):
                    chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyTruncated(f"no body bytes for {self._idle_s:g} s") from None
            except Exception as e:  # starlette.requests.ClientDisconnect and friends
                raise BodyTruncated(str(e) or type(e).__name__) from None
            if chunk:
                parts.append(chunk)
                size += len(chunk)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fill(self) -> None:
        data = anyio.from_thread.run(self._gather)
        if data is None:
            self._eof = True
            return
        self.total += len(data)
        if self._limit is not None and self.total > self._limit:
            raise BodyTooLarge(f"body larger than {self._limit} bytes")
        self._buf = memoryview(data)

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
