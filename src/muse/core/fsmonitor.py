"""A file-system monitor (git's ``core.fsmonitor``): which directories changed since a token.

A scan of a 25,000-file tree is one ``lstat`` per file, in Python about 2 µs each before any
other work; git does the same in C in a third of the time. With ``core.fsmonitor = true`` a
daemon per working tree keeps inotify watches on every directory (Linux; elsewhere the
option does nothing) and answers one question over a Unix socket: *which directories have
had an event since token T?* A scan then lists and stats only those directories (and their
parents, whose tree ids change with them) and carries every other directory's cached tree id
and index entries over unread (:mod:`muse.core.worktree`).

Correctness rests on three rules:

- The kernel queues an event when the change happens, so the daemon drains its queue before
  it answers: a change made before the question is always in the answer.
- A token names the daemon that issued it (a random epoch) and a sequence number. A token of
  another epoch (daemon restarted), a queue overflow, a watch that could not be added, or a
  ``.museignore`` changed anywhere answers "full": the caller scans everything.
- The caller asks for the new token *before* it scans, and keeps what it learned only with
  the index it saved (``fsmonitor`` state file, checked against the index's checksum), so a
  change made during the scan is reported next time.

Not seen (as with git's monitor): a write to a file through a hard link outside the tree.
The daemon is ``python -m muse.core.fsmonitor ROOT``; it serves only its own user (peer
credentials), listens on an abstract socket named after the tree, and exits after an hour
without questions or when the repository goes away.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import sys
import time

#: What a reply to "everything may have changed" carries instead of directories.
FULL = "full"
IDLE_EXIT_S = 3600
_IGNORE_FILE = ".museignore"
_MUSE_DIR = ".muse"


def socket_name(root: str) -> bytes:
    """The abstract socket of a tree's daemon (no file, no path-length limit)."""
    real = os.path.realpath(root)
    return b"\0muse-fsmonitor-" + hashlib.sha256(os.fsencode(real)).hexdigest()[:32].encode()


