"""The object store of a repository: loose objects plus packs, behind one read interface.

A loose object lives at ``.muse/objects/<first 2 hex>/<remaining 62 hex>`` and holds the bytes
that are hashed (the typed header followed by the body) as one zlib stream, as git keeps its
loose objects: the SHA-256 of the inflated file is its name. A file that does not start with
zlib's 0x78 holds those bytes as they are (how loose objects were written before; still read).
Loose files are written to a
temporary file in the same directory and renamed into place, so a reader never sees half an
object, and durably (fsync of the file, then of its directory: :mod:`muse.core.lockfile`), so
a ref written afterwards never names an object a power cut lost. Bulk data (fetch, clone,
large commits) goes into packs under ``.muse/packs/``, handled by :mod:`muse.core.pack`; those
modules are imported only when a pack is actually used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from muse.core.lockfile import TMP_PREFIX, LockFile
from muse.core.objects import KIND_CODES, ObjectFormatError, header, object_id

if TYPE_CHECKING:  # pragma: no cover
    from muse.core.pack.file import PackFile
    from muse.core.pack.packset import PackSet

_TMP_PREFIX = TMP_PREFIX  # temporary files of writers in progress (never object names)


class ObjectStore:
    """Read and write objects of one repository (an ObjectReader, see muse.core.reader)."""

    def __init__(self, objects_dir: str, packs_dir: str) -> None:
        self.objects_dir = objects_dir
        self.packs_dir = packs_dir
        self._packs: PackSet | None = None
        self._no_packs = False  # listed once and found none (refresh() looks again)
        self._made_dirs: set[str] = set()
        #: bodies a receive kept for the checkout that follows it (muse.core.warm)
        self._warm: dict[bytes, tuple[int, bytes]] = {}

    # ------------------------------------------------------------------------------ packs
    @property
    def packs(self) -> PackSet | None:
        """The PackSet over ``.muse/packs`` (None while there is no pack at all)."""
        if self._packs is None:
            if self._no_packs:
                return None
            try:
                names = os.listdir(self.packs_dir)
            except FileNotFoundError:
                names = []
            if not any(n.endswith(".pack") for n in names):
                self._no_packs = True
                return None
            from muse.core.pack.packset import PackSet

            self._packs = PackSet(self.packs_dir)
        return self._packs

    def refresh(self) -> None:
        """Pick up packs written by someone else (e.g. another process or a fetch)."""
        self._no_packs = False
        if self._packs is not None:
            self._packs.refresh()

    # ------------------------------------------------------------------------------- read
    def loose_path(self, oid: bytes) -> str:
        h = oid.hex()
        return os.path.join(self.objects_dir, h[:2], h[2:])

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        """(kind, body) of an object, or None if this store does not have it.

        Once packs are open they are asked first (bulk reads); until then a loose object is
        tried first, so a command that only needs a few loose objects (status reading HEAD)
        never imports the pack machinery.
        """
        if self._warm:
            found = self._warm.get(oid)
            if found is not None:
                return found
        if self._packs is None:
            found = self._get_loose(oid)
            if found is not None:
                return found
            packs = self.packs
            return None if packs is None else packs.get(oid)
        found = self._packs.get(oid)
        return found if found is not None else self._get_loose(oid)

    def warm(self, kept: dict[bytes, tuple[int, bytes]]) -> None:
        """Answer reads of these objects (verified, and in a pack of this store) from memory
        until :meth:`cool`: what a receive kept for its checkout (muse.core.warm)."""
        self._warm.update(kept)

    def cool(self) -> None:
        """Drop what :meth:`warm` kept (the checkout it was for is done). Emptied in place,
        so a reader that took ``warm_objects`` earlier (checkout's) sees it gone as well."""
        self._warm.clear()

    @property
    def warm_objects(self) -> dict[bytes, tuple[int, bytes]]:
        return self._warm

    @property
    def block_cache(self) -> Any:
        """The open packs' block cache (pack.gather watches it), None before they open."""
        return None if self._packs is None else self._packs.cache

    def locate(self, oid: bytes) -> tuple[Any, int] | None:
        """Where a pack holds the object in a zstd block, once packs are open (pack.gather)."""
        return None if self._packs is None else self._packs.locate(oid)

    def _get_loose(self, oid: bytes) -> tuple[int, bytes] | None:
        try:
            with open(self.loose_path(oid), "rb") as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _parse_loose(raw)

    def has(self, oid: bytes) -> bool:
        if self._packs is None and os.path.exists(self.loose_path(oid)):
            return True
        packs = self.packs
        if packs is not None and packs.has(oid):
            return True
        return self._packs is not None and os.path.exists(self.loose_path(oid))

    def get_kind(self, oid: bytes, kind: int) -> bytes:
        """The body of an object that must exist with this kind (KeyError / ObjectFormatError)."""
        found = self.get(oid)
        if found is None:
            raise KeyError(oid)
        if found[0] != kind:
            raise ObjectFormatError(f"object {oid.hex()} is not a {_kind_name(kind)}")
        return found[1]

    def iter_loose_ids(self) -> Iterator[bytes]:
        try:
            dirs = os.listdir(self.objects_dir)
        except FileNotFoundError:
            return
        for d in sorted(dirs):
            if len(d) != 2:
                continue
            try:
                names = os.listdir(os.path.join(self.objects_dir, d))
            except NotADirectoryError:
                continue
            for n in sorted(names):
                if len(n) == 62 and not n.startswith(_TMP_PREFIX):
                    try:
                        yield bytes.fromhex(d + n)
                    except ValueError:
                        continue

    def iter_pack_ids(self) -> Iterator[bytes]:
        packs = self.packs
        if packs is None:
            return
        for pf in _pack_files(packs):
            yield from pf.ids()

    def iter_ids(self) -> Iterator[bytes]:
        """Every object id in the store (a packed object also stored loose appears once)."""
        seen: set[bytes] = set()
        for oid in self.iter_pack_ids():
            if oid not in seen:
                seen.add(oid)
                yield oid
        for oid in self.iter_loose_ids():
            if oid not in seen:
                yield oid

    def resolve_prefix(self, prefix: str) -> list[bytes]:
        """Ids that start with a hex prefix (for abbreviated ids in the CLI)."""
        prefix = prefix.lower()
        out: set[bytes] = set()
        d = os.path.join(self.objects_dir, prefix[:2])
        if len(prefix) >= 2:
            try:
                for n in os.listdir(d):
                    if (prefix[:2] + n).startswith(prefix) and len(n) == 62:
                        out.add(bytes.fromhex(prefix[:2] + n))
            except (FileNotFoundError, NotADirectoryError):
                pass
        for oid in self.iter_pack_ids():
            if oid.hex().startswith(prefix):
                out.add(oid)
        return sorted(out)

    # ------------------------------------------------------------------------------ write
    def put(self, kind: int, body: bytes | bytearray | memoryview) -> bytes:
        """Store one object loose (atomically) unless it already exists; returns its id."""
        oid = object_id(kind, body)
        if self.has(oid):
            return oid
        self._write_loose(oid, header(kind, len(body)), body)
        return oid

    def put_loose_known(self, oid: bytes, kind: int, body: bytes) -> None:
        """Write an object whose id the caller already computed (skips the existence check)."""
        self._write_loose(oid, header(kind, len(body)), body)

    def _write_loose(self, oid: bytes, head: bytes, body: bytes | bytearray | memoryview) -> None:
        h = oid.hex()
        d = os.path.join(self.objects_dir, h[:2])
        if d not in self._made_dirs:
            os.makedirs(d, exist_ok=True)
            self._made_dirs.add(d)
        # Content-addressed: every writer writes the same bytes, so no lock, a unique temp
        # name. Atomic, not synced (git's core.fsync default leaves loose objects out too: a
        # sync each costs ~0.5 ms here; what must survive a power cut goes into packs).
        with LockFile(os.path.join(d, h[2:]), durable=False, mode=0o444, lock=False) as f:
            f.write(_compress(head + body))

    def write_pack(self, objects: Iterable[tuple[int, bytes]]) -> PackFile:
        """Write many objects as one pack in ``.muse/packs`` (cheaper than many loose files)."""
        from muse.core.pack.write import write_pack_file

        os.makedirs(self.packs_dir, exist_ok=True)
        pf = write_pack_file(self.packs_dir, objects)
        self._after_new_pack()
        return pf

    def receive_pack(
        self,
        stream: BinaryIO,
        limits: Any = None,
        resumable: bool = False,
        inspect: Any = None,
        inspect_kinds: tuple[int, ...] = (),
    ) -> PackFile:
        """Store a pack arriving on a stream, verifying every object as it is written.

        ``resumable``: if the stream breaks, what was received and verified is kept as a
        pack (recorded in ``packs/partial``), so the next attempt can leave it out.
        ``inspect(kind, oid, body)`` sees each object of ``inspect_kinds`` as it is decoded
        (core.pack.write.receive_pack), so a check need not read the pack again.
        """
        from muse.core.pack.write import receive_pack

        os.makedirs(self.packs_dir, exist_ok=True)
        salvaged: list[PackFile] | None = [] if resumable else None
        try:
            pf = receive_pack(
                stream, self.packs_dir, limits, inspect, inspect_kinds, salvaged=salvaged
            )
        finally:
            if salvaged:
                self._record_partial(salvaged)
        self._after_new_pack()
        return pf

    # ------------------------------------------------- what interrupted transfers kept
    @property
    def _partial_path(self) -> str:
        return os.path.join(self.packs_dir, "partial")

    def _record_partial(self, packs: list[PackFile]) -> None:
        with open(self._partial_path, "a", encoding="ascii") as f:
            for pf in packs:
                f.write(os.path.basename(pf.path) + "\n")
        self._after_new_pack()

    def partial_blobs(self, limits: Any = None) -> list[bytes]:
        """Blob ids that interrupted transfers kept (docs/wire.md: ``have_objects``).

        A killed receive's temporary pack is salvaged first (its complete blocks verified
        and kept), so a rerun after SIGKILL resumes as well as a retry after a cut does.
        """
        from muse.core.objects import BLOB
        from muse.core.pack.file import PackFile
        from muse.core.pack.write import salvage_leftovers

        kept = salvage_leftovers(self.packs_dir, limits) if os.path.isdir(self.packs_dir) else []
        if kept:
            self._record_partial(kept)
        try:
            with open(self._partial_path, encoding="ascii") as f:
                names = [n for n in f.read().split() if n]
        except FileNotFoundError:
            return []
        out: list[bytes] = []
        for name in dict.fromkeys(names):
            path = os.path.join(self.packs_dir, name)
            if os.path.exists(path):
                pf = PackFile(path)
                out.extend(oid for oid, kind in pf.kinds() if kind == BLOB)
                pf.close()
        return out

    def clear_partial(self) -> None:
        """Forget what interrupted transfers kept (their packs stay: ordinary packs now)."""
        try:
            os.unlink(self._partial_path)
        except FileNotFoundError:
            pass

    def _after_new_pack(self) -> None:
        self._no_packs = False
        if self._packs is None:
            _ = self.packs
        else:
            self._packs.refresh()


#: Loose objects are small (files of 1 MiB and more are chunked), trees and commits a few MiB
#: at most: a stream that inflates to more is damage, not an object.
LOOSE_MAX = 256 << 20
_LEVEL = 6  # zlib's default, as git's core.looseCompression


def _compress(data: bytes) -> bytes:
    """zlib, as git keeps loose objects: 0.3 ms to import (zstandard: 3 ms or more, which
    every command that reads one loose commit would pay), and on objects this small zstd
    compresses no better (a 4 KiB source file: 1,821 bytes against 1,873)."""
    import zlib

    return zlib.compress(data, _LEVEL)


def loose_bytes(raw: bytes) -> bytes:
    """The hashed bytes (header + body) of a loose file's content: a zlib stream, or (loose
    objects written before they were compressed) those bytes as they are, which start with
    the kind's name, never with a zlib header's 0x78."""
    if raw[:1] != b"\x78":
        return raw
    import zlib

    d = zlib.decompressobj()
    try:
        out = d.decompress(raw, LOOSE_MAX)
    except zlib.error as e:
        raise ObjectFormatError(f"corrupt loose object ({e})") from None
    if not d.eof or d.unused_data or d.unconsumed_tail:
        raise ObjectFormatError("corrupt loose object (not exactly one whole zlib stream)")
    return out


def _parse_loose(raw: bytes) -> tuple[int, bytes]:
    raw = loose_bytes(raw)
    sp = raw.find(b" ", 0, 16)
    nul = raw.find(b"\0", 0, 32)
    if sp <= 0 or nul <= sp:
        raise ObjectFormatError("corrupt loose object header")
    kind = KIND_CODES.get(raw[:sp].decode("ascii", "replace"))
    if kind is None:
        raise ObjectFormatError("corrupt loose object kind")
    body = raw[nul + 1 :]
    if raw[sp + 1 : nul] != str(len(body)).encode():
        raise ObjectFormatError("corrupt loose object length")
    return kind, body


def _kind_name(kind: int) -> str:
    from muse.core.objects import KIND_NAMES

    return KIND_NAMES.get(kind, str(kind))


def _pack_files(packs: PackSet) -> list[PackFile]:
    """The PackFile objects of a PackSet, newest first."""
    return list(packs.packs)
