"""fsck: re-hash every object (loose and packed) and check that everything reachable exists.

Problems are collected, not raised, so one run reports all of them.
"""

from __future__ import annotations

import hashlib
import os

from muse.core.index import load_index
from muse.core.objects import (
    BLOB,
    CHUNKS,
    COMMIT,
    KIND_NAMES,
    MODE_KIND,
    TAG,
    TREE,
    ObjectFormatError,
    check_object,
    chunks_refs,
    commit_refs,
    object_id,
    tag_refs,
    tree_refs,
)
from muse.core.pack import closure
from muse.core.record import Record
from muse.core.refs import RefError
from muse.core.repo import Repository
from muse.core.store import _pack_files, _parse_loose, loose_bytes


class FsckReport(Record):
    _fields = ("objects", "loose", "packed", "reachable", "problems", "warnings")

    def __init__(self) -> None:
        self.objects = 0
        self.loose = 0
        self.packed = 0
        self.reachable = 0
        self.problems: list[str] = []
        self.warnings: list[str] = []  # not corruption: leftovers of interrupted commands

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository) -> FsckReport:
    rep = FsckReport()
    kinds: dict[bytes, int] = {}
    blob_sizes: dict[bytes, int] = {}
    tree_links: dict[bytes, tuple[bytes, bytes]] = {}  # tree -> (modes, ids)
    commit_links: dict[bytes, tuple[bytes, list[bytes]]] = {}  # commit -> (tree, parents)
    chunk_links: dict[bytes, bytes] = {}  # chunk list -> ids of its chunks
    tag_links: dict[bytes, tuple[bytes, int]] = {}  # tag -> (target, its kind)
    store = repo.store

    def check(oid: bytes, kind: int, body: bytes, where: str) -> None:
        try:
            check_object(kind, body)
            if kind == BLOB:
                blob_sizes[oid] = len(body)
            elif kind == TREE:
                tree_links[oid] = tree_refs(body)
            elif kind == COMMIT:
                commit_links[oid] = commit_refs(body)
            elif kind == CHUNKS:
                chunk_links[oid] = chunks_refs(body)
                blob_sizes[oid] = int.from_bytes(body[:8], "big")  # the file's size
            elif kind == TAG:
                tag_links[oid] = tag_refs(body)
        except ObjectFormatError as e:
            rep.problems.append(
                f"{where} object {oid.hex()}: malformed {KIND_NAMES.get(kind)}: {e}"
            )
            return
        kinds[oid] = kind

    # loose: the file's SHA-256 must be its name
    for oid in store.iter_loose_ids():
        rep.loose += 1
        path = store.loose_path(oid)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            rep.problems.append(f"loose object {oid.hex()}: unreadable: {e}")
            continue
        try:
            hashed = loose_bytes(raw)
        except ObjectFormatError as e:
            rep.problems.append(f"loose object {oid.hex()}: {e}")
            continue
        if hashlib.sha256(hashed).digest() != oid:
            rep.problems.append(f"loose object {oid.hex()}: hash mismatch (corrupt)")
            continue
        try:
            kind, body = _parse_loose(hashed)
        except ObjectFormatError as e:
            rep.problems.append(f"loose object {oid.hex()}: {e}")
            continue
        check(oid, kind, body, "loose")
    # packed: every object re-hashed, read in pack order (each block decompressed once)
    packs = store.packs
    recorded: list[tuple[str, list[bytes], set[bytes]]] = []  # closure records to check
    if packs is not None:
        for pf in _pack_files(packs):
            name = os.path.basename(str(pf.path))
            listed = pf.count
            seen_here = 0
            try:
                # The whole file first: record headers, trailer checksum and index agreement
                # (reading by the index alone would miss a damaged record header).
                pf.verify()
                for kind, oid, body in pf.iter_objects():
                    seen_here += 1
                    if object_id(kind, body) != oid:
                        rep.problems.append(f"{name}: object {oid.hex()}: hash mismatch")
                        continue
                    check(oid, kind, body, name)
            except Exception as e:  # noqa: BLE001 - any pack read failure is a problem
                rep.problems.append(f"{name}: unreadable: {e}")
            rep.packed += seen_here
            if seen_here != listed:
                rep.problems.append(f"{name}: index lists {listed} objects, read {seen_here}")
            for commits in closure.sets(str(pf.path)):
                recorded.append((str(pf.path), commits, set(pf.ids())))
    rep.objects = len(kinds)
    links = (commit_links, tree_links, chunk_links)
    for path, commits, held in recorded:
        if _history(commits, kinds, *links) != held:
            rep.problems.append(
                f"{closure.record_path(path)}: says the pack is exactly the history of "
                f"{', '.join(c.hex()[:12] for c in commits)}, and it is not (remove the file: "
                "a push then proves it again)"
            )

    # connectivity from every ref and HEAD
    tips: list[tuple[str, bytes]] = []
    try:
        tips += list(repo.refs.list().items())
    except RefError as e:
        rep.problems.append(str(e))
    try:
        _, head = repo.refs.head()
        if head is not None:
            tips.append(("HEAD", head))
    except (RefError, OSError) as e:
        rep.problems.append(f"HEAD: {e}")
    seen: set[bytes] = set()
    # A tag ref names a commit or an annotated tag (0: either); every other ref a commit.
    stack: list[tuple[bytes, int, str]] = [
        (oid, 0 if name.startswith("refs/tags/") else COMMIT, name) for name, oid in tips
    ]
    while stack:
        oid, want, src = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        found_kind = kinds.get(oid)
        if found_kind is None:
            if store.has(oid):
                continue  # present but malformed: reported above
            what = KIND_NAMES.get(want, "commit or tag")
            rep.problems.append(f"missing {what} {oid.hex()} (from {src})")
            continue
        if want == 0 and found_kind in (COMMIT, TAG):
            want = found_kind
        if found_kind != want:
            expected = KIND_NAMES.get(want, "commit or tag")
            rep.problems.append(
                f"{oid.hex()} is a {KIND_NAMES[found_kind]}, expected a {expected} (from {src})"
            )
            continue
        if found_kind == BLOB:
            continue
        short = oid.hex()[:12]
        if found_kind == TAG:
            target, target_kind = tag_links[oid]
            stack.append((target, target_kind, f"tag {short}"))
        elif found_kind == COMMIT:
            tree, parents = commit_links[oid]
            stack.append((tree, TREE, f"commit {short}"))
            stack.extend((p, COMMIT, f"commit {short}") for p in parents)
        elif found_kind == CHUNKS:
            ids = chunk_links[oid]
            where = f"chunk list {short}"
            for i in range(0, len(ids), 32):
                if ids[i : i + 32] not in seen:
                    stack.append((ids[i : i + 32], BLOB, where))
        else:
            modes, ids = tree_links[oid]
            where = f"tree {short}"
            for i, m in enumerate(modes):
                sub = ids[32 * i : 32 * i + 32]
                if sub not in seen:
                    stack.append((sub, MODE_KIND.get(m, BLOB), where))
    rep.reachable = len(seen)

    from muse.core.journal import finish_clone_hint, unfinished_clone
    from muse.core.pack.write import leftovers

    cloning = unfinished_clone(repo.muse_dir)
    if cloning is not None:
        rep.problems.append(
            f"unfinished clone of {cloning}: {finish_clone_hint(cloning, repo.root)}"
        )

    for path in leftovers(store.packs_dir):
        rep.warnings.append(
            f"{path}: left by an interrupted fetch or clone (the next one removes it)"
        )

    # The working tree's stat cache against the blobs it names: a file whose blob is not the
    # size the file had when it was hashed was stored wrong (say, a read cut short).
    idx = load_index(repo.muse_dir)
    for path, (oid, _flags, size, *_rest) in sorted(idx.entries.items()):
        stored = blob_sizes.get(oid)
        if stored is not None and stored != size:
            rep.problems.append(
                f"tracked file {path}: {size} bytes when it was hashed, but its blob "
                f"{oid.hex()} holds {stored}"
            )
    return rep


