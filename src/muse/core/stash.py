"""Stashes: working-tree changes kept as commits under ``refs/stash``, as git keeps them.

A stash is a commit whose one parent is the HEAD it was made on and whose tree is that HEAD's
tree with the stashed changes (changes to files HEAD has; with ``-u`` new files too). The
stack is the reflog of ``refs/stash`` (muse.core.reflog): ``stash@{0}`` is its newest entry,
so stashes survive, are listed with their messages and are ordinary commits for ``muse show``.
Dropping one rewrites that log and moves ``refs/stash`` to the next newest.
"""

from __future__ import annotations

from muse.core import reflog
from muse.core.objects import COMMIT, EMPTY_TREE_ID, Commit
from muse.core.repo import Repository, UnknownRevision
from muse.errors import MuseError

STASH_REF = "refs/stash"


class NoStash(UnknownRevision):
    """A stash@{N} that does not exist."""


def stack(repo: Repository) -> list[reflog.Entry]:
    """The stashes, newest first."""
    return list(reversed(reflog.read(repo.muse_dir, STASH_REF)))


def get(repo: Repository, n: int) -> bytes:
    entries = stack(repo)
    if not entries:
        raise NoStash("no stash entries found")
    if not 0 <= n < len(entries):
        raise NoStash(f"stash@{{{n}}} does not exist (there are {len(entries)})")
    return entries[n].new


def save(repo: Repository, message: str | None, untracked: bool) -> bytes | None:
    """Stash the working tree's changes and put the tree back to HEAD; None if none."""
    from muse.core.checkout import checkout_tree
    from muse.core.index import load_index
    from muse.core.merge import apply_changes, merge_head
    from muse.core.treediff import diff_trees, tree_reader
    from muse.core.worktree import snapshot

    head = repo.head_commit()
    if head is None:
        raise MuseError("you do not have the initial commit yet: nothing to stash against")
    if merge_head(repo) is not None:
        raise MuseError("a merge is in progress: finish it or 'muse merge --abort' first")
    head_commit = repo.read_commit(head)
    head_tree = head_commit.tree
    with load_index(repo.muse_dir, lock=True) as idx:
        res, idx = snapshot(repo, idx)
        get_tree = tree_reader(repo.store, res.trees)
        changes = list(diff_trees(get_tree, head_tree, res.tree))
        picked = {path: new for path, old, new in changes if old is not None or untracked}
        if not picked:
            return None
        left = [path for path, old, _ in changes if old is None and not untracked]
        for path in left:  # a tracked file that became a directory of new files
            parent = path.rpartition("/")[0]
            while parent:
                if parent in picked:
                    raise MuseError(f"{parent} is now a directory of new files: use muse stash -u")
                parent = parent.rpartition("/")[0]
        stash_tree = apply_changes(repo, head_tree, picked)
        branch = repo.current_branch() or "(no branch)"
        subject = head_commit.message.split("\n", 1)[0]
        text = (
            f"On {branch}: {message}"
            if message
            else f"WIP on {branch}: {head.hex()[:12]} {subject}"
        )
        # back to HEAD for the stashed paths only (a file that became a directory comes back
        # whole); computed before the stash is recorded, so a refusal leaves nothing behind
        back = {p: _entry_at(repo, head_tree, p) for p in picked}
        files = {p for p, e in back.items() if e is not None}
        back = {p: e for p, e in back.items() if not any(a in files for a in _parents(p))}
        target = apply_changes(repo, res.tree, back)
        who = repo.signature("COMMITTER")
        commit = Commit(stash_tree, (head,), who, who, text + "\n")
        oid = repo.store.put(COMMIT, commit.encode())
        repo.refs.update(STASH_REF, oid, log=text)
        # with base = what is on disk now, checkout counts the stashed new files as its own
        # and removes them (path-safe); files not stashed stay
        idx.base = res.tree
        checkout_tree(repo, target, force=True, index=idx)
        idx.base = head_tree
        idx.save()
    return oid


def _parents(path: str) -> list[str]:
    out = []
    while "/" in path:
        path = path.rpartition("/")[0]
        out.append(path)
    return out


def _entry_at(repo: Repository, tree: bytes, path: str) -> tuple[int, bytes] | None:
    from muse.core.merge import _lookup

    return _lookup(repo, tree, path)


def base_tree(repo: Repository, oid: bytes) -> bytes:
    """The tree a stash was made on (its first parent's)."""
    parents = repo.read_commit(oid).parents
    return repo.read_commit(parents[0]).tree if parents else EMPTY_TREE_ID


def drop(repo: Repository, n: int) -> bytes:
    """Remove stash@{n} from the stack; returns its id."""
    oid = get(repo, n)
    entries = reflog.read(repo.muse_dir, STASH_REF)  # oldest first
    del entries[len(entries) - 1 - n]
    if not entries:
        repo.refs.update(STASH_REF, None)  # deletes the log too
        return oid
    top = entries[-1].new
    current = repo.refs.read(STASH_REF)
    if current != top:
        repo.refs.update(STASH_REF, top, current, log=entries[-1].message)
    reflog.write_all(repo.muse_dir, STASH_REF, entries)
    return oid


def clear(repo: Repository) -> None:
    repo.refs.update(STASH_REF, None)
