"""Import a ``git fast-export`` stream: how a git history becomes a Muse history.

``git fast-export --all | muse fast-import`` (docs/client.md). Blobs, commits with their
parents (``from``/``merge``), authors, committers and times, file modes (regular,
executable, symlink), deletions, copies and renames, ``deleteall``, branch resets and tags
become Muse objects and refs through :class:`~muse.core.writer.HistoryWriter`, which writes
every object into one pack and moves the refs at the end. What Muse has no object for is
reported, not silently dropped: submodule entries (mode 160000) are skipped with a count,
and an annotated tag becomes a lightweight tag on its commit (its message is not kept).

The grammar is git's (``git help fast-import``): commands on their own lines, ``data <n>``
followed by exactly n bytes (or ``data <<DELIM`` ... ``DELIM``), paths optionally quoted
C-style. Commit messages must be UTF-8 (Muse commits are text); a commit with another
``encoding`` is refused with its mark.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from muse.core.objects import MODE_EXEC, MODE_FILE, MODE_LINK, Signature
from muse.core.record import Record
from muse.core.refnames import HEADS, TAGS, RefNameError, check_ref_name
from muse.core.repo import Repository
from muse.core.writer import HistoryWriter, Stored
from muse.errors import MuseError

__all__ = ["FastImportError", "ImportStats", "fast_import"]

_MODES = {b"100644": MODE_FILE, b"644": MODE_FILE, b"100755": MODE_EXEC, b"755": MODE_EXEC}
_MODES[b"120000"] = MODE_LINK
_SUBMODULE = b"160000"
_ESCAPES = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b"}
_ESCAPES.update({b"f": b"\f", b"r": b"\r", b"v": b"\v"})


class FastImportError(MuseError):
    """The stream is not a fast-export stream Muse can import; the message says where."""

    kind = "usage"


class ImportStats(Record):
    _fields = ("commits", "blobs", "refs", "skipped_submodules", "tags_lightened")

    def __init__(self) -> None:
        self.commits = 0
        self.blobs = 0
        self.refs: dict[str, bytes] = {}
        self.skipped_submodules = 0
        self.tags_lightened = 0


class _Reader:
    """Lines and counted data blocks of the stream, with the line number for messages."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.line_no = 0
        self._pushed: bytes | None = None

    def line(self) -> bytes | None:
        """The next line without its newline; None at the end of the stream."""
        if self._pushed is not None:
            line, self._pushed = self._pushed, None
            return line
        raw = self.stream.readline()
        if not raw:
            return None
        self.line_no += 1
        return raw[:-1] if raw.endswith(b"\n") else raw

    def push_back(self, line: bytes) -> None:
        self._pushed = line

    def data(self, header: bytes) -> bytes:
        """The body of a ``data`` command whose line was ``header``."""
        spec = header[5:]
        if spec.startswith(b"<<"):
            delim = spec[2:]
            parts: list[bytes] = []
            while True:
                line = self.line()
                if line is None:
                    raise self.error(f"data ends before its delimiter {delim.decode()!r}")
                if line == delim:
                    return b"".join(parts)
                parts.append(line + b"\n")
        try:
            n = int(spec)
        except ValueError:
            raise self.error(f"bad data length {spec!r}") from None
        body = self.stream.read(n)
        if len(body) != n:
            raise self.error(f"data of {n} bytes ends after {len(body)}")
        self.line_no += body.count(b"\n")
        nxt = self.stream.read(1)  # the optional LF after the data
        if nxt and nxt != b"\n":
            self.push_back(nxt + (self.stream.readline().rstrip(b"\n")))
        return body

    def error(self, message: str) -> FastImportError:
        return FastImportError(f"fast-import stream, line {self.line_no}: {message}")


def _path(raw: bytes, r: _Reader) -> tuple[str, bytes]:
    """A path (C-style quoted or bare) at the start of raw; (path, rest of the line)."""
    if raw.startswith(b'"'):
        out = bytearray()
        i = 1
        while i < len(raw):
            c = raw[i : i + 1]
            if c == b'"':
                return _decode_path(bytes(out), r), raw[i + 1 :].lstrip(b" ")
            if c == b"\\":
                e = raw[i + 1 : i + 2]
                if e in _ESCAPES:
                    out += _ESCAPES[e]
                    i += 2
                    continue
                octal = raw[i + 1 : i + 4]
                if len(octal) == 3 and all(48 <= ch <= 55 for ch in octal):
                    out.append(int(octal, 8))
                    i += 4
                    continue
                raise r.error(f"bad escape in path {raw!r}")
            out += c
            i += 1
        raise r.error(f"unterminated quoted path {raw!r}")
    head, _, rest = raw.partition(b" ")
    return _decode_path(head, r), rest


