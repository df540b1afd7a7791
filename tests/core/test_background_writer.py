"""fileio.BackgroundWriter: every byte in order, bounded memory, the thread's error raised."""

from __future__ import annotations

import io
import os
import threading

import pytest

from muse.core.fileio import BackgroundWriter


def test_everything_arrives_in_order():
    out = io.BytesIO()
    w = BackgroundWriter(out, max_pending=1000)
    parts = [os.urandom(n) for n in (1, 999, 5000, 0, 77) * 20]
    for p in parts:
        assert w.write(p) == len(p)
    w.close()
    assert out.getvalue() == b"".join(parts)


class _Slow(io.RawIOBase):
    """A file whose writes wait for the test: shows that write() blocks past max_pending."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.data = bytearray()

    def write(self, b):  # type: ignore[override]
        self.gate.wait(10)
        self.data += b
        return len(b)


def test_write_blocks_while_too_much_is_pending():
    out = _Slow()
    w = BackgroundWriter(out, max_pending=200)
    w.write(b"a" * 150)  # taken by the thread, which waits on the gate
    w.write(b"b" * 150)  # queued: now more than 200 bytes pending
    third = threading.Thread(target=w.write, args=(b"c" * 10,))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # blocked: memory stays bounded
    out.gate.set()
    third.join(10)
    w.close()
    assert bytes(out.data) == b"a" * 150 + b"b" * 150 + b"c" * 10


class _Full(io.RawIOBase):
    def __init__(self, room: int) -> None:
        self.room = room

    def write(self, b):  # type: ignore[override]
        if len(b) > self.room:
            raise OSError(28, "No space left on device")
        self.room -= len(b)
        return len(b)


def test_the_threads_error_reaches_the_producer():
    w = BackgroundWriter(_Full(room=10), max_pending=5)
    with pytest.raises(OSError, match="No space"):
        for _ in range(1000):  # a later write raises it, or close does
            w.write(b"x" * 4)
        w.close()
    with pytest.raises(OSError, match="No space"):
        w.close()
