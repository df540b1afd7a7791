"""muse revert: record a new commit that undoes an earlier one, as ``git revert`` does.

The change from the reverted commit back to its parent (``-m N``: its N-th parent, for a
merge) is applied to HEAD by a three-way merge whose base is the reverted commit. A clean
result is committed at once; conflicts are left in the working tree with ``REVERT_HEAD``,
``MERGE_MSG`` and ``MERGE_CONFLICTS`` in ``.muse/``, for ``muse commit`` (or ``muse revert
--continue``) once resolved, or ``muse revert --abort``.

:func:`apply_delta` is the shared step "apply base -> theirs on top of HEAD" (revert, stash
apply); it calls the file-level merge internals of muse.core.merge, not a merge of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from muse.cli.cmd_reset import REVERT_HEAD, reverting
from muse.errors import Conflict, MuseError, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rev", nargs="?", help="the commit to undo")
    p.add_argument(
        "-m", "--mainline", type=int, metavar="N", help="revert a merge relative to parent N"
    )
    p.add_argument("--no-edit", action="store_true", help="use the default message (always)")
    p.add_argument("--continue", dest="cont", action="store_true", help="commit once resolved")
    p.add_argument("--abort", action="store_true", help="give up a revert that has conflicts")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve, short
    from muse.core import merge as m

    repo = open_repo()
    if args.cont or args.abort:
        if args.rev or (args.cont and args.abort):
            raise UsageError("--continue and --abort take nothing else")
        return _abort(repo) if args.abort else _continue(repo, args.quiet)
    if not args.rev:
        raise UsageError("what to revert? muse revert <commit>")
    if m.merge_head(repo) is not None or reverting(repo):
        raise MuseError("a merge or revert is in progress: finish it first (muse commit)")
    head = repo.head_commit()
    if head is None:
        raise UsageError("HEAD has no commits yet: there is nothing to revert")
    oid = resolve(repo, args.rev)
    c = repo.read_commit(oid)
    if len(c.parents) > 1 and args.mainline is None:
        raise UsageError(f"commit {short(oid)} is a merge but no -m option was given")
    if len(c.parents) <= 1 and args.mainline is not None:
        raise UsageError(f"-m was given but commit {short(oid)} is not a merge")
    n = args.mainline or 1
    if not 1 <= n <= max(1, len(c.parents)):
        raise UsageError(f"commit {short(oid)} has no parent {n}")
    from muse.core.objects import EMPTY_TREE_ID

    parent = c.parents[n - 1] if c.parents else None
    parent_tree = repo.read_commit(parent).tree if parent is not None else EMPTY_TREE_ID
    subject = c.message.split("\n", 1)[0]
    message = f'Revert "{subject}"\n\nThis reverts commit {oid.hex()}'
    if parent is not None and len(c.parents) > 1:
        message += f",\nreversing changes made to {parent.hex()}.\n"
    else:
        message += ".\n"
    tree, conflicts = apply_delta(repo, c.tree, parent_tree, f"parent of {short(oid)}")
    if conflicts:
        from muse.cli.cmd_reset import write_orig_head

        write_orig_head(repo, head)
        m._write_state(repo, m.MERGE_MSG, message + "\nConflicts:\n" + _listed(conflicts))
        m._write_state(repo, m.MERGE_CONFLICTS, "\n".join(conflicts) + "\n")
        m._write_state(repo, REVERT_HEAD, oid.hex() + "\n")
        shown = ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise Conflict(
            f"could not revert {short(oid)}: conflict in {shown}: fix the files, then "
            "'muse revert --continue' (or 'muse commit'), or 'muse revert --abort'"
        )
    if tree == repo.read_commit(head).tree:
        raise MuseError(f"reverting {short(oid)} changes nothing: nothing to commit")
    new = _record(repo, head, tree, message)
    if not args.quiet:
        where = repo.current_branch() or "detached HEAD"
        sys.stdout.write(f"[{where} {short(new)}] {message.split(chr(10), 1)[0]}\n")
    return 0


def _listed(paths: list[str]) -> str:
    return "".join(f"    {p}\n" for p in paths)


def _record(repo: Repository, head: bytes, tree: bytes, message: str) -> bytes:
    from muse.core.objects import COMMIT, Commit
    from muse.core.refs import RefConflict
    from muse.errors import Rejected

    author, committer = repo.signature("AUTHOR"), repo.signature("COMMITTER")
    oid = repo.store.put(COMMIT, Commit(tree, (head,), author, committer, message).encode())
    try:
        repo.refs.update_head(oid, head, log=f"revert: {message.split(chr(10), 1)[0]}")
    except RefConflict as e:
        raise Rejected(f"HEAD moved while reverting: {e}") from None
    return oid


def _continue(repo: Repository, quiet: bool) -> int:
    from muse.cli._util import short
    from muse.cli.cmd_reset import clear_undo_state
    from muse.core import merge as m
    from muse.core.index import load_index
    from muse.core.worktree import snapshot

    if not reverting(repo):
        raise MuseError("there is no revert in progress")
    left = m.conflicted_paths(repo)
    if left:
        raise Conflict(
            f"still conflicted: {', '.join(left[:5])} (fix them, then 'muse resolve PATH')"
        )
    with open(os.path.join(repo.muse_dir, m.MERGE_MSG), encoding="utf-8") as f:
        message = f.read().split("\nConflicts:\n", 1)[0]
    head = repo.head_commit()
    assert head is not None
    with load_index(repo.muse_dir, lock=True) as idx:
        res, idx = snapshot(repo, idx)
        new = _record(repo, head, res.tree, message)
        idx.base = res.tree
        idx.save()
    clear_undo_state(repo)
    if not quiet:
        sys.stdout.write(f"[{repo.current_branch() or 'detached HEAD'} {short(new)}] ")
        sys.stdout.write(message.split("\n", 1)[0] + "\n")
    return 0


def _abort(repo: Repository) -> int:
    from muse.cli.cmd_reset import clear_undo_state
    from muse.cli.cmd_restore import restore_entries
    from muse.core import merge as m
    from muse.core.checkout import CheckoutConflict, checkout_tree
    from muse.core.objects import EMPTY_TREE_ID
    from muse.core.treediff import tree_reader, walk_tree

    if not reverting(repo):
        raise MuseError("there is no revert to abort")
    target = repo.head_tree() or EMPTY_TREE_ID
    get = tree_reader(repo.store)
    conflicted = set(m.conflicted_paths(repo))
    files = {p: (mode, oid) for p, mode, oid in walk_tree(get, target)}
    wanted = {p: e for p, e in files.items() if p in conflicted}

    def under_a_file(path: str) -> bool:  # a directory/file conflict: HEAD has a file above
        parts = path.split("/")
        return any("/".join(parts[:i]) in files for i in range(1, len(parts)))

    gone = {p for p in conflicted - wanted.keys() if not under_a_file(p)}
    restore_entries(repo, wanted, gone)  # markers out first
    try:
        checkout_tree(repo, target)  # then the cleanly applied part
    except CheckoutConflict:  # edited since: back as HEAD has them, as merge --abort does
        checkout_tree(repo, target, force=True)
    clear_undo_state(repo)
    return 0


def apply_delta(
    repo: Repository, base_tree: bytes, their_tree: bytes, label: str
) -> tuple[bytes, list[str]]:
    """Apply the change base_tree -> their_tree to HEAD and the working tree: muse's one
    three-way merge (muse.core.merge.merge_trees: line level for text, no markers in
    binaries), written by checkout (path-safe, refuses to overwrite local changes). Returns
    the merged tree and the conflicted paths (their stages kept for checkout --ours/--theirs)."""
    from muse.core import merge as m
    from muse.core.objects import EMPTY_TREE_ID

    our_tree = repo.head_tree() or EMPTY_TREE_ID
    tm = m.merge_trees(
        repo, base_tree, our_tree, their_tree, ("HEAD", label, "base"), m.conflict_style(repo)
    )
    m._write_shown(repo, tm, None)
    if tm.conflicts:
        m._write_stages(repo, tm)
    return tm.merged, tm.conflicts