# ------------------------------------------------------------------------------- client
def query(root: str, token: str | None, timeout: float = 1.0) -> tuple[str, set[str] | None]:
    """(new token, directories changed since ``token``, or None for "scan everything").

    Raises OSError when no daemon answers.
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_name(root))
        s.sendall(b"Q " + (token or "-").encode("ascii", "replace") + b"\n")
        parts = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            parts.append(b)
    finally:
        s.close()
    reply = b"".join(parts).split(b"\0")
    if len(reply) < 2 or not reply[0]:
        raise OSError("the file-system monitor gave no answer")
    new = reply[0].decode("ascii", "replace")
    if reply[1] != b"D":
        return new, None
    return new, {os.fsdecode(d[1:]) for d in reply[2:]}


def start_daemon(root: str, wait: float = 2.0) -> bool:
    """Start the tree's daemon in its own session; True once it answers (within ``wait``)."""
    import subprocess

    try:
        subprocess.Popen(
            [sys.executable, "-m", "muse.core.fsmonitor", os.path.realpath(root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            query(root, None, timeout=0.5)
            return True
        except OSError:
            time.sleep(0.02)
    return False


def changed_dirs(root: str, token: str | None) -> tuple[str | None, set[str] | None]:
    """(token to keep, changed directories or None) from the running daemon, started if
    need be; (None, None) when no monitor can answer (the caller scans everything)."""
    try:
        return query(root, token)
    except OSError:
        pass
    if not sys.platform.startswith("linux") or not start_daemon(root):
        return None, None
    try:
        return query(root, token)
    except OSError:
        return None, None


def stop(root: str) -> bool:
    """Ask the tree's daemon to exit; False when none was running."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(socket_name(root))
        s.sendall(b"X\n")
        s.recv(16)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- what a scan remembers
STATE_FILE = "fsmonitor"
_STATE_MAGIC = b"MUSEFSM1"


def load_state(muse_dir: str, index_checksum: bytes) -> tuple[str | None, dict[str, bytes]]:
    """(token, directory -> tree id) saved with the index whose checksum is given; nothing
    when the index changed since (another command rewrote it) or the file is damaged."""
    try:
        with open(os.path.join(muse_dir, STATE_FILE), "rb") as f:
            raw = f.read()
    except OSError:
        return None, {}
    parts = raw.split(b"\0")
    if len(parts) < 3 or parts[0] != _STATE_MAGIC or parts[2] != index_checksum.hex().encode():
        return None, {}
    trees: dict[str, bytes] = {}
    rest = parts[3:]
    if len(rest) % 2:
        return None, {}
    for i in range(0, len(rest), 2):
        try:
            trees[os.fsdecode(rest[i + 1])] = bytes.fromhex(rest[i].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None, {}
    return parts[1].decode("ascii", "replace"), trees


def save_state(muse_dir: str, token: str, index_checksum: bytes, trees: dict[str, bytes]) -> None:
    """Keep the token and the tree ids with the index they agree with (atomically; a cache:
    a failure only costs the next scan its shortcut)."""
    from muse.core.lockfile import LockFile, LockHeld

    body = [_STATE_MAGIC, token.encode("ascii"), index_checksum.hex().encode()]
    for d, t in trees.items():
        body += [t.hex().encode(), os.fsencode(d)]
    try:
        with LockFile(os.path.join(muse_dir, STATE_FILE), what="the fsmonitor state") as f:
            f.write(b"\0".join(body))
    except (OSError, LockHeld):
        pass


# ------------------------------------------------------------------------------- daemon
class _Daemon:
    """inotify watches on every directory of one tree, and the directories' last events."""

    def __init__(self, root: str) -> None:
        import inotify_simple as ino

        self.ino = ino
        f = ino.flags
        self.mask = (
            f.MODIFY
            | f.ATTRIB
            | f.CLOSE_WRITE
            | f.CREATE
            | f.DELETE
            | f.MOVED_FROM
            | f.MOVED_TO
            | f.DELETE_SELF
            | f.MOVE_SELF
            | f.DONT_FOLLOW
            | f.ONLYDIR
            | f.EXCL_UNLINK
        )
        self.root = root
        self.epoch = os.urandom(8).hex()
        self.seq = 0
        self.changed: dict[str, int] = {}  # directory (relative, "" = root) -> last seq
        self.wd_path: dict[int, str] = {}
        self.path_wd: dict[str, int] = {}
        self.broken = False  # a watch could not be added: every answer is "full"
        self.inotify = ino.INotify(nonblocking=True)
        self._watch_tree("")

    # watches ----------------------------------------------------------------------
    def _watch_tree(self, rel: str) -> None:
        """Watch ``rel`` and every directory below it (watch first, then list: a directory
        made in between raises an event for the new one)."""
        stack = [rel]
        while stack:
            d = stack.pop()
            full = os.path.join(self.root, d) if d else self.root
            try:
                wd = self.inotify.add_watch(full, self.mask)
            except OSError:
                if os.path.isdir(full) and not os.path.islink(full):
                    self.broken = True  # e.g. the kernel's max_user_watches
                continue
            self.wd_path[wd] = d
            self.path_wd[d] = wd
            try:
                with os.scandir(full) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False) and not (not d and e.name == _MUSE_DIR):
                            stack.append(f"{d}/{e.name}" if d else e.name)
            except OSError:
                continue

    def _unwatch_tree(self, rel: str) -> None:
        prefix = rel + "/"
        for d in [p for p in self.path_wd if p == rel or p.startswith(prefix)]:
            wd = self.path_wd.pop(d)
            self.wd_path.pop(wd, None)
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass

    # events -------------------------------------------------------------------------
    def drain(self) -> None:
        f = self.ino.flags
        while True:
            try:
                events = self.inotify.read(timeout=0)
            except BlockingIOError:
                return
            if not events:
                return
            self.seq += 1
            for ev in events:
                if ev.mask & f.Q_OVERFLOW:
                    self._restart()
                    return
                d = self.wd_path.get(ev.wd)
                if d is None:
                    continue
                name = ev.name
                if not d and name == _MUSE_DIR:
                    continue
                if ev.mask & (f.DELETE_SELF | f.MOVE_SELF):
                    self.changed[d] = self.seq
                    continue
                self.changed[d] = self.seq
                if name == _IGNORE_FILE:
                    self.changed["\x01"] = self.seq  # ignore rules changed: rescan it all
                if name and ev.mask & f.ISDIR:
                    child = f"{d}/{name}" if d else name
                    self.changed[child] = self.seq
                    if ev.mask & (f.DELETE | f.MOVED_FROM):
                        self._unwatch_tree(child)
                    if ev.mask & (f.CREATE | f.MOVED_TO):
                        self._unwatch_tree(child)
                        self._watch_tree(child)
                        self._mark_tree(child)

    def _mark_tree(self, rel: str) -> None:
        prefix = rel + "/"
        for d in self.path_wd:
            if d == rel or d.startswith(prefix):
                self.changed[d] = self.seq

    def _restart(self) -> None:
        """After an overflow: forget everything, watch afresh, a new epoch."""
        for wd in list(self.wd_path):
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass
        self.wd_path.clear()
        self.path_wd.clear()
        self.changed.clear()
        self.broken = False
        self.epoch = os.urandom(8).hex()
        self.seq = 0
        self._watch_tree("")

    def answer(self, token: str) -> bytes:
        self.drain()
        new = f"{self.epoch}:{self.seq}".encode()
        epoch, _, seq = token.partition(":")
        if self.broken or epoch != self.epoch or not seq.isdigit():
            return new + b"\0F"
        since = int(seq)
        dirs = [d for d, s in self.changed.items() if s > since]
        if "\x01" in dirs:
            return new + b"\0F"
        return new + b"\0D" + b"".join(b"\0/" + os.fsencode(d) for d in dirs)

    # serving --------------------------------------------------------------------------
    def serve(self) -> None:
        import selectors

        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            srv.bind(socket_name(self.root))
        except OSError:
            return  # another daemon serves this tree
        srv.listen(16)
        sel = selectors.DefaultSelector()
        sel.register(srv, selectors.EVENT_READ)
        last = time.monotonic()
        uid = os.getuid()
        while True:
            if not sel.select(timeout=60):
                if time.monotonic() - last > IDLE_EXIT_S or not os.path.isdir(
                    os.path.join(self.root, _MUSE_DIR)
                ):
                    return
                self.drain()  # keep the kernel queue short between questions
                continue
            conn, _ = srv.accept()
            last = time.monotonic()
            with conn:
                conn.settimeout(2.0)
                try:
                    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
                    _pid, peer_uid, _gid = struct.unpack("3i", cred)
                    if peer_uid != uid:
                        continue
                    line = conn.recv(4096).split(b"\n", 1)[0]
                    if line == b"X":
                        conn.sendall(b"bye")
                        return
                    if line.startswith(b"Q "):
                        conn.sendall(self.answer(line[2:].decode("ascii", "replace")))
                except OSError:
                    continue


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.path.isdir(os.path.join(argv[0], _MUSE_DIR)):
        sys.stderr.write("usage: python -m muse.core.fsmonitor WORKTREE\n")
        return 2
    _Daemon(argv[0]).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
