"""Whole reads and writes on file descriptors: every call loops until done.

``os.read``, ``os.pread`` and ``os.write`` may transfer fewer bytes than asked — Linux moves
at most 0x7ffff000 bytes (just under 2 GiB) per call, and signals or pipes cut calls
short — so a single call taken for the whole file silently truncates it. Nothing in
``muse`` calls them directly on file contents; it calls these.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["BackgroundWriter", "pread_exact", "read_all", "write_all"]

#: Largest single read: Linux's per-call cap, so one call never asks for more.
_MAX_CALL = 0x7FFFF000


def read_all(fd: int, size_hint: int = 0) -> bytes:
    """Everything from the current position to the end of the file.

    ``size_hint`` is the size stat saw. Like git's read_in_full, reading exactly that many
    bytes ends the read (one system call for an ordinary file); a shorter read is never
    taken for the end: reading goes on until the file says so, and a file that grew is read
    to its new end.
    """
    if size_hint < _MAX_CALL:
        data = os.read(fd, size_hint + 1)
        if len(data) == size_hint or not data:
            return data
        if len(data) > size_hint:  # grew since stat
            return data + _read_rest(fd, size_hint)
        parts = [data]  # a short read: not the end
        while True:
            more = os.read(fd, 1 << 20)
            if not more:
                return b"".join(parts)
            parts.append(more)
    return _read_rest(fd, size_hint, into_one_buffer=True)


def _read_rest(fd: int, size_hint: int, into_one_buffer: bool = False) -> bytes:
    """The rest of the file; for a large one into one buffer (no list of parts to join)."""
    if not into_one_buffer:
        parts: list[bytes] = []
        while True:
            more = os.read(fd, 1 << 20)
            if not more:
                return b"".join(parts)
            parts.append(more)
    buf = bytearray(size_hint + 1)
    got = 0
    while True:
        if got == len(buf):  # larger than announced: grow
            buf.extend(bytes(max(len(buf) // 4, 1 << 20)))
        with memoryview(buf) as view:
            n = os.readv(fd, [view[got : got + _MAX_CALL]])
        if n == 0:
            break
        got += n
    del buf[got:]
    return bytes(buf)


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset``; fewer only where the file ends there."""
    first = os.pread(fd, min(n, _MAX_CALL), offset)
    if len(first) == n or not first:
        return first
    parts = [first]
    got = len(first)
    while got < n:
        more = os.pread(fd, min(n - got, _MAX_CALL), offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` at the current position."""
    mv = memoryview(data)
    while mv:
        mv = mv[os.write(fd, mv[:_MAX_CALL]) :]


class BackgroundWriter:
    """Writes to a binary file from a thread of its own, so that producing the next bytes
    (cutting, hashing, compressing) overlaps the kernel copying the last ones into the page
    cache, which costs here about as much as hashing them (1 GiB: 2.3 s of ``write``).

    ``write`` hands over immutable ``bytes`` (not copied; a caller must not reuse a buffer) and
    blocks while more than ``max_pending`` bytes wait; ``close`` waits for the rest and raises
    the first error the thread met (a later ``write`` raises it too). The file is not closed.
    """

    def __init__(self, out: Any, max_pending: int = 32 << 20) -> None:
        import threading
        from collections import deque

        self._out = out
        self._queue: deque[bytes | None] = deque()
        self._pending = 0
        self._max = max_pending
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="muse-writer", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        with self._cond:
            while self._pending > self._max and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._queue.append(data)
            self._pending += len(data)
            self._cond.notify_all()
        return len(data)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                data = self._queue.popleft()
            if data is None:
                return
            try:
                self._out.write(data)
            except BaseException as e:  # noqa: BLE001 - handed to the producer by close/write
                with self._cond:
                    self._error = e
                    self._queue.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending -= len(data)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._error is None:
                self._queue.append(None)
                self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error
