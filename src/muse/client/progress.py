"""Progress on standard error, only when it is a terminal and the user did not ask for quiet.

One line rewritten in place at most five times a second: phase, done/total, percent, rate
and time left (when the total is known), so a fast transfer is not slowed by its own
reporting, and logs or pipes never see control codes. Core code reports through the same
three calls (start, add_objects, add_bytes), so any object with them can stand in.
"""

from __future__ import annotations

import os
import sys
import time


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.enabled = not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.quiet = quiet
        self.phase = ""
        self.objects = 0
        self.total_objects = 0
        self.bytes = 0
        self.total_bytes = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def start(self, phase: str, total_objects: int = 0, total_bytes: int = 0) -> None:
        self.finish_line()
        self.phase = phase
        self.objects = 0
        self.total_objects = total_objects
        self.bytes = 0
        self.total_bytes = total_bytes
        self._start = time.monotonic()
        self.update(force=True)

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        self.update()

    def add_objects(self, n: int = 1) -> None:
        self.objects += n
        self.update()

    def update(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        sys.stderr.write("\r\x1b[K" + self.line(now))
        sys.stderr.flush()
        self._shown = True

    def line(self, now: float | None = None) -> str:
        """The progress line: phase, done/total, percent, rate, time left."""
        now = time.monotonic() if now is None else now
        parts = [f"{self.phase}:"]
        if self.total_objects and (self.objects or not self.total_bytes):
            parts.append(f"{self.objects}/{self.total_objects} objects")
        elif self.total_objects:  # counted in bytes: the objects are only what is coming
            parts.append(f"{self.total_objects} objects")
        elif self.objects:
            parts.append(f"{self.objects} objects")
        elapsed = max(now - self._start, 1e-6)
        done, total = self.bytes, self.total_bytes
        if total:
            parts.append(f"{_human(done)} / {_human(total)}")
        elif done:
            parts.append(_human(done))
        fraction = None
        if total:
            fraction = min(done / total, 1.0)
        elif self.total_objects:
            fraction = min(self.objects / self.total_objects, 1.0)
        if fraction is not None:
            parts.append(f"{fraction * 100:3.0f}%")
        if done:
            parts.append(f"{_human(done / elapsed)}/s")
        if fraction is not None and 0 < fraction < 1 and elapsed > 0.5:
            left = int(elapsed * (1 - fraction) / fraction)
            parts.append(f"{left // 60}:{left % 60:02d} left")
        return "  ".join(parts)

    def finish_line(self) -> None:
        if self._shown:
            self.update(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._shown = False

    def note(self, text: str) -> None:
        """A line for the user (not with --quiet); stderr keeps stdout clean for --json."""
        if self.quiet:
            return
        self.finish_line()
        sys.stderr.write(text + "\n")