def _history(
    commits: list[bytes],
    kinds: dict[bytes, int],
    commit_links: dict[bytes, tuple[bytes, list[bytes]]],
    tree_links: dict[bytes, tuple[bytes, bytes]],
    chunk_links: dict[bytes, bytes],
) -> set[bytes] | None:
    """Every id reachable from ``commits`` (a closure record's claim, section 2.1.1 of
    docs/format.md); None when a commit is not one, or an object on the way is missing or
    malformed (the record cannot be exact then)."""
    seen: set[bytes] = set()
    stack = [(c, COMMIT) for c in commits]
    while stack:
        oid, want = stack.pop()
        if oid in seen:
            continue
        if kinds.get(oid) != want:
            return None
        seen.add(oid)
        if want == COMMIT:
            tree, parents = commit_links[oid]
            stack.append((tree, TREE))
            stack.extend((p, COMMIT) for p in parents)
        elif want == TREE:
            modes, ids = tree_links[oid]
            stack.extend(
                (ids[32 * i : 32 * i + 32], MODE_KIND.get(m, BLOB)) for i, m in enumerate(modes)
            )
        elif want == CHUNKS:
            ids = chunk_links[oid]
            stack.extend((ids[i : i + 32], BLOB) for i in range(0, len(ids), 32))
    return seen
