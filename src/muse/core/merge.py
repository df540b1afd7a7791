"""Three-way merge at file level, with the merge state kept in ``.muse/``.

For every path that differs between the merge base and either side: a change on one side
only is taken; the same change on both sides is taken once; different changes on both sides
are a conflict. A conflicted file is written with conflict markers around the two whole
versions (``<<<<<<< ours`` / ``=======`` / ``>>>>>>> theirs``); the user edits it and runs
``muse commit``, which reads ``.muse/MERGE_HEAD`` and records a commit with two parents.

Safety: the merged tree is written through :func:`checkout_tree`, which refuses before writing
anything when a local change would be overwritten; conflicted paths (which checkout does not
touch, since they keep our version in the merged tree) are checked here against HEAD first.
So a merge never loses uncommitted work. ``merge --abort`` puts back the tree of HEAD.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from muse.core.fileio import write_all
from muse.core.graph import merge_base
from muse.core.lockfile import write_atomic
from muse.core.objects import (
    BLOB,
    COMMIT,
    MODE_LINK,
    MODE_TREE,
    TREE,
    Commit,
    Signature,
    decode_tree,
    encode_tree,
)
from muse.core.record import Record
from muse.core.repo import Repository
from muse.core.treediff import changed_paths

if TYPE_CHECKING:  # pragma: no cover
    from muse.core.worktree import ProgressSink
from muse.errors import MuseError

MERGE_HEAD = "MERGE_HEAD"
MERGE_MSG = "MERGE_MSG"
ORIG_HEAD = "ORIG_HEAD"
MERGE_CONFLICTS = "MERGE_CONFLICTS"

Entry = tuple[int, bytes]  # (mode, id)


class MergeError(MuseError):
    """A merge that cannot start or cannot be represented (message is one line)."""


class MergeInProgress(MergeError):
    pass


class MergeResult(Record):
    _fields = ("kind", "commit", "tree", "conflicts", "written")

    def __init__(
        self,
        kind: str,  # "up-to-date" | "fast-forward" | "merged" | "conflict"
        commit: bytes | None = None,  # the new head (fast-forward target or merge commit)
        tree: bytes | None = None,
        conflicts: list[str] | None = None,
        written: int = 0,
    ) -> None:
        self.kind = kind
        self.commit = commit
        self.tree = tree
        self.conflicts: list[str] = conflicts if conflicts is not None else []
        self.written = written


# ---------------------------------------------------------------------------- tree walk
def _tree_map(repo: Repository, oid: bytes | None) -> dict[str, Entry]:
    if oid is None:
        return {}
    found = repo.store.get(oid)
    if found is None or found[0] != TREE:
        raise MergeError(f"tree {oid.hex()[:12]} is missing")
    return {e.name: (e.mode, e.id) for e in decode_tree(found[1])}


def _changes(repo: Repository, a: bytes | None, b: bytes | None) -> dict[str, Entry | None]:
    """Path -> new entry (None: deleted) for every file that differs from a to b."""
    return changed_paths(lambda oid: _tree_map(repo, oid), a, b)


def _lookup(repo: Repository, tree: bytes | None, path: str) -> Entry | None:
    cur = tree
    parts = path.split("/")
    for i, part in enumerate(parts):
        e = _tree_map(repo, cur).get(part)
        if e is None:
            return None
        if i == len(parts) - 1:
            return None if e[0] == MODE_TREE else e
        if e[0] != MODE_TREE:
            return None
        cur = e[1]
    return None


def apply_changes(repo: Repository, tree: bytes | None, changes: dict[str, Entry | None]) -> bytes:
    """A new root tree: ``tree`` with files set or removed; only touched subtrees are rebuilt."""
    nested: dict[str, Entry | None] = {}
    groups: dict[str, dict[str, Entry | None]] = {}
    for path, entry in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            groups.setdefault(head, {})[rest] = entry
        else:
            nested[head] = entry
    current = _tree_map(repo, tree)
    for name, entry in nested.items():
        if entry is None:
            current.pop(name, None)
        else:
            if name in groups:
                raise MergeError(f"cannot merge: {name} is both a file and a directory")
            current[name] = entry
    for name, sub in groups.items():
        old = current.get(name)
        if old is not None and old[0] != MODE_TREE:
            if name in nested and nested[name] is None:
                old = None
            else:
                raise MergeError(f"cannot merge: {name} is both a file and a directory")
        new_sub = apply_changes(repo, old[1] if old else None, sub)
        if _tree_map(repo, new_sub):
            current[name] = (MODE_TREE, new_sub)
        else:
            current.pop(name, None)
    body = encode_tree([(n, m, i) for n, (m, i) in current.items()])
    return repo.store.put(TREE, body)


# ------------------------------------------------------------------------------ state
def _state_path(repo: Repository, name: str) -> str:
    return os.path.join(repo.muse_dir, name)


def merge_head(repo: Repository) -> bytes | None:
    """The commit being merged (a merge with conflicts is waiting for ``muse commit``)."""
    try:
        with open(_state_path(repo, MERGE_HEAD), encoding="ascii") as f:
            return bytes.fromhex(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def conflicted_paths(repo: Repository) -> list[str]:
    try:
        with open(_state_path(repo, MERGE_CONFLICTS), encoding="utf-8") as f:
            return [ln for ln in f.read().split("\n") if ln]
    except FileNotFoundError:
        return []


def clear_state(repo: Repository) -> None:
    """Forget the merge: MERGE_HEAD first (it is what says a merge is in progress)."""
    for name in (MERGE_HEAD, MERGE_MSG, MERGE_CONFLICTS, ORIG_HEAD):
        try:
            os.unlink(_state_path(repo, name))
        except FileNotFoundError:
            pass


def _write_state(repo: Repository, name: str, text: str) -> None:
    """Replace one merge-state file under its lock (muse.core.lockfile; atomic, not fsynced)."""
    write_atomic(_state_path(repo, name), text.encode("utf-8"), what=name)


def commit_parents(repo: Repository, head: bytes | None) -> tuple[bytes, ...]:
    """Parents for ``muse commit``: HEAD, plus MERGE_HEAD while a merge is in progress."""
    parents: tuple[bytes, ...] = () if head is None else (head,)
    mh = merge_head(repo)
    if mh is not None and mh not in parents:
        parents += (mh,)
    return parents


# ------------------------------------------------------------------------------ merge
def conflict_text(ours: bytes | None, theirs: bytes | None, label: str) -> bytes:
    def block(data: bytes | None) -> bytes:
        if not data:
            return b""
        return data if data.endswith(b"\n") else data + b"\n"

    return (
        b"<<<<<<< ours (HEAD)\n"
        + block(ours)
        + b"=======\n"
        + block(theirs)
        + b">>>>>>> theirs ("
        + label.encode("utf-8", "replace")
        + b")\n"
    )


def _blob(repo: Repository, entry: Entry | None) -> bytes | None:
    if entry is None:
        return None
    found = repo.store.get(entry[1])
    return found[1] if found and found[0] == BLOB else None


def merge(
    repo: Repository,
    theirs: bytes,
    label: str,
    message: str | None = None,
    signature: tuple[Signature, Signature] | None = None,
    progress: ProgressSink | None = None,
) -> MergeResult:
    """Merge commit ``theirs`` into the current branch (working tree included).

    Fast-forwards when possible, commits a clean merge with two parents, and otherwise leaves
    the conflicts in the working tree with MERGE_HEAD set (see the module docstring).
    """
    from muse.core.checkout import checkout_tree
    from muse.core.worktree import status

    if merge_head(repo) is not None:
        raise MergeInProgress(
            "a merge is in progress: resolve the conflicts and 'muse commit', "
            "or 'muse merge --abort'"
        )
    branch_ref, ours = repo.refs.head()
    if ours == theirs:
        return MergeResult("up-to-date", ours)
    if ours is None:  # unborn branch: take theirs
        tree = repo.read_commit(theirs).tree
        stats = checkout_tree(repo, tree, progress=progress)
        repo.refs.update_head(theirs, None)
        return MergeResult("fast-forward", theirs, tree, written=stats.written)
    base = merge_base(repo.store, ours, theirs)
    if base == theirs:
        return MergeResult("up-to-date", ours)
    if base == ours:
        tree = repo.read_commit(theirs).tree
        stats = checkout_tree(repo, tree, progress=progress)
        repo.refs.update_head(theirs, ours)
        return MergeResult("fast-forward", theirs, tree, written=stats.written)

    base_tree = repo.read_commit(base).tree if base is not None else None
    our_tree = repo.read_commit(ours).tree
    their_tree = repo.read_commit(theirs).tree
    ours_ch = _changes(repo, base_tree, our_tree)
    theirs_ch = _changes(repo, base_tree, their_tree)
    take: dict[str, Entry | None] = {}
    conflicts: list[str] = []
    for path, t in theirs_ch.items():
        if path not in ours_ch:
            take[path] = t
        elif ours_ch[path] != t:
            conflicts.append(path)
    conflicts.sort()

    # never overwrite uncommitted work on a conflicted path (checkout guards the others)
    if conflicts:
        st = status(repo)
        dirty = {c[0] for c in st.changes}
        touched = sorted(dirty.intersection(conflicts))
        if touched:
            raise MergeError(
                "your local changes would be overwritten by the merge: "
                + ", ".join(touched[:5])
                + " (commit them or move them away first)"
            )
    merged_tree = apply_changes(repo, our_tree, take)
    stats = checkout_tree(repo, merged_tree, progress=progress)
    msg = message or f"Merge {label}\n"
    if not conflicts:
        author, committer = signature or (repo.signature("AUTHOR"), repo.signature("COMMITTER"))
        commit = Commit(merged_tree, (ours, theirs), author, committer, msg)
        oid = repo.store.put(COMMIT, commit.encode())
        repo.refs.update_head(oid, ours)
        return MergeResult("merged", oid, merged_tree, written=stats.written)

    # conflicts: markers into the working tree, state for `muse commit` / `merge --abort`;
    # MERGE_HEAD last: once it exists (a merge in progress), the list of conflicts does too
    _write_state(repo, ORIG_HEAD, ours.hex() + "\n")
    lines = [f"    {p}" for p in conflicts]
    _write_state(repo, MERGE_MSG, msg + "\nConflicts:\n" + "\n".join(lines) + "\n")
    _write_state(repo, MERGE_CONFLICTS, "\n".join(conflicts) + "\n")
    _write_state(repo, MERGE_HEAD, theirs.hex() + "\n")
    for path in conflicts:
        o = ours_ch.get(path)
        t = theirs_ch.get(path)
        full = os.path.join(repo.root, *path.split("/"))
        if t is None or o is None:
            # modified on one side, deleted on the other: keep the surviving version
            keep = o if o is not None else t
            data = _blob(repo, keep)
            if data is not None and keep is not None and keep[0] != MODE_LINK:
                _write_file(full, data)
            continue
        if MODE_LINK in (o[0], t[0]):
            continue  # a symlink keeps our version; the user decides
        _write_file(full, conflict_text(_blob(repo, o), _blob(repo, t), label))
    _ = branch_ref
    return MergeResult("conflict", None, merged_tree, conflicts, stats.written)


def _write_file(full: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if os.path.islink(full):
        os.unlink(full)
    mode = os.lstat(full).st_mode & 0o777 if os.path.exists(full) else 0o666
    tmp = full + ".muse-merge-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, full)


def abort(repo: Repository) -> None:
    """Put the working tree back to HEAD's tree and forget the merge."""
    from muse.core.checkout import CheckoutConflict, checkout_tree

    if merge_head(repo) is None:
        raise MergeError("there is no merge to abort")
    head_tree = repo.head_tree()
    from muse.core.objects import EMPTY_TREE_ID

    target = head_tree if head_tree is not None else EMPTY_TREE_ID
    # conflicted files go back to our version first, so checkout sees them unchanged
    for path in conflicted_paths(repo):
        e = _lookup(repo, head_tree, path)
        full = os.path.join(repo.root, *path.split("/"))
        data = _blob(repo, e)
        if e is not None and data is not None and e[0] != MODE_LINK:
            _write_file(full, data)
        elif e is None and os.path.lexists(full) and not os.path.isdir(full):
            os.unlink(full)
    try:
        checkout_tree(repo, target)
    except CheckoutConflict:
        checkout_tree(repo, target, force=True)
    clear_state(repo)


def unresolved(repo: Repository, paths: Iterable[str]) -> list[str]:
    """Conflicted paths whose file still holds conflict markers."""
    out = []
    for p in paths:
        try:
            with open(os.path.join(repo.root, *p.split("/")), "rb") as f:
                data = f.read()
        except OSError:
            continue
        if b"<<<<<<< ours" in data and b">>>>>>> theirs" in data:
            out.append(p)
    return out
