"""Three-way merge of trees, line by line for text, with the merge state kept in ``.muse/``.

For every path that differs between the merge base and either side: a change on one side
only is taken; the same change on both sides is taken once; a text file both sides changed
is merged line by line (:mod:`muse.core.linemerge`), and only hunks both changed differently
conflict, wrapped in git's markers (``--conflict=diff3``: with the base's lines). A binary
file, a large (chunked) file or a symlink both sides changed, a file one side changed and
the other deleted, and a file one side made a directory are conflicts without markers: our
version stays in place and theirs stays reachable (``muse checkout --theirs PATH``). A mode
change on one side and a content change on the other both survive.

Every file the merge writes, markers included, is written by checkout (a tree of what the
working tree should show), so a merge follows checkout's path rules: nothing through a
symlink, nothing outside the tree, nothing into ``.muse``, and it refuses before writing
anything when a local change would be overwritten. The index then records the merged tree
(ours on conflicted paths) as its base, so the marked files show as changes to resolve.
``muse resolve PATH`` marks one resolved; ``muse commit`` refuses while any is not (or still
holds markers); ``merge --abort`` puts back the tree of HEAD.

State files (docs/format.md): MERGE_HEAD, MERGE_MSG, MERGE_CONFLICTS (one path a line, the
unresolved ones), MERGE_STAGES (``path TAB base TAB ours TAB theirs``, each ``mode:hex`` or
``-``), ORIG_HEAD.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from muse.core.graph import merge_base
from muse.core.lockfile import write_atomic
from muse.core.objects import (
    BLOB,
    COMMIT,
    MODE_EXEC,
    MODE_FILE,
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
MERGE_STAGES = "MERGE_STAGES"

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
    for name in (MERGE_HEAD, MERGE_MSG, MERGE_CONFLICTS, MERGE_STAGES, ORIG_HEAD):
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


class TreeMerge(Record):
    """What merging three trees gives, before anything is written."""

    _fields = ("merged", "shown", "conflicts", "stages", "kinds")

    def __init__(
        self,
        merged: bytes,
        shown: bytes,
        conflicts: list[str],
        stages: dict[str, tuple[Entry | None, Entry | None, Entry | None]],
        kinds: dict[str, str],
    ) -> None:
        self.merged = merged  # the result, our version on conflicted paths
        self.shown = shown  # what the working tree shows: markers in conflicted text files
        self.conflicts = conflicts
        self.stages = stages  # path -> (base, ours, theirs)
        self.kinds = kinds  # path -> "content" | "binary" | "modify/delete" | ...


def _is_file(e: Entry | None) -> bool:
    return e is not None and e[0] in (MODE_FILE, MODE_EXEC)


def _merge_entry(
    repo: Repository,
    path: str,
    b: Entry | None,
    o: Entry | None,
    t: Entry | None,
    labels: tuple[str, str, str],
    style: str,
) -> tuple[Entry | None, Entry | None, str | None]:
    """(merged entry, entry to show, conflict kind or None) for one path both sides changed."""
    from muse.core.linemerge import merge_lines

    if o is None or t is None:
        keep = o if o is not None else t
        return o, keep, "modify/delete"
    if MODE_LINK in (o[0], t[0]) or (b is not None and b[0] == MODE_LINK):
        return o, o, "symlink"
    if not (_is_file(o) and _is_file(t)) or (b is not None and not _is_file(b)):
        return o, o, "binary"  # a large (chunked) file, or a file that became one
    # the mode: a change on one side only is taken
    if b is not None and o[0] == b[0]:
        mode = t[0]
    elif b is not None and t[0] == b[0]:
        mode = o[0]
    elif o[0] == t[0]:
        mode = o[0]
    else:
        return o, o, "mode"
    if o[1] == t[1]:
        return (mode, o[1]), (mode, o[1]), None
    if b is not None and o[1] == b[1]:
        return (mode, t[1]), (mode, t[1]), None
    if b is not None and t[1] == b[1]:
        return (mode, o[1]), (mode, o[1]), None
    base_data = _blob(repo, b) if b is not None else b""
    ours_data, theirs_data = _blob(repo, o), _blob(repo, t)
    if base_data is None or ours_data is None or theirs_data is None:
        return o, o, "binary"
    try:
        lm = merge_lines(base_data, ours_data, theirs_data, *labels, style=style)
    except ValueError:
        return o, o, "binary"
    oid = repo.store.put(BLOB, lm.data)
    if lm.conflicts:
        return (o[0], o[1]), (mode, oid), "content" if b is not None else "add/add"
    return (mode, oid), (mode, oid), None


def merge_trees(
    repo: Repository,
    base_tree: bytes | None,
    our_tree: bytes,
    their_tree: bytes,
    labels: tuple[str, str, str] = ("ours", "theirs", "base"),
    style: str = "merge",
) -> TreeMerge:
    """Merge the change base_tree -> their_tree into our_tree, writing nothing but objects.

    ``labels``: what the markers name (ours, theirs, base). The one three-way merge of muse:
    merge, pull, revert and stash apply all come here.
    """
    ours_ch = _changes(repo, base_tree, our_tree)
    theirs_ch = _changes(repo, base_tree, their_tree)
    take: dict[str, Entry | None] = {}
    show: dict[str, Entry | None] = {}
    conflicts: list[str] = []
    stages: dict[str, tuple[Entry | None, Entry | None, Entry | None]] = {}
    kinds: dict[str, str] = {}
    for path, t in theirs_ch.items():
        if path not in ours_ch:
            take[path] = t
            continue
        o = ours_ch[path]
        if o == t:
            continue
        b = _lookup(repo, base_tree, path)
        merged, shown, kind = _merge_entry(repo, path, b, o, t, labels, style)
        if kind is None:
            take[path] = merged
            continue
        conflicts.append(path)
        stages[path] = (b, o, t)
        kinds[path] = kind
        if shown != o:
            show[path] = shown
    # a file on one side where the other has a directory: reported, our side kept
    try:
        merged_tree = apply_changes(repo, our_tree, take)
    except MergeError:
        merged_tree, take = _without_dir_file_clashes(repo, our_tree, take, conflicts, kinds)
    shown_tree = merged_tree
    if show:
        try:
            shown_tree = apply_changes(repo, merged_tree, show)
        except MergeError:  # one of them clashes with a directory or file: show the others
            for path in sorted(show):
                try:
                    shown_tree = apply_changes(repo, shown_tree, {path: show[path]})
                except MergeError:
                    kinds[path] = "directory/file"
    conflicts.sort()
    return TreeMerge(merged_tree, shown_tree, conflicts, stages, kinds)


def _without_dir_file_clashes(
    repo: Repository,
    our_tree: bytes,
    take: dict[str, Entry | None],
    conflicts: list[str],
    kinds: dict[str, str],
) -> tuple[bytes, dict[str, Entry | None]]:
    """Leave out (as directory/file conflicts) the taken paths that clash with our tree."""
    kept = dict(take)
    for path in sorted(take):
        trial = dict(kept)
        try:
            apply_changes(repo, our_tree, {path: trial[path]})
        except MergeError:
            kept.pop(path)
            conflicts.append(path)
            kinds[path] = "directory/file"
    while True:
        try:
            return apply_changes(repo, our_tree, kept), kept
        except MergeError:  # clashes between taken paths themselves
            path = sorted(kept)[-1]
            kept.pop(path)
            conflicts.append(path)
            kinds[path] = "directory/file"


def _write_stages(repo: Repository, tm: TreeMerge) -> None:
    def one(e: Entry | None) -> str:
        return "-" if e is None else f"{e[0]}:{e[1].hex()}"

    lines = []
    for path in tm.conflicts:
        b, o, t = tm.stages.get(path, (None, None, None))
        lines.append(f"{path}\t{one(b)}\t{one(o)}\t{one(t)}")
    _write_state(repo, MERGE_STAGES, "\n".join(lines) + "\n")


def stages(repo: Repository) -> dict[str, tuple[Entry | None, Entry | None, Entry | None]]:
    """path -> (base, ours, theirs) of the merge in progress (``checkout --ours/--theirs``)."""

    def one(text: str) -> Entry | None:
        if text == "-":
            return None
        mode, _, hexid = text.partition(":")
        return int(mode), bytes.fromhex(hexid)

    out: dict[str, tuple[Entry | None, Entry | None, Entry | None]] = {}
    try:
        with open(_state_path(repo, MERGE_STAGES), encoding="utf-8") as f:
            for line in f.read().split("\n"):
                parts = line.split("\t")
                if len(parts) == 4:
                    try:
                        out[parts[0]] = (one(parts[1]), one(parts[2]), one(parts[3]))
                    except ValueError:
                        continue
    except FileNotFoundError:
        pass
    return out


def conflict_style(repo: Repository, asked: str | None = None) -> str:
    """--conflict=, else merge.conflictStyle (git's names), else "merge"."""
    from muse.core.linemerge import STYLES

    style = asked
    if style is None:
        try:
            conf = repo.effective_config().get("merge", {})
            style = conf.get("conflictStyle") or conf.get("conflictstyle")
        except Exception:  # noqa: BLE001 - a broken config is reported where it is read
            style = None
    style = str(style or "merge")
    if style not in STYLES:
        raise MergeError(f"unknown conflict style {style!r} (merge or diff3)")
    return style


def _write_shown(repo: Repository, tm: TreeMerge, progress: ProgressSink | None) -> int:
    """Checkout what the merge shows (path-safe); the index's base becomes the merged tree."""
    from muse.core.checkout import CheckoutConflict, UnsafePath, checkout_tree
    from muse.core.index import load_index

    try:
        stats = checkout_tree(repo, tm.shown, progress=progress)
    except CheckoutConflict as e:
        raise MergeError(
            "your local changes or untracked files would be overwritten by the merge: "
            + ", ".join(e.paths[:5])
            + (" ..." if len(e.paths) > 5 else "")
            + " (commit them or 'muse stash' them first)"
        ) from None
    except UnsafePath as e:
        raise MergeError(f"refusing to merge: {e}") from None
    if tm.shown != tm.merged:
        with load_index(repo.muse_dir, lock=True) as idx:
            idx.base = tm.merged
            idx.save()
    return stats.written


def merge(
    repo: Repository,
    theirs: bytes,
    label: str,
    message: str | None = None,
    signature: tuple[Signature, Signature] | None = None,
    progress: ProgressSink | None = None,
    *,
    ff: str = "auto",
    style: str | None = None,
) -> MergeResult:
    """Merge commit ``theirs`` into the current branch (working tree included).

    ``ff``: "auto" fast-forwards when possible, "only" refuses anything else (``--ff-only``),
    "never" records a merge commit even then (``--no-ff``). A clean merge is committed with
    two parents; otherwise the conflicts are left in the working tree with MERGE_HEAD set.
    """
    from muse.core.checkout import checkout_tree

    if merge_head(repo) is not None:
        raise MergeInProgress(
            "a merge is in progress: resolve the conflicts and 'muse commit', "
            "or 'muse merge --abort'"
        )
    if ff not in ("auto", "only", "never"):
        raise ValueError(ff)
    _branch_ref, ours = repo.refs.head()
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
    msg = message or f"Merge {label}\n"
    if base == ours and ff != "never":
        tree = repo.read_commit(theirs).tree
        stats = checkout_tree(repo, tree, progress=progress)
        repo.refs.update_head(theirs, ours)
        return MergeResult("fast-forward", theirs, tree, written=stats.written)
    if ff == "only":
        raise MergeError("not possible to fast-forward: the branches have diverged")

    base_tree = repo.read_commit(base).tree if base is not None else None
    our_tree = repo.read_commit(ours).tree
    their_tree = repo.read_commit(theirs).tree
    tm = merge_trees(
        repo, base_tree, our_tree, their_tree, ("ours", label, "base"), conflict_style(repo, style)
    )
    written = _write_shown(repo, tm, progress)
    if not tm.conflicts:
        author, committer = signature or (repo.signature("AUTHOR"), repo.signature("COMMITTER"))
        commit = Commit(tm.merged, (ours, theirs), author, committer, msg)
        oid = repo.store.put(COMMIT, commit.encode())
        repo.refs.update_head(oid, ours)
        return MergeResult("merged", oid, tm.merged, written=written)

    # the state for `muse commit` / `merge --abort`; MERGE_HEAD last: once it exists (a merge
    # in progress), the list of conflicts does too
    _write_state(repo, ORIG_HEAD, ours.hex() + "\n")
    lines = [f"    {p}" for p in tm.conflicts]
    _write_state(repo, MERGE_MSG, msg + "\nConflicts:\n" + "\n".join(lines) + "\n")
    _write_state(repo, MERGE_CONFLICTS, "\n".join(tm.conflicts) + "\n")
    _write_stages(repo, tm)
    _write_state(repo, MERGE_HEAD, theirs.hex() + "\n")
    res = MergeResult("conflict", None, tm.merged, tm.conflicts, written)
    res.kinds = tm.kinds  # type: ignore[attr-defined]
    return res


def abort(repo: Repository) -> None:
    """Put the working tree back to HEAD's tree and forget the merge.

    Conflicted paths go back to our version (whatever was done to them since); the rest goes
    back through an ordinary checkout, so a local change made before the merge to a file the
    merge did not touch is kept, as git's ``merge --abort`` keeps it.
    """
    from muse.core.checkout import CheckoutConflict, checkout_tree
    from muse.core.index import load_index
    from muse.core.objects import EMPTY_TREE_ID

    if merge_head(repo) is None:
        raise MergeError("there is no merge to abort")
    head_tree = repo.head_tree()
    target = head_tree if head_tree is not None else EMPTY_TREE_ID
    conflicted = set(stages(repo)) | set(conflicted_paths(repo))
    with load_index(repo.muse_dir, lock=True) as idx:
        base = idx.base
    try:
        if conflicted and base is not None:
            # the conflicted paths first, forced to ours (checkout's path rules apply)
            here = _with_worktree_at(repo, base, conflicted)
            ours_only = _applied(repo, here, {p: _lookup(repo, head_tree, p) for p in conflicted})
            with load_index(repo.muse_dir, lock=True) as idx:
                idx.base = here
                idx.save()
            checkout_tree(repo, ours_only, force=False)
        checkout_tree(repo, target)
    except (CheckoutConflict, MergeError):
        checkout_tree(repo, target, force=True)
    clear_state(repo)


def _with_worktree_at(repo: Repository, tree: bytes, paths: set[str]) -> bytes:
    """``tree`` with ``paths`` set to what the working tree holds there now (hashed), so a
    checkout from it overwrites those paths without calling them local changes."""
    from muse.core.worktree import scan

    result, _ = scan(repo)
    return _applied(repo, tree, {p: _lookup_in(repo, result, p) for p in paths})


def _applied(repo: Repository, tree: bytes, changes: dict[str, Entry | None]) -> bytes:
    """apply_changes, path by path where a path clashes (a file where a directory is)."""
    try:
        return apply_changes(repo, tree, changes)
    except MergeError:
        for path in sorted(changes):
            try:
                tree = apply_changes(repo, tree, {path: changes[path]})
            except MergeError:
                continue
        return tree


def _lookup_in(repo: Repository, result: object, path: str) -> Entry | None:
    """The entry of ``path`` in a scan's tree (its trees are in the scan result)."""
    trees: dict[bytes, bytes] = getattr(result, "trees", {})
    cur: bytes | None = getattr(result, "tree", None)
    parts = path.split("/")
    for i, part in enumerate(parts):
        if cur is None:
            return None
        body = trees.get(cur)
        if body is None:
            found = repo.store.get(cur)
            body = found[1] if found else None
        if body is None:
            return None
        entries = {e.name: (e.mode, e.id) for e in decode_tree(body)}
        e = entries.get(part)
        if e is None:
            return None
        if i == len(parts) - 1:
            if e[0] == MODE_TREE:
                return None
            if not repo.store.has(e[1]):
                return None  # not stored: checkout then sees a change and is forced below
            return e
        cur = e[1] if e[0] == MODE_TREE else None
    return None


def unresolved(repo: Repository, paths: Iterable[str]) -> list[str]:
    """Conflicted paths whose file still holds conflict markers."""
    out = []
    for p in paths:
        try:
            with open(os.path.join(repo.root, *p.split("/")), "rb") as f:
                data = f.read()
        except OSError:
            continue
        from muse.core.linemerge import has_markers

        if has_markers(data):
            out.append(p)
    return out


def mark_resolved(repo: Repository, paths: Iterable[str]) -> list[str]:
    """Take paths off the conflict list (``muse resolve``); returns those not on it."""
    left = conflicted_paths(repo)
    wanted = set(paths)
    unknown = sorted(wanted.difference(left))
    rest = [p for p in left if p not in wanted]
    _write_state(repo, MERGE_CONFLICTS, "\n".join(rest) + ("\n" if rest else ""))
    return unknown


def take_side(repo: Repository, paths: list[str], side: str) -> list[str]:
    """Put our (``side="ours"``) or their version of conflicted paths into the working tree
    (``muse checkout --ours|--theirs PATH``), through checkout and its path rules. Returns
    the paths that were written; raises MergeError for a path that is not conflicted."""
    from muse.core.checkout import UnsafePath, checkout_tree
    from muse.core.index import load_index

    if side not in ("ours", "theirs"):
        raise ValueError(side)
    st = stages(repo)
    unknown = [p for p in paths if p not in st]
    if unknown:
        raise MergeError(
            f"not a conflicted path of the merge in progress: {', '.join(unknown[:5])}"
        )
    with load_index(repo.muse_dir, lock=True) as idx:
        base = idx.base
    if base is None:
        raise MergeError("the index does not record the merged tree: 'muse merge --abort'")
    here = _with_worktree_at(repo, base, set(paths))
    pick = 1 if side == "ours" else 2
    target = _applied(repo, here, {p: st[p][pick] for p in paths})
    with load_index(repo.muse_dir, lock=True) as idx:
        idx.base = here
        idx.save()
    try:
        checkout_tree(repo, target)
    except UnsafePath as e:
        raise MergeError(f"refusing to write {side}: {e}") from None
    return paths
