"""Packs into a directory: received from a stream or written from objects, verified in one pass.

A pack in ``.muse/packs`` (or the hub's cache) is byte for byte the pack that travelled, so
receiving one is a single pass: the bytes are written to a temporary file while they are
decoded and every object re-hashed, and the file is renamed into place with its index only
when everything verified. Pack, index and directory are synced before this returns, so a ref
written afterwards never outlives its objects in a power cut (docs/format.md §2.5).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO, Protocol

from muse.core.fileio import BackgroundWriter
from muse.core.lockfile import fsync_dir, fsync_file, process_alive
from muse.core.objects import CHUNKS, COMMIT, MODE_TREE, TREE, commit_refs, object_id
from muse.core.pack import index
from muse.core.pack.codec import BlockReader, PackError, PackLimits, PackWriter, iter_records
from muse.core.pack.file import PackFile

#: Temporary files of a pack being received or written (removed on failure; fsck names them).
TMP_PREFIX = ".tmp-pack-"


class Verdict(Protocol):
    """What :func:`verify_ids` run elsewhere said, when asked (a Future is one)."""

    def result(self) -> str | None: ...

    def cancel(self) -> Any: ...


def _finish(dest_dir: str, tmp_pack: str, checksum: bytes, entries: list[index.Entry]) -> PackFile:
    """Write the index and rename both files into place (the index last: it makes it visible)."""
    name = os.path.join(dest_dir, f"pack-{checksum.hex()}")
    final_pack, final_idx = name + ".pack", name + ".idx"
    if os.path.exists(final_pack) and os.path.exists(final_idx):
        os.unlink(tmp_pack)
        return PackFile(final_pack)
    fd, tmp_idx = _mkstemp(dest_dir, ".idx")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(index.encode_index(checksum, entries))
            f.flush()
            os.fsync(f.fileno())
        fsync_file(tmp_pack)
        os.chmod(tmp_pack, 0o444)
        os.chmod(tmp_idx, 0o444)
        os.replace(tmp_pack, final_pack)
        os.replace(tmp_idx, final_idx)
        fsync_dir(dest_dir)  # both names durable before anyone may point a ref at them
    except BaseException:
        _unlink(tmp_idx)
        raise
    return PackFile(final_pack)


def _mkstemp(dest_dir: str, suffix: str, sweep: bool = True) -> tuple[int, str]:
    import tempfile  # only when writing: reading commands do not pay for importing it

    if sweep:
        sweep_leftovers(dest_dir)
    return tempfile.mkstemp(dir=dest_dir, prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=suffix)


def leftovers(dest_dir: str) -> list[str]:
    """Temporary pack files in ``dest_dir`` whose writer is gone (a killed fetch or clone)."""
    try:
        names = os.listdir(dest_dir)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        if not n.startswith(TMP_PREFIX):
            continue
        pid = n[len(TMP_PREFIX) :].partition("-")[0]
        if not pid.isdigit() or not process_alive(int(pid)):
            out.append(os.path.join(dest_dir, n))
    return sorted(out)


def sweep_leftovers(dest_dir: str) -> int:
    """Remove :func:`leftovers` (done before each new pack is written); returns how many."""
    gone = 0
    for path in leftovers(dest_dir):
        try:
            os.unlink(path)
            gone += 1
        except FileNotFoundError:
            pass
    return gone


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def receive_pack(
    stream: BinaryIO,
    dest_dir: str,
    limits: PackLimits | None = None,
    inspect: Callable[[int, bytes, memoryview], Any] | None = None,
    inspect_kinds: Iterable[int] = (TREE, COMMIT, CHUNKS),
    salvaged: list[PackFile] | None = None,
    sha256: bytes | None = None,
) -> PackFile:
    """Store a pack arriving on ``stream`` in ``dest_dir``, verifying it in the same pass.

    Every byte read is written to a temporary file while blocks are decoded and every object
    re-hashed; only when the trailer checksum matched are the pack and its index renamed to
    ``pack-<checksum hex>.pack/.idx``. On any failure (PackError, or the stream's own error)
    nothing is left behind.

    ``inspect(kind, oid, body)`` is called for every object of ``inspect_kinds`` right after
    its id was re-hashed (``body`` is a view valid only during the call), so a receiver can
    check structure and collect references in the same pass instead of re-reading the pack;
    what it raises aborts the receive. Nothing it saw may be trusted before this returns.

    With ``salvaged`` (a receiver that can resume), a receive that fails keeps what it
    received and verified: the complete blocks become a pack of their own (see
    :func:`salvage`), appended to the list, so the next attempt asks only for the rest.

    ``sha256``: what the whole pack (trailer included) must hash to (an upload bound to that
    digest); checked from the decoder's own running hash, a PackError("bad_pack") otherwise.
    """
    want = frozenset(inspect_kinds) if inspect is not None else frozenset()
    fd, tmp = _mkstemp(dest_dir, ".pack")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            checksum, entries = _read_entries(stream, limits, f.write, inspect, want, sha256)
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        if salvaged is not None:
            try:
                kept = salvage(tmp, dest_dir, limits)
            except Exception:  # salvaging is a bonus: the receive's own error is what counts
                kept = None
            if kept is not None:
                salvaged.append(kept)
        _unlink(tmp)
        raise


#: A cut-off transfer keeps its complete blocks when they hold at least this much.
SALVAGE_MIN = 1 << 20


def salvage(path: str, dest_dir: str, limits: PackLimits | None = None) -> PackFile | None:
    """Turn the complete, verified blocks at the start of a cut-off pack into a pack.

    ``path`` (a temporary file of an interrupted receive, ours or a killed process's) is read
    again from the start, every object re-hashed as on receipt; at the first incomplete or
    broken block it is truncated there and given a trailer, and renamed into ``dest_dir``
    with its index. None (and the file removed) when less than SALVAGE_MIN bytes were
    complete. What is kept is only objects whose ids were proven: a half block never is.
    """
    import hashlib

    from muse.core.pack.codec import END_TAG, HEADER_LEN, PackError

    entries: list[index.Entry] = []
    good = HEADER_LEN
    seen: set[bytes] = set()
    try:
        with open(path, "rb") as f:
            for block in BlockReader(f, limits, stream_large=True):
                recs: list[index.Entry] = []
                if block.record is not None:
                    kind, oid, length = block.record
                    if oid in seen:
                        break
                    seen.add(oid)
                    recs.append(index.entry(oid, kind, block.offset, 0, length, block.codec))
                else:
                    for kind, oid, body, rec in iter_records(block, limits, seen=seen):
                        recs.append(
                            index.entry(oid, kind, block.offset, rec, len(body), block.codec)
                        )
                entries.extend(recs)
                good = block.end
    except (PackError, OSError):
        pass  # the cut (or damage) is here: keep what came before
    if good - HEADER_LEN < SALVAGE_MIN or not entries:
        _unlink(path)
        return None
    with open(path, "r+b") as f:
        f.truncate(good)
        f.seek(good)
        f.write(bytes([END_TAG]) + len(entries).to_bytes(8, "big"))
        f.flush()
        f.seek(0)
        h = hashlib.sha256()
        while chunk := f.read(1 << 20):
            h.update(chunk)
        checksum = h.digest()
        f.write(checksum)
    return _finish(dest_dir, path, checksum, entries)


def salvage_leftovers(dest_dir: str, limits: PackLimits | None = None) -> list[PackFile]:
    """:func:`salvage` every temporary pack a killed receive left in ``dest_dir``."""
    kept = []
    for path in leftovers(dest_dir):
        if path.endswith(".pack"):
            # Ours now (named with our pid), so that no sweep takes it while it is salvaged.
            fd, own = _mkstemp(dest_dir, ".pack", sweep=False)
            os.close(fd)
            try:
                os.replace(path, own)
            except FileNotFoundError:  # another process took it first
                _unlink(own)
                continue
            pf = salvage(own, dest_dir, limits)
            if pf is not None:
                kept.append(pf)
        else:
            _unlink(path)
    return kept


def receive_pack_file(
    path: str,
    dest_dir: str,
    limits: PackLimits | None = None,
    inspect: Callable[[int, bytes, memoryview], Any] | None = None,
    inspect_kinds: Iterable[int] = (TREE, COMMIT, CHUNKS),
    hash_ids: Callable[[str], Verdict | None] | None = None,
) -> PackFile | None:
    """:func:`receive_pack` for a pack that is already a local file nobody writes in place.

    The file is hard-linked into ``dest_dir`` and the link verified exactly as a received
    stream (so what is verified is what is kept), without copying its bytes. None when it
    cannot be linked (another file system): then receive it as a stream.

    ``hash_ids(link)``: :func:`verify_ids` over the link, started on another core (None:
    not now). Object ids are then re-hashed there while this pass checks everything
    else; the pack is accepted only when both passed. (``inspect`` then sees objects whose
    ids are not proven yet; nothing it saw may be trusted before this returns, as always.)
    """
    want = frozenset(inspect_kinds) if inspect is not None else frozenset()
    fd, tmp = _mkstemp(dest_dir, ".pack")
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        return None
    hashing: Verdict | None = None
    try:
        hashing = hash_ids(tmp) if hash_ids is not None else None
        with open(tmp, "rb", buffering=0) as f:
            checksum, entries = _read_entries(f, limits, None, inspect, want, hashed=not hashing)
        if hashing is not None:
            waiting, hashing = hashing, None
            try:
                problem = waiting.result()
            except Exception:  # the helper is gone (killed, failed): hash here instead
                problem = verify_ids(tmp, limits)
            if problem is not None:
                raise PackError("bad_pack", problem)
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        if hashing is not None:  # refused before the verdict: it is not wanted
            hashing.cancel()
        _unlink(tmp)
        raise


def verify_ids(path: str, limits: PackLimits | None = None) -> str | None:
    """Re-hash every object of the pack at ``path`` against its id: None when all match,
    else what is wrong (a message). The other half of a :func:`receive_pack_file` whose
    ``hash_ids`` runs this in another process, so it returns its verdict rather than raising
    (it travels as a line of text); the structure is that pass's to check."""
    object_limit = PackLimits(max_object_bytes=limits.max_object_bytes) if limits else None
    try:
        with open(path, "rb", buffering=0) as f:
            # A large object's block is hashed piece by piece by the reader itself.
            for block in BlockReader(f, object_limit, stream_large=True):
                if block.record is None:
                    for _ in iter_records(block, object_limit):
                        pass
    except PackError as e:
        return str(e)
    except OSError as e:
        return f"cannot read the pack: {e.strerror}"
    return None


def _read_entries(
    stream: BinaryIO,
    limits: PackLimits | None,
    tee: Callable[[bytes | bytearray], Any] | None,
    inspect: Callable[[int, bytes, memoryview], Any] | None,
    want: frozenset[int],
    sha256: bytes | None = None,
    hashed: bool = True,
) -> tuple[bytes, list[index.Entry]]:
    """Decode and verify a whole pack (and, given ``sha256``, its digest as a file):
    (checksum, index entries). ``hashed=False``: every check but the objects' ids (which
    :func:`verify_ids` proves elsewhere)."""
    reader = BlockReader(stream, limits, tee=tee, stream_large=True)
    entries: list[index.Entry] = []
    append = entries.append
    for block in reader:
        off, codec = block.offset, block.codec
        if block.record is not None:  # a big file, verified piece by piece
            kind, oid, length = block.record
            append(index.entry(oid, kind, off, 0, length, codec))
            continue
        for kind, oid, body, rec in iter_records(block, limits, hashed, reader.seen):
            append(index.entry(oid, kind, off, rec, len(body), codec))
            if kind in want:
                inspect(kind, oid, body)  # type: ignore[misc]
    assert reader.checksum is not None
    if sha256 is not None and reader.file_sha256 != sha256:
        raise PackError("bad_pack", "the pack does not match the checksum it was presigned for")
    return reader.checksum, entries


def write_pack_file(
    dest_dir: str, objects: Iterable[tuple[int, bytes]], compress: bool = True
) -> PackFile:
    """Write objects as one pack (with its index) into ``dest_dir``.

    A list or tuple is first laid out by :func:`layout_for_pack` (trees grouped by path),
    which is what makes a locally built history's trees compress; any other iterable is
    streamed in the order given.
    """
    if isinstance(objects, list | tuple):
        items: Iterable[tuple[int, bytes, bytes | None]] = layout_for_pack(objects)
    else:
        items = ((k, b, None) for k, b in objects)
    entries: list[index.Entry] = []

    def on_block(offset: int, codec: int, recs: list[tuple[int, bytes, int, int]]) -> None:
        entries.extend(
            index.entry(oid, kind, offset, rec, length, codec) for kind, oid, rec, length in recs
        )

    fd, tmp = _mkstemp(dest_dir, ".pack")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            # A stream (a large file's chunks as they are cut) is written from a thread of its
            # own: commit of a 1 GiB file 3.93 -> 3.13 s (median of 3 each, alternating).
            # A laid-out list is small: written here.
            out: Any = f if isinstance(objects, list | tuple) else BackgroundWriter(f)
            try:
                w = PackWriter(out, compress=compress, on_block=on_block)
                for kind, body, oid in items:
                    w.add(kind, body, oid)
                checksum = w.finish()
            finally:
                if out is not f:
                    out.close()
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        _unlink(tmp)
        raise


def layout_for_pack(
    objects: Sequence[tuple[int, bytes]],
) -> list[tuple[int, bytes, bytes | None]]:
    """Order objects for a pack as a first push would send them: commits, then trees grouped
    by path, then blobs grouped by the directory they were first seen in.

    Paths are found by walking the commits given (newest, i.e. last, first) into the trees
    given, level by level with the paths of a level in sorted order, as
    ``wire.negotiate.objects_to_send`` does; within a path trees keep that newest-first order,
    and a tree's blobs follow its entries' order. Consecutive versions of a directory then sit
    side by side, where zstd turns them into a few bytes each (68 MB of trees at XL pack to
    1.85 MB grouped, 10.7 MB in commit order), versions of a file land near each other (the
    flask history imported: 12.2 MB in stream order, 7.3 MB so), and a sender walking
    history the same way reads each block once (pack.gather). Objects no walked tree names
    (the chunks of large files) keep their order, after. Returns (kind, body, oid or None).
    """
    commits: list[tuple[int, bytes, bytes | None]] = []
    others: list[tuple[int, bytes]] = []
    trees: dict[bytes, bytes] = {}
    for kind, body in objects:
        if kind == TREE:
            trees.setdefault(object_id(TREE, body), body)
        elif kind == COMMIT:
            commits.append((kind, body, None))
        else:
            others.append((kind, body))
    roots: list[bytes] = []
    for _, body, _ in reversed(commits):
        try:
            roots.append(commit_refs(body)[0])
        except ValueError:
            continue
    placed: dict[bytes, tuple[int, bytes, int]] = {}  # tree id -> (depth, path, rank)
    named: dict[bytes, tuple[int, bytes, int, int]] = {}  # blob id -> (depth, dir, rank, i)
    level: dict[bytes, list[bytes]] = {b"": [r for r in roots if r in trees]}
    depth = rank = 0
    while level:
        nxt: dict[bytes, list[bytes]] = {}
        for path in sorted(level):
            for tid in level[path]:
                if tid in placed:
                    continue
                placed[tid] = (depth, path, rank)
                rank += 1
                body = trees[tid]
                n = int.from_bytes(body[:4], "big") if len(body) >= 4 else 0
                modes = body[4 : 4 + n]
                names: list[bytes] | None = None
                for i, m in enumerate(modes):
                    oid = body[4 + n + 32 * i : 4 + n + 32 * i + 32]
                    if m != MODE_TREE:
                        named.setdefault(oid, (depth, path, rank, i))
                    elif oid in trees and oid not in placed:
                        if names is None:
                            names = body[4 + 33 * n :].split(b"\0")
                        if i < len(names):
                            nxt.setdefault(path + b"/" + names[i], []).append(oid)
        level = nxt
        depth += 1
    far_tree = (1 << 30, b"", 0)
    order = sorted(trees, key=lambda t: placed.get(t, far_tree))
    laid: list[tuple[int, bytes, bytes | None]] = commits
    laid.extend((TREE, trees[t], t) for t in order)
    keyed: list[tuple[tuple[int, bytes, int, int], int, int, bytes, bytes]] = []
    rest: list[tuple[int, bytes, bytes | None]] = []
    for pos, (kind, body) in enumerate(others):
        oid = object_id(kind, body)
        key = named.get(oid)
        if key is None:
            rest.append((kind, body, oid))
        else:
            keyed.append((key, pos, kind, oid, body))
    keyed.sort(key=lambda k: (k[0], k[1]))
    laid.extend((kind, body, oid) for _, _, kind, oid, body in keyed)
    laid.extend(rest)
    return laid
