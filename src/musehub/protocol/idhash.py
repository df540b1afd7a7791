"""A second core for a push: the pack's object ids re-hashed in a helper process.

Receiving a pack at rest (a presigned upload to local storage) is one pass that decodes every
block, re-hashes every object and checks each tree and commit. The hashing is C (SHA-256 at
about 1.8 GB/s) but the checks are Python, so threads cannot share the pass (the GIL: measured,
no gain); a process can. With a helper the request's pass checks everything but the ids while
the helper reads the same file and proves the ids (``muse.core.pack.write.verify_ids``); the
pack is accepted only when both passed. The pallets/flask history (26,006 objects, 178 MB
inflated), in-process: 0.38-0.47 s in one pass, 0.25-0.34 s so; the hub's receive of the
flask push 0.43 s -> 0.33 s (median of 24).

A helper is ``python -m musehub.protocol.idhash``, started at the first push that needs one
and kept; it reads requests on stdin and answers on stdout, and ends when its stdin does (the
worker that started it is gone: nothing outlives the hub). Not multiprocessing: its workers
are not told when the process that made them dies, and a forkserver's children import that
process's ``__main__``. A push that finds every helper busy hashes in its own pass as before; a
helper that fails or dies is dropped and the request hashes the pack itself
(receive_pack_file).

Wire (one request at a time): ``<max object bytes, 0 = none> <path length>\\n<path bytes>``;
answer ``ok\\n`` or ``bad <message on one line>\\n``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import IO

from muse.core.pack.codec import PackLimits

log = logging.getLogger("musehub.protocol")

#: Smaller packs are hashed in the request's own pass: a helper's round trip costs more.
MIN_BYTES = 1 << 20


class _Helper:
    """One helper process: a request in flight at most."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "musehub.protocol.idhash"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )

    def send(self, path: str, max_object_bytes: int | None) -> None:
        raw = os.fsencode(path)
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(b"%d %d\n" % (max_object_bytes or 0, len(raw)) + raw)
        stdin.flush()

    def receive(self) -> str | None:
        stdout = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if line == b"ok\n":
            return None
        if line.startswith(b"bad "):
            return line[4:].decode("utf-8", "replace").rstrip("\n")
        raise OSError(f"the id hashing helper ended ({self.proc.poll()})")

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


class Pending:
    """A pack handed to a helper: :meth:`result` is its verdict (None: every id hashed to
    itself, else what is wrong); raises OSError when the helper failed. :meth:`cancel` when
    the verdict is no longer wanted."""

    def __init__(self, owner: IdHasher, helper: _Helper) -> None:
        self._owner = owner
        self._helper: _Helper | None = helper

    def result(self) -> str | None:
        helper, self._helper = self._helper, None
        if helper is None:
            raise OSError("the verdict was already taken")
        try:
            verdict = helper.receive()
        except BaseException:
            self._owner._lost(helper)
            raise
        self._owner._idle(helper)
        return verdict

    def cancel(self) -> None:
        """Stop the helper's work (it is killed; the next push starts another)."""
        helper, self._helper = self._helper, None
        if helper is not None:
            self._owner._lost(helper)


class IdHasher:
    """Hands packs at rest to up to ``processes`` helper processes (see the module)."""

    def __init__(self, processes: int) -> None:
        self.processes = max(0, processes)
        self._lock = threading.Lock()
        self._free: list[_Helper] = []
        self._count = 0

    def submit(self, path: str, limits: PackLimits | None) -> Pending | None:
        """The pack at ``path`` handed to a helper, or None: hash it in the caller's pass."""
        if self.processes == 0:
            return None
        try:
            if os.path.getsize(path) < MIN_BYTES:
                return None
        except OSError:
            return None
        with self._lock:
            helper = self._free.pop() if self._free else None
            if helper is None:
                if self._count >= self.processes:
                    return None  # all busy
                self._count += 1
        try:
            if helper is None:
                helper = _Helper()
            helper.send(path, limits.max_object_bytes if limits is not None else None)
        except OSError as e:
            log.warning("id hashing helper unavailable (%s): the request hashes the pack", e)
            if helper is not None:
                self._lost(helper)
            else:
                with self._lock:
                    self._count -= 1
            return None
        return Pending(self, helper)

    def _idle(self, helper: _Helper) -> None:
        with self._lock:
            self._free.append(helper)

    def _lost(self, helper: _Helper) -> None:
        helper.kill()
        with self._lock:
            self._count -= 1

    def close(self) -> None:
        """End the idle helpers (a busy one ends with its request)."""
        with self._lock:
            free, self._free = self._free, []
            self._count -= len(free)
        for helper in free:
            helper.kill()


_hashers: dict[int, IdHasher] = {}
_hashers_lock = threading.Lock()


def hasher(processes: int) -> IdHasher:
    """This worker process's IdHasher for that many helpers (one per setting)."""
    with _hashers_lock:
        h = _hashers.get(processes)
        if h is None:
            h = _hashers[processes] = IdHasher(processes)
        return h


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The helper's loop: one verdict per request until stdin ends."""
    from muse.core.pack.write import verify_ids

    while True:
        head = stdin.readline()
        if not head:
            return 0
        try:
            max_object, length = (int(x) for x in head.split())
            path = os.fsdecode(stdin.read(length))
        except ValueError:
            stdout.write(b"bad malformed request\n")
            stdout.flush()
            return 2
        limits = PackLimits(max_object_bytes=max_object or None)
        problem = verify_ids(path, limits)
        if problem is None:
            stdout.write(b"ok\n")
        else:
            stdout.write(b"bad " + " ".join(problem.split()).encode("utf-8", "replace") + b"\n")
        stdout.flush()


if __name__ == "__main__":
    raise SystemExit(_serve(sys.stdin.buffer, sys.stdout.buffer))
