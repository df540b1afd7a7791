"""Progress on standard error, only when it is a terminal and the user did not ask for quiet.

One line rewritten in place (phase, objects, bytes, rate) at most ten times a second, so a
fast transfer is not slowed by its own reporting and logs or pipes never see control codes.
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
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def start(self, phase: str, total_objects: int = 0) -> None:
        self.finish_line()
        self.phase = phase
        self.objects = 0
        self.total_objects = total_objects
        self.bytes = 0
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
        if not force and now - self._last < 0.1:
            return
        self._last = now
        parts = [f"{self.phase}:"]
        if self.total_objects:
            parts.append(
                f"{self.objects or self.total_objects}/{self.total_objects} objects"
                if self.objects
                else f"{self.total_objects} objects"
            )
        elif self.objects:
            parts.append(f"{self.objects} objects")
        if self.bytes:
            rate = self.bytes / max(now - self._start, 1e-6)
            parts.append(f"{_human(self.bytes)}, {_human(rate)}/s")
        sys.stderr.write("\r\x1b[K" + "  ".join(parts))
        sys.stderr.flush()
        self._shown = True

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
