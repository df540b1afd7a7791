"""fsck: re-hash every object (loose and packed) and check that everything reachable exists.

Problems are collected, not raised, so one run reports all of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from muse.core.objects import (
    BLOB,
    COMMIT,
    KIND_NAMES,
    MODE_TREE,
    TREE,
    ObjectFormatError,
    commit_refs,
    object_id,
    tree_refs,
    validate,
)
from muse.core.refs import RefError
from muse.core.repo import Repository


@dataclass
class FsckReport:
    objects: int = 0
    loose: int = 0
    packed: int = 0
    reachable: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(repo: Repository) -> FsckReport:
    rep = FsckReport()
    kinds: dict[bytes, int] = {}
    store = repo.store

    def check(oid: bytes, kind: int, body: bytes, where: str) -> None:
        try:
            validate(kind, body)
        except ObjectFormatError as e:
            rep.problems.append(f"{where} object {oid.hex()}: malformed {KIND_NAMES[kind]}: {e}")
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
        if hashlib.sha256(raw).digest() != oid:
            rep.problems.append(f"loose object {oid.hex()}: hash mismatch (corrupt)")
            continue
        try:
            from muse.core.store import _parse_loose

            kind, body = _parse_loose(raw)
        except ObjectFormatError as e:
            rep.problems.append(f"loose object {oid.hex()}: {e}")
            continue
        check(oid, kind, body, "loose")
    # packed: re-hash what each pack returns
    packs = store.packs
    if packs is not None:
        from muse.core.store import _pack_files

        for pf in _pack_files(packs):
            name = os.path.basename(str(getattr(pf, "path", "pack")))
            for oid in pf.ids():
                rep.packed += 1
                try:
                    got = pf.get(oid)
                except Exception as e:  # noqa: BLE001 - any pack read failure is a problem
                    rep.problems.append(f"{name}: object {oid.hex()}: unreadable: {e}")
                    continue
                if got is None:
                    rep.problems.append(f"{name}: object {oid.hex()} listed but missing")
                    continue
                kind, body = got
                if object_id(kind, body) != oid:
                    rep.problems.append(f"{name}: object {oid.hex()}: hash mismatch")
                    continue
                check(oid, kind, body, name)
    rep.objects = len(kinds)

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
    stack: list[tuple[bytes, int, str]] = []
    for name, oid in tips:
        stack.append((oid, COMMIT, name))
    while stack:
        oid, want, src = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        found_kind = kinds.get(oid)
        if found_kind is None:
            if store.has(oid):
                continue  # present but unreadable/malformed: reported above
            rep.problems.append(f"missing {KIND_NAMES[want]} {oid.hex()} (from {src})")
            continue
        kind = found_kind
        if kind != want:
            rep.problems.append(
                f"{oid.hex()} is a {KIND_NAMES[kind]}, expected a {KIND_NAMES[want]} (from {src})"
            )
            continue
        if kind == BLOB:
            continue
        got = store.get(oid)
        assert got is not None
        body = got[1]
        short = oid.hex()[:12]
        if kind == COMMIT:
            tree, parents = commit_refs(body)
            stack.append((tree, TREE, f"commit {short}"))
            stack.extend((p, COMMIT, f"commit {short}") for p in parents)
        else:
            modes, ids = tree_refs(body)
            for i, m in enumerate(modes):
                stack.append(
                    (ids[32 * i : 32 * i + 32], TREE if m == MODE_TREE else BLOB, f"tree {short}")
                )
    rep.reachable = len(seen)
    return rep