def _decode_path(b: bytes, r: _Reader) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise r.error(f"path {b!r} is not UTF-8 (Muse paths are text)") from None


def _signature(raw: bytes, r: _Reader) -> Signature:
    """``Name <email> <seconds> <+hhmm>`` (git's raw date format)."""
    text = raw.decode("utf-8", "replace")
    lt, gt = text.find("<"), text.rfind(">")
    if lt < 0 or gt < lt:
        raise r.error(f"bad identity {text!r}")
    name, email = text[:lt].strip(), text[lt + 1 : gt].strip()
    when = text[gt + 1 :].split()
    try:
        seconds = int(when[0])
        tz = when[1]
        minutes = int(tz[1:3]) * 60 + int(tz[3:5])
        if tz[0] == "-":
            minutes = -minutes
    except (IndexError, ValueError):
        raise r.error(f"bad date in {text!r} (export with --date-format=raw)") from None
    return Signature(name or email or "unknown", email, seconds, minutes)


def _message(data: bytes, r: _Reader, encoding: bytes | None) -> str:
    if encoding not in (None, b"UTF-8", b"utf-8", b"utf8"):
        raise r.error(f"commit message encoding {encoding!r} (only UTF-8 can be imported)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise r.error("commit message is not UTF-8") from None


def fast_import(repo: Repository, stream: BinaryIO, force: bool = False) -> ImportStats:
    """Read a whole fast-export stream into ``repo``; the refs move only if all of it read.

    A ref that exists and is not an ancestor of what the stream gives it is refused (as
    git fast-import does) unless ``force``."""
    r = _Reader(stream)
    w = HistoryWriter(repo)
    stats = ImportStats()
    marks: dict[bytes, bytes] = {}  # ":n" -> object id (blob or commit)
    tips: dict[str, bytes | None] = {}  # ref -> commit, as the stream goes
    tags: dict[str, bytes] = {}

    def commitish(ref: bytes) -> bytes | None:
        if ref.startswith(b":"):
            oid = marks.get(ref)
            if oid is None:
                raise r.error(f"unknown mark {ref.decode()}")
            return oid
        name = ref.decode("utf-8", "replace")
        if name in tips:
            return tips[name]
        if len(ref) == 40 and all(c in b"0123456789abcdef" for c in ref):
            raise r.error(f"{name}: git object ids cannot be imported (export with marks)")
        oid = repo.refs.read(name) if name.startswith("refs/") else None
        if oid is None:
            raise r.error(f"unknown commit {name!r}")
        return oid

    while True:
        line = r.line()
        if line is None:
            break
        if not line or line.startswith(b"#"):
            continue
        cmd, _, arg = line.partition(b" ")
        if cmd == b"blob":
            mark = None
            while True:
                sub = r.line()
                if sub is None:
                    raise r.error("blob without data")
                if sub.startswith(b"mark "):
                    mark = sub[5:]
                elif sub.startswith(b"original-oid "):
                    continue
                elif sub.startswith(b"data "):
                    oid = w.blob(r.data(sub))
                    stats.blobs += 1
                    if mark is not None:
                        marks[mark] = oid
                    break
                else:
                    raise r.error(f"unexpected {sub[:40]!r} in a blob")
        elif cmd == b"commit":
            ref = _ref(arg, r)
            _commit(r, w, ref, marks, tips, commitish, stats)
        elif cmd == b"reset":
            ref = _ref(arg, r)
            sub = r.line()
            if sub is not None and sub.startswith(b"from "):
                tips[ref] = commitish(sub[5:])
            else:
                tips[ref] = None
                if sub is not None:
                    r.push_back(sub)
        elif cmd == b"tag":
            name = arg.decode("utf-8", "replace")
            target = None
            while True:
                sub = r.line()
                if sub is None:
                    raise r.error(f"tag {name} without data")
                if sub.startswith(b"from "):
                    target = commitish(sub[5:])
                elif sub.startswith((b"mark ", b"original-oid ", b"tagger ")):
                    continue
                elif sub.startswith(b"data "):
                    r.data(sub)
                    break
                else:
                    raise r.error(f"unexpected {sub[:40]!r} in tag {name}")
            if target is None:
                raise r.error(f"tag {name} names no commit")
            tags[TAGS + name] = target
            stats.tags_lightened += 1
        elif cmd in (b"progress", b"checkpoint", b"done", b"feature", b"option", b"alias"):
            if cmd == b"alias":
                raise r.error("alias is not supported")
            if cmd == b"done":
                break
        else:
            raise r.error(f"unknown command {cmd.decode('utf-8', 'replace')!r}")

    # Every object in one pack, then the refs (all checked before any moves).
    new_refs = {k: v for k, v in tips.items() if v is not None and k.startswith("refs/")}
    new_refs.update(tags)
    if not force:
        for ref, oid in new_refs.items():
            old = repo.refs.read(ref)
            if old is not None and old != oid and not _descends(w, repo, old, oid):
                raise FastImportError(
                    f"{ref} would lose commits (it is not an ancestor of the imported "
                    f"{oid.hex()[:12]}): use --force to replace it"
                )
    w.close(update_refs=False)
    for ref, oid in new_refs.items():
        repo.refs.update(ref, oid)
        stats.refs[ref] = oid
    return stats


def _descends(w: HistoryWriter, repo: Repository, old: bytes, new: bytes) -> bool:
    """Whether old is an ancestor of new, reading commits written by this import too."""
    from muse.core.graph import is_ancestor

    class _Reader:
        def get(self, oid: bytes) -> tuple[int, bytes] | None:
            return w.written(oid) or repo.store.get(oid)

        def has(self, oid: bytes) -> bool:
            return self.get(oid) is not None

    return is_ancestor(_Reader(), old, new)


def _ref(arg: bytes, r: _Reader) -> str:
    name = arg.decode("utf-8", "replace").strip()
    if name == "HEAD":  # a detached HEAD in the exporting repository: its commits, no ref
        return name
    try:
        return check_ref_name(name)
    except RefNameError as e:
        raise r.error(str(e)) from None


def _commit(r, w, ref, marks, tips, commitish, stats) -> None:  # type: ignore[no-untyped-def]
    mark = None
    author = committer = None
    encoding = None
    message = ""
    parents: list[bytes] = []
    base_set = False
    changes: dict[str, Any] = {}
    deleteall = False
    while True:
        sub = r.line()
        if sub is None:
            break
        if sub.startswith(b"mark "):
            mark = sub[5:]
        elif sub.startswith(b"original-oid "):
            continue
        elif sub.startswith(b"author "):
            author = _signature(sub[7:], r)
        elif sub.startswith(b"committer "):
            committer = _signature(sub[10:], r)
        elif sub.startswith(b"encoding "):
            encoding = sub[9:]
        elif sub.startswith(b"data "):
            message = _message(r.data(sub), r, encoding)
        elif sub.startswith(b"from "):
            parents.insert(0, commitish(sub[5:]))
            base_set = True
        elif sub.startswith(b"merge "):
            parents.append(commitish(sub[6:]))
        elif sub.startswith(b"M "):
            mode_s, _, rest = sub[2:].partition(b" ")
            dataref, _, rest = rest.partition(b" ")
            path, _ = _path(rest, r)
            if mode_s == _SUBMODULE:
                stats.skipped_submodules += 1
                continue
            mode = _MODES.get(mode_s)
            if mode is None:
                raise r.error(f"file mode {mode_s.decode()} is not supported")
            if dataref == b"inline":
                nxt = r.line()
                if nxt is None or not nxt.startswith(b"data "):
                    raise r.error("inline modify without data")
                changes[path] = (mode, r.data(nxt))
            else:
                oid = marks.get(dataref)
                if oid is None:
                    raise r.error(f"unknown blob {dataref.decode('utf-8', 'replace')}")
                changes[path] = Stored(mode, oid)
        elif sub.startswith(b"D "):
            path, _ = _path(sub[2:], r)
            changes[path] = None
        elif sub.startswith((b"R ", b"C ")):
            src, rest = _path(sub[2:], r)
            dst, _ = _path(rest, r)
            changes[dst] = ("copy", src)  # resolved against the tree when applied
            if sub.startswith(b"R "):
                changes[src] = None
        elif sub == b"deleteall":
            deleteall = True
            changes.clear()
        elif sub.startswith(b"N "):
            raise r.error("notes are not supported")
        elif sub == b"":
            break
        else:
            r.push_back(sub)
            break
    if committer is None:
        raise r.error(f"commit to {ref} without a committer")
    branch = ref[len(HEADS) :] if ref.startswith(HEADS) else "\0" + ref  # a private lane
    if not base_set:
        prev = tips.get(ref)
        if prev is not None:
            parents.insert(0, prev)
    w.start_from(branch, parents[0] if parents else None)
    if deleteall:
        w.start_from(branch, None)
    resolved: dict[str, Any] = {}
    for path, change in changes.items():
        if isinstance(change, tuple) and change and change[0] == "copy":
            entry = w.entry(branch, change[1])
            if entry is None:
                raise r.error(f"copy or rename of {change[1]!r}, which does not exist")
            resolved[path] = Stored(*entry)
        else:
            resolved[path] = change
    oid = w.commit(resolved, message, author or committer, committer, parents, branch)
    stats.commits += 1
    if mark is not None:
        marks[mark] = oid
    tips[ref] = oid
